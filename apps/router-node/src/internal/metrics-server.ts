import http from 'node:http';

/** Serves `GET /metrics` (Prometheus text format) on its own listener. */
export async function startMetricsServer(
  host: string,
  port: number,
  render: () => string,
): Promise<{ port: number; close(): Promise<void> }> {
  const server = http.createServer((req, res) => {
    if (req.url === '/metrics' && req.method === 'GET') {
      res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4; charset=utf-8' });
      res.end(render());
    } else {
      res.writeHead(404).end('not found\n');
    }
  });
  const bound = await new Promise<number>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      const a = server.address();
      resolve(typeof a === 'object' && a !== null ? a.port : 0);
    });
  });
  return {
    port: bound,
    close: () => {
      // Idle keep-alive scrapers would hold close() open: drop them first.
      server.closeAllConnections();
      return new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

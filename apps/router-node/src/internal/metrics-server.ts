import http from 'node:http';

/** What a GET route of the metrics listener answers. */
export interface HttpReply {
  readonly status: number;
  readonly contentType: string;
  readonly body: string | Buffer;
  readonly headers?: Readonly<Record<string, string>>;
}

/** GET routes by exact path (query string ignored); a route may answer asynchronously. */
export type HttpRoutes = Readonly<Record<string, () => HttpReply | Promise<HttpReply>>>;

const PROMETHEUS_TEXT = 'text/plain; version=0.0.4; charset=utf-8';

/** `GET /metrics` (Prometheus text format 0.0.4) as an `HttpReply`. */
export function metricsRoute(render: () => string | Promise<string>): () => Promise<HttpReply> {
  return async () => ({ status: 200, contentType: PROMETHEUS_TEXT, body: await render() });
}

/**
 * Serves GET routes (`/metrics` and whatever else the router adds) on the metrics listener.
 * Anything else is 404 (unknown path) or 405 (known path, other method).
 */
export async function startMetricsServer(
  host: string,
  port: number,
  routes: HttpRoutes,
): Promise<{ port: number; close(): Promise<void> }> {
  const server = http.createServer((req, res) => {
    const url = req.url ?? '/';
    const q = url.indexOf('?');
    const path = q < 0 ? url : url.slice(0, q);
    const route = Object.hasOwn(routes, path) ? routes[path] : undefined;
    if (route === undefined) {
      res.writeHead(404, { 'content-type': 'text/plain; charset=utf-8' }).end('not found\n');
      return;
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res
        .writeHead(405, { allow: 'GET, HEAD', 'content-type': 'text/plain; charset=utf-8' })
        .end('method not allowed\n');
      return;
    }
    const send = (reply: HttpReply): void => {
      res.writeHead(reply.status, { 'content-type': reply.contentType, ...reply.headers });
      res.end(req.method === 'HEAD' ? undefined : reply.body);
    };
    const fail = (err: unknown): void => {
      res
        .writeHead(500, { 'content-type': 'text/plain; charset=utf-8' })
        .end(`error: ${(err as Error).message}\n`);
    };
    try {
      const reply = route();
      if (reply instanceof Promise) reply.then(send, fail);
      else send(reply);
    } catch (err) {
      fail(err);
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

/**
 * Child process for the memory benchmark (run with --expose-gc): connects a fresh pool to
 * every port given, `channels` connections of one kind per node, makes one call on every
 * connection so each really exists, and prints the memory delta as one JSON line.
 */
import { setImmediate as turn } from 'node:timers/promises';
import type { H2ClientConnection } from '@engram/h2';
import { ConnectionPool } from '../src/index.js';
import { healthCheck, rawHealthCheck } from '../test/helpers.js';

const [kind, channelsArg, portsJson] = process.argv.slice(2) as [
  'channel' | 'session' | 'h2',
  string,
  string,
];
const channels = Number(channelsArg);
const ports = JSON.parse(portsJson) as number[];
const gc = (globalThis as { gc?: () => void }).gc;
if (gc === undefined) throw new Error('run with --expose-gc');

async function settle(): Promise<NodeJS.MemoryUsage> {
  for (let i = 0; i < 4; i++) {
    gc!();
    await turn();
  }
  return process.memoryUsage();
}

/** grpc.health.v1.Health/Check over an @engram/h2 connection; resolves with grpc-status. */
function h2HealthCheck(c: H2ClientConnection): Promise<string> {
  return new Promise((resolve, reject) => {
    let status = '';
    c.request(
      [
        ':method',
        'POST',
        ':scheme',
        'http',
        ':path',
        '/grpc.health.v1.Health/Check',
        ':authority',
        'bench',
        'content-type',
        'application/grpc',
        'te',
        'trailers',
      ],
      Buffer.alloc(5),
      {
        onHeaders(_s, h) {
          for (let i = 0; i < h.length; i += 2) if (h[i] === 'grpc-status') status = h[i + 1]!;
        },
        onData() {},
        onClose(_s, code) {
          if (code === -1 && status === '0') resolve(status);
          else reject(new Error(`health check closed ${code}, grpc-status ${status}`));
        },
      },
    );
  });
}

async function callEvery(pool: ConnectionPool, nodes: number): Promise<void> {
  const calls: Promise<string>[] = [];
  for (let slot = 0; slot < nodes; slot++) {
    for (let i = 0; i < channels; i++) {
      calls.push(
        kind === 'channel'
          ? healthCheck(pool.acquireClient(slot))
          : kind === 'session'
            ? rawHealthCheck(pool.acquireSession(slot))
            : h2HealthCheck(pool.acquireH2(slot)),
      );
    }
  }
  await Promise.all(calls);
}

// Warm-up on the first port: module code, lazily created grpc-js/http2 internals and JIT
// are paid once per process, not per node, so they stay out of the per-node figure.
{
  const warm = new ConnectionPool({ channelsPerNode: channels });
  warm.addNode('warm', `127.0.0.1:${ports[0]}`);
  await warm.connect('warm', kind);
  await callEvery(warm, 1);
  await warm.close();
}

const before = await settle();
const pool = new ConnectionPool({ channelsPerNode: channels });
for (const [i, port] of ports.entries()) pool.addNode(`n${i}`, `127.0.0.1:${port}`);
await Promise.all(ports.map((_, i) => pool.connect(i, kind)));
await callEvery(pool, ports.length);
const after = await settle();
const connections =
  kind === 'channel' ? pool.channelCount : kind === 'session' ? pool.sessionCount : pool.h2Count;
await pool.close();

process.stdout.write(
  `${JSON.stringify({
    kind,
    channels,
    nodes: ports.length,
    connections,
    heapUsed: after.heapUsed - before.heapUsed,
    external: after.external - before.external,
    rss: after.rss - before.rss,
  })}\n`,
);
process.exit(0);

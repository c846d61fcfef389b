/**
 * Child process for the memory benchmark: starts N grpc-js health servers on 127.0.0.1,
 * prints their ports as one JSON line, and serves until stdin closes. Kept out of the
 * measuring process so server-side sessions do not count against the pool.
 */
import { startHealthServer } from '../test/helpers.js';

const count = Number(process.argv[2] ?? 100);
const servers = await Promise.all(Array.from({ length: count }, () => startHealthServer()));
process.stdout.write(`${JSON.stringify(servers.map((s) => s.port))}\n`);
process.stdin.resume();
process.stdin.on('end', async () => {
  await Promise.all(servers.map((s) => s.close()));
  process.exit(0);
});

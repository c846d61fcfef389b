import { afterEach, expect, it } from 'vitest';
import { ConnectionPool } from '../src/index.js';
import { type CountedNode, startCountedNode, until } from './helpers.js';

// Its own file: vitest gives each file a fresh process, so no other test's sockets are
// still closing while this one counts handles.
let node: CountedNode | undefined;
afterEach(async () => {
  await node?.stop();
});

const tcpHandles = () =>
  process.getActiveResourcesInfo().filter((r) => r === 'TCPSocketWrap').length;

it('close() leaves no open TCP handles behind (channels and sessions)', async () => {
  node = await startCountedNode();
  const baseline = tcpHandles();
  const pool = new ConnectionPool({ channelsPerNode: 4 });
  pool.addNode('a', node.address);
  await pool.connect('a');
  await pool.connect('a', 'session');
  await node.proxy.whenOpen(8);
  expect(tcpHandles()).toBeGreaterThan(baseline);

  await pool.close();
  await node.proxy.whenOpen(0);
  // The server's own side of each proxied connection closes a moment after the proxy's.
  await until(() => tcpHandles() === baseline, 'TCP handles to return to the baseline');
  expect(pool.channelCount + pool.sessionCount).toBe(0);
});

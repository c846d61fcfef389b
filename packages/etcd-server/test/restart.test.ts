import * as net from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { EtcdServer } from '../src/index.js';

const servers: EtcdServer[] = [];
const blockers: net.Server[] = [];
afterEach(async () => {
  for (const b of blockers.splice(0)) await new Promise((r) => b.close(r));
  for (const s of servers.splice(0)) await s.stop();
});

/** Listens on 127.0.0.1:`port`, as a stray socket holding etcd's port would. */
async function block(port: number): Promise<net.Server> {
  const server = net.createServer((socket) => socket.destroy());
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', resolve);
  });
  blockers.push(server);
  return server;
}

describe('EtcdServer.restart', () => {
  it('waits for its client port to be free again, then starts and answers', async () => {
    const etcd = await EtcdServer.start();
    servers.push(etcd);
    await etcd.kill();
    const blocker = await block(etcd.clientPort);
    let done = false;
    const restarted = etcd.restart(20_000).then(() => {
      done = true;
    });
    // Held past the first bind (etcd exits at once on a port in use), then freed.
    await new Promise((r) => setTimeout(r, 1000));
    expect(done).toBe(false);
    await new Promise((r) => blocker.close(r));
    blockers.splice(blockers.indexOf(blocker), 1);
    await restarted;
    expect(etcd.running).toBe(true);
    const res = await fetch(`http://${etcd.endpoint}/health`);
    expect(((await res.json()) as { health?: string }).health).toBe('true');
  }, 60_000);

  it('gives up with the bind error when the port stays taken past readyMs', async () => {
    const etcd = await EtcdServer.start();
    servers.push(etcd);
    await etcd.kill();
    await block(etcd.clientPort);
    // readyMs: long enough for etcd to start and meet the taken port at least once.
    await expect(etcd.restart(5000)).rejects.toThrow(/stayed in use .*address already in use/s);
    expect(etcd.running).toBe(false);
  }, 60_000);
});

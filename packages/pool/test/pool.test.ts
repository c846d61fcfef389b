import { once } from 'node:events';
import * as http2 from 'node:http2';
import type { AddressInfo } from 'node:net';
import * as grpc from '@grpc/grpc-js';
import { afterEach, describe, expect, it } from 'vitest';
import {
  type ConnectionEvent,
  ConnectionFailedError,
  ConnectionPool,
  type ConnectionStateEvent,
  type PoolOptions,
} from '../src/index.js';
import {
  type CountedNode,
  deadPort,
  healthCheck,
  ManualClock,
  rawHealthCheck,
  startBlackhole,
  startCountedNode,
  until,
} from './helpers.js';

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  while (cleanups.length > 0) await cleanups.pop()!();
});

async function node(ports: { proxy?: number; server?: number } = {}): Promise<CountedNode> {
  const n = await startCountedNode(ports);
  cleanups.push(() => n.stop());
  return n;
}

function pool(options: PoolOptions = {}): ConnectionPool {
  // The seed's 4 connections per node (the default is 1): proves they are distinct.
  const p = new ConnectionPool({ channelsPerNode: 4, ...options });
  cleanups.push(() => p.close());
  return p;
}

describe('ConnectionPool with grpc-js channels', () => {
  it('opens channelsPerNode distinct TCP connections per node, counted at the server', async () => {
    const a = await node();
    const b = await node();
    const p = pool();
    p.addNode('a', a.address);
    p.addNode('b', b.address);
    for (let i = 0; i < 8; i++) {
      expect(await healthCheck(p.acquireClient('a'))).toBe('SERVING');
      expect(await healthCheck(p.acquireClient('b'))).toBe('SERVING');
    }
    expect(a.proxy.accepted()).toBe(4);
    expect(b.proxy.accepted()).toBe(4);
    expect(p.channelCount).toBe(8);
    expect(a.server.calls()).toBe(8);
  });

  it('needs its subchannel option: plain grpc-js channels to one target share a connection', async () => {
    const a = await node();
    const insecure = grpc.credentials.createInsecure();
    const plain = [new grpc.Client(a.address, insecure), new grpc.Client(a.address, insecure)];
    try {
      for (const client of plain) expect(await healthCheck(client)).toBe('SERVING');
      expect(a.proxy.accepted()).toBe(1);
    } finally {
      for (const client of plain) client.close();
    }
  });

  it('opens one connection per node with default options', async () => {
    const a = await node();
    const p = new ConnectionPool();
    cleanups.push(() => p.close());
    p.addNode('a', a.address);
    await p.connect('a');
    for (let i = 0; i < 10; i++) await healthCheck(p.acquireClient('a'));
    expect(a.proxy.accepted()).toBe(1);
    expect(p.channelCount).toBe(1);
  });

  it('honours any channelsPerNode', async () => {
    const a = await node();
    const p = pool({ channelsPerNode: 2 });
    p.addNode('a', a.address);
    await p.connect('a');
    for (let i = 0; i < 10; i++) await healthCheck(p.acquireClient('a'));
    expect(a.proxy.accepted()).toBe(2);
  });

  it('opens no new connections over 1,000 repeat calls', { timeout: 30_000 }, async () => {
    const a = await node();
    const p = pool();
    const slot = p.addNode('a', a.address);
    await p.connect(slot);
    await a.proxy.whenOpen(4);
    const channels = new Set<unknown>();
    for (let i = 0; i < 1000; i++) {
      const client = p.acquireClient(slot);
      channels.add(client.getChannel());
      await healthCheck(client);
    }
    expect(a.server.calls()).toBe(1000);
    expect(a.proxy.accepted()).toBe(4);
    expect(channels.size).toBe(4);
    expect(p.channelCount).toBe(4);
  });

  it('round-robins and caches one client per channel', async () => {
    const a = await node();
    const p = pool({ channelsPerNode: 3 });
    p.addNode('a', a.address);
    const channels = Array.from({ length: 6 }, () => p.acquireChannel('a'));
    expect(new Set(channels).size).toBe(3);
    expect(channels.slice(0, 3)).toEqual(channels.slice(3));
    const clients = Array.from({ length: 6 }, () => p.acquireClient('a'));
    expect(new Set(clients).size).toBe(3);
    expect(clients[0]!.getChannel()).toBe(channels[0]);
  });

  it('replaces connections after the server restarts on the same port', async () => {
    const a = await node();
    const ready = new Set<number>();
    const p = pool({
      reconnectBaseDelayMs: 20,
      reconnectMaxDelayMs: 200,
      onStateChange: (e: ConnectionStateEvent) => {
        if (e.state === 'ready') ready.add(e.index);
        else ready.delete(e.index);
      },
    });
    p.addNode('a', a.address);
    await p.connect('a');
    const channels = Array.from({ length: 4 }, () => p.acquireChannel('a'));
    expect(a.proxy.accepted()).toBe(4);

    await a.stop();
    await until(() => ready.size === 0, 'every channel to notice the server went away');
    const b = await node({ proxy: a.proxy.port, server: a.server.port });
    expect(b.address).toBe(a.address);
    // grpc-js retries each channel on its own backoff (20..200 ms here); until one is back,
    // acquisition fails fast with ConnectionFailed rather than queueing.
    await until(() => ready.size === 4, 'every channel to reconnect');
    for (let i = 0; i < 8; i++) {
      const client = p.acquireClient('a');
      expect(await healthCheck(client, { waitForReady: true, deadlineMs: 5000 })).toBe('SERVING');
    }
    await p.connect('a');
    expect(b.proxy.accepted()).toBe(4);
    expect(b.server.calls()).toBe(8);
    // The same channel objects carry on: callers holding a channel or client keep working.
    expect(Array.from({ length: 4 }, () => p.acquireChannel('a'))).toEqual(channels);
    expect(p.channelCount).toBe(4);
    expect(p.healthReport().perNode[0]!.channels).toEqual(['ready', 'ready', 'ready', 'ready']);
  });

  it('replaces a connection whose keep-alive PINGs go unanswered', async () => {
    const a = await node();
    let frozen = false;
    let dropped = false;
    let recovered!: () => void;
    const back = new Promise<void>((resolve) => {
      recovered = resolve;
    });
    const p = new ConnectionPool({
      keepaliveIntervalMs: 100,
      keepaliveTimeoutMs: 100,
      reconnectBaseDelayMs: 10,
      onStateChange: (e) => {
        if (!frozen) return;
        if (e.state !== 'ready') dropped = true;
        else if (dropped) recovered();
      },
    });
    cleanups.push(() => p.close());
    p.addNode('a', a.address);
    await p.connect('a');
    await a.proxy.whenOpen(1);
    frozen = true;
    a.proxy.freeze();
    await back;
    expect(a.proxy.accepted()).toBe(2);
    expect(await healthCheck(p.acquireClient('a'))).toBe('SERVING');
  });

  it('reconnects to the new address when a node is re-added with one', async () => {
    const a = await node();
    const b = await node();
    const p = pool({ channelsPerNode: 2 });
    const slot = p.addNode('n', a.address);
    await p.connect('n');
    expect(p.addNode('n', b.address)).toBe(slot);
    await a.proxy.whenOpen(0);
    await p.connect(slot);
    expect(b.proxy.accepted()).toBe(2);
    expect(p.channelCount).toBe(2);
    expect(p.healthReport().perNode[0]).toMatchObject({ address: b.address, healthy: true });
  });

  it('reports ConnectionFailed with node id and cause for a refused address', async () => {
    const port = await deadPort();
    // Fake time: the connect timeout never fires, so the rejection must come from the
    // refused connection itself, well within any timeout.
    const p = pool({ clock: new ManualClock() });
    p.addNode('dead', `127.0.0.1:${port}`);
    const err = await p.connect('dead').then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(ConnectionFailedError);
    expect(err).toMatchObject({
      code: 'ConnectionFailed',
      nodeId: 'dead',
      address: `127.0.0.1:${port}`,
    });
    expect((err as ConnectionFailedError).cause).toBeInstanceOf(Error);
    expect(p.healthReport()).toMatchObject({ totalNodes: 1, healthyNodes: 0 });
  });

  it('reports ConnectionFailed when the handshake outlasts the connect timeout', async () => {
    const hole = await startBlackhole();
    cleanups.push(() => hole.close());
    const p = pool({ connectTimeoutMs: 200 });
    p.addNode('slow', hole.address);
    await expect(p.connect('slow')).rejects.toMatchObject({
      code: 'ConnectionFailed',
      nodeId: 'slow',
      cause: expect.objectContaining({
        message: expect.stringMatching(/connect timeout of 200 ms/),
      }),
    });
  });

  it('removeNode closes its channels and close() closes the rest', async () => {
    const a = await node();
    const b = await node();
    const events: ConnectionEvent[] = [];
    const p = pool({ onConnection: (e) => events.push(e) });
    p.addNode('a', a.address);
    p.addNode('b', b.address);
    await Promise.all([p.connect('a'), p.connect('b'), p.connect('a', 'session')]);
    await a.proxy.whenOpen(8);
    expect(p.channelCount).toBe(8);
    expect(p.sessionCount).toBe(4);

    await p.removeNode('a');
    await a.proxy.whenOpen(0);
    expect(b.proxy.open()).toBe(4);
    expect(p.channelCount).toBe(4);
    expect(p.sessionCount).toBe(0);
    expect(p.hasNode('a')).toBe(false);

    await p.close();
    await b.proxy.whenOpen(0);
    expect(p.channelCount).toBe(0);
    expect(events.filter((e) => e.type === 'open')).toHaveLength(12);
    expect(events.filter((e) => e.type === 'close')).toHaveLength(12);
  });
});

describe('ConnectionPool with raw HTTP/2 sessions', () => {
  it('opens channelsPerNode sessions, reuses them over 1,000 calls, round robin', {
    timeout: 30_000,
  }, async () => {
    const a = await node();
    const p = pool();
    p.addNode('a', a.address);
    await p.connect('a', 'session');
    const sessions = new Set<unknown>();
    for (let i = 0; i < 1000; i++) {
      const s = p.acquireSession('a');
      sessions.add(s);
      expect(await rawHealthCheck(s)).toBe('SERVING');
    }
    expect(sessions.size).toBe(4);
    expect(a.proxy.accepted()).toBe(4);
    expect(p.healthReport()).toMatchObject({ totalNodes: 1, healthyNodes: 1, totalSessions: 4 });
  });

  it('replaces broken sessions with backoff after the server restarts on the same port', async () => {
    const clock = new ManualClock();
    const a = await node();
    const p = pool({ clock, random: () => 0 });
    p.addNode('a', a.address);
    await p.connect('a', 'session');
    const old = new Set(Array.from({ length: 4 }, () => p.acquireSession('a')));

    await a.stop();
    await until(() => p.sessionCount === 0, 'every session to break');
    // All four broke; none is handed out while their replacements wait out the backoff.
    expect(() => p.acquireSession('a')).toThrow(ConnectionFailedError);
    expect(p.healthReport().perNode[0]!.sessions).toEqual(Array(4).fill('transient_failure'));
    const b = await node({ proxy: a.proxy.port, server: a.server.port });
    clock.advance(49);
    expect(p.sessionCount).toBe(0);
    clock.advance(1); // first replacement: 100 ms base, equal jitter with r = 0 -> 50 ms
    expect(p.sessionCount).toBe(4);
    await p.connect('a', 'session');
    const fresh = Array.from({ length: 4 }, () => p.acquireSession('a'));
    expect(fresh.some((s) => old.has(s))).toBe(false);
    expect(await rawHealthCheck(fresh[0]!)).toBe('SERVING');
    expect(b.proxy.accepted()).toBe(4);
  });

  it('replaces a session whose keep-alive PING goes unanswered', async () => {
    const clock = new ManualClock();
    const a = await node();
    const p = new ConnectionPool({ clock, random: () => 0 });
    cleanups.push(() => p.close());
    p.addNode('a', a.address);
    await p.connect('a', 'session');
    await a.proxy.whenOpen(1);
    const first = p.acquireSession('a');
    a.proxy.freeze();

    clock.advance(30_000); // keepaliveIntervalMs: the PING goes out, nothing comes back
    expect(p.sessionCount).toBe(1);
    clock.advance(10_000); // keepaliveTimeoutMs: broken, closed, replacement scheduled
    expect(p.sessionCount).toBe(0);
    expect(p.healthReport().perNode[0]!.lastError).toMatch(/PING unanswered after 10000 ms/);
    clock.advance(50);
    await p.connect('a', 'session');
    const replaced = p.acquireSession('a');
    expect(replaced === first).toBe(false);
    expect(a.proxy.accepted()).toBe(2);
    expect(await rawHealthCheck(p.acquireSession('a'))).toBe('SERVING');
  });

  it('reports ConnectionFailed when the peer accepts TCP but never speaks HTTP/2', async () => {
    const hole = await startBlackhole();
    cleanups.push(() => hole.close());
    const p = pool({ connectTimeoutMs: 200 });
    p.addNode('slow', hole.address);
    await expect(p.connect('slow', 'session')).rejects.toMatchObject({
      code: 'ConnectionFailed',
      nodeId: 'slow',
      cause: expect.objectContaining({ message: expect.stringMatching(/connect timeout/) }),
    });
  });

  it('close() does not wait forever for a stream that never ends', async () => {
    const clock = new ManualClock();
    const silent = http2.createServer();
    silent.on('stream', () => {}); // accepts the request, never answers
    silent.listen(0, '127.0.0.1');
    await once(silent, 'listening');
    cleanups.push(() => new Promise<void>((resolve) => silent.close(() => resolve())));
    const port = (silent.address() as AddressInfo).port;
    const p = new ConnectionPool({ clock });
    p.addNode('s', `127.0.0.1:${port}`);
    await p.connect('s', 'session');
    const arrived = once(silent, 'stream');
    const stream = p.acquireSession('s').request({ ':path': '/' });
    stream.on('error', () => {});
    stream.end();
    await arrived;
    let done = false;
    const closed = p.close().then(() => {
      done = true;
    });
    await new Promise((resolve) => setImmediate(resolve));
    expect(done).toBe(false); // graceful close is waiting on the stream
    clock.advance(10_000); // keepaliveTimeoutMs: the grace period ends, the socket goes
    await closed;
    expect(p.sessionCount).toBe(0);
  });

  it('reports ConnectionFailed with the socket error as cause for a refused address', async () => {
    const port = await deadPort();
    // Fake time: the connect timeout never fires, so the rejection must come from the
    // refused connection itself, well within any timeout.
    const p = pool({ clock: new ManualClock() });
    p.addNode('dead', `127.0.0.1:${port}`);
    const err = (await p
      .connect('dead', 'session')
      .catch((e: unknown) => e)) as ConnectionFailedError;
    expect(err).toBeInstanceOf(ConnectionFailedError);
    expect(err.nodeId).toBe('dead');
    expect((err.cause as NodeJS.ErrnoException).code).toBe('ECONNREFUSED');
    await until(() => p.sessionCount === 0, 'every session attempt to fail');
    expect(() => p.acquireSession('dead')).toThrow(
      expect.objectContaining({ code: 'ConnectionFailed', nodeId: 'dead' }),
    );
  });
});

import { once } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import type * as http2 from 'node:http2';
import * as net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { generateTestCertificates } from '@engram/memory-node/test-support';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import type { TimerClock } from '../src/index.js';

const HEALTH_PROTO = fileURLToPath(
  new URL('../../../protos/grpc/health/v1/health.proto', import.meta.url),
);

const definition = protoLoader.loadSync(HEALTH_PROTO, { enums: String, defaults: true });
const healthPackage = grpc.loadPackageDefinition(definition) as unknown as {
  grpc: { health: { v1: { Health: grpc.ServiceClientConstructor } } };
};
const HealthService = healthPackage.grpc.health.v1.Health.service;
const CHECK = HealthService.Check!;

export const HEALTH_CHECK_PATH = CHECK.path;

/** A real grpc-js server serving grpc.health.v1.Health (always SERVING) on 127.0.0.1. */
export interface HealthServer {
  readonly port: number;
  readonly address: string;
  /** Check calls served. */
  readonly calls: () => number;
  close(): Promise<void>;
}

export async function startHealthServer(
  options: { port?: number; credentials?: grpc.ServerCredentials } = {},
): Promise<HealthServer> {
  const server = new grpc.Server();
  let calls = 0;
  server.addService(HealthService, {
    Check: (
      _call: grpc.ServerUnaryCall<unknown, unknown>,
      callback: grpc.sendUnaryData<unknown>,
    ) => {
      calls++;
      callback(null, { status: 'SERVING' });
    },
    Watch: (call: grpc.ServerWritableStream<unknown, unknown>) => {
      call.end();
    },
  });
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync(
      `127.0.0.1:${options.port ?? 0}`,
      options.credentials ?? grpc.ServerCredentials.createInsecure(),
      (err, bound) => (err ? reject(err) : resolve(bound)),
    ),
  );
  return {
    port,
    address: `127.0.0.1:${port}`,
    calls: () => calls,
    close: () =>
      new Promise<void>((resolve) => {
        server.forceShutdown();
        resolve();
      }),
  };
}

/**
 * A TCP pass-through in front of a server that counts the TCP connections clients open:
 * what the pool sees as "the node" is this proxy, so its counts are the pool's connections.
 */
export interface CountingProxy {
  readonly port: number;
  readonly address: string;
  /** TCP connections accepted since start. */
  accepted(): number;
  /** Client connections currently open (either side not yet closed). */
  open(): number;
  /** Resolves when `open()` reaches `n`. */
  whenOpen(n: number): Promise<void>;
  /** Stops forwarding on every open connection (a silent peer: no PING ack, no data). */
  freeze(): void;
  close(): Promise<void>;
}

export async function startCountingProxy(targetPort: number, port = 0): Promise<CountingProxy> {
  let accepted = 0;
  let open = 0;
  const sockets = new Set<net.Socket>();
  const pairs = new Set<[net.Socket, net.Socket]>();
  const waiters: { n: number; resolve: () => void }[] = [];
  const settle = (): void => {
    for (let i = waiters.length - 1; i >= 0; i--) {
      const w = waiters[i]!;
      if (w.n === open) {
        waiters.splice(i, 1);
        w.resolve();
      }
    }
  };
  const server = net.createServer((client) => {
    accepted++;
    open++;
    const upstream = net.connect(targetPort, '127.0.0.1');
    // Without this, Nagle + delayed ACK add ~40 ms to every small gRPC message.
    client.setNoDelay(true);
    upstream.setNoDelay(true);
    sockets.add(client);
    sockets.add(upstream);
    client.pipe(upstream).pipe(client);
    const pair: [net.Socket, net.Socket] = [client, upstream];
    pairs.add(pair);
    let closed = 0;
    const onClose = (s: net.Socket) => () => {
      sockets.delete(s);
      if (s === client) upstream.destroy();
      else client.destroy();
      if (++closed === 2) {
        pairs.delete(pair);
        open--;
        settle();
      }
    };
    client.on('error', () => upstream.destroy());
    upstream.on('error', () => client.destroy());
    client.on('close', onClose(client));
    upstream.on('close', onClose(upstream));
    settle();
  });
  server.listen(port, '127.0.0.1');
  await once(server, 'listening');
  const bound = (server.address() as net.AddressInfo).port;
  return {
    port: bound,
    address: `127.0.0.1:${bound}`,
    accepted: () => accepted,
    open: () => open,
    whenOpen: (n) =>
      n === open ? Promise.resolve() : new Promise<void>((resolve) => waiters.push({ n, resolve })),
    freeze: () => {
      for (const [client, upstream] of pairs) {
        client.unpipe(upstream);
        upstream.unpipe(client);
        client.pause();
        upstream.pause();
      }
    },
    close: async () => {
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      for (const s of sockets) s.destroy();
      await closed;
    },
  };
}

/** A health server behind a counting proxy. */
export interface CountedNode {
  readonly address: string;
  readonly proxy: CountingProxy;
  readonly server: HealthServer;
  /** Stops proxy and server, dropping every connection (idempotent). */
  stop(): Promise<void>;
  /** A fresh proxy and server on the same two ports (call after `stop()`). */
  startAgain(): Promise<CountedNode>;
}

export async function startCountedNode(
  ports: { proxy?: number; server?: number } = {},
): Promise<CountedNode> {
  const server = await startHealthServer(ports.server === undefined ? {} : { port: ports.server });
  const proxy = await startCountingProxy(server.port, ports.proxy ?? 0);
  let stopped: Promise<void> | undefined;
  return {
    address: proxy.address,
    proxy,
    server,
    stop: () => {
      stopped ??= proxy.close().then(() => server.close());
      return stopped;
    },
    startAgain: () => startCountedNode({ proxy: proxy.port, server: server.port }),
  };
}

/** grpc.health.v1.Health/Check through any grpc-js client; resolves the status string. */
export function healthCheck(
  client: grpc.Client,
  options: { waitForReady?: boolean; deadlineMs?: number } = {},
): Promise<string> {
  return new Promise((resolve, reject) => {
    client.makeUnaryRequest(
      CHECK.path,
      CHECK.requestSerialize,
      CHECK.responseDeserialize,
      { service: '' },
      new grpc.Metadata({ waitForReady: options.waitForReady ?? false }),
      options.deadlineMs === undefined ? {} : { deadline: Date.now() + options.deadlineMs },
      (err, res) => (err ? reject(err) : resolve((res as { status: string }).status)),
    );
  });
}

/** The same Check as raw HTTP/2 frames, the way the router-node forwards them. */
export function rawHealthCheck(session: http2.ClientHttp2Session): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = session.request({
      ':method': 'POST',
      ':path': CHECK.path,
      'content-type': 'application/grpc',
      te: 'trailers',
    });
    const chunks: Buffer[] = [];
    let grpcStatus: string | undefined;
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('trailers', (t) => {
      grpcStatus = String(t['grpc-status']);
    });
    req.on('error', reject);
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      if (grpcStatus !== '0') return reject(new Error(`grpc-status ${grpcStatus}`));
      const message = CHECK.responseDeserialize(body.subarray(5)) as { status: string };
      resolve(message.status);
    });
    // Empty HealthCheckRequest: uncompressed flag 0, length 0.
    req.end(Buffer.alloc(5));
  });
}

/**
 * Waits for a condition driven by I/O the test does not control (socket close events on the
 * far side); checks once per event-loop turn and fails after `timeoutMs`.
 */
export function until(condition: () => boolean, what: string, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  return new Promise((resolve, reject) => {
    const check = (): void => {
      if (condition()) resolve();
      else if (Date.now() > deadline) reject(new Error(`timed out waiting for ${what}`));
      else setImmediate(check);
    };
    check();
  });
}

/** A port that was bound and then released: connecting to it is refused. */
export async function deadPort(): Promise<number> {
  const server = net.createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const port = (server.address() as net.AddressInfo).port;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/** Accepts TCP and never answers: an HTTP/2 handshake against it can only time out. */
export async function startBlackhole(): Promise<{ address: string; close(): Promise<void> }> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer((s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
    s.on('error', () => {});
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const port = (server.address() as net.AddressInfo).port;
  return {
    address: `127.0.0.1:${port}`,
    close: () => {
      for (const s of sockets) s.destroy();
      return new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/** Manual clock: timers fire only when the test advances time. */
export class ManualClock implements TimerClock {
  private time = 0;
  private seq = 0;
  private readonly timers = new Map<number, { at: number; fn: () => void }>();
  now(): number {
    return this.time;
  }
  setTimeout(callback: () => void, delayMs: number): unknown {
    const id = ++this.seq;
    this.timers.set(id, { at: this.time + delayMs, fn: callback });
    return id;
  }
  clearTimeout(handle: unknown): void {
    this.timers.delete(handle as number);
  }
  /** Timers still pending. */
  pending(): number {
    return this.timers.size;
  }
  advance(ms: number): void {
    const until = this.time + ms;
    for (;;) {
      let next: [number, { at: number; fn: () => void }] | undefined;
      for (const entry of this.timers) {
        if (entry[1].at <= until && (next === undefined || entry[1].at < next[1].at)) next = entry;
      }
      if (next === undefined) break;
      this.timers.delete(next[0]);
      this.time = next[1].at;
      next[1].fn();
    }
    this.time = until;
  }
}

/** Throwaway CA, server certificate for 127.0.0.1 and client certificate, made by openssl. */
export interface TestPki {
  readonly ca: Buffer;
  readonly serverCert: Buffer;
  readonly serverKey: Buffer;
  readonly clientCert: Buffer;
  readonly clientKey: Buffer;
  /** A second, unrelated CA: servers signed by the first must not verify against it. */
  readonly otherCa: Buffer;
  cleanup(): void;
}

export function makeTestPki(): TestPki {
  const dir = mkdtempSync(join(tmpdir(), 'engram-pool-pki-'));
  const main = generateTestCertificates(join(dir, 'main'));
  return {
    ...main,
    otherCa: generateTestCertificates(join(dir, 'other')).ca,
    cleanup: () => rmSync(dir, { recursive: true, force: true }),
  };
}

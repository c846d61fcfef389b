import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import type { Init } from '@engram/proto';
import {
  addHealthService,
  callMemory,
  callReplica,
  type MemoryMethodName,
  type MemoryMethodRequest,
  type MemoryMethodResponse,
  MemoryServiceClient,
  MemoryServiceDefinition,
  type MemoryServiceHandlers,
  ReplicaServiceClient,
} from '@engram/proto';
import * as grpc from '@grpc/grpc-js';
import { RouterAdminClient } from '../src/index.js';

export const MAIN_JS = fileURLToPath(new URL('../dist/main.js', import.meta.url));

/** Collects cleanups; call `run()` in afterEach/afterAll. */
export class Cleanup {
  #fns: (() => unknown)[] = [];
  add(fn: () => unknown): void {
    this.#fns.push(fn);
  }
  async run(): Promise<void> {
    for (const fn of this.#fns.splice(0).reverse()) await fn();
  }
}

export function tempDir(cleanup: Cleanup): string {
  const dir = mkdtempSync(join(tmpdir(), 'engram-rn-'));
  cleanup.add(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

export interface RouterProcess {
  child: ChildProcess;
  /** The config file it was started with (SIGHUP reloads it). */
  configFile: string;
  address: string;
  port: number;
  adminPort: number;
  metricsPort: number;
  stderr: () => string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/**
 * Health settings of the end-to-end tests: frequent probes, so a killed node (refused at once)
 * is seen in ~0.2 s; but a timeout generous enough that a healthy node's probe on a machine
 * busy with other work is never taken for a failure (a false "down" would partition the
 * router and fail calls that should succeed).
 */
export const TEST_HEALTH = Object.freeze({
  intervalMs: 100,
  timeoutMs: 2000,
  unhealthyThreshold: 2,
  healthyThreshold: 2,
});

/**
 * The longest a node can take to be marked down with `TEST_HEALTH`, from its death, as the
 * monitor works: a probe round every interval, a round skipped while a probe still runs, each
 * probe failing by its timeout at the latest; plus one more round for the process being
 * scheduled late on a shared machine.
 */
export const TEST_DOWN_WINDOW_MS =
  (TEST_HEALTH.unhealthyThreshold + 1) * (TEST_HEALTH.intervalMs + TEST_HEALTH.timeoutMs);

/** Test defaults: ephemeral ports, fast health checks, quiet logs. */
export function testConfig(extra: Record<string, unknown>): Record<string, unknown> {
  return {
    listen: { host: '127.0.0.1', port: 0 },
    admin: { host: '127.0.0.1', port: 0 },
    metrics: { host: '127.0.0.1', port: 0 },
    vnodesPerNode: 256,
    health: TEST_HEALTH,
    logLevel: 'info',
    // No drain window on SIGTERM (5 s by default) unless a test asks for one: tests that stop
    // a router to restart it or to see GOAWAY need no load balancer to move away first. The
    // drain tests (drain.test.ts, operator-metrics.test.ts) set their own.
    shutdownDrainMs: 0,
    ...extra,
  };
}

/** Writes `config` to a file and runs `router-node --config file`; resolves once listening. */
export function spawnRouter(
  cleanup: Cleanup,
  config: Record<string, unknown>,
  args: string[] = [],
  /** Where to write the config (to restart a router on the same file); default a temp dir. */
  configFile?: string,
  /** Hears its stderr as it comes, before it listens too. */
  onStderr?: (chunk: string) => void,
): Promise<RouterProcess> {
  const file = configFile ?? join(tempDir(cleanup), 'router.json');
  writeFileSync(file, JSON.stringify(config));
  const child = spawn(process.execPath, [MAIN_JS, '--config', file, ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once('exit', (code, signal) => resolve({ code, signal })),
  );
  cleanup.add(async () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    await exited;
  });
  let stderr = '';
  child.stderr?.on('data', (d: Buffer) => {
    stderr += d.toString();
    onStderr?.(d.toString());
  });
  return new Promise((resolve, reject) => {
    const lines = createInterface({ input: child.stdout! });
    lines.once('line', (line) => {
      const msg = JSON.parse(line) as {
        address: string;
        port: number;
        adminPort: number;
        metricsPort: number;
      };
      resolve({ child, configFile: file, ...msg, stderr: () => stderr, exited });
    });
    void exited.then(({ code }) => reject(new Error(`router exited with ${code}: ${stderr}`)));
  });
}

/** Runs router-node to completion (for bad configs); resolves with its exit code and stderr. */
export function runRouter(
  cleanup: Cleanup,
  config: unknown,
  args: string[] = [],
  env: Record<string, string> = {},
): Promise<{ code: number | null; stderr: string }> {
  const dir = tempDir(cleanup);
  const file = join(dir, 'router.json');
  writeFileSync(file, typeof config === 'string' ? config : JSON.stringify(config));
  const child = spawn(process.execPath, [MAIN_JS, '--config', file, ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, ...env },
  });
  let stderr = '';
  child.stderr?.on('data', (d: Buffer) => {
    stderr += d.toString();
  });
  cleanup.add(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  });
  return new Promise((resolve) => child.once('exit', (code) => resolve({ code, stderr })));
}

export function memoryClient(
  cleanup: Cleanup,
  address: string,
  unique = false,
): MemoryServiceClient {
  // A distinct channel option keeps grpc-js from sharing one connection between clients.
  const options: grpc.ClientOptions = unique
    ? { 'grpc.use_local_subchannel_pool': 1, 'test.unique': Math.random() }
    : {};
  const client = new MemoryServiceClient(address, grpc.credentials.createInsecure(), options);
  cleanup.add(() => client.close());
  return client;
}

export interface AdminClient extends grpc.Client {
  [method: string]: unknown;
}

/**
 * A RouterAdmin client; with `token`, every call carries `authorization: Bearer <token>`
 * (`credentials`: TLS ones, default plaintext).
 */
export function adminClient(
  cleanup: Cleanup,
  port: number,
  token?: string,
  credentials: grpc.ChannelCredentials = grpc.credentials.createInsecure(),
): grpc.Client {
  const options: grpc.ClientOptions =
    token === undefined ? {} : { interceptors: [bearerInterceptor(token)] };
  const client = new RouterAdminClient(`127.0.0.1:${port}`, credentials, options);
  cleanup.add(() => client.close());
  return client;
}

function bearerInterceptor(token: string): grpc.Interceptor {
  return (options, nextCall) =>
    new grpc.InterceptingCall(nextCall(options), {
      start(metadata, listener, next) {
        metadata.set('authorization', `Bearer ${token}`);
        next(metadata, listener);
      },
    });
}

/** Promise wrapper for one RouterAdmin call; rejects with the grpc ServiceError. */
export function admin<T = Record<string, unknown>>(
  client: grpc.Client,
  method: string,
  request: Record<string, unknown> = {},
): Promise<T> {
  const fn = (
    client as unknown as Record<string, grpc.requestCallback<T> & ((...a: unknown[]) => void)>
  )[method]!;
  return new Promise((resolve, reject) => {
    fn.call(client, request, (err: grpc.ServiceError | null, res: T) =>
      err ? reject(err) : resolve(res),
    );
  });
}

export interface TableReply {
  epoch: number;
  partitioned: boolean;
  nodes: {
    id: string;
    state: string;
    breaker: string;
    zone: string;
    address: string;
    /** The node's last health probe round trip: a measurement, it changes every probe. */
    healthLatencyMs: number;
  }[];
  assignments: { spaceId: string; primary: string; replicas: string[] }[];
}

export async function getTable(client: grpc.Client): Promise<TableReply> {
  return admin<TableReply>(client, 'GetTable');
}

export function call<M extends MemoryMethodName>(
  client: MemoryServiceClient,
  method: M,
  request: Init<MemoryMethodRequest<M>>,
  timeoutMs = 5000,
  metadata?: grpc.Metadata,
): Promise<MemoryMethodResponse<M>> {
  return callMemory(client, method, request, {
    deadline: Date.now() + timeoutMs,
    ...(metadata !== undefined ? { metadata } : {}),
  });
}

/** Unary call that also returns the trailing metadata. */
export function callWithTrailers(
  client: MemoryServiceClient,
  spaceId: string,
): Promise<{ response: MemoryMethodResponse<'recall'>; trailers: grpc.Metadata }> {
  return new Promise((resolve, reject) => {
    let trailers = new grpc.Metadata();
    let response: MemoryMethodResponse<'recall'> | undefined;
    const c = client.recall(
      { spaceId, cue: { text: 'x' }, limit: 1 },
      new grpc.Metadata(),
      { deadline: Date.now() + 5000 },
      (err, res) => {
        if (err) reject(err);
        else response = res as MemoryMethodResponse<'recall'>;
      },
    );
    c.on('status', (s: grpc.StatusObject) => {
      trailers = s.metadata;
      if (response !== undefined) resolve({ response, trailers });
      else setImmediate(() => (response ? resolve({ response, trailers }) : undefined));
    });
  });
}

export async function scrape(port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    http
      .get(`http://127.0.0.1:${port}/metrics`, (res) => {
        let body = '';
        res.on('data', (d: Buffer) => {
          body += d.toString();
        });
        res.on('end', () => resolve(body));
      })
      .on('error', reject);
  });
}

/** Sum of a metric's samples whose label text contains every `match` string. */
export function metricValue(text: string, name: string, ...match: string[]): number {
  let total = 0;
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${name}{`) && !line.startsWith(`${name} `)) continue;
    if (match.every((m) => line.includes(m)))
      total += Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return total;
}

/**
 * A loop of calls in the background, until `stop()` (registered with `cleanup` too, so a test
 * that fails midway does not leave it spinning against stopped servers). Keeps counts and the
 * first failures only: a loop of fast failures must not grow memory without bound.
 */
export class Traffic<T> {
  ok = 0;
  failed = 0;
  readonly failures: unknown[] = [];
  readonly results: T[] = [];
  #running = true;
  readonly #done: Promise<void>;

  constructor(cleanup: Cleanup, call: () => Promise<T>, keepResults = 0) {
    this.#done = (async () => {
      while (this.#running) {
        try {
          const r = await call();
          this.ok++;
          if (this.results.length < keepResults) this.results.push(r);
        } catch (e) {
          this.failed++;
          if (this.failures.length < 10) this.failures.push(e);
          // A failing call may fail at once: yield so the loop cannot starve the event loop.
          await new Promise((r) => setTimeout(r, 1));
        }
      }
    })();
    cleanup.add(() => this.stop());
  }

  /** Stops after the call in flight; resolves when the loop has ended. */
  stop(): Promise<void> {
    this.#running = false;
    return this.#done;
  }
}

/** Polls `check` on real time (the processes under test run on it) until true or timeout. */
export async function eventually<T>(
  check: () => Promise<T | undefined | false> | T | undefined | false,
  timeoutMs = 10_000,
  stepMs = 50,
): Promise<T> {
  const until = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await check();
      if (v !== undefined && v !== false) return v;
    } catch (err) {
      last = err;
    }
    if (Date.now() > until)
      throw new Error(`condition not met in ${timeoutMs} ms (${String(last)})`);
    await new Promise((r) => setTimeout(r, stepMs));
  }
}

/**
 * An in-process MemoryService with `handlers`, grpc.health.v1 serving, on 127.0.0.1 (`port`,
 * default any free one); `cleanup` stops it. Resolves with its address.
 */
export async function serveMemoryService(
  cleanup: Cleanup,
  handlers: MemoryServiceHandlers,
  port = 0,
): Promise<string> {
  const server = new grpc.Server();
  server.addService(MemoryServiceDefinition, handlers);
  addHealthService(server);
  const bound = await new Promise<number>((resolve, reject) =>
    server.bindAsync(`127.0.0.1:${port}`, grpc.ServerCredentials.createInsecure(), (e, p) =>
      e ? reject(e) : resolve(p),
    ),
  );
  cleanup.add(() => server.forceShutdown());
  return `127.0.0.1:${bound}`;
}

/**
 * An in-process MemoryService whose Recall waits `delayMs` before answering (for in-flight
 * tests), with grpc.health.v1 serving. Serves id as routing.served_by.
 */
export async function startSlowNode(
  cleanup: Cleanup,
  id: string,
  delayMs: number,
  /** Listen on this port (e.g. one `freePort` gave); default any free port. */
  port = 0,
): Promise<{ address: string; recalls: () => number; cancelled: () => number }> {
  let recalls = 0;
  let cancelled = 0;
  const routing = { servedBy: id, attempts: 1, fallback: false, strategy: 'direct', tableEpoch: 0 };
  const address = await serveMemoryService(
    cleanup,
    {
      Store: (_c, cb) => cb(null, { memoryId: 'm', routing }),
      Recall: (c, cb) => {
        recalls++;
        const t = setTimeout(() => cb(null, { memories: [], routing }), delayMs);
        c.on('cancelled', () => {
          cancelled++;
          clearTimeout(t);
        });
      },
      Consolidate: (_c, cb) =>
        cb(null, { merged: [], memoriesBefore: 0, memoriesAfter: 0, routing }),
      Query: (_c, cb) => cb(null, { results: [], errors: [], routing }),
    },
    port,
  );
  return { address, recalls: () => recalls, cancelled: () => cancelled };
}

/**
 * A port nothing listens on (the kernel's pick, released at once): a node address that
 * refuses connections until a test starts a server there.
 */
export async function freePort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/** Every memory id (with its version) a node holds of a space, read with ReplicaService. */
/** A node's digest of one space (count, tombstones, hash of ids and versions), '' when none. */
export async function digestOn(
  cleanup: Cleanup,
  address: string,
  spaceId: string,
): Promise<string> {
  const client = new ReplicaServiceClient(address, grpc.credentials.createInsecure());
  cleanup.add(() => client.close());
  const res = await callReplica(
    client,
    'listSpaces',
    { spaceId, limit: 1 },
    { deadline: Date.now() + 5000 },
  );
  client.close();
  const d = res.spaces.find((x) => x.spaceId === spaceId);
  return d === undefined ? '' : `${d.memories}:${d.tombstones}:${d.digest}`;
}

export async function idsOn(
  cleanup: Cleanup,
  address: string,
  spaceId: string,
): Promise<Map<string, number>> {
  const client = new ReplicaServiceClient(address, grpc.credentials.createInsecure());
  cleanup.add(() => client.close());
  const out = new Map<string, number>();
  let after = '';
  for (;;) {
    const page = await callReplica(
      client,
      'scanSpace',
      { spaceId, after, limit: 5000 },
      { deadline: Date.now() + 5000 },
    );
    for (const m of page.memories) out.set(m.id, m.version);
    const last = [...page.memories.map((m) => m.id), ...page.tombstones.map((t) => t.id)]
      .sort()
      .at(-1);
    if (!page.more || last === undefined) break;
    after = last;
  }
  client.close();
  return out;
}

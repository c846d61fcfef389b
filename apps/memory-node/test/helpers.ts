import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { HealthClient, MemoryServiceClient, ReplicaServiceClient } from '@engram/proto';
import * as grpc from '@grpc/grpc-js';
import { type MemoryNode, type MemoryNodeOptions, startMemoryNode } from '../src/index.js';

export const MAIN_JS = fileURLToPath(new URL('../dist/main.js', import.meta.url));

/** Collects cleanups; call `run()` in afterEach. */
export class Cleanup {
  #fns: (() => unknown)[] = [];
  add(fn: () => unknown): void {
    this.#fns.push(fn);
  }
  async run(): Promise<void> {
    for (const fn of this.#fns.splice(0).reverse()) await fn();
  }
}

/** Polls `check` on real time (the servers under test run on it) until true or timeout. */
export async function eventually(
  check: () => boolean,
  timeoutMs = 10_000,
  stepMs = 20,
): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > until) throw new Error(`condition not met in ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, stepMs));
  }
}

export function tempDir(cleanup: Cleanup, prefix = 'engram-mn-'): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  cleanup.add(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

export async function startNode(
  cleanup: Cleanup,
  options: Partial<MemoryNodeOptions> = {},
): Promise<MemoryNode> {
  const node = await startMemoryNode({ id: 'n1', ...options });
  cleanup.add(() => node.close());
  return node;
}

export function memoryClient(
  cleanup: Cleanup,
  address: string,
  credentials = grpc.credentials.createInsecure(),
  options: grpc.ClientOptions = {},
): MemoryServiceClient {
  const client = new MemoryServiceClient(address, credentials, options);
  cleanup.add(() => client.close());
  return client;
}

export function replicaClient(cleanup: Cleanup, address: string): ReplicaServiceClient {
  const client = new ReplicaServiceClient(address, grpc.credentials.createInsecure());
  cleanup.add(() => client.close());
  return client;
}

export function healthClient(cleanup: Cleanup, address: string): HealthClient {
  const client = new HealthClient(address, grpc.credentials.createInsecure());
  cleanup.add(() => client.close());
  return client;
}

export interface ChildNode {
  child: ChildProcess;
  address: string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/** Spawns `node dist/main.js ...args` and resolves with the address from its listening line. */
export function spawnNode(cleanup: Cleanup, args: string[]): Promise<ChildNode> {
  const child = spawn(process.execPath, [MAIN_JS, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
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
  });
  return new Promise((resolve, reject) => {
    const lines = createInterface({ input: child.stdout! });
    lines.once('line', (line) => {
      const msg = JSON.parse(line) as { event: string; address: string };
      if (msg.event === 'listening') resolve({ child, address: msg.address, exited });
      else reject(new Error(`unexpected first line: ${line}`));
    });
    void exited.then(({ code }) => reject(new Error(`node exited with ${code}: ${stderr}`)));
  });
}

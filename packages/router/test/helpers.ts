import { type ChildProcess, spawn } from 'node:child_process';
import * as net from 'node:net';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { type MemoryNode, startMemoryNode } from '@engram/memory-node';
import { buildRing, type NodeInfo, type Ring, type SpaceAssignment } from '@engram/ring';
import { afterEach, beforeEach, vi } from 'vitest';
import type { CallContext, SettledCall } from '../src/index.js';

export const MEMORY_NODE_MAIN = fileURLToPath(
  new URL('../../../apps/memory-node/dist/main.js', import.meta.url),
);

/** n in-process memory nodes on 127.0.0.1, ids n1..nN. */
export async function startNodes(n: number, prefix = 'n'): Promise<MemoryNode[]> {
  const nodes: MemoryNode[] = [];
  for (let i = 1; i <= n; i++) nodes.push(await startMemoryNode({ id: `${prefix}${i}`, port: 0 }));
  return nodes;
}

export function infoOf(node: { id: string; address: string }): NodeInfo {
  return { id: node.id, address: node.address };
}

/** A ring over `nodes` with small vnode counts (fast to build) and explicit placements. */
export function ringOf(
  nodes: readonly NodeInfo[],
  assignments: readonly SpaceAssignment[] = [],
  replicationFactor = 3,
): Ring {
  return buildRing({ nodes, vnodesPerNode: 16, replicationFactor, assignments });
}

/** A 127.0.0.1 port nobody listens on (bound, then closed): connections are refused. */
export async function refusedAddress(): Promise<string> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as net.AddressInfo).port;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return `127.0.0.1:${port}`;
}

/** A memory node in a child process (so it can be SIGSTOPped). */
export interface ChildNode {
  readonly id: string;
  readonly address: string;
  readonly process: ChildProcess;
  stop(): Promise<void>;
}

export async function spawnNode(id: string): Promise<ChildNode> {
  const child = spawn(
    process.execPath,
    [MEMORY_NODE_MAIN, '--id', id, '--port', '0', '--log-level', 'silent'],
    {
      stdio: ['ignore', 'pipe', 'inherit'],
    },
  );
  const lines = createInterface({ input: child.stdout! });
  const address = await new Promise<string>((resolve, reject) => {
    child.once('exit', (code) => reject(new Error(`memory node ${id} exited with ${code}`)));
    lines.on('line', (line) => {
      try {
        const event = JSON.parse(line) as { event?: string; address?: string };
        if (event.event === 'listening' && typeof event.address === 'string')
          resolve(event.address);
      } catch {
        // not our line
      }
    });
  });
  return {
    id,
    address,
    process: child,
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
      child.kill('SIGCONT');
      child.kill('SIGKILL');
      await exited;
    },
  };
}

export function unavailable(message = 'unavailable'): Error & { code: number } {
  return Object.assign(new Error(message), { code: 14 });
}

export function invalidArgument(message = 'bad'): Error & { code: number } {
  return Object.assign(new Error(message), { code: 3 });
}

/** A promise-returning call as an `executeTo`-style one: its outcome reported to `settle`. */
export function settling<T>(call: (ctx: CallContext) => Promise<T>): SettledCall<T> {
  return (ctx, settle) => {
    call(ctx).then(
      (value) => settle.resolve(value),
      (error: unknown) => settle.reject(error),
    );
  };
}

/** Two nodes, `a` and `b`, and a table placing space `s` on a (primary) then b. */
export const TWO_NODES: readonly NodeInfo[] = [
  { id: 'a', address: '127.0.0.1:1001' },
  { id: 'b', address: '127.0.0.1:1002' },
];
export const TWO_NODE_TABLE: Ring = ringOf(TWO_NODES, [
  { spaceId: 's', primary: 'a', replicas: ['b'] },
]);

/** Fake timers for every test of the calling file. */
export function fakeTimersEachTest(): void {
  beforeEach(() => {
    vi.useFakeTimers();
  });
  afterEach(() => {
    vi.useRealTimers();
  });
}

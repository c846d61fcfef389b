import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import type { NodeConfig } from './config.js';
import { RouterNodeError } from './errors.js';

/** The memory-node CLI next to @engram/memory-node's entry point. */
export const MEMORY_NODE_MAIN = fileURLToPath(
  new URL('./main.js', import.meta.resolve('@engram/memory-node')),
);

export interface LocalNode {
  readonly config: NodeConfig;
  readonly port: number;
  child: ChildProcess;
  exited: Promise<void>;
}

/**
 * Memory nodes as child processes on 127.0.0.1 (`run --local-cluster`, the demo, tests).
 * Nodes keep their port across `kill`/`restart`, so the membership does not change.
 */
export class LocalCluster {
  readonly nodes: LocalNode[] = [];
  readonly #dataDir: string;
  readonly #ownsDir: boolean;

  private constructor(dataDir: string | null) {
    this.#ownsDir = dataDir === null;
    this.#dataDir = dataDir ?? mkdtempSync(join(tmpdir(), 'engram-local-cluster-'));
  }

  /** Starts `count` nodes `n1..nN` spread round robin over `zones` zones (`a`, `b`, …). */
  static async start(
    count: number,
    zones: number,
    dataDir: string | null = null,
  ): Promise<LocalCluster> {
    const cluster = new LocalCluster(dataDir);
    try {
      for (let i = 0; i < count; i++) {
        const zone = String.fromCharCode(97 + (i % zones));
        cluster.nodes.push(await cluster.#spawn(`n${i + 1}`, zone, 0));
      }
    } catch (err) {
      await cluster.stop();
      throw err;
    }
    return cluster;
  }

  get configs(): NodeConfig[] {
    return this.nodes.map((n) => n.config);
  }

  node(id: string): LocalNode {
    const n = this.nodes.find((x) => x.config.id === id);
    if (n === undefined) throw new RangeError(`no local node ${id}`);
    return n;
  }

  /** Kills a node's process (SIGKILL by default) and waits for it to exit. */
  async kill(id: string, signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    const n = this.node(id);
    if (n.child.exitCode === null && n.child.signalCode === null) {
      // A paused process would not act on SIGTERM until thawed.
      if (signal !== 'SIGKILL') n.child.kill('SIGCONT');
      n.child.kill(signal);
    }
    await n.exited;
  }

  /** Starts one more node (a new member for the router to add), `id` in `zone`. */
  async add(id: string, zone: string): Promise<LocalNode> {
    if (this.nodes.some((n) => n.config.id === id)) throw new RangeError(`node ${id} exists`);
    const node = await this.#spawn(id, zone, 0);
    this.nodes.push(node);
    return node;
  }

  /** Freezes a node's process (SIGSTOP): connected, silent. `resume` thaws it. */
  pause(id: string): void {
    this.node(id).child.kill('SIGSTOP');
  }

  resume(id: string): void {
    this.node(id).child.kill('SIGCONT');
  }

  /** Starts a killed node again on the same port and data directory. */
  async restart(id: string): Promise<void> {
    const n = this.node(id);
    await this.kill(id, 'SIGTERM');
    const fresh = await this.#spawn(id, n.config.zone, n.port);
    n.child = fresh.child;
    n.exited = fresh.exited;
  }

  async stop(): Promise<void> {
    await Promise.all(this.nodes.map((n) => this.kill(n.config.id, 'SIGTERM')));
    if (this.#ownsDir) rmSync(this.#dataDir, { recursive: true, force: true });
  }

  #spawn(id: string, zone: string, port: number): Promise<LocalNode> {
    const child = spawn(
      process.execPath,
      [
        MEMORY_NODE_MAIN,
        '--id',
        id,
        '--zone',
        zone,
        '--host',
        '127.0.0.1',
        '--port',
        String(port),
        '--data-dir',
        join(this.#dataDir, id),
        '--log-level',
        'warn',
      ],
      { stdio: ['ignore', 'pipe', 'inherit'] },
    );
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    return new Promise((resolve, reject) => {
      const lines = createInterface({ input: child.stdout! });
      // Its own one-line reason (a port in use, a data dir it cannot write) went to stderr.
      const onExit = (code: number | null, signal: NodeJS.Signals | null) =>
        reject(
          new RouterNodeError(
            'Unavailable',
            `local cluster: memory node ${id} exited before listening (${signal ?? `exit code ${code}`})`,
          ),
        );
      child.once('exit', onExit);
      lines.once('line', (line) => {
        child.off('exit', onExit);
        try {
          const msg = JSON.parse(line) as { port: number; address: string };
          resolve({ config: { id, zone, address: msg.address }, port: msg.port, child, exited });
        } catch (err) {
          reject(err as Error);
        }
      });
    });
  }
}

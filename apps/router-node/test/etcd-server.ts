import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { type Cleanup, freePort, tempDir } from './helpers.js';

/**
 * A real etcd (Debian's etcd-server) for tests: one member on loopback, ports picked free, its
 * data in a temp dir, so it can be killed and started again with what it held. Installed with
 * apt when missing (`.ci/run` does it too), as the other servers the suite needs are.
 */
export class EtcdServer {
  readonly clientPort: number;
  readonly peerPort: number;
  readonly dataDir: string;
  #child: ChildProcess | null = null;
  #exited: Promise<void> = Promise.resolve();
  #log = '';

  private constructor(clientPort: number, peerPort: number, dataDir: string) {
    this.clientPort = clientPort;
    this.peerPort = peerPort;
    this.dataDir = dataDir;
  }

  /** Starts etcd and waits until it answers; stopped by `cleanup`. */
  static async start(cleanup: Cleanup): Promise<EtcdServer> {
    ensureEtcd();
    const server = new EtcdServer(await freePort(), await freePort(), tempDir(cleanup));
    cleanup.add(() => server.kill());
    await server.restart();
    return server;
  }

  get endpoint(): string {
    return `127.0.0.1:${this.clientPort}`;
  }

  get log(): string {
    return this.#log;
  }

  get running(): boolean {
    return this.#child !== null;
  }

  /** Starts it again (same ports, same data) and waits until it answers. */
  async restart(): Promise<void> {
    if (this.#child !== null) return;
    const client = `http://127.0.0.1:${this.clientPort}`;
    const peer = `http://127.0.0.1:${this.peerPort}`;
    const child = spawn(
      etcdBinary(),
      [
        '--name',
        'test',
        '--data-dir',
        join(this.dataDir, 'etcd'),
        '--listen-client-urls',
        client,
        '--advertise-client-urls',
        client,
        '--listen-peer-urls',
        peer,
        '--initial-advertise-peer-urls',
        peer,
        '--initial-cluster',
        `test=${peer}`,
        '--log-level',
        'warn',
      ],
      { stdio: ['ignore', 'ignore', 'pipe'] },
    );
    this.#child = child;
    child.stderr?.on('data', (d: Buffer) => {
      this.#log = (this.#log + d.toString()).slice(-20_000);
    });
    this.#exited = new Promise((resolve) => child.once('exit', () => resolve()));
    void this.#exited.then(() => {
      if (this.#child === child) this.#child = null;
    });
    await this.#ready();
  }

  async #ready(): Promise<void> {
    const until = Date.now() + 30_000;
    for (;;) {
      try {
        const res = await fetch(`http://127.0.0.1:${this.clientPort}/health`);
        if (res.ok && ((await res.json()) as { health?: string }).health === 'true') return;
      } catch {
        // not listening yet
      }
      if (this.#child === null) throw new Error(`etcd exited: ${this.#log}`);
      if (Date.now() > until) throw new Error(`etcd not healthy in 30 s: ${this.#log}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  /** SIGKILL (no goodbye to its clients), then waits for the exit. */
  async kill(): Promise<void> {
    const child = this.#child;
    if (child === null) return;
    child.kill('SIGKILL');
    await this.#exited;
    this.#child = null;
  }
}

function etcdBinary(): string {
  for (const p of ['/usr/bin/etcd', '/usr/local/bin/etcd']) if (existsSync(p)) return p;
  return 'etcd';
}

function ensureEtcd(): void {
  try {
    execFileSync(etcdBinary(), ['--version'], { stdio: 'ignore' });
  } catch {
    execFileSync(
      'sh',
      [
        '-c',
        'apt-get install -y etcd-server || (apt-get update && apt-get install -y etcd-server)',
      ],
      {
        stdio: 'ignore',
        env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' },
      },
    );
  }
}

import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import * as https from 'node:https';
import * as net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** TLS on etcd's client listener (PEM files): `clientCa` also requires client certificates. */
export interface EtcdTls {
  readonly cert: string;
  readonly key: string;
  readonly clientCa?: string;
  /** A client certificate and key this server accepts, for its own readiness check. */
  readonly client?: { readonly cert: string; readonly key: string; readonly ca: string };
}

/**
 * A real etcd (Debian's etcd-server) for tests and benchmarks: one member on 127.0.0.1, its
 * ports picked free, its data in a temp dir, so it can be killed and started again with what
 * it held. Installed with apt when missing (`.ci/run` does it first, so parallel test files do
 * not race apt). `stop()` kills it and deletes its data.
 */
export class EtcdServer {
  readonly clientPort: number;
  readonly peerPort: number;
  readonly dataDir: string;
  readonly tls: EtcdTls | null;
  #child: ChildProcess | null = null;
  #exited: Promise<void> = Promise.resolve();
  #log = '';

  private constructor(clientPort: number, peerPort: number, dataDir: string, tls: EtcdTls | null) {
    this.clientPort = clientPort;
    this.peerPort = peerPort;
    this.dataDir = dataDir;
    this.tls = tls;
  }

  /**
   * Starts etcd (over TLS with `tls`) and waits until it answers its health check (at most
   * `readyMs`).
   */
  static async start(readyMs = 30_000, tls: EtcdTls | null = null): Promise<EtcdServer> {
    ensureEtcd();
    const dir = mkdtempSync(join(tmpdir(), 'engram-etcd-'));
    const server = new EtcdServer(await freePort(), await freePort(), dir, tls);
    try {
      await server.restart(readyMs);
    } catch (err) {
      await server.stop();
      throw err;
    }
    return server;
  }

  /** `host:port` of its client listener. */
  get endpoint(): string {
    return `127.0.0.1:${this.clientPort}`;
  }

  /** The end of its stderr (warnings and errors only). */
  get log(): string {
    return this.#log;
  }

  get running(): boolean {
    return this.#child !== null;
  }

  /**
   * Starts it again (same ports, same data) and waits until it answers. A port taken meanwhile
   * is waited for (within `readyMs`): its ports were the kernel's pick, in the ephemeral range,
   * so while etcd was down a client's socket may have got one as its own source port (a client
   * redialling a dead port on loopback can even connect to itself); such a socket is closed
   * as soon as its owner finds nobody answering.
   */
  async restart(readyMs = 30_000): Promise<void> {
    if (this.#child !== null) return;
    const until = Date.now() + readyMs;
    let taken = ''; // etcd's log of the last bind that found a port in use
    for (;;) {
      try {
        await this.#spawn(Math.max(until - Date.now(), 0));
        return;
      } catch (err) {
        if (this.#child === null && /address already in use/.test(this.#log)) taken = this.#log;
        else if (taken === '' || this.#child === null) throw err;
        // Out of time on a retry: the port in use is the cause, not this try's slow start.
        else await this.kill();
        if (Date.now() + PORT_RETRY_MS > until) {
          throw new Error(`etcd: a port stayed in use for ${readyMs} ms: ${taken}`);
        }
        this.#log = '';
        await new Promise((r) => setTimeout(r, PORT_RETRY_MS));
      }
    }
  }

  async #spawn(readyMs: number): Promise<void> {
    const tls = this.tls;
    const client = `${tls === null ? 'http' : 'https'}://127.0.0.1:${this.clientPort}`;
    const peer = `http://127.0.0.1:${this.peerPort}`;
    // biome-ignore format: one flag and its value per line
    const child = spawn(etcdBinary(), [
      '--name', 'test',
      '--data-dir', join(this.dataDir, 'etcd'),
      '--listen-client-urls', client,
      '--advertise-client-urls', client,
      '--listen-peer-urls', peer,
      '--initial-advertise-peer-urls', peer,
      '--initial-cluster', `test=${peer}`,
      '--log-level', 'warn',
      ...(tls === null ? [] : ['--cert-file', tls.cert, '--key-file', tls.key]),
      ...(tls?.clientCa === undefined ? [] : ['--client-cert-auth', '--trusted-ca-file', tls.clientCa]),
    ], { stdio: ['ignore', 'ignore', 'pipe'] });
    this.#child = child;
    child.stderr?.on('data', (d: Buffer) => {
      this.#log = (this.#log + d.toString()).slice(-20_000);
    });
    this.#exited = new Promise((resolve) => child.once('exit', () => resolve()));
    void this.#exited.then(() => {
      if (this.#child === child) this.#child = null;
    });
    await this.#ready(readyMs);
  }

  async #ready(readyMs: number): Promise<void> {
    const until = Date.now() + readyMs;
    for (;;) {
      try {
        if (await this.#healthy()) return;
      } catch {
        // not listening yet
      }
      if (this.#child === null) throw new Error(`etcd exited: ${this.#log}`);
      if (Date.now() > until) throw new Error(`etcd not healthy in ${readyMs} ms: ${this.#log}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  /** Whether /health says true (over TLS, with the client certificate given, when set). */
  async #healthy(): Promise<boolean> {
    const tls = this.tls;
    if (tls === null) {
      const res = await fetch(`http://127.0.0.1:${this.clientPort}/health`);
      return res.ok && ((await res.json()) as { health?: string }).health === 'true';
    }
    const c = tls.client;
    return new Promise((resolve, reject) => {
      const req = https.get(
        {
          host: '127.0.0.1',
          port: this.clientPort,
          path: '/health',
          ...(c === undefined
            ? { rejectUnauthorized: false }
            : { ca: readFileSync(c.ca), cert: readFileSync(c.cert), key: readFileSync(c.key) }),
        },
        (res) => {
          let body = '';
          res.on('data', (d: Buffer) => {
            body += d.toString();
          });
          res.on('end', () => resolve(res.statusCode === 200 && body.includes('"true"')));
        },
      );
      req.on('error', reject);
    });
  }

  /** SIGKILL (no goodbye to its clients), then waits for the exit; its data stays. */
  async kill(): Promise<void> {
    const child = this.#child;
    if (child === null) return;
    child.kill('SIGKILL');
    await this.#exited;
    this.#child = null;
  }

  /** Kills it and deletes its data. */
  async stop(): Promise<void> {
    await this.kill();
    rmSync(this.dataDir, { recursive: true, force: true });
  }
}

/** Wait before binding again to a port that was in use at a restart. */
const PORT_RETRY_MS = 200;

/** A port nothing listens on (the kernel's pick, released at once). */
async function freePort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/** `etcd --version`'s first line (installing etcd first when missing). */
export function etcdVersion(): string {
  ensureEtcd();
  return execFileSync(etcdBinary(), ['--version'], { encoding: 'utf8' }).split('\n')[0]!;
}

function etcdBinary(): string {
  for (const p of ['/usr/bin/etcd', '/usr/local/bin/etcd']) if (existsSync(p)) return p;
  return 'etcd';
}

/** Installs Debian's etcd-server when no etcd runs here (as root, the way CI runs). */
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
      { stdio: 'ignore', env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' } },
    );
  }
}

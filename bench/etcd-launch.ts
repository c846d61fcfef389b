/**
 * One etcd member on loopback for the etcd bench (Debian's `etcd-server`): client and peer
 * ports picked free, data under the harness's temp dir, killed at exit with the harness's
 * other children. The bench's own copy of the test suite's launcher (a bench imports no test
 * file); it does not install etcd, it says how.
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { children, dir, freePort } from './harness.js';

/** How long etcd may take to answer /health after it is started. */
const READY_MS = 30_000;
const READY_POLL_MS = 50;

export interface EtcdProcess {
  readonly child: ChildProcess;
  /** `127.0.0.1:<client port>`, as `etcd.endpoints` takes it. */
  readonly endpoint: string;
  /** `etcd --version`'s first line. */
  readonly version: string;
  /** Its stderr so far (the last 20 kB). */
  log(): string;
}

export function etcdBinary(): string {
  for (const p of ['/usr/bin/etcd', '/usr/local/bin/etcd']) if (existsSync(p)) return p;
  return 'etcd';
}

/** Starts etcd and resolves once its /health says true. */
export async function startEtcd(): Promise<EtcdProcess> {
  const bin = etcdBinary();
  let version: string;
  try {
    version = execFileSync(bin, ['--version'], { encoding: 'utf8' }).split('\n')[0]!;
  } catch {
    throw new Error('etcd not found: apt-get install -y etcd-server (Debian), then run again');
  }
  const clientPort = await freePort();
  const peerPort = await freePort();
  const client = `http://127.0.0.1:${clientPort}`;
  const peer = `http://127.0.0.1:${peerPort}`;
  const child = spawn(
    bin,
    [
      '--name',
      'bench',
      '--data-dir',
      join(dir, 'etcd'),
      '--listen-client-urls',
      client,
      '--advertise-client-urls',
      client,
      '--listen-peer-urls',
      peer,
      '--initial-advertise-peer-urls',
      peer,
      '--initial-cluster',
      `bench=${peer}`,
      '--log-level',
      'warn',
    ],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  children.push(child);
  let log = '';
  child.stderr!.on('data', (d: Buffer) => {
    log = (log + d.toString()).slice(-20_000);
  });
  const until = Date.now() + READY_MS;
  for (;;) {
    try {
      const res = await fetch(`${client}/health`);
      if (res.ok && ((await res.json()) as { health?: string }).health === 'true') break;
    } catch {
      // not listening yet
    }
    if (child.exitCode !== null || child.signalCode !== null)
      throw new Error(`etcd exited: ${log}`);
    if (Date.now() > until) throw new Error(`etcd not healthy in ${READY_MS} ms: ${log}`);
    await new Promise((r) => setTimeout(r, READY_POLL_MS));
  }
  return { child, endpoint: `127.0.0.1:${clientPort}`, version, log: () => log };
}

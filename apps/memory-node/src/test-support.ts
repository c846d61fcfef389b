/**
 * Test support, exported as `@engram/memory-node/test-support`: not part of the node's API.
 * Shared by the memory node's and the pool's TLS tests so the throwaway PKI is made one way,
 * and by the repository's packaging and README-example tests, which start memory nodes.
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

/** A memory-node process started by `spawnMemoryNode`; the caller stops it. */
export interface SpawnedMemoryNode {
  readonly child: ChildProcess;
  /** `127.0.0.1:port`, as the node reported it. */
  readonly address: string;
  /** SIGTERM, then SIGKILL after `graceMs`; resolves once the process has exited. */
  stop(graceMs: number): Promise<void>;
}

async function stopChild(child: ChildProcess, graceMs: number): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((resolve) => child.once('exit', resolve));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
  await exited;
  clearTimeout(timer);
}

export interface SpawnMemoryNodeOptions {
  readonly id: string;
  readonly zone: string;
  /** The node's main script; default this package's own `main.js` (an installed copy's bin, say). */
  readonly main?: string;
  readonly cwd?: string;
}

/**
 * Starts a memory node on 127.0.0.1 and an ephemeral port, quiet (`--log-level warn`);
 * resolves once it reports `listening` on its first stdout line, rejects if it exits first.
 */
export function spawnMemoryNode(options: SpawnMemoryNodeOptions): Promise<SpawnedMemoryNode> {
  const main = options.main ?? fileURLToPath(new URL('./main.js', import.meta.url));
  const child = spawn(
    process.execPath,
    [main, '--id', options.id, '--zone', options.zone, '--host', '127.0.0.1', '--port', '0'].concat(
      ['--log-level', 'warn'],
    ),
    {
      ...(options.cwd === undefined ? {} : { cwd: options.cwd }),
      stdio: ['ignore', 'pipe', 'inherit'],
    },
  );
  return new Promise((resolve, reject) => {
    const onExit = (code: number | null) =>
      reject(new Error(`memory node ${options.id} exited (${code}) before listening`));
    child.once('exit', onExit);
    createInterface({ input: child.stdout! }).once('line', (line) => {
      child.off('exit', onExit);
      const msg = JSON.parse(line) as { event: string; address: string };
      if (msg.event !== 'listening') reject(new Error(`memory node ${options.id} said ${line}`));
      else resolve({ child, address: msg.address, stop: (graceMs) => stopChild(child, graceMs) });
    });
  });
}

/** PEM contents of a throwaway PKI (also left in the directory, see below). */
export interface TestCertificates {
  readonly ca: Buffer;
  readonly serverCert: Buffer;
  readonly serverKey: Buffer;
  readonly clientCert: Buffer;
  readonly clientKey: Buffer;
}

const CERT_VALIDITY_DAYS = '1';
const EC_KEY = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];

/**
 * Makes a throwaway CA (P-256, valid 1 day) with a server certificate for 127.0.0.1 and
 * localhost (serverAuth) and a client certificate (clientAuth), using the `openssl` CLI.
 * Writes `ca.crt`, `ca.key`, `server.crt`, `server.key`, `client.crt`, `client.key` (and
 * scratch files) into `dir`, creating it if needed; the caller removes it. Call it twice with
 * two directories for an unrelated second CA.
 */
export function generateTestCertificates(dir: string): TestCertificates {
  mkdirSync(dir, { recursive: true });
  const ssl = (...args: string[]) => execFileSync('openssl', args, { cwd: dir, stdio: 'pipe' });
  ssl(
    'req',
    '-x509',
    ...EC_KEY,
    '-keyout',
    'ca.key',
    '-out',
    'ca.crt',
    '-days',
    CERT_VALIDITY_DAYS,
    '-subj',
    '/CN=engram-test-ca',
  );
  writeFileSync(
    join(dir, 'server.ext'),
    'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n',
  );
  writeFileSync(join(dir, 'client.ext'), 'extendedKeyUsage=clientAuth\n');
  for (const name of ['server', 'client']) {
    ssl(
      'req',
      ...EC_KEY,
      '-keyout',
      `${name}.key`,
      '-out',
      `${name}.csr`,
      '-subj',
      `/CN=engram-${name}`,
    );
    ssl(
      'x509',
      '-req',
      '-in',
      `${name}.csr`,
      '-CA',
      'ca.crt',
      '-CAkey',
      'ca.key',
      '-CAcreateserial',
      '-out',
      `${name}.crt`,
      '-days',
      CERT_VALIDITY_DAYS,
      '-extfile',
      `${name}.ext`,
    );
  }
  const read = (f: string) => readFileSync(join(dir, f));
  return {
    ca: read('ca.crt'),
    serverCert: read('server.crt'),
    serverKey: read('server.key'),
    clientCert: read('client.crt'),
    clientKey: read('client.key'),
  };
}

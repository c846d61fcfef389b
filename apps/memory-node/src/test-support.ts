/**
 * Test support, exported as `@engram/memory-node/test-support`: not part of the node's API.
 * Shared by the memory node's and the pool's TLS tests so the throwaway PKI is made one way,
 * by the repository's packaging and README-example tests, which start memory nodes, and by
 * tests and benchmarks that make a node slow, failing or hung (`faults`, `setFaults`).
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import type { FaultState, FaultUpdate } from './index.js';

/** A memory-node process started by `spawnMemoryNode`; the caller stops it. */
export interface SpawnedMemoryNode {
  readonly child: ChildProcess;
  /** `127.0.0.1:port`, as the node reported it. */
  readonly address: string;
  /** The admin endpoint's `127.0.0.1:port` when started with `admin: true`, else undefined. */
  readonly adminAddress: string | undefined;
  /** SIGTERM, then SIGKILL after `graceMs`; resolves once the process has exited. */
  stop(graceMs: number): Promise<void>;
  /** `putFaults` on this node's admin endpoint; rejects when it was started without one. */
  setFaults(update: FaultUpdate): Promise<FaultState>;
  /** `getFaults` on this node's admin endpoint; rejects when it was started without one. */
  getFaults(): Promise<FaultState>;
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
  /** Faults from the start (the `--fault-*` options). Default none. */
  readonly faults?: FaultUpdate;
  /** Serve the admin endpoint on 127.0.0.1 and an ephemeral port, for `setFaults`. Default false. */
  readonly admin?: boolean;
}

/** The `--fault-*` options that start a node with `faults`. */
export function faultArgs(faults: FaultUpdate): string[] {
  const args: string[] = [];
  if (faults.latencyMs !== undefined) args.push('--fault-latency-ms', String(faults.latencyMs));
  if (faults.errorRate !== undefined) args.push('--fault-error-rate', String(faults.errorRate));
  if (faults.hang === true) args.push('--fault-hang');
  if (faults.health === true) args.push('--fault-health');
  return args;
}

async function faultsRequest(
  adminAddress: string,
  method: 'GET' | 'PUT',
  update?: FaultUpdate,
): Promise<FaultState> {
  const res = await fetch(`http://${adminAddress}/faults`, {
    method,
    ...(update === undefined
      ? {}
      : { body: JSON.stringify(update), headers: { 'content-type': 'application/json' } }),
  });
  const text = await res.text();
  if (!res.ok) throw new Error(`${method} /faults on ${adminAddress}: ${res.status} ${text}`);
  return JSON.parse(text) as FaultState;
}

/**
 * Changes a node's faults at runtime through its admin endpoint (`PUT /faults`, a partial
 * update); resolves with the new state. A refused update rejects with the status and the
 * node's JSON error (`{code, field, value, message}`) in the message.
 */
export function putFaults(adminAddress: string, update: FaultUpdate): Promise<FaultState> {
  return faultsRequest(adminAddress, 'PUT', update);
}

/** A node's fault settings and held calls (`GET /faults`). */
export function getFaults(adminAddress: string): Promise<FaultState> {
  return faultsRequest(adminAddress, 'GET');
}

/**
 * Starts a memory node on 127.0.0.1 and an ephemeral port, quiet (`--log-level warn`), with
 * `faults` and the admin endpoint when asked; resolves once it reports `listening` on its
 * first stdout line, rejects if it exits first.
 */
export function spawnMemoryNode(options: SpawnMemoryNodeOptions): Promise<SpawnedMemoryNode> {
  const main = options.main ?? fileURLToPath(new URL('./main.js', import.meta.url));
  const child = spawn(
    process.execPath,
    [main, '--id', options.id, '--zone', options.zone, '--host', '127.0.0.1', '--port', '0'].concat(
      ['--log-level', 'warn'],
      options.admin === true ? ['--admin-listen', '127.0.0.1:0'] : [],
      faultArgs(options.faults ?? {}),
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
      const msg = JSON.parse(line) as { event: string; address: string; adminAddress?: string };
      if (msg.event !== 'listening') {
        reject(new Error(`memory node ${options.id} said ${line}`));
        return;
      }
      const admin = msg.adminAddress;
      const noAdmin = () =>
        Promise.reject(new Error(`memory node ${options.id} has no admin endpoint (admin: true)`));
      resolve({
        child,
        address: msg.address,
        adminAddress: admin,
        stop: (graceMs) => stopChild(child, graceMs),
        setFaults: (update) => (admin === undefined ? noAdmin() : putFaults(admin, update)),
        getFaults: () => (admin === undefined ? noAdmin() : getFaults(admin)),
      });
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

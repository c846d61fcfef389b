import { spawn, spawnSync } from 'node:child_process';
import net from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { Cleanup, MAIN_JS } from './helpers.js';

// The memory-node command line as an operator meets it: --help, bad options, a port in use.

const cleanup = new Cleanup();
afterEach(() => cleanup.run());

const OPTIONS = [
  '--id',
  '--port',
  '--zone',
  '--host',
  '--data-dir',
  '--max-content-bytes',
  '--tls-cert',
  '--tls-key',
  '--tls-client-ca',
  '--log-level',
  '--fault-latency-ms',
  '--fault-error-rate',
];
/** Options without a value. */
const FLAGS = ['--fault-hang', '--fault-health'];

function run(args: string[]) {
  return spawnSync(process.execPath, [MAIN_JS, ...args], { encoding: 'utf8', timeout: 30_000 });
}

describe('memory-node --help', () => {
  it('prints its usage and every option on stdout, exit 0 (also as -h)', () => {
    const help = run(['--help']);
    expect(help.status).toBe(0);
    expect(help.stderr).toBe('');
    expect(help.stdout).toMatch(/^usage: memory-node --id ID \[--port PORT\]/m);
    for (const option of OPTIONS)
      expect(help.stdout).toMatch(new RegExp(`^ {2}${option} [A-Z]+ `, 'm'));
    expect(help.stdout).toMatch(/^ {2}--admin-listen HOST:PORT /m);
    for (const flag of FLAGS) {
      expect(help.stdout).toMatch(new RegExp(`^ {2}${flag} {2,}[a-z]`, 'm'));
      expect(help.stdout).toContain(`[${flag}]`);
    }
    expect(help.stdout).toContain('(default 127.0.0.1)');
    expect(run(['-h']).stdout).toBe(help.stdout);
  });
});

describe('memory-node bad usage', () => {
  it.each([
    [['--bogus'], "Unknown option '--bogus'"],
    [['--port', '1'], '--id is required'],
    [['--id', 'n1', '--port', 'x'], '--port must be an integer, got "x"'],
    [['--id', 'n1', '--tls-cert', 'c.pem'], '--tls-cert and --tls-key go together'],
    [
      ['--id', 'n1', '--fault-latency-ms=-1'],
      '--fault-latency-ms must be an integer in [0, 600000], received -1',
    ],
    [
      ['--id', 'n1', '--fault-latency-ms', '2.5'],
      '--fault-latency-ms must be an integer in [0, 600000], received 2.5',
    ],
    [
      ['--id', 'n1', '--fault-error-rate', '1.5'],
      '--fault-error-rate must be a number in [0, 1], received 1.5',
    ],
    [
      ['--id', 'n1', '--fault-error-rate', 'half'],
      '--fault-error-rate must be a number in [0, 1], received "half"',
    ],
    [['--id', 'n1', '--fault-hang=yes'], "Option '--fault-hang' does not take an argument"],
    [
      ['--id', 'n1', '--admin-listen', '127.0.0.1'],
      '--admin-listen must be HOST:PORT with a port in [0, 65535], got "127.0.0.1"',
    ],
    [
      ['--id', 'n1', '--admin-listen', '127.0.0.1:65536'],
      '--admin-listen must be HOST:PORT with a port in [0, 65535], got "127.0.0.1:65536"',
    ],
  ])('%j exits 2 with one line pointing at --help', (args, text) => {
    const r = run(args);
    expect(r.status).toBe(2);
    expect(r.stdout).toBe('');
    const lines = r.stderr.split('\n').filter((l) => l !== '');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toContain(text);
    expect(lines[0]).toContain('memory-node --help');
  });

  it('exits 2 naming a TLS file it cannot read, in one line', () => {
    const r = run([
      '--id',
      'n1',
      '--tls-cert',
      '/nonexistent/c.pem',
      '--tls-key',
      '/nonexistent/k.pem',
    ]);
    expect(r.status).toBe(2);
    expect(r.stderr).toBe(
      'memory-node: cannot read --tls-cert /nonexistent/c.pem: no such file or directory (ENOENT)\n',
    );
  });
});

/** A port a server of the test holds (until cleanup). */
async function heldPort(): Promise<number> {
  const holder = net.createServer();
  await new Promise<void>((resolve) => holder.listen(0, '127.0.0.1', resolve));
  cleanup.add(() => new Promise<void>((resolve) => holder.close(() => resolve())));
  return (holder.address() as net.AddressInfo).port;
}

describe('memory-node on a port in use', () => {
  it('exits 1 with one line naming the address and the cause, no stack', async () => {
    const port = await heldPort();
    const child = spawn(process.execPath, [MAIN_JS, '--id', 'n1', '--port', String(port)], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => {
      stdout += d.toString();
    });
    child.stderr.on('data', (d: Buffer) => {
      stderr += d.toString();
    });
    const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
    cleanup.add(() => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    });
    expect(code).toBe(1);
    expect(stdout).toBe('');
    // grpc-js's own report of the failed bind is a JSON log line; the one message is ours.
    const plain = stderr.split('\n').filter((l) => l !== '' && !l.startsWith('{'));
    expect(plain).toEqual([
      `memory-node: cannot listen on 127.0.0.1:${port} (--port): address already in use (EADDRINUSE)`,
    ]);
    expect(stderr).not.toMatch(/^\s+at /m);
  });
});

describe('memory-node with its admin port in use', () => {
  it('exits 1 with one line naming --admin-listen', async () => {
    const port = await heldPort();
    const child = spawn(
      process.execPath,
      [MAIN_JS, '--id', 'n1', '--admin-listen', `127.0.0.1:${port}`, '--log-level', 'warn'],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    cleanup.add(() => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => {
      stdout += d.toString();
    });
    child.stderr.on('data', (d: Buffer) => {
      stderr += d.toString();
    });
    const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
    expect(code).toBe(1);
    expect(stdout).toBe('');
    expect(stderr).toBe(
      `memory-node: cannot listen on 127.0.0.1:${port} (--admin-listen): address already in use (EADDRINUSE)\n`,
    );
  });
});

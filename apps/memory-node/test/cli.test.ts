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
];

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

describe('memory-node on a port in use', () => {
  it('exits 1 with one line naming the address and the cause, no stack', async () => {
    const holder = net.createServer();
    await new Promise<void>((resolve) => holder.listen(0, '127.0.0.1', resolve));
    cleanup.add(() => new Promise<void>((resolve) => holder.close(() => resolve())));
    const port = (holder.address() as net.AddressInfo).port;
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

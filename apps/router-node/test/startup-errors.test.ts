import { type ChildProcess, spawn } from 'node:child_process';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { generateTestCertificates } from '@engram/memory-node/test-support';
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import {
  ConfigError,
  ListenError,
  REDACTED,
  type RouterNodeConfig,
  resolveConfig,
  startRouterNode,
} from '../src/index.js';
import {
  Cleanup,
  call,
  MAIN_JS,
  memoryClient,
  startSlowNode,
  TEST_HEALTH,
  tempDir,
} from './helpers.js';

// router-node as an operator meets it: `check`, a config without nodes, `--local-cluster`, and
// the one-line errors of a start that cannot bind. Every case runs the built CLI.

const cleanup = new Cleanup();
afterEach(() => cleanup.run());

interface Finished {
  code: number | null;
  stdout: string;
  stderr: string;
}

function track(child: ChildProcess): Promise<Finished> {
  let stdout = '';
  let stderr = '';
  child.stdout?.on('data', (d: Buffer) => {
    stdout += d.toString();
  });
  child.stderr?.on('data', (d: Buffer) => {
    stderr += d.toString();
  });
  const done = new Promise<Finished>((resolve) =>
    child.once('exit', (code) => resolve({ code, stdout, stderr })),
  );
  cleanup.add(async () => {
    // The whole process group: a router killed here cannot stop its local memory nodes.
    try {
      process.kill(-child.pid!, 'SIGKILL');
    } catch {
      // the group is gone already
    }
    await done;
  });
  return done;
}

/** Spawns `router-node ARGS` in its own process group (see `track`). */
function spawnMain(args: string[], env: Record<string, string> = {}): ChildProcess {
  return spawn(process.execPath, [MAIN_JS, ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, ...env },
    detached: true,
  });
}

/** Runs `router-node ARGS` to its exit. */
function runMain(args: string[], env: Record<string, string> = {}): Promise<Finished> {
  return track(spawnMain(args, env));
}

function configFile(config: unknown): string {
  const file = join(tempDir(cleanup), 'router.json');
  writeFileSync(file, typeof config === 'string' ? config : JSON.stringify(config));
  return file;
}

/** Lines of stderr that are not pino JSON log lines. */
function messages(stderr: string): string[] {
  return stderr
    .split('\n')
    .filter((line) => line !== '')
    .filter((line) => {
      try {
        return typeof JSON.parse(line) !== 'object';
      } catch {
        return true;
      }
    });
}

/** Processes whose command line mentions `text` (a local cluster's data dir). */
function processesMentioning(text: string): number[] {
  const pids: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      if (readFileSync(`/proc/${entry}/cmdline`, 'utf8').includes(text)) pids.push(Number(entry));
    } catch {
      // exited meanwhile
    }
  }
  return pids;
}

/** A port held by a listener of this test on 127.0.0.1. */
async function takenPort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  cleanup.add(() => new Promise<void>((resolve) => server.close(() => resolve())));
  return (server.address() as net.AddressInfo).port;
}

const FREE_PORTS = {
  listen: { host: '127.0.0.1', port: 0 },
  admin: { host: '127.0.0.1', port: 0 },
  metrics: { host: '127.0.0.1', port: 0 },
};
const A_NODE = [{ id: 'a', address: '127.0.0.1:1', zone: 'z' }];

describe('router-node check', () => {
  it('exits 0 and prints the resolved config (file, env, flags) with the token redacted', async () => {
    const token = 'tok-6b1f0c2e-not-for-output';
    const file = configFile({ ...FREE_PORTS, nodes: A_NODE, admin: { token }, workers: 2 });
    const r = await runMain(['check', '--config', file, '--workers', '3'], {
      ENGRAM_ROUTER_HEALTH_INTERVAL_MS: '250',
    });
    expect(r.code).toBe(0);
    const printed = JSON.parse(r.stdout) as RouterNodeConfig;
    expect(printed.workers).toBe(3);
    expect(printed.health.intervalMs).toBe(250);
    expect(printed.nodes).toEqual(A_NODE);
    expect(printed.admin.token).toBe(REDACTED);
    expect(r.stdout + r.stderr).not.toContain(token);
    expect(r.stderr).toContain('is valid');
  });

  it("never prints a token file's content", async () => {
    const dir = tempDir(cleanup);
    const token = 'filetok-93d0a7-not-for-output';
    writeFileSync(join(dir, 'token'), `${token}\n`);
    const file = configFile({ nodes: A_NODE, admin: { tokenFile: join(dir, 'token') } });
    const r = await runMain(['check', '--config', file]);
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout).admin.tokenFile).toBe(join(dir, 'token'));
    expect(r.stdout + r.stderr).not.toContain(token);
  });

  it('exits 2 with every problem, each naming the key, the value and its source', async () => {
    const file = configFile({ nodes: A_NODE, health: { timeoutMs: 0 }, bogus: 1 });
    const r = await runMain(['check', '--config', file, '--port', '70000'], {
      ENGRAM_ROUTER_WORKERS: 'many',
    });
    expect(r.code).toBe(2);
    expect(r.stdout).toBe('');
    const lines = messages(r.stderr);
    expect(lines).toHaveLength(4);
    const line = (key: string) => lines.find((l) => l.includes(`config ${key} = `)) ?? '';
    expect(line('workers')).toContain('"many"');
    expect(line('workers')).toContain('(from env ENGRAM_ROUTER_WORKERS)');
    expect(line('listen.port')).toContain('= 70000: must be from 0 to 65535');
    expect(line('listen.port')).toContain('(from flag --listen.port)');
    expect(line('health.timeoutMs')).toContain(`(from file ${file})`);
    expect(line('bogus')).toContain('unknown key');
    expect(line('bogus')).toContain(`(from file ${file})`);
  });

  it('reports malformed JSON at its line and column, with the line and a caret', async () => {
    const file = configFile('{\n  "workers": 1,\n  nodes: []\n}\n');
    for (const command of ['check', 'run']) {
      const r = await runMain([command, '--config', file]);
      expect(r.code).toBe(2);
      expect(r.stderr).toContain('not valid JSON at line 3, column 3');
      expect(r.stderr).not.toMatch(/at position/);
      expect(r.stderr).toContain('    3 |   nodes: []\n          ^\n');
    }
  });

  it('exits 2 for files it cannot read or parse: cert, key, token file, data dir', async () => {
    const dir = tempDir(cleanup);
    generateTestCertificates(dir);
    writeFileSync(join(dir, 'not.pem'), 'hello\n');
    const file = configFile({
      nodes: A_NODE,
      tls: { cert: join(dir, 'missing.crt'), key: join(dir, 'server.key') },
      admin: { tls: { cert: join(dir, 'server.crt'), key: join(dir, 'client.key') } },
      pool: { tls: { ca: join(dir, 'not.pem') } },
      // Under a regular file: can never be created.
      dataDir: join(dir, 'not.pem', 'data'),
    });
    const r = await runMain(['check', '--config', file]);
    expect(r.code).toBe(2);
    const lines = messages(r.stderr);
    expect(lines).toHaveLength(4);
    expect(lines[0]).toMatch(/config tls\.cert = ".*missing\.crt": cannot read: .*ENOENT/);
    expect(lines[1]).toMatch(
      /config admin\.tls\.key = ".*client\.key": does not match admin\.tls\.cert/,
    );
    expect(lines[2]).toMatch(/config pool\.tls\.ca = ".*not\.pem": not a PEM certificate/);
    expect(lines[3]).toMatch(/config dataDir = ".*data": .*not a directory/);
    // run refuses the same config the same way, before starting anything.
    const run = await runMain(['run', '--config', file]);
    expect(run.code).toBe(2);
    expect(messages(run.stderr)).toEqual(lines);
  });

  it('exits 2 for etcd TLS files it cannot read or that do not match', async () => {
    const dir = tempDir(cleanup);
    generateTestCertificates(dir);
    const file = configFile({
      nodes: A_NODE,
      etcd: {
        endpoints: ['127.0.0.1:2379'],
        ca: join(dir, 'missing-ca.crt'),
        cert: join(dir, 'client.crt'),
        key: join(dir, 'server.key'),
      },
    });
    const r = await runMain(['check', '--config', file]);
    expect(r.code).toBe(2);
    const lines = messages(r.stderr);
    expect(lines).toHaveLength(2);
    expect(lines[0]).toMatch(/config etcd\.key = ".*server\.key": does not match etcd\.cert/);
    expect(lines[1]).toMatch(/config etcd\.ca = ".*missing-ca\.crt": cannot read: .*ENOENT/);
  });

  it('accepts readable, matching certificates', async () => {
    const dir = tempDir(cleanup);
    generateTestCertificates(dir);
    const file = configFile({
      nodes: A_NODE,
      tls: {
        cert: join(dir, 'server.crt'),
        key: join(dir, 'server.key'),
        clientCa: join(dir, 'ca.crt'),
      },
      dataDir: join(dir, 'new', 'data'),
    });
    const r = await runMain(['check', '--config', file]);
    expect(r.stderr).toContain('is valid');
    expect(r.code).toBe(0);
  });
});

describe('the local cluster is explicit', () => {
  it('refuses a config without nodes (exit 2), naming nodes and how to get a local cluster', async () => {
    for (const command of ['run', 'check']) {
      const r = await runMain([command, '--config', configFile(FREE_PORTS)]);
      expect(r.code).toBe(2);
      const lines = messages(r.stderr);
      expect(lines).toHaveLength(1);
      expect(lines[0]).toContain('config nodes = []');
      expect(lines[0]).toContain('--local-cluster');
    }
    // No config at all: the same.
    const bare = await runMain([]);
    expect(bare.code).toBe(2);
    expect(bare.stderr).toContain('config nodes = []');
  });

  it('refuses --local-cluster with nodes, and with localCluster.nodes 0', async () => {
    const withNodes = await runMain([
      'check',
      '--local-cluster',
      '--config',
      configFile({ nodes: A_NODE }),
    ]);
    expect(withNodes.code).toBe(2);
    expect(withNodes.stderr).toContain('config nodes = ["a"]: --local-cluster starts its own');
    const none = await runMain(['run', '--local-cluster', '--local-cluster.nodes', '0']);
    expect(none.code).toBe(2);
    expect(none.stderr).toContain('config nodes = []: is empty and localCluster.nodes is 0');
  });

  it('run --local-cluster starts the memory nodes, serves, and stops them on SIGTERM', async () => {
    const data = tempDir(cleanup);
    const child = spawnMain([
      'run',
      '--local-cluster',
      '--config',
      configFile({ ...FREE_PORTS, health: TEST_HEALTH, logLevel: 'warn' }),
      '--local-cluster.nodes',
      '2',
      '--local-cluster.data-dir',
      data,
      '--workers',
      '1',
    ]);
    const finished = track(child);
    const first = await new Promise<string>((resolve, reject) => {
      createInterface({ input: child.stdout! }).once('line', resolve);
      void finished.then((r) => reject(new Error(`exited ${r.code}: ${r.stderr}`)));
    });
    const listening = JSON.parse(first) as { address: string; nodes: { id: string }[] };
    expect(listening.nodes.map((n) => n.id)).toEqual(['n1', 'n2']);
    // The memory nodes (the router's own command line names the directory too).
    expect(processesMentioning(data).filter((pid) => pid !== child.pid)).toHaveLength(2);
    const client = memoryClient(cleanup, listening.address);
    const stored = await call(
      client,
      'store',
      { spaceId: 's', memory: { content: 'hello' } },
      10_000,
    );
    expect(stored.memoryId).not.toBe('');
    child.kill('SIGTERM');
    const r = await finished;
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('--local-cluster: started 2 local memory nodes');
    expect(processesMentioning(data)).toEqual([]);
  });
});

describe('a port that cannot be bound', () => {
  // Each listener in turn on a port this test holds; the others on free ports. A local
  // cluster of one node is started first, so a failed start must stop it.
  it.each([
    ['the data plane', 'listen.port', 1, 'listen'],
    ['the data plane', 'listen.port', 0, 'listen'],
    ['RouterAdmin', 'admin.port', 1, 'admin'],
    ['metrics', 'metrics.port', 1, 'metrics'],
  ] as const)(
    'is one line naming %s (%s), exit 1, no stack, nothing left running (workers %i)',
    async (listener, key, workers, section) => {
      const port = await takenPort();
      const data = tempDir(cleanup);
      const file = configFile({
        ...FREE_PORTS,
        [section]: { host: '127.0.0.1', port },
        workers,
        health: TEST_HEALTH,
        localCluster: { nodes: 1, dataDir: data },
      });
      const r = await runMain(['run', '--local-cluster', '--config', file]);
      expect(r.code).toBe(1);
      expect(messages(r.stderr)).toEqual([
        `router-node: cannot listen on 127.0.0.1:${port} for ${listener} (${key}): address already in use (EADDRINUSE)`,
      ]);
      expect(r.stderr).not.toMatch(/^\s+at /m);
      expect(r.stdout).toBe('');
      expect(processesMentioning(data)).toEqual([]);
    },
  );

  it('is a ListenError naming the listener for a program that starts the router itself', async () => {
    const port = await takenPort();
    const cfg = resolveConfig({
      file: { ...FREE_PORTS, metrics: { host: '127.0.0.1', port }, nodes: A_NODE, workers: 0 },
    });
    const err = await startRouterNode(cfg, pino({ level: 'silent' })).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ListenError);
    expect((err as ListenError).code).toBe('ListenFailed');
    expect((err as ListenError).field).toBe('metrics.port');
    expect((err as ListenError).address).toBe(`127.0.0.1:${port}`);
  });

  it('refuses, in a program too, a config without nodes unless asked for a local cluster', async () => {
    const err = await startRouterNode(
      resolveConfig({ file: FREE_PORTS }),
      pino({ level: 'silent' }),
    ).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as ConfigError).field).toBe('nodes');
  });

  it('routes to configured nodes when the ports are free (the same config, control)', async () => {
    const node = await startSlowNode(cleanup, 'a', 0);
    const file = configFile({
      ...FREE_PORTS,
      nodes: [{ id: 'a', address: node.address }],
      health: TEST_HEALTH,
      // Errors only: a warning that admin changes are not persisted (dataDir null) is expected.
      logLevel: 'error',
    });
    const child = spawnMain(['run', '--config', file]);
    const finished = track(child);
    const first = await new Promise<string>((resolve, reject) => {
      createInterface({ input: child.stdout! }).once('line', resolve);
      void finished.then((r) => reject(new Error(`exited ${r.code}: ${r.stderr}`)));
    });
    expect(JSON.parse(first).event).toBe('listening');
    child.kill('SIGTERM');
    const r = await finished;
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
  });
});

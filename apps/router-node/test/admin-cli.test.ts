import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { generateTestCertificates } from '@engram/memory-node/test-support';
import * as grpc from '@grpc/grpc-js';
import { afterEach, describe, expect, it } from 'vitest';
import { LocalCluster } from '../src/index.js';
import {
  admin,
  adminClient,
  Cleanup,
  call,
  digestOn,
  eventually,
  freePort,
  memoryClient,
  spawnRouter,
  TEST_DOWN_WINDOW_MS,
  TEST_HEALTH,
  tempDir,
  testConfig,
} from './helpers.js';

// engram-router, the built binary (`node dist/admin-cli.js`: build first), against a real
// router-node in front of real memory nodes.

const CLI_JS = fileURLToPath(new URL('../dist/admin-cli.js', import.meta.url));

const cleanup = new Cleanup();
afterEach(() => cleanup.run());

const TOKEN = 'cli-test-token-0123456789';

/**
 * The router's settings here. A membership change waits one deadline (writes decided on the
 * old table finish) before its data streams, so the deadline is short; the attempt timeout
 * bounds a write to a killed node.
 */
const ROUTER = { deadlineMs: 2000, attemptTimeoutMs: 500, retryBaseDelayMs: 20 };
/**
 * Longest a membership change may take to stream and apply: the fence (one deadline), a
 * retry pause per failed try, a health window for the nodes involved, all doubled for a
 * machine busy with other tests.
 */
const CHANGE_WINDOW_MS = 2 * (ROUTER.deadlineMs + 1000 + TEST_DOWN_WINDOW_MS) + 10_000;
/** Longest one CLI run may take on a busy machine (a node process start, a gRPC call). */
const CLI_RUN_MS = 30_000;

interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

interface Routed {
  c: LocalCluster;
  adminPort: number;
  address: string;
  /** Runs the CLI against this router (its admin address and token in the environment). */
  cli(args: string[], env?: Record<string, string>): Promise<CliResult>;
  /** Runs it with --json; expects exit 0 and parses stdout. */
  json<T = Record<string, unknown>>(args: string[]): Promise<T>;
}

function runCli(args: string[], env: Record<string, string | undefined>): Promise<CliResult> {
  const child = spawn(process.execPath, [CLI_JS, ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, ...env },
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => {
    stdout += d.toString();
  });
  child.stderr.on('data', (d: Buffer) => {
    stderr += d.toString();
  });
  const timer = setTimeout(() => child.kill('SIGKILL'), CLI_RUN_MS);
  const exited = new Promise<CliResult>((resolve) =>
    child.once('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    }),
  );
  cleanup.add(async () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    await exited;
  });
  return exited;
}

/**
 * `nodes` memory nodes (zones a, b), a router in front of the first `placed` of them; its
 * admin listener takes TOKEN, and `adminExtra` on top.
 */
async function routed(nodes = 3, placed = nodes, adminExtra: object = {}): Promise<Routed> {
  const c = await LocalCluster.start(nodes, 2);
  cleanup.add(() => c.stop());
  const router = await spawnRouter(
    cleanup,
    testConfig({
      nodes: c.configs.slice(0, placed),
      workers: 1,
      router: ROUTER,
      admin: { host: '127.0.0.1', port: 0, token: TOKEN, ...adminExtra },
    }),
  );
  const env = {
    ENGRAM_ROUTER_ADMIN: `127.0.0.1:${router.adminPort}`,
    ENGRAM_ROUTER_ADMIN_TOKEN: TOKEN,
  };
  const cli = (args: string[], extra: Record<string, string> = {}) =>
    runCli(args, { ...env, ...extra });
  return {
    c,
    adminPort: router.adminPort,
    address: router.address,
    cli,
    json: async <T>(args: string[]) => {
      const r = await cli(['--json', ...args]);
      expect(r.stderr).toBe('');
      expect(r.code).toBe(0);
      return JSON.parse(r.stdout) as T;
    },
  };
}

interface NodeJson {
  id: string;
  address: string;
  zone: string;
  state: string;
  lifecycle: string;
  breaker: string;
  healthLatencyMs: number;
  hintsPending: number;
  hintBytesPending: number;
  repairNeeded: boolean;
}
interface TableJson {
  epoch: number;
  nodes: NodeJson[];
  assignments: { spaceId: string; primary: string; replicas: string[] }[];
  pendingAssignments: { spaceId: string; primary: string; replicas: string[] }[];
}
interface WhereJson {
  spaceId: string;
  pendingAssignment: { spaceId: string; primary: string; replicas: string[] } | null;
  token: number;
  placement: string;
  nodes: {
    id: string;
    role: string;
    state: string;
    reachable: boolean;
    error: string;
    holdsData: boolean;
    memories: number;
    digest: string;
  }[];
}

async function store(r: Routed, spaceId: string, count: number): Promise<void> {
  const client = memoryClient(cleanup, r.address);
  for (let i = 0; i < count; i++) {
    await call(client, 'store', { spaceId, memory: { content: `memory ${i} of ${spaceId}` } });
  }
}

describe('engram-router (the built CLI against a real router)', () => {
  it('status, table, hints and where; where shows the data on each replica, and a killed one unreachable', async () => {
    const r = await routed();
    const space = 'team/notes';
    await store(r, space, 4);

    // Every replica holds the four memories (the last replica's write may land after the ack).
    const where = await eventually(async () => {
      const w = await r.json<WhereJson>(['where', space]);
      return w.nodes.every((n) => n.reachable && n.memories === 4) ? w : undefined;
    }, CHANGE_WINDOW_MS);
    expect(where.spaceId).toBe(space);
    expect(where.placement).toBe('ring');
    expect(where.pendingAssignment).toBeNull();
    expect(where.nodes.map((n) => n.role)).toEqual(['primary', 'replica', 'replica']);
    expect(where.nodes.map((n) => n.id).sort()).toEqual(['n1', 'n2', 'n3']);
    // The digests are the nodes' own, as ReplicaService answers them.
    for (const n of where.nodes) {
      const own = await digestOn(cleanup, r.c.node(n.id).config.address, space);
      expect(own).toBe(`4:0:${n.digest}`);
    }
    const human = await r.cli(['where', space]);
    expect(human.code).toBe(0);
    expect(human.stdout).toMatch(/^space +team\/notes$/m);
    expect(human.stdout).toContain(`token      ${where.token} (0x`);
    expect(human.stdout).toMatch(
      new RegExp(
        `^primary +${where.nodes[0]!.id} .* up +active +closed +yes +4 +0 +[0-9a-f]{16}$`,
        'm',
      ),
    );

    const status = await eventually(async () => {
      const s = await r.json<{
        epoch: number;
        replicationFactor: number;
        partitioned: boolean;
        nodes: NodeJson[];
        streams: unknown[];
      }>(['status']);
      return s.nodes.every((n) => n.healthLatencyMs > 0) ? s : undefined;
    }, TEST_DOWN_WINDOW_MS * 2);
    expect(status.replicationFactor).toBe(3);
    expect(status.partitioned).toBe(false);
    expect(status.nodes.map((n) => [n.id, n.state, n.lifecycle, n.breaker])).toEqual([
      ['n1', 'up', 'active', 'closed'],
      ['n2', 'up', 'active', 'closed'],
      ['n3', 'up', 'active', 'closed'],
    ]);
    expect(status.nodes.map((n) => n.address)).toEqual(r.c.configs.map((c) => c.address));
    const statusText = (await r.cli(['status'])).stdout;
    expect(statusText).toMatch(/^nodes +3 \(3 up\)$/m);
    expect(statusText).toMatch(
      /^NODE +ADDRESS +ZONE +STATE +LIFECYCLE +BREAKER +HEALTH RTT +HINTS +HINT BYTES +REPAIR NEEDED$/m,
    );
    expect(statusText).toMatch(
      /^n2 +127\.0\.0\.1:\d+ +b +up +active +closed +[\d.]+ ms +0 +0 B +no$/m,
    );
    expect(statusText).toContain('data movement: none');

    const table = await r.json<TableJson>(['table']);
    expect(table.epoch).toBe(status.epoch);
    expect(table.nodes.map((n) => n.zone)).toEqual(['a', 'b', 'a']);
    expect(table.assignments).toEqual([]);
    const hints = await r.json<{ nodes: { id: string; hintsPending: number }[] }>(['hints']);
    expect(hints.nodes.map((n) => [n.id, n.hintsPending])).toEqual([
      ['n1', 0],
      ['n2', 0],
      ['n3', 0],
    ]);

    // A replica killed: still listed, unreachable, with the reason; the others still hold it.
    const victim = where.nodes[1]!.id;
    await r.c.kill(victim);
    const after = await eventually(async () => {
      const w = await r.json<WhereJson>(['where', space]);
      const v = w.nodes.find((n) => n.id === victim)!;
      return !v.reachable && v.state === 'down' ? w : undefined;
    }, TEST_DOWN_WINDOW_MS * 2);
    const dead = after.nodes.find((n) => n.id === victim)!;
    expect(dead).toMatchObject({ reachable: false, holdsData: false });
    expect(dead.error).not.toBe('');
    expect(
      after.nodes.filter((n) => n.id !== victim).every((n) => n.reachable && n.memories === 4),
    ).toBe(true);
    const text = await r.cli(['where', space]);
    expect(text.code).toBe(0);
    expect(text.stdout).toMatch(
      new RegExp(`^replica +${victim} .* down .* unreachable +\\? +\\? +\\?$`, 'm'),
    );
    expect(text.stdout).toContain(`${victim}: `);
  });

  it('add, drain, undrain, remove, assign and unassign change the table', async () => {
    const r = await routed(4, 3);
    const n4 = r.c.node('n4').config;
    const tableOf = () => r.json<TableJson>(['table']);
    const lifecycleOf = async (id: string) =>
      (await tableOf()).nodes.find((n) => n.id === id)?.lifecycle;

    const added = await r.cli(['add', 'n4', n4.address, '--zone', 'b']);
    expect(added.stderr).toBe('');
    expect(added.code).toBe(0);
    expect(added.stdout).toMatch(/^added node n4 at 127\.0\.0\.1:\d+; .*\(table epoch \d+\)\n$/);
    const t1 = await tableOf();
    expect(t1.nodes.find((n) => n.id === 'n4')).toMatchObject({ address: n4.address, zone: 'b' });
    await eventually(async () => (await lifecycleOf('n4')) === 'active', CHANGE_WINDOW_MS, 200);

    expect((await r.cli(['drain', 'n4'])).code).toBe(0);
    await eventually(async () => (await lifecycleOf('n4')) === 'drained', CHANGE_WINDOW_MS, 200);
    // Three placed nodes left, replication factor 3: draining one more is refused unforced.
    const refused = await r.cli(['drain', 'n1']);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(
      /^engram-router: DrainNode failed: FAILED_PRECONDITION: .*force/,
    );
    expect(refused.stdout).toBe('');

    expect((await r.cli(['undrain', 'n4'])).code).toBe(0);
    await eventually(async () => (await lifecycleOf('n4')) === 'active', CHANGE_WINDOW_MS, 200);

    const pinned = await r.cli(['assign', 'pinned/space', 'n4', 'n1']);
    expect(pinned.code).toBe(0);
    const assigned = await eventually(
      async () => {
        const t = await tableOf();
        return t.assignments.length === 1 && t.pendingAssignments.length === 0 ? t : undefined;
      },
      CHANGE_WINDOW_MS,
      200,
    );
    expect(assigned.assignments).toEqual([
      { spaceId: 'pinned/space', primary: 'n4', replicas: ['n1'] },
    ]);
    const where = await r.json<WhereJson>(['where', 'pinned/space']);
    expect(where.placement).toBe('pinned');
    expect(where.nodes.map((n) => [n.id, n.role])).toEqual([
      ['n4', 'primary'],
      ['n1', 'replica'],
    ]);
    expect((await r.cli(['table'])).stdout).toMatch(/^pinned\/space +n4 +n1$/m);

    expect((await r.cli(['unassign', 'pinned/space'])).code).toBe(0);
    await eventually(
      async () => {
        const t = await tableOf();
        return t.assignments.length === 0 && t.pendingAssignments.length === 0;
      },
      CHANGE_WINDOW_MS,
      200,
    );
    expect((await r.json<WhereJson>(['where', 'pinned/space'])).placement).toBe('ring');

    const removed = await r.cli(['remove', 'n4']);
    expect(removed.code).toBe(0);
    expect(removed.stdout).toMatch(/^removing node n4; /);
    // It leaves (its spaces stream to their new owners), then it is gone.
    await eventually(
      async () => {
        const ids = (await tableOf()).nodes.map((n) => n.id);
        return ids.length === 3 && ids.every((id, i) => id === `n${i + 1}`);
      },
      CHANGE_WINDOW_MS,
      200,
    );
    const unknown = await r.cli(['remove', 'n4']);
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toMatch(/^engram-router: RemoveNode failed: NOT_FOUND: .*n4/);
  });

  it('repair SPACE copies what a replica lacks; repair --node starts; hints shows what a down node missed', async () => {
    const r = await routed();
    const space = 'repair/me';
    await store(r, space, 2);
    const placed = (await r.json<WhereJson>(['where', space])).nodes.map((n) => n.id);
    await eventually(async () => {
      const w = await r.json<WhereJson>(['where', space]);
      return w.nodes.every((n) => n.memories === 2);
    }, CHANGE_WINDOW_MS);
    // A memory stored on the primary alone, behind the router's back: the replicas lack it.
    const direct = memoryClient(cleanup, r.c.node(placed[0]!).config.address);
    await call(direct, 'store', { spaceId: space, memory: { content: 'only on the primary' } });
    const before = await r.json<WhereJson>(['where', space]);
    expect(before.nodes.map((n) => n.memories)).toEqual([3, 2, 2]);

    const repaired = await r.json<{
      spaces: number;
      differed: number;
      applied: number;
      unreachable: string[];
    }>(['repair', space]);
    expect(repaired).toEqual({ spaces: 1, differed: 1, applied: 2, unreachable: [] });
    const after = await r.json<WhereJson>(['where', space]);
    expect(after.nodes.map((n) => n.memories)).toEqual([3, 3, 3]);
    expect(new Set(after.nodes.map((n) => n.digest)).size).toBe(1);
    const again = await r.cli(['repair', space]);
    expect(again.code).toBe(0);
    expect(again.stdout).toBe(
      `repaired space ${space}: 1 compared, 0 differed, 0 entries copied\n`,
    );

    const node = await r.cli(['repair', '--node', 'n1']);
    expect(node.code).toBe(0);
    expect(node.stdout).toMatch(/^repair of node n1 started/);
    const none = await r.cli(['repair', '--node', 'n9']);
    expect(none.code).toBe(1);
    expect(none.stderr).toMatch(/^engram-router: RepairNode failed: NOT_FOUND: /);

    // A replica down: the writes it misses are kept as hints for it.
    const victim = placed[2]!;
    await r.c.kill(victim);
    await eventually(async () => {
      const t = await r.json<TableJson>(['status']);
      return t.nodes.find((n) => n.id === victim)?.state === 'down';
    }, TEST_DOWN_WINDOW_MS * 2);
    await store(r, space, 3);
    const hints = await eventually(async () => {
      const h = await r.json<{
        nodes: { id: string; hintsPending: number; hintBytesPending: number }[];
      }>(['hints']);
      const v = h.nodes.find((n) => n.id === victim)!;
      return v.hintsPending === 3 ? h : undefined;
    }, CHANGE_WINDOW_MS);
    const v = hints.nodes.find((n) => n.id === victim)!;
    expect(v.hintBytesPending).toBeGreaterThan(0);
    expect(hints.nodes.filter((n) => n.id !== victim).every((n) => n.hintsPending === 0)).toBe(
      true,
    );
    const text = await r.cli(['hints']);
    expect(text.stdout).toMatch(/^NODE +HINTS +HINT BYTES +REPAIR NEEDED$/m);
    expect(text.stdout).toMatch(new RegExp(`^${victim} +3 +\\d+(\\.\\d)? (B|KiB) +(yes|no)$`, 'm'));
  });

  it('store and recall go through the data listener and show how each call was routed', async () => {
    const r = await routed(3);
    const space = 'team/smoke';
    const stored = await r.cli(['--router', r.address, 'store', space, 'the first memory']);
    expect(stored.stderr).toBe('');
    expect(stored.code).toBe(0);
    const id = /^stored memory (\S+)$/m.exec(stored.stdout)?.[1];
    expect(id).toBeDefined();
    // Replicated to all three (W = quorum answers after 2; each replica is checked below).
    expect(stored.stdout).toMatch(
      /^routing: served by n\d \(Replicated, \d attempts?, acknowledged by [23] of 3(, fallback)?\) at table epoch \d+$/m,
    );
    const where = await r.json<WhereJson>(['where', space]);
    const primary = where.nodes.find((n) => n.role === 'primary')!.id;
    await eventually(async () => {
      const w = await r.json<WhereJson>(['where', space]);
      return w.nodes.every((n) => n.memories === 1) ? w : undefined;
    }, CHANGE_WINDOW_MS);

    const recalled = await r.cli(['recall', space, '--limit', '5'], {
      ENGRAM_ROUTER_ADDRESS: r.address,
    });
    expect(recalled.code).toBe(0);
    expect(recalled.stdout).toMatch(new RegExp(`^${id} +the first memory$`, 'm'));
    expect(recalled.stdout).toContain(
      `routing: served by ${primary} (PrimaryWithFallback, 1 attempt)`,
    );
    const json = await r.json<{
      memories: { id: string; content: string; version: number }[];
      routing: { servedBy: string; fallback: boolean; tableEpoch: number };
    }>(['--router', r.address, 'recall', space]);
    expect(json.memories).toMatchObject([{ id, content: 'the first memory' }]);
    expect(json.memories[0]!.version).toBeGreaterThan(0);
    expect(json.routing).toMatchObject({ servedBy: primary, fallback: false });

    // The data listener's own errors: a space id the router refuses, an unreachable router.
    const bad = await r.cli(['--router', r.address, 'store', 'x'.repeat(2000), 'y']);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/^engram-router: Store failed: INVALID_ARGUMENT: /);
    const port = await freePort();
    const gone = await r.cli(['--router', `127.0.0.1:${port}`, 'recall', space]);
    expect(gone.code).toBe(3);
    expect(gone.stderr).toMatch(
      new RegExp(`^engram-router: router at 127\\.0\\.0\\.1:${port} unreachable: `),
    );
  });

  it('exit codes: usage 2, unreachable 3, refused 1 with the gRPC status (wrong token, bad space id)', async () => {
    const r = await routed(3);
    const usage = await r.cli([]);
    expect(usage).toMatchObject({ code: 2, stdout: '' });
    expect(usage.stderr).toBe(
      'engram-router: a command is needed (engram-router --help for usage)\n',
    );
    const badFlag = await r.cli(['status', '--frobnicate']);
    expect(badFlag.code).toBe(2);
    expect(badFlag.stderr).toContain('unknown flag --frobnicate');
    expect((await r.cli(['where'])).code).toBe(2);
    const help = await r.cli(['--help']);
    expect(help.code).toBe(0);
    expect(help.stdout).toContain('exit codes:');

    const port = await freePort();
    const unreachable = await r.cli(['status', '--admin', `127.0.0.1:${port}`]);
    expect(unreachable.code).toBe(3);
    expect(unreachable.stderr).toMatch(
      new RegExp(
        `^engram-router: router admin at 127\\.0\\.0\\.1:${port} unreachable: UNAVAILABLE: .*\\n$`,
      ),
    );
    expect(unreachable.stderr.split('\n')).toHaveLength(2);

    const wrong = await r.cli(['status', '--token', 'not-the-token']);
    expect(wrong.code).toBe(1);
    expect(wrong.stderr).toMatch(/^engram-router: GetTable failed: UNAUTHENTICATED: /);
    const missing = await r.cli(['status'], { ENGRAM_ROUTER_ADMIN_TOKEN: '' });
    expect(missing.code).toBe(1);
    expect(missing.stderr).toContain('UNAUTHENTICATED');
    // The token from a file works.
    const file = join(tempDir(cleanup), 'token');
    writeFileSync(file, `${TOKEN}\n`);
    expect(
      (await r.cli(['status', '--token-file', file], { ENGRAM_ROUTER_ADMIN_TOKEN: '' })).code,
    ).toBe(0);

    const long = await r.cli(['where', 'x'.repeat(1025)]);
    expect(long.code).toBe(1);
    expect(long.stderr).toMatch(/^engram-router: Locate failed: INVALID_ARGUMENT: spaceId must be/);
    // The RPC itself, the CLI's own check aside: an empty space id names the field.
    const client = adminClient(cleanup, r.adminPort, TOKEN);
    const err = await admin(client, 'Locate', { spaceId: '' }).catch((e: grpc.ServiceError) => e);
    expect((err as grpc.ServiceError).code).toBe(grpc.status.INVALID_ARGUMENT);
    expect((err as grpc.ServiceError).details).toContain('spaceId');
    // GetTable carries the last probe's round trip.
    const t = await eventually(
      async () => {
        const reply = await admin<{ nodes: { healthLatencyMs: number }[] }>(client, 'GetTable');
        return reply.nodes.every((n) => n.healthLatencyMs > 0) ? reply : undefined;
      },
      TEST_HEALTH.intervalMs * 10 + TEST_DOWN_WINDOW_MS,
    );
    expect(t.nodes.every((n) => n.healthLatencyMs <= TEST_HEALTH.timeoutMs * 2)).toBe(true);
  });

  it('TLS: the CA, a client certificate and a server name as flags; a failed handshake is unreachable', async () => {
    const dir = tempDir(cleanup);
    generateTestCertificates(dir);
    const pem = (name: string) => join(dir, name);
    const r = await routed(1, 1, {
      tls: { cert: pem('server.crt'), key: pem('server.key'), clientCa: pem('ca.crt') },
    });
    const mtls = [
      '--tls-ca',
      pem('ca.crt'),
      '--tls-cert',
      pem('client.crt'),
      '--tls-key',
      pem('client.key'),
    ];
    const ok = await r.cli(['status', '--json', ...mtls]);
    expect(ok.stderr).toBe('');
    expect(ok.code).toBe(0);
    expect((JSON.parse(ok.stdout) as { nodes: { id: string }[] }).nodes.map((n) => n.id)).toEqual([
      'n1',
    ]);
    // The certificate names localhost too: checked against it instead of the address's host.
    expect((await r.cli(['table', ...mtls, '--tls-server-name', 'localhost'])).code).toBe(0);

    const cases: [string, string[]][] = [
      ['plaintext to a TLS listener', []],
      ['no client certificate', ['--tls-ca', pem('ca.crt')]],
      ['a name the certificate does not carry', [...mtls, '--tls-server-name', 'other.example']],
    ];
    for (const [what, flags] of cases) {
      const res = await r.cli(['status', ...flags]);
      expect([what, res.code]).toEqual([what, 3]);
      expect(res.stderr).toMatch(
        /^engram-router: router admin at 127\.0\.0\.1:\d+ unreachable: UNAVAILABLE: /,
      );
    }
  });
});

import { status } from '@grpc/grpc-js';
import { describe, expect, it } from 'vitest';
import {
  ADMIN_ENV,
  COMMAND_NAMES,
  DEFAULT_ADMIN,
  DEFAULT_ROUTER,
  DEFAULT_TIMEOUT_MS,
  EXIT,
  type Invocation,
  parseArgs,
  ROUTER_ENV,
  TOKEN_ENV,
} from '../src/internal/admin-cli/args.js';
import {
  dataJson,
  formatBytes,
  formatLatency,
  type LocateReply,
  renderData,
  renderStatus,
  renderTable,
  renderTableView,
  renderWhere,
  statusJson,
  type TableReply,
} from '../src/internal/admin-cli/render.js';
import { type AdminCaller, type Connection, runCli } from '../src/internal/admin-cli/run.js';
import { CONFIG_SCHEMA } from '../src/internal/config-schema.js';

type Run = Extract<Invocation, { kind: 'run' }>;
const run = (argv: string[], env: Record<string, string> = {}) => parseArgs(argv, env) as Run;
const usage = (argv: string[]) => {
  try {
    parseArgs(argv, {});
  } catch (err) {
    expect((err as { code?: string }).code).toBe('InvalidArgument');
    return (err as Error).message;
  }
  throw new Error(`parsed: ${argv.join(' ')}`);
};

describe('engram-router arguments', () => {
  it("defaults to the router's default admin listener, no token, plaintext, 30 s", () => {
    expect(DEFAULT_ADMIN).toBe(`127.0.0.1:${CONFIG_SCHEMA['admin.port'].default}`);
    const inv = run(['status']);
    expect(inv).toMatchObject({ command: 'status', args: [], json: false });
    expect(inv.connect).toEqual({
      admin: DEFAULT_ADMIN,
      token: null,
      tokenFile: null,
      tls: null,
      timeoutMs: DEFAULT_TIMEOUT_MS,
    });
  });

  it('takes flags before or after the command, as --f V or --f=V; env fills what flags leave out', () => {
    const env = { [ADMIN_ENV]: '10.0.0.1:7000', [TOKEN_ENV]: 'env-token' };
    expect(run(['status'], env).connect).toMatchObject({
      admin: '10.0.0.1:7000',
      token: 'env-token',
    });
    const inv = run(['--admin=127.0.0.1:9', 'where', 'a/b', '--json', '--token', 't1'], env);
    expect(inv).toMatchObject({ command: 'where', args: ['a/b'], json: true });
    expect(inv.connect).toMatchObject({ admin: '127.0.0.1:9', token: 't1' });
    // A token file replaces the env token; a bare port is on 127.0.0.1.
    expect(run(['hints', '--token-file', 'f', '--admin', '7001'], env).connect).toMatchObject({
      admin: '127.0.0.1:7001',
      token: null,
      tokenFile: 'f',
    });
  });

  it('parses every command with its own flags', () => {
    expect(run(['add', 'n4', '127.0.0.1:7004', '--zone', 'b'])).toMatchObject({
      args: ['n4', '127.0.0.1:7004'],
      zone: 'b',
    });
    expect(run(['remove', 'n4', '--force']).force).toBe(true);
    expect(run(['drain', 'n4']).force).toBe(false);
    expect(run(['assign', 's', 'n1', 'n2', 'n3']).args).toEqual(['s', 'n1', 'n2', 'n3']);
    expect(run(['repair', '--node', 'n2'])).toMatchObject({ args: [], node: 'n2' });
    expect(run(['repair', 's'])).toMatchObject({ args: ['s'], node: null });
    // `--` ends the flags: a space id may start with a dash.
    expect(run(['where', '--', '-odd']).args).toEqual(['-odd']);
    expect(run(['status', '--tls-ca', 'ca.pem']).connect.tls).toEqual({
      ca: 'ca.pem',
      cert: null,
      key: null,
      serverName: null,
    });
    expect(run(['status', '--tls']).connect.tls).not.toBeNull();
    expect(run(['status', '--timeout-ms', '250']).connect.timeoutMs).toBe(250);
  });

  it('store and recall talk to the data listener: --router, its env var, or its default', () => {
    expect(run(['store', 's', 'hello'])).toMatchObject({
      args: ['s', 'hello'],
      connect: { admin: DEFAULT_ROUTER },
    });
    expect(DEFAULT_ROUTER).toBe(`127.0.0.1:${CONFIG_SCHEMA['listen.port'].default}`);
    expect(run(['recall', 's'], { [ROUTER_ENV]: '127.0.0.1:9' }).connect.admin).toBe('127.0.0.1:9');
    // --admin and its env var do not move a data command, nor --router an admin one.
    expect(run(['recall', 's', '--admin', '127.0.0.1:8', '--router', '7']).connect.admin).toBe(
      '127.0.0.1:7',
    );
    expect(run(['status', '--router', '127.0.0.1:7']).connect.admin).toBe(DEFAULT_ADMIN);
    expect(run(['recall', 's', 'cue', '--limit', '3'])).toMatchObject({
      args: ['s', 'cue'],
      limit: 3,
    });
    expect(run(['recall', 's']).limit).toBe(10);
    expect(usage(['recall', 's', '--limit', 'many'])).toContain('--limit must be a whole number');
    expect(usage(['store', 's', 'c', '--limit', '3'])).toContain('store takes no --limit');
    expect(usage(['store', 's'])).toContain('usage: engram-router store SPACE CONTENT');
    expect(usage(['store', 's', 'c', '--router', 'nowhere'])).toContain('--router');
  });

  it('help: global and per command', () => {
    expect(parseArgs(['--help'])).toEqual({ kind: 'help', command: null });
    expect(parseArgs(['-h'])).toEqual({ kind: 'help', command: null });
    expect(parseArgs(['where', '--help'])).toEqual({ kind: 'help', command: 'where' });
    expect(parseArgs(['help', 'repair'])).toEqual({ kind: 'help', command: 'repair' });
    expect(COMMAND_NAMES).toEqual([
      'status',
      'where',
      'table',
      'add',
      'remove',
      'drain',
      'undrain',
      'assign',
      'unassign',
      'repair',
      'hints',
      'store',
      'recall',
    ]);
  });

  it('refuses bad usage with a message naming what is wrong', () => {
    expect(usage([])).toContain('a command is needed');
    expect(usage(['stauts'])).toContain('unknown command "stauts"');
    expect(usage(['status', '--bogus'])).toContain('unknown flag --bogus');
    expect(usage(['status', '-x'])).toContain('unknown flag -x');
    expect(usage(['where'])).toContain('usage: engram-router where SPACE');
    expect(usage(['where', 'a', 'b'])).toContain('usage: engram-router where SPACE');
    expect(usage(['add', 'n4'])).toContain('add ID ADDRESS');
    expect(usage(['where', ''])).toContain('empty');
    expect(usage(['status', '--force'])).toContain('status takes no --force');
    expect(usage(['add', 'n', 'h:1', '--node', 'x'])).toContain('add takes no --node');
    expect(usage(['repair'])).toContain('one of the two');
    expect(usage(['repair', 's', '--node', 'n'])).toContain('one of the two');
    expect(usage(['status', '--admin'])).toContain('--admin needs a value');
    expect(usage(['status', '--admin', 'nohost'])).toContain('--admin');
    expect(usage(['status', '--admin', 'h:99999'])).toContain('port');
    expect(usage(['status', '--token', 'a', '--token-file', 'f'])).toContain('give one of them');
    expect(usage(['status', '--tls-cert', 'c.pem'])).toContain('--tls-cert and --tls-key');
    expect(usage(['status', '--timeout-ms', '0'])).toContain('--timeout-ms');
    expect(usage(['status', '--timeout-ms', '1.5'])).toContain('--timeout-ms');
    expect(usage(['status', '--json=yes'])).toContain('takes no value');
    expect(usage(['status', '--json', '--admin', 'a:1', '--admin', 'b:2'])).toContain('twice');
    expect(usage(['help', 'nope'])).toContain('help takes one command name');
  });
});

const TABLE: TableReply = {
  epoch: 12,
  revision: 0,
  etcd: null,
  replicationFactor: 3,
  vnodesPerNode: 256,
  partitioned: false,
  localNodeId: '',
  nodes: [
    {
      id: 'n1',
      address: '127.0.0.1:7001',
      zone: 'a',
      state: 'up',
      breaker: 'closed',
      lifecycle: 'active',
      hintsPending: 0,
      hintBytesPending: 0,
      repairNeeded: false,
      healthLatencyMs: 0.8125,
    },
    {
      id: 'node-two',
      address: '127.0.0.1:7002',
      zone: '',
      state: 'down',
      breaker: 'open',
      lifecycle: 'leaving',
      hintsPending: 7,
      hintBytesPending: 3 * 1024 + 512,
      repairNeeded: true,
      healthLatencyMs: 0,
    },
  ],
  assignments: [],
  pendingAssignments: [],
  streams: [
    {
      kind: 'leave',
      subject: 'node-two',
      phase: 'streaming',
      spacesTotal: 10,
      spacesDone: 4,
      entriesCopied: 120,
      lastError: '',
    },
  ],
};

describe('engram-router output', () => {
  it('aligns table columns, two spaces apart, no trailing spaces', () => {
    expect(
      renderTable(
        ['A', 'LONG'],
        [
          ['xyz', '1'],
          ['q', ''],
        ],
      ),
    ).toBe('A    LONG\nxyz  1\nq');
  });

  it('formats bytes and probe latencies', () => {
    expect(formatBytes(0)).toBe('0 B');
    expect(formatBytes(1023)).toBe('1023 B');
    expect(formatBytes(3 * 1024 + 512)).toBe('3.5 KiB');
    expect(formatBytes(5 * 1024 * 1024)).toBe('5.0 MiB');
    expect(formatLatency(0)).toBe('-');
    expect(formatLatency(0.8125)).toBe('0.81 ms');
    expect(formatLatency(123.4)).toBe('123 ms');
  });

  it('status: the header fields, a row per node, the data movement', () => {
    const text = renderStatus(TABLE);
    expect(text).toContain('epoch               12');
    expect(text).toContain('nodes               2 (1 up)');
    const lines = text.split('\n');
    const header = lines.find((l) => l.startsWith('NODE'))!;
    const row = lines.find((l) => l.startsWith('node-two'))!;
    // Aligned: each value starts where its column's header does.
    expect(row.indexOf('leaving')).toBe(header.indexOf('LIFECYCLE'));
    expect(row.indexOf('3.5 KiB')).toBe(header.indexOf('HINT BYTES'));
    expect(row).toMatch(/down +leaving +open +- +7 +3\.5 KiB +yes$/);
    expect(text).toMatch(/leave +node-two +streaming +4\/10 +120 +-/);
    expect(Object.keys(statusJson(TABLE))).toEqual([
      'epoch',
      'replicationFactor',
      'partitioned',
      'nodes',
      'streams',
    ]);
  });

  it('status and table in etcd mode: the revision, etcd, this router and the live routers', () => {
    const shared: TableReply = {
      ...TABLE,
      revision: 41,
      etcd: {
        connected: false,
        lastError: '',
        routerId: 'r2',
        driving: true,
        routers: [
          { id: 'r1', listen: '127.0.0.1:1', admin: '127.0.0.1:11' },
          { id: 'r2', listen: '127.0.0.1:2', admin: '' },
        ],
      },
    };
    const text = renderStatus(shared);
    expect(text).toContain('revision            41');
    expect(text).toContain(
      'etcd                UNREACHABLE (routing on the last table; admin refused)',
    );
    expect(text).toContain('router              r2 (drives data movement)');
    expect(text).toContain('routers             2: r1 127.0.0.1:1, r2 127.0.0.1:2');
    expect(renderTableView(shared)).toContain('revision            41');
    const j = statusJson(shared);
    expect(j.revision).toBe(41);
    expect(j.etcd?.routers[1]).toEqual({ id: 'r2', listen: '127.0.0.1:2', admin: null });
    expect(j.etcd?.lastError).toBeNull();
    // Without etcd: none of it.
    expect(renderStatus(TABLE)).not.toContain('revision');
    expect('etcd' in statusJson(TABLE)).toBe(false);
  });

  it('status and table: an ejected node says so beside its health, and in the JSON', () => {
    const ejected: TableReply = {
      ...TABLE,
      nodes: [{ ...TABLE.nodes[0]!, ejected: true }, TABLE.nodes[1]!],
    };
    const row = (text: string) => text.split('\n').find((l) => l.startsWith('n1 '))!;
    expect(row(renderStatus(ejected))).toMatch(/ up \(ejected\) +active /);
    expect(row(renderTableView(ejected))).toMatch(/ up \(ejected\) +active /);
    expect(row(renderStatus(TABLE))).toMatch(/ up +active /);
    expect(statusJson(ejected).nodes.map((n) => n.ejected)).toEqual([true, false]);
  });

  it('where: roles, what each holds, and why a node could not be asked', () => {
    const loc: LocateReply = {
      spaceId: 'team/notes',
      token: 0xcdf470d8,
      epoch: 4,
      placement: 'ring',
      pendingAssignment: null,
      nodes: [
        {
          id: 'n2',
          address: '127.0.0.1:7002',
          zone: 'b',
          role: 'primary',
          outgoing: false,
          state: 'down',
          breaker: 'closed',
          lifecycle: 'active',
          reachable: false,
          error: 'connection refused',
          holdsData: false,
          memories: 0,
          tombstones: 0,
          digest: '',
        },
        {
          id: 'n1',
          address: '127.0.0.1:7001',
          zone: 'a',
          role: 'replica',
          outgoing: false,
          state: 'up',
          breaker: 'closed',
          lifecycle: 'active',
          reachable: true,
          error: '',
          holdsData: true,
          memories: 3,
          tombstones: 0,
          digest: '41c79afae95d9eee',
        },
      ],
    };
    const text = renderWhere(loc);
    expect(text).toContain('token      3455348952 (0xcdf470d8)');
    expect(text).toContain('placement  ring');
    expect(text).toMatch(
      /primary +n2 +127\.0\.0\.1:7002 +b +down +active +closed +unreachable +\? +\? +\?/,
    );
    expect(text).toMatch(/replica +n1 .* yes +3 +0 +41c79afae95d9eee/);
    expect(text).toContain('n2: connection refused');
    const pinned = renderWhere({
      ...loc,
      placement: 'pinned',
      pendingAssignment: { spaceId: 'team/notes', primary: '', replicas: [] },
    });
    expect(pinned).toContain('placement  pinned (assigned)');
    expect(pinned).toContain('pending: the pin is being removed');
  });
});

/** A fake connection: answers (or fails) as told, records what was asked. */
function fakeIo(
  answer: (method: string, request: Record<string, unknown>) => Promise<unknown>,
  files: Record<string, string> = {},
) {
  const out: string[] = [];
  const err: string[] = [];
  const calls: [string, Record<string, unknown>][] = [];
  const connections: Connection[] = [];
  let closed = 0;
  const io = {
    stdout: (t: string) => out.push(t),
    stderr: (t: string) => err.push(t),
    env: {},
    readFile: (path: string) => {
      const text = files[path];
      if (text === undefined) throw Object.assign(new Error(`ENOENT ${path}`), { code: 'ENOENT' });
      return Buffer.from(text);
    },
    connect: (c: Connection): AdminCaller => {
      connections.push(c);
      return {
        call: (method, request) => {
          calls.push([method, request]);
          return answer(method, request);
        },
        close: () => {
          closed++;
        },
      };
    },
  };
  return { io, out, err, calls, connections, closed: () => closed };
}

const grpcError = (code: number, details: string) =>
  Object.assign(new Error(details), { code, details });

describe('store and recall output', () => {
  const routing = {
    servedBy: 'n2',
    attempts: 2,
    fallback: true,
    strategy: 'PrimaryWithFallback',
    tableEpoch: 9,
    acknowledged: 0,
    asked: 0,
    degraded: true,
  };
  it('recall: a row per memory, then how it was routed', () => {
    const reply = {
      memories: [{ memory: { id: 'm1', content: 'hello', version: 7 }, score: 0.5 }],
      routing,
    };
    expect(renderData(reply)).toBe(
      '1 memory\nID  CONTENT\nm1  hello\nrouting: served by n2 (PrimaryWithFallback, 2 attempts, fallback, DEGRADED) at table epoch 9\n',
    );
    expect(dataJson(reply)).toEqual({
      memories: [{ id: 'm1', content: 'hello', version: 7, score: 0.5 }],
      routing,
    });
  });
  it('store: the memory id and the acknowledgements; no routing info said so', () => {
    const store = {
      memoryId: 'm2',
      routing: {
        ...routing,
        strategy: 'Replicated',
        attempts: 1,
        fallback: false,
        degraded: false,
        acknowledged: 2,
        asked: 3,
      },
    };
    expect(renderData(store)).toBe(
      'stored memory m2\nrouting: served by n2 (Replicated, 1 attempt, acknowledged by 2 of 3) at table epoch 9\n',
    );
    expect(renderData({ memoryId: 'm3', routing: null })).toBe(
      'stored memory m3\nrouting: none in the reply (not a router?)\n',
    );
    expect(dataJson({ memoryId: 'm3' })).toEqual({ memoryId: 'm3', routing: null });
  });
});

describe('runCli (exit codes, requests; fake connection)', () => {
  it('sends the request of each command', async () => {
    const f = fakeIo(async () => ({
      epoch: 5,
      spaces: 1,
      differed: 0,
      applied: 0,
      unreachable: [],
    }));
    const cases: [string[], string, Record<string, unknown>][] = [
      [['add', 'n4', 'h:1', '--zone', 'z'], 'AddNode', { id: 'n4', address: 'h:1', zone: 'z' }],
      [['remove', 'n4', '--force'], 'RemoveNode', { id: 'n4', force: true }],
      [['drain', 'n4'], 'DrainNode', { id: 'n4', force: false }],
      [['undrain', 'n4'], 'DrainNode', { id: 'n4', undrain: true }],
      [
        ['assign', 's', 'n1', 'n2'],
        'AssignSpace',
        { spaceId: 's', primary: 'n1', replicas: ['n2'] },
      ],
      [['unassign', 's'], 'AssignSpace', { spaceId: 's', clear: true }],
      [['repair', 's'], 'RepairSpace', { spaceId: 's' }],
      [['repair', '--node', 'n1'], 'RepairNode', { id: 'n1' }],
      [['store', 's', 'hi'], 'Store', { spaceId: 's', memory: { content: 'hi' } }],
      [['recall', 's'], 'Recall', { spaceId: 's', cue: { text: '' }, limit: 10 }],
      [
        ['recall', 's', 'hi', '--limit', '2'],
        'Recall',
        { spaceId: 's', cue: { text: 'hi' }, limit: 2 },
      ],
    ];
    for (const [argv, method, request] of cases) {
      expect(await runCli(argv, f.io)).toBe(EXIT.Ok);
      expect(f.calls.at(-1)).toEqual([method, request]);
    }
    expect(f.closed()).toBe(cases.length);
    expect(f.out[0]).toBe(
      'added node n4 at h:1; it joins, its spaces stream to it (table epoch 5)\n',
    );
    expect(await runCli(['--json', 'drain', 'n1'], f.io)).toBe(EXIT.Ok);
    expect(JSON.parse(f.out.at(-1)!)).toEqual({ epoch: 5 });
  });

  it('exit 1 with the gRPC status name and message when the router refuses', async () => {
    const f = fakeIo(async () => {
      throw grpcError(
        status.FAILED_PRECONDITION,
        'draining it would leave 2 placed nodes\nsecond line',
      );
    });
    expect(await runCli(['drain', 'n1'], f.io)).toBe(EXIT.Refused);
    expect(f.err).toEqual([
      'engram-router: DrainNode failed: FAILED_PRECONDITION: draining it would leave 2 placed nodes\n',
    ]);
    expect(f.out).toEqual([]);
  });

  it('exit 3 when the router is unreachable or does not answer in time', async () => {
    for (const code of [status.UNAVAILABLE, status.DEADLINE_EXCEEDED]) {
      const f = fakeIo(async () => {
        throw grpcError(code, 'No connection established. Resolution note: ');
      });
      expect(await runCli(['status', '--admin', '127.0.0.1:9'], f.io)).toBe(EXIT.Unreachable);
      expect(f.err[0]).toBe(
        `engram-router: router admin at 127.0.0.1:9 unreachable: ${status[code]}: No connection established.\n`,
      );
    }
  });

  it('an error without a gRPC status (a bug, say) is one line, exit 1, no stack', async () => {
    const f = fakeIo(async () => {
      throw new TypeError('boom\n    at somewhere (x.js:1:1)');
    });
    expect(await runCli(['table'], f.io)).toBe(EXIT.Refused);
    expect(f.err).toEqual(['engram-router: boom\n']);
  });

  it('reads the token and TLS files; an unreadable or empty one is a usage error before connecting', async () => {
    const f = fakeIo(async () => ({ nodes: [] }), {
      tok: '  s3cret\n',
      empty: ' \n',
      ca: 'CA',
      crt: 'CRT',
      key: 'KEY',
    });
    expect(
      await runCli(
        [
          'hints',
          '--token-file',
          'tok',
          '--tls-ca',
          'ca',
          '--tls-cert',
          'crt',
          '--tls-key',
          'key',
          '--tls-server-name',
          'r1',
        ],
        f.io,
      ),
    ).toBe(EXIT.Ok);
    const c = f.connections[0]!;
    expect(c.token).toBe('s3cret');
    expect(c.tls?.ca?.toString()).toBe('CA');
    expect(c.tls?.cert?.toString()).toBe('CRT');
    expect(c.tls?.key?.toString()).toBe('KEY');
    expect(c.tls?.serverName).toBe('r1');
    expect(await runCli(['hints', '--token-file', 'missing'], f.io)).toBe(EXIT.Usage);
    expect(f.err.at(-1)).toContain('--token-file missing: cannot read (ENOENT)');
    expect(await runCli(['hints', '--token-file', 'empty'], f.io)).toBe(EXIT.Usage);
    expect(await runCli(['hints', '--tls-ca', 'missing'], f.io)).toBe(EXIT.Usage);
    expect(f.connections).toHaveLength(1);
  });

  it('help goes to stdout, exit 0; a usage error is one line on stderr, exit 2', async () => {
    const f = fakeIo(async () => ({}));
    expect(await runCli(['--help'], f.io)).toBe(EXIT.Ok);
    expect(f.out[0]).toContain('usage: engram-router');
    expect(f.out[0]).toContain('exit codes:');
    expect(await runCli(['add', '--help'], f.io)).toBe(EXIT.Ok);
    expect(f.out[1]).toContain('--zone ZONE');
    expect(await runCli(['nope'], f.io)).toBe(EXIT.Usage);
    expect(f.err).toEqual([
      'engram-router: unknown command "nope" (engram-router --help for usage)\n',
    ]);
    expect(f.connections).toEqual([]);
  });
});

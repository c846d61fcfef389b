import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import {
  type AdminState,
  AdminStateStore,
  decodeState,
  differences,
  encodeState,
  fsStateIO,
  restoreMembership,
  STATE_FILE,
  StateFileError,
  type StateIO,
  startingMembership,
  stateOf,
} from '../src/internal/admin-state.js';
import type { AssignmentConfig, NodeConfig } from '../src/internal/config.js';
import { ConfigError } from '../src/internal/errors.js';
import { Lifecycle, Membership } from '../src/internal/membership.js';

const LIMITS = { maxNodes: 8, maxSlots: 12 };
const FILE = '/data/router-state.json';

function node(id: string, port: number, zone = ''): NodeConfig {
  return { id, address: `127.0.0.1:${port}`, zone };
}

const FOUR = [node('a', 1, 'z1'), node('b', 2, 'z2'), node('c', 3, 'z1'), node('d', 4, 'z2')];
const SEED = { nodes: FOUR.slice(0, 3), assignments: [] as AssignmentConfig[] };

/** Files in memory; `broken` makes reads fail as an unreadable file would. */
class FakeIO implements StateIO {
  readonly files = new Map<string, string>();
  writes = 0;
  broken = false;
  read(file: string): string | null {
    if (this.broken) throw new Error('EACCES: permission denied');
    return this.files.get(file) ?? null;
  }
  write(file: string, text: string): void {
    this.writes++;
    this.files.set(file, text);
  }
}

function roundTrip(m: Membership, moveData: boolean): Membership {
  const text = encodeState(stateOf(m, SEED));
  return restoreMembership(decodeState(text, FILE), null, LIMITS, moveData, FILE);
}

function lifecycles(m: Membership): Record<string, string> {
  return Object.fromEntries([...m.members].map((x) => [x.node.id, x.lifecycle]));
}

function errorOf(fn: () => unknown): Error {
  try {
    fn();
  } catch (err) {
    return err as Error;
  }
  throw new Error('expected an error');
}

describe('the admin state', () => {
  it('restores what AddNode, DrainNode, RemoveNode and AssignSpace left (no data movement)', () => {
    let m = Membership.create(FOUR.slice(0, 3), [], null, LIMITS, false);
    m = m.add(FOUR[3]!).next;
    m = m.drain('b').next;
    m = m.remove('c').next;
    m = m.assign({ spaceId: 's1', primary: 'd', replicas: ['a'] }).next;
    const back = roundTrip(m, false);
    expect(back.nodes).toEqual([FOUR[0], FOUR[1], FOUR[3]]);
    expect(lifecycles(back)).toEqual({ a: 'active', b: 'draining', d: 'active' });
    expect(back.assignments).toEqual([{ spaceId: 's1', primary: 'd', replicas: ['a'] }]);
    // Health is not kept: every node starts unknown, as at any start.
    expect([...back.members].every((x) => x.health === 'unknown')).toBe(true);
    expect(stateOf(back, SEED)).toEqual(stateOf(m, SEED));
  });

  it('restores transitions in progress and drained nodes (data movement)', () => {
    let m = Membership.create(FOUR.slice(0, 3), [], null, LIMITS, true);
    m = m.add(FOUR[3]!).next; // joining
    m = m.drain('b').next; // leaving, to drained
    m = m.assign({ spaceId: 's1', primary: 'a', replicas: ['c'] }).next; // a move
    let done = Membership.create(FOUR.slice(0, 3), [], null, LIMITS, true);
    done = done.drain('c').next.completeLeave('c').next; // drained
    done = done.remove('b').next; // leaving, to removed
    const back = roundTrip(m, true);
    expect(lifecycles(back)).toEqual({
      a: 'active',
      b: 'leaving',
      c: 'active',
      d: 'joining',
    });
    expect(back.get('b')?.leaveTo).toBe('drained');
    expect(back.moves).toEqual([
      { spaceId: 's1', to: { spaceId: 's1', primary: 'a', replicas: ['c'] } },
    ]);
    expect(stateOf(back, SEED)).toEqual(stateOf(m, SEED));
    const back2 = roundTrip(done, true);
    expect(lifecycles(back2)).toEqual({ a: 'active', b: 'leaving', c: 'drained' });
    expect(back2.get('b')?.leaveTo).toBe('removed');
    expect(stateOf(back2, SEED)).toEqual(stateOf(done, SEED));
  });

  it('a drain kept without data movement drains for real when data movement is on now', () => {
    const m = Membership.create(FOUR.slice(0, 3), [], null, LIMITS, false).drain('b').next;
    const back = roundTrip(m, true);
    expect(back.get('b')?.lifecycle).toBe(Lifecycle.Leaving);
    expect(back.get('b')?.leaveTo).toBe('drained');
  });

  it('keeps, in etcd mode, the revision, prefix and ring settings it is a copy of, and tokens', () => {
    const m = Membership.create([node('a', 1)], [], null, LIMITS).add(node('b', 2), [5, 9]).next;
    const etcd = {
      revision: 42,
      prefix: '/engram/router/',
      settings: { replicationFactor: 3, vnodesPerNode: 8192, tokensPerNode: 64, maxNodes: 64 },
    };
    const back = decodeState(encodeState(stateOf(m, SEED, etcd)), FILE);
    expect(back).toMatchObject(etcd);
    expect(back.nodes.find((n) => n.id === 'b')?.tokens).toEqual([5, 9]);
    const plain = decodeState(encodeState(stateOf(m, SEED)), FILE);
    expect([plain.revision, plain.prefix, plain.settings]).toEqual([
      undefined,
      undefined,
      undefined,
    ]);
    const bad = JSON.parse(encodeState(stateOf(m, SEED, etcd)));
    bad.settings.maxNodes = 'many';
    expect(() => decodeState(JSON.stringify(bad), FILE)).toThrow(/"settings" must be/);
  });

  it('refuses a corrupt file with a StateFileError naming it (a ConfigError: exit 2)', () => {
    const cases: [string, RegExp][] = [
      ['{"version":1,', /is not valid JSON/],
      ['[]', /must hold a JSON object/],
      [JSON.stringify({ version: 2 }), /has version 2; this router reads version 1/],
      [
        JSON.stringify({ ...stateOf(Membership.create(FOUR, [], null, LIMITS), SEED), nodes: [] }),
        /at least one node/,
      ],
      [
        JSON.stringify({
          ...stateOf(Membership.create(FOUR, [], null, LIMITS), SEED),
          assignments: [{ spaceId: 's', primary: 'zz', replicas: [] }],
        }),
        /is corrupt: .*assignments\[0\]/,
      ],
      [
        JSON.stringify({
          ...stateOf(Membership.create(FOUR, [], null, LIMITS), SEED),
          nodes: [{ ...FOUR[0], lifecycle: 'sleeping' }],
        }),
        /nodes\[0\]\.lifecycle/,
      ],
    ];
    for (const [text, message] of cases) {
      const err = errorOf(() => decodeState(text, FILE));
      expect(err).toBeInstanceOf(StateFileError);
      expect(err).toBeInstanceOf(ConfigError);
      expect(err.message).toContain(FILE);
      expect(err.message).toMatch(message);
    }
  });

  it('refuses a state that names an impossible membership, naming the file', () => {
    const state = stateOf(Membership.create(FOUR.slice(0, 2), [], null, LIMITS), SEED);
    const twins = {
      ...state,
      nodes: [state.nodes[0]!, { ...state.nodes[1]!, address: FOUR[0]!.address }],
    };
    const err = errorOf(() => restoreMembership(twins, null, LIMITS, false, FILE));
    expect(err).toBeInstanceOf(StateFileError);
    expect(err.message).toMatch(/cannot be restored: .*one node per address/);
    const local = errorOf(() => restoreMembership(state, 'zz', LIMITS, false, FILE));
    expect(local.message).toMatch(/cannot be restored: config localNodeId = "zz": is not a member/);
  });
});

describe('startingMembership (which source wins at start)', () => {
  const base = () => {
    let m = Membership.create(SEED.nodes, [], null, LIMITS, false);
    m = m.add(FOUR[3]!).next.drain('b').next;
    m = m.assign({ spaceId: 's1', primary: 'd', replicas: [] }).next;
    return decodeState(encodeState(stateOf(m, SEED)), FILE);
  };

  it('the state file, while the config file lists what the state was seeded with', () => {
    const s = startingMembership(base(), { ...SEED, localNodeId: null }, LIMITS, false, FILE);
    expect(s.source).toBe('state');
    expect(s.membership.nodes.map((n) => n.id)).toEqual(['a', 'b', 'c', 'd']);
    expect(s.membership.get('b')?.lifecycle).toBe('draining');
    expect(s.membership.assignments).toHaveLength(1);
  });

  it('a node list changed in the file since wins; drains of kept nodes and pins stay', () => {
    const nodes = [FOUR[0]!, FOUR[1]!, FOUR[3]!]; // c dropped (d kept: the pin uses it)
    const s = startingMembership(
      base(),
      { nodes, assignments: [], localNodeId: null },
      LIMITS,
      false,
      FILE,
    );
    expect(s.source).toBe('state+config');
    expect(s.fileWins).toEqual(['nodes']);
    expect(s.membership.nodes.map((n) => n.id)).toEqual(['a', 'b', 'd']);
    expect(s.membership.get('b')?.lifecycle).toBe('draining');
    expect(s.membership.assignments).toEqual([{ spaceId: 's1', primary: 'd', replicas: [] }]);
  });

  it('a pin list changed in the file since replaces the pins', () => {
    const assignments = [{ spaceId: 's2', primary: 'a', replicas: ['c'] }];
    const s = startingMembership(
      base(),
      { nodes: SEED.nodes, assignments, localNodeId: null },
      LIMITS,
      false,
      FILE,
    );
    expect(s.fileWins).toEqual(['assignments']);
    expect(s.membership.assignments).toEqual(assignments);
    expect(s.membership.nodes.map((n) => n.id)).toEqual(['a', 'b', 'c', 'd']);
  });

  it('a changed file that cannot apply over the state is a ConfigError naming the file', () => {
    // The file drops d, which a pin of the state uses (and the file keeps no pin list change).
    const err = errorOf(() =>
      startingMembership(
        base(),
        { nodes: [FOUR[0]!, FOUR[1]!], assignments: [], localNodeId: null },
        LIMITS,
        false,
        FILE,
      ),
    );
    expect(err).toBeInstanceOf(ConfigError);
    expect(err.message).toMatch(
      /config nodes = .*changed since \/data\/router-state.json was written, but cannot apply over it: .*pinned by space s1/,
    );
  });

  it('lists how the state differs from the file', () => {
    const d = differences(base(), SEED.nodes, []);
    expect(d).toEqual({
      notInFile: ['d'],
      onlyInFile: [],
      changed: [],
      notActive: ['b'],
      pinsDiffer: true,
    });
  });
});

describe('AdminStateStore', () => {
  const m = Membership.create(SEED.nodes, [], null, LIMITS);

  it('keeps nothing without a data directory', () => {
    const io = new FakeIO();
    const store = new AdminStateStore(null, io);
    expect(store.file).toBeNull();
    expect(store.load()).toBeNull();
    expect(store.save(m, SEED)).toBe(false);
    expect(io.writes).toBe(0);
  });

  it('loads null before the first save, then what was saved; rewrites only on change', () => {
    const io = new FakeIO();
    const store = new AdminStateStore('/data', io);
    expect(store.file).toBe(join('/data', STATE_FILE));
    expect(store.load()).toBeNull();
    expect(store.save(m, SEED)).toBe(true);
    expect(store.save(m.setHealth('a', 'up'), SEED)).toBe(false); // health is not state
    expect(io.writes).toBe(1);
    expect(store.save(m.drain('a').next, SEED)).toBe(true);
    const again = new AdminStateStore('/data', io).load() as AdminState;
    expect(again.nodes.find((n) => n.id === 'a')?.lifecycle).toBe('draining');
    expect(again.seed).toEqual(SEED);
  });

  it('an unreadable file is a StateFileError naming it', () => {
    const io = new FakeIO();
    io.broken = true;
    const err = errorOf(() => new AdminStateStore('/data', io).load());
    expect(err).toBeInstanceOf(StateFileError);
    expect(err.message).toContain(join('/data', STATE_FILE));
    expect(err.message).toMatch(/cannot be read: EACCES/);
  });
});

describe('fsStateIO', () => {
  let dir = '';
  afterEach(() => {
    if (dir !== '') rmSync(dir, { recursive: true, force: true });
  });

  it('writes the whole file by rename (no temp file left), reads it back, null when absent', () => {
    dir = mkdtempSync(join(tmpdir(), 'engram-state-'));
    const file = join(dir, 'sub', STATE_FILE);
    expect(fsStateIO.read(file)).toBeNull();
    fsStateIO.write(file, 'one');
    fsStateIO.write(file, 'two');
    expect(readFileSync(file, 'utf8')).toBe('two');
    expect(fsStateIO.read(file)).toBe('two');
    expect(readdirSync(join(dir, 'sub'))).toEqual([STATE_FILE]);
    expect(existsSync(`${file}.tmp`)).toBe(false);
  });
});

import {
  closeSync,
  fsyncSync,
  mkdirSync,
  openSync,
  readFileSync,
  renameSync,
  writeSync,
} from 'node:fs';
import { dirname, join } from 'node:path';
import {
  type AssignmentConfig,
  type NodeConfig,
  validateAssignment,
  validateNode,
} from './config.js';
import { type PlacementSeed, planPlacement } from './control-plane.js';
import { ConfigError } from './errors.js';
import { Lifecycle, Membership, type MembershipLimits, type SpaceMove } from './membership.js';
import { sameValue } from './reload.js';

// The membership an operator built with RouterAdmin (AddNode, RemoveNode, DrainNode,
// AssignSpace), kept in `<dataDir>/router-state.json` so a restart does not undo it. The
// format and the membership it restores are pure; the file I/O is `StateIO`, at the edge.

export const STATE_FILE = 'router-state.json';
export const STATE_VERSION = 1;

/** A member as persisted: the node and what the operator asked of it (health is not kept). */
export interface StateNode extends NodeConfig {
  readonly lifecycle: Lifecycle;
  /** A leaving node: removed, or drained, once its data is streamed. */
  readonly leaveTo?: 'removed' | 'drained';
  /** Its allocated ring tokens (etcd mode with `etcd.tokensPerNode`). */
  readonly tokens?: readonly number[];
}

/** The content of the state file. */
export interface AdminState {
  readonly version: typeof STATE_VERSION;
  readonly nodes: readonly StateNode[];
  readonly assignments: readonly AssignmentConfig[];
  /** Pins being moved (their data streams before they apply); to null = back to the ring. */
  readonly moves: readonly SpaceMove[];
  /**
   * The config file's `nodes` and `assignments` when this state was written: a file changed
   * since (edited while the router was down) wins at start, as it would on SIGHUP.
   */
  readonly seed: PlacementSeed;
  /**
   * etcd mode: the placement revision this is a copy of (a router started while etcd is
   * unreachable routes on it until etcd answers).
   */
  readonly revision?: number;
  /** etcd mode: the prefix it is a copy of (a router pointed at another cluster ignores it). */
  readonly prefix?: string;
  /** etcd mode: the ring settings of that placement (etcd's, which every router shares). */
  readonly settings?: {
    readonly replicationFactor: number;
    readonly vnodesPerNode: number;
    readonly tokensPerNode: number;
    readonly maxNodes: number;
  };
}

/** The state file is unreadable, corrupt, or names a membership that cannot be. Exit 2 at start. */
export class StateFileError extends ConfigError {
  readonly file: string;
  constructor(file: string, reason: string, options?: ErrorOptions) {
    super('dataDir', dirname(file), `state file ${file} ${reason}`, options);
    this.name = 'StateFileError';
    this.file = file;
  }
}

/** The state of a membership, as written. */
export function stateOf(m: Membership, seed: PlacementSeed, etcd?: EtcdCopy): AdminState {
  return {
    version: STATE_VERSION,
    nodes: [...m.members].map((x) => ({
      id: x.node.id,
      address: x.node.address,
      zone: x.node.zone,
      lifecycle: x.lifecycle,
      ...(x.lifecycle === Lifecycle.Leaving && x.leaveTo !== undefined
        ? { leaveTo: x.leaveTo }
        : {}),
      ...(x.tokens !== undefined ? { tokens: [...x.tokens] } : {}),
    })),
    assignments: m.assignments.map(copyPin),
    moves: m.moves.map((x) => ({ spaceId: x.spaceId, to: x.to === null ? null : copyPin(x.to) })),
    seed: {
      nodes: seed.nodes.map((n) => ({ id: n.id, address: n.address, zone: n.zone })),
      assignments: seed.assignments.map(copyPin),
    },
    ...(etcd !== undefined
      ? { revision: etcd.revision, prefix: etcd.prefix, settings: { ...etcd.settings } }
      : {}),
  };
}

/** etcd mode: what the state file, a copy of etcd's placement, says of it. */
export interface EtcdCopy {
  readonly revision: number;
  readonly prefix: string;
  readonly settings: NonNullable<AdminState['settings']>;
}

function copyPin(a: AssignmentConfig): AssignmentConfig {
  return { spaceId: a.spaceId, primary: a.primary, replicas: [...a.replicas] };
}

export function encodeState(state: AdminState): string {
  return `${JSON.stringify(state, null, 2)}\n`;
}

const LIFECYCLES: ReadonlySet<string> = new Set(Object.values(Lifecycle));

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/**
 * Allocated ring tokens as kept (state file, etcd): integers in [0, 2^32). The ring checks the
 * rest (no token twice, at most its cap) when the table is built. Throws a ConfigError.
 */
export function checkTokens(v: unknown, field: string): number[] {
  if (!Array.isArray(v) || v.length === 0) {
    throw new ConfigError(field, v, 'must be a non-empty list of ring tokens');
  }
  v.forEach((t, i) => {
    if (!Number.isInteger(t) || (t as number) < 0 || (t as number) > 0xffffffff) {
      throw new ConfigError(`${field}[${i}]`, t, 'must be an integer from 0 to 4294967295');
    }
  });
  return v as number[];
}

/** Parses and checks the state file's text; throws a StateFileError naming `file`. */
export function decodeState(text: string, file: string): AdminState {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (err) {
    throw new StateFileError(file, `is not valid JSON (${(err as Error).message})`);
  }
  if (!isRecord(raw)) throw new StateFileError(file, 'must hold a JSON object');
  if (raw.version !== STATE_VERSION) {
    throw new StateFileError(
      file,
      `has version ${JSON.stringify(raw.version)}; this router reads version ${STATE_VERSION}`,
    );
  }
  const { nodes, assignments, moves, seed, revision, settings, prefix } = raw;
  if (prefix !== undefined && typeof prefix !== 'string') {
    throw new StateFileError(file, `has prefix ${JSON.stringify(prefix)}: not a key prefix`);
  }
  const SETTINGS = ['replicationFactor', 'vnodesPerNode', 'tokensPerNode', 'maxNodes'] as const;
  if (
    settings !== undefined &&
    !(isRecord(settings) && SETTINGS.every((k) => Number.isSafeInteger(settings[k])))
  ) {
    throw new StateFileError(file, `"settings" must be { ${SETTINGS.join(', ')} }`);
  }
  if (revision !== undefined && (!Number.isSafeInteger(revision) || (revision as number) < 0)) {
    throw new StateFileError(file, `has revision ${JSON.stringify(revision)}: not a revision`);
  }
  if (!Array.isArray(nodes) || nodes.length === 0) {
    throw new StateFileError(file, 'must list at least one node in "nodes"');
  }
  if (!Array.isArray(assignments)) throw new StateFileError(file, '"assignments" must be a list');
  if (!Array.isArray(moves)) throw new StateFileError(file, '"moves" must be a list');
  if (!isRecord(seed) || !Array.isArray(seed.nodes) || !Array.isArray(seed.assignments)) {
    throw new StateFileError(file, '"seed" must be { nodes: [...], assignments: [...] }');
  }
  const seedNodes = seed.nodes as unknown[];
  const seedPins = seed.assignments as unknown[];
  try {
    const outNodes = nodes.map((n: unknown, i) => {
      if (!isRecord(n)) throw new ConfigError(`nodes[${i}]`, n, 'must be an object');
      const { lifecycle, leaveTo, tokens, ...node } = n;
      if (typeof lifecycle !== 'string' || !LIFECYCLES.has(lifecycle)) {
        throw new ConfigError(`nodes[${i}].lifecycle`, lifecycle, 'is not a lifecycle');
      }
      if (leaveTo !== undefined && leaveTo !== 'removed' && leaveTo !== 'drained') {
        throw new ConfigError(`nodes[${i}].leaveTo`, leaveTo, 'must be removed or drained');
      }
      return {
        ...validateNode(node, `nodes[${i}]`),
        lifecycle: lifecycle as Lifecycle,
        ...(leaveTo !== undefined ? { leaveTo } : {}),
        ...(tokens !== undefined ? { tokens: checkTokens(tokens, `nodes[${i}].tokens`) } : {}),
      } satisfies StateNode;
    });
    const ids = new Set(outNodes.map((n) => n.id));
    const outPins = assignments.map((a: unknown, i) =>
      validateAssignment(a, `assignments[${i}]`, ids),
    );
    const outMoves = moves.map((x: unknown, i): SpaceMove => {
      if (!isRecord(x) || typeof x.spaceId !== 'string') {
        throw new ConfigError(`moves[${i}]`, x, 'must be { spaceId, to }');
      }
      return {
        spaceId: x.spaceId,
        to: x.to === null ? null : validateAssignment(x.to, `moves[${i}].to`, ids),
      };
    });
    const outSeedNodes = seedNodes.map((n, i) => validateNode(n, `seed.nodes[${i}]`));
    const seedIds = new Set(outSeedNodes.map((n) => n.id));
    const outSeedPins = seedPins.map((a, i) =>
      validateAssignment(a, `seed.assignments[${i}]`, seedIds),
    );
    return {
      version: STATE_VERSION,
      nodes: outNodes,
      assignments: outPins,
      moves: outMoves,
      seed: { nodes: outSeedNodes, assignments: outSeedPins },
      ...(revision !== undefined ? { revision: revision as number } : {}),
      ...(prefix !== undefined ? { prefix } : {}),
      ...(settings !== undefined
        ? {
            settings: {
              replicationFactor: settings.replicationFactor as number,
              vnodesPerNode: settings.vnodesPerNode as number,
              tokensPerNode: settings.tokensPerNode as number,
              maxNodes: settings.maxNodes as number,
            },
          }
        : {}),
    };
  } catch (err) {
    throw new StateFileError(file, `is corrupt: ${(err as Error).message}`, { cause: err });
  }
}

/**
 * The membership a state describes, as the control plane had it (health aside: every node
 * starts unknown until probed). Pins and moves first (their targets were active when set),
 * then lifecycles; a transition still streaming resumes from the transitions file.
 */
export function restoreMembership(
  state: AdminState,
  localNodeId: string | null,
  limits: MembershipLimits,
  moveData: boolean,
  file: string,
): Membership {
  try {
    if (localNodeId !== null && !state.nodes.some((n) => n.id === localNodeId)) {
      throw new ConfigError('localNodeId', localNodeId, 'is not a member of the persisted nodes');
    }
    const nodes = state.nodes.map((n) => ({ id: n.id, address: n.address, zone: n.zone }));
    let m = Membership.create(nodes, state.assignments, localNodeId, limits, moveData);
    for (const move of state.moves) {
      m = (move.to === null ? m.unassign(move.spaceId) : m.assign(move.to)).next;
    }
    for (const n of state.nodes) m = withLifecycle(m, n, moveData);
    return m;
  } catch (err) {
    throw new StateFileError(file, `cannot be restored: ${(err as Error).message}`, {
      cause: err,
    });
  }
}

/** `m` with the active member `n.id` put into `n.lifecycle` by the commands that lead there. */
function withLifecycle(m: Membership, n: StateNode, moveData: boolean): Membership {
  switch (n.lifecycle) {
    case Lifecycle.Active:
      return m;
    case Lifecycle.Joining:
      return m.rejoin(n.id).next;
    case Lifecycle.Draining:
      // A drain asked without data movement; with data movement on now, it drains for real.
      return m.drain(n.id).next;
    case Lifecycle.Drained: {
      const leaving = m.drain(n.id).next;
      return moveData ? leaving.completeLeave(n.id).next : leaving;
    }
    case Lifecycle.Leaving:
      return (n.leaveTo === 'drained' ? m.drain(n.id) : m.remove(n.id)).next;
  }
}

/** The membership a router starts with, and where it came from (for the start log). */
export interface Start {
  readonly membership: Membership;
  /**
   * config: no state file (the config's nodes and assignments); state: the state file;
   * state+config: the state file, then the config's `nodes` and/or `assignments`, changed
   * since the state was written, applied over it (they win, as on SIGHUP).
   */
  readonly source: 'state' | 'state+config';
  /** Keys of the config file applied over the state (changed since it was written). */
  readonly fileWins: readonly ('nodes' | 'assignments')[];
}

/**
 * The membership of a router starting with a state file: the persisted one, then the config
 * file's `nodes` / `assignments` where they changed since the state was written (an operator
 * edited the file while the router was down: that wins, as a SIGHUP would).
 */
export function startingMembership(
  state: AdminState,
  cfg: {
    readonly nodes: readonly NodeConfig[];
    readonly assignments: readonly AssignmentConfig[];
    readonly localNodeId: string | null;
  },
  limits: MembershipLimits,
  moveData: boolean,
  file: string,
): Start {
  const restored = restoreMembership(state, cfg.localNodeId, limits, moveData, file);
  const nodesChanged = !sameValue(state.seed.nodes, cfg.nodes);
  const pinsChanged = !sameValue(state.seed.assignments, cfg.assignments);
  if (!nodesChanged && !pinsChanged) {
    return { membership: restored, source: 'state', fileWins: [] };
  }
  let plan: ReturnType<typeof planPlacement>;
  try {
    plan = planPlacement(
      restored,
      nodesChanged ? cfg.nodes : null,
      pinsChanged ? cfg.assignments : null,
    );
  } catch (err) {
    const key = nodesChanged ? 'nodes' : 'assignments';
    throw new ConfigError(
      key,
      nodesChanged ? cfg.nodes.map((n) => n.id) : cfg.assignments.map((x) => x.spaceId),
      `changed since ${file} was written, but cannot apply over it: ${(err as Error).message}`,
      { cause: err },
    );
  }
  return {
    membership: plan.change.next,
    source: 'state+config',
    fileWins: [
      ...(nodesChanged ? (['nodes'] as const) : []),
      ...(pinsChanged ? (['assignments'] as const) : []),
    ],
  };
}

/** How the persisted membership differs from the config file's `nodes` and `assignments`. */
export interface StateDifferences {
  /** Members the file does not list (added by AddNode). */
  readonly notInFile: readonly string[];
  /** Nodes the file lists that are not members (removed by RemoveNode). */
  readonly onlyInFile: readonly string[];
  /** Members whose address or zone differs from the file's. */
  readonly changed: readonly string[];
  /** Members not active (drained, draining, joining, leaving). */
  readonly notActive: readonly string[];
  /** Whether the pins (and pins being moved) differ from the file's assignments. */
  readonly pinsDiffer: boolean;
}

export function differences(
  state: AdminState,
  nodes: readonly NodeConfig[],
  assignments: readonly AssignmentConfig[],
): StateDifferences {
  const fileById = new Map(nodes.map((n) => [n.id, n]));
  const stateIds = new Set(state.nodes.map((n) => n.id));
  const key = (a: AssignmentConfig) => JSON.stringify([a.spaceId, a.primary, a.replicas]);
  const pins = (list: readonly AssignmentConfig[]) => list.map(key).sort().join('\n');
  return {
    notInFile: state.nodes.filter((n) => !fileById.has(n.id)).map((n) => n.id),
    onlyInFile: nodes.filter((n) => !stateIds.has(n.id)).map((n) => n.id),
    changed: state.nodes
      .filter((n) => {
        const f = fileById.get(n.id);
        return f !== undefined && (f.address !== n.address || f.zone !== n.zone);
      })
      .map((n) => n.id),
    notActive: state.nodes.filter((n) => n.lifecycle !== Lifecycle.Active).map((n) => n.id),
    pinsDiffer: state.moves.length > 0 || pins(state.assignments) !== pins(assignments),
  };
}

/** The file I/O of the state (fakes in tests). */
export interface StateIO {
  /** The file's text, or null when it does not exist; throws when it cannot be read. */
  read(file: string): string | null;
  /** Replaces the file atomically and durably. */
  write(file: string, text: string): void;
}

/** StateIO on the file system: a temp file fsynced, renamed over, the directory fsynced. */
export const fsStateIO: StateIO = {
  read(file) {
    try {
      return readFileSync(file, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
      throw err;
    }
  },
  write(file, text) {
    const dir = dirname(file);
    mkdirSync(dir, { recursive: true });
    const tmp = `${file}.tmp`;
    const fd = openSync(tmp, 'w');
    try {
      writeSync(fd, text);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, file);
    const dirFd = openSync(dir, 'r');
    try {
      fsyncSync(dirFd);
    } finally {
      closeSync(dirFd);
    }
  },
};

/** The state file of a data directory; without one (`dataDir: null`) nothing is kept. */
export class AdminStateStore {
  readonly file: string | null;
  readonly #io: StateIO;
  #last: string | null = null;

  constructor(dataDir: string | null, io: StateIO = fsStateIO) {
    this.file = dataDir === null ? null : join(dataDir, STATE_FILE);
    this.#io = io;
  }

  /** The persisted state, or null (no data directory, or no file yet). Throws StateFileError. */
  load(): AdminState | null {
    const file = this.file;
    if (file === null) return null;
    let text: string | null;
    try {
      text = this.#io.read(file);
    } catch (err) {
      throw new StateFileError(file, `cannot be read: ${(err as Error).message}`, { cause: err });
    }
    if (text === null) return null;
    const state = decodeState(text, file);
    this.#last = encodeState(state);
    return state;
  }

  /** Writes `m`'s state when it differs from the last one written (health changes do not). */
  save(m: Membership, seed: PlacementSeed, etcd?: EtcdCopy): boolean {
    if (this.file === null) return false;
    const text = encodeState(stateOf(m, seed, etcd));
    if (text === this.#last) return false;
    this.#io.write(this.file, text);
    this.#last = text;
    return true;
  }
}

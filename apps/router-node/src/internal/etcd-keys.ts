import { ETCD_KEYS, etcdKey, etcdKeyId, etcdObject } from '@engram/router';
import { type AdminState, checkTokens, type StateNode, stateOf } from './admin-state.js';
import { type AssignmentConfig, validateAssignment, validateNode } from './config.js';
import { ConfigError } from './errors.js';
import { Lifecycle, type Membership, type SpaceMove } from './membership.js';

// The router-node side of the etcd layout (`ETCD_KEYS` in @engram/router, where every reader
// of a placement prefix finds it): the membership's intent as keys and back, checked as the
// admin API checks a change; the ring settings; the registered routers. Pure, so the encoding
// is tested without etcd.

/** The shared part of the membership: what operators asked for (health is each router's own). */
export type PlacementIntent = Pick<AdminState, 'nodes' | 'assignments' | 'moves'>;

const { nodes: NODES, pins: PINS, moves: MOVES, routers: ROUTERS } = ETCD_KEYS;

export function placementKey(prefix: string): string {
  return etcdKey(prefix, ETCD_KEYS.placement);
}

export function routerKey(prefix: string, routerId: string): string {
  return etcdKey(prefix, ROUTERS, routerId);
}

/**
 * What every router must build its ring with, beside the intent: written with the first
 * placement (from the seeding router's file) and read by every router at start.
 */
export interface PlacementSettings {
  readonly replicationFactor: number;
  readonly vnodesPerNode: number;
  /** Allocated tokens per node; 0: `vnodesPerNode` tokens hashed from each id. */
  readonly tokensPerNode: number;
  /** Nodes every router's tables hold: one router short of them could not follow. */
  readonly maxNodes: number;
}

export function settingsKey(prefix: string): string {
  return etcdKey(prefix, ETCD_KEYS.settings);
}

/**
 * The settings under `prefix`, checked against the config's ranges (`limits`); null when
 * absent. Throws an EtcdStateError naming the key.
 */
export function settingsFromKeys(
  prefix: string,
  kvs: ReadonlyMap<string, string>,
  limits: { readonly [K in keyof PlacementSettings]: { min: number; max: number } },
): PlacementSettings | null {
  const key = settingsKey(prefix);
  const text = kvs.get(key);
  if (text === undefined) return null;
  const raw = parse(key, text);
  const out: Record<string, number> = {};
  for (const name of ['replicationFactor', 'vnodesPerNode', 'tokensPerNode', 'maxNodes'] as const) {
    const v = raw[name];
    const { min, max } = limits[name];
    if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) {
      throw new EtcdStateError(`${key}.${name}`, v, `must be an integer from ${min} to ${max}`);
    }
    out[name] = v;
  }
  return out as unknown as PlacementSettings;
}

/** The intent of a membership (what a change writes). */
export function intentOf(m: Membership): PlacementIntent {
  const { nodes, assignments, moves } = stateOf(m, { nodes: [], assignments: [] });
  return { nodes, assignments, moves };
}

/** The placement keys of an intent (marker excluded), key → JSON value. */
export function intentKeys(prefix: string, intent: PlacementIntent): Map<string, string> {
  const out = new Map<string, string>();
  for (const n of intent.nodes) out.set(etcdKey(prefix, NODES, n.id), json(n));
  for (const a of intent.assignments) out.set(etcdKey(prefix, PINS, a.spaceId), json(a));
  for (const x of intent.moves) out.set(etcdKey(prefix, MOVES, x.spaceId), json(x));
  return out;
}

function json(v: unknown): string {
  return JSON.stringify(v);
}

/** What a change writes: keys put (new or changed) and keys deleted, `before` → `after`. */
export interface KeyDiff {
  readonly puts: ReadonlyArray<readonly [string, string]>;
  readonly deletes: readonly string[];
}

export function diffKeys(
  before: ReadonlyMap<string, string>,
  after: ReadonlyMap<string, string>,
): KeyDiff {
  const puts: [string, string][] = [];
  const deletes: string[] = [];
  for (const [k, v] of after) if (before.get(k) !== v) puts.push([k, v]);
  for (const k of before.keys()) if (!after.has(k)) deletes.push(k);
  return { puts, deletes };
}

/**
 * The etcd state under a prefix is not an intent this router can follow: `field` names the key,
 * `value` its value. The router keeps routing on its last table and reports it.
 */
export class EtcdStateError extends ConfigError {
  constructor(key: string, value: unknown, reason: string, options?: ErrorOptions) {
    super(key, value, reason, options);
    this.name = 'EtcdStateError';
  }
}

const LIFECYCLES: ReadonlySet<string> = new Set(Object.values(Lifecycle));

/** `etcdObject`, refusing with an EtcdStateError (router-node's coded error). */
function parse(key: string, text: string): Record<string, unknown> {
  try {
    return etcdObject(key, text);
  } catch (err) {
    const e = err as { field: string; value: unknown; message: string };
    throw new EtcdStateError(e.field, e.value, e.message, { cause: err });
  }
}

function idOf(key: string, sub: string, prefix: string): string {
  return etcdKeyId(prefix, sub, key);
}

/**
 * The intent held by the placement keys under `prefix` (other keys are ignored). Checks every
 * entry as the admin API checks a change (node shape, pins naming members, a key matching its
 * entry); throws an EtcdStateError naming the first bad key.
 */
export function intentFromKeys(prefix: string, kvs: ReadonlyMap<string, string>): PlacementIntent {
  const nodes: StateNode[] = [];
  const pins: [string, unknown][] = [];
  const moves: [string, Record<string, unknown>][] = [];
  for (const [key, text] of [...kvs].sort((a, b) => (a[0] < b[0] ? -1 : 1))) {
    if (!key.startsWith(prefix)) continue;
    const rest = key.slice(prefix.length);
    if (rest.startsWith(NODES)) {
      const raw = parse(key, text);
      const { lifecycle, leaveTo, tokens, ...node } = raw;
      let checked: ReturnType<typeof validateNode>;
      try {
        checked = validateNode(node, key);
      } catch (err) {
        throw new EtcdStateError(key, raw, (err as Error).message, { cause: err });
      }
      if (checked.id !== idOf(key, NODES, prefix)) {
        throw new EtcdStateError(key, checked.id, 'names another node than its key');
      }
      if (typeof lifecycle !== 'string' || !LIFECYCLES.has(lifecycle)) {
        throw new EtcdStateError(`${key}.lifecycle`, lifecycle, 'is not a lifecycle');
      }
      if (leaveTo !== undefined && leaveTo !== 'removed' && leaveTo !== 'drained') {
        throw new EtcdStateError(`${key}.leaveTo`, leaveTo, 'must be removed or drained');
      }
      // A ConfigError naming `<key>.tokens[i]` (the same code as an EtcdStateError).
      const checkedTokens = tokens === undefined ? undefined : checkTokens(tokens, `${key}.tokens`);
      nodes.push({
        ...checked,
        lifecycle: lifecycle as Lifecycle,
        ...(leaveTo !== undefined ? { leaveTo } : {}),
        ...(checkedTokens !== undefined ? { tokens: checkedTokens } : {}),
      });
    } else if (rest.startsWith(PINS)) {
      pins.push([key, parse(key, text)]);
    } else if (rest.startsWith(MOVES)) {
      moves.push([key, parse(key, text)]);
    }
  }
  const ids = new Set(nodes.map((n) => n.id));
  const pin = (key: string, raw: unknown, sub: string): AssignmentConfig => {
    let a: AssignmentConfig;
    try {
      a = validateAssignment(raw, key, ids);
    } catch (err) {
      throw new EtcdStateError(key, raw, (err as Error).message, { cause: err });
    }
    if (a.spaceId !== idOf(key, sub, prefix)) {
      throw new EtcdStateError(key, a.spaceId, 'names another space than its key');
    }
    return a;
  };
  const assignments = pins.map(([key, raw]) => pin(key, raw, PINS));
  const outMoves = moves.map(([key, raw]): SpaceMove => {
    const spaceId = idOf(key, MOVES, prefix);
    if (raw.spaceId !== spaceId) {
      throw new EtcdStateError(`${key}.spaceId`, raw.spaceId, 'names another space than its key');
    }
    return { spaceId, to: raw.to === null ? null : pin(key, raw.to, MOVES) };
  });
  if (nodes.length === 0 && kvs.has(placementKey(prefix))) {
    throw new EtcdStateError(`${prefix}${NODES}`, [], 'no node: a placement needs at least one');
  }
  return { nodes, assignments, moves: outMoves };
}

/** A router registered under the prefix (on its lease: gone when the router is). */
export interface RouterRegistration {
  readonly id: string;
  /** The ingress address it serves on. */
  readonly listen: string;
  /** Its RouterAdmin address, or null when disabled. */
  readonly admin: string | null;
  readonly version: string;
  /** When it registered, ms since the epoch. */
  readonly since: number;
}

/** The routers registered under `prefix`; entries that do not parse are left out. */
export function routersFromKeys(
  prefix: string,
  kvs: ReadonlyMap<string, string>,
): RouterRegistration[] {
  const out: RouterRegistration[] = [];
  const under = `${prefix}${ROUTERS}`;
  for (const [key, text] of kvs) {
    if (!key.startsWith(under)) continue;
    try {
      const v = JSON.parse(text) as Partial<RouterRegistration>;
      if (typeof v.id === 'string' && typeof v.listen === 'string') {
        out.push({
          id: v.id,
          listen: v.listen,
          admin: typeof v.admin === 'string' ? v.admin : null,
          version: typeof v.version === 'string' ? v.version : '',
          since: typeof v.since === 'number' ? v.since : 0,
        });
      }
    } catch {
      // Not ours to judge: a registration only informs `status`.
    }
  }
  return out.sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
}

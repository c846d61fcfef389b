import type { PendingAssignment, RingOptions, SpaceAssignment } from '@engram/ring';
import { InvalidArgumentError } from './errors.js';

// Where router-nodes in etcd mode keep a cluster's placement, under one key prefix: the wire
// contract between the routers that write it and every reader that follows it (router-node,
// and a client routing in process with `EtcdPlacement`). One key per node, pin and pin move,
// so a change writes only what it changes; ids are percent-encoded, so an id with a `/` stays
// one key.
//
//   <prefix>placement         {"by","reason","at"}: written by every change; its mod revision
//                             is the placement's revision
//   <prefix>settings          {"replicationFactor","vnodesPerNode"}: written with the first
//   <prefix>nodes/<id>        {"id","address","zone","lifecycle","leaveTo"?}
//   <prefix>pins/<space>      {"spaceId","primary","replicas"}
//   <prefix>moves/<space>     {"spaceId","to": pin | null}: a pin whose data is streaming
//   <prefix>routers/<router>  a router's registration, on its lease
//   <prefix>election/driver/… the data-movement driver's election (etcd3's Election)
//   <prefix>seeding           the lock of the router seeding an empty prefix (on a lease)
//   <prefix>streams/<kind>/<subject>/<instance>/<space>
//                             {"after","copied","done"}: how far the driver streamed a space

export const DEFAULT_ETCD_PREFIX = '/engram/router/';

export const ETCD_KEYS = Object.freeze({
  placement: 'placement',
  settings: 'settings',
  nodes: 'nodes/',
  pins: 'pins/',
  moves: 'moves/',
  routers: 'routers/',
  election: 'election/',
  seeding: 'seeding',
  streams: 'streams/',
} as const);

/** The key of an item under `prefix` (`sub` one of the `ETCD_KEYS` folders, then the id). */
export function etcdKey(prefix: string, sub: string, id = ''): string {
  return `${prefix}${sub}${encodeURIComponent(id)}`;
}

/** The id of the item `key` holds, under `prefix` and `sub`. */
export function etcdKeyId(prefix: string, sub: string, key: string): string {
  return decodeURIComponent(key.slice(prefix.length + sub.length));
}

/** Whether `key` belongs to the placement (a change to it changes routing). */
export function isPlacementKey(prefix: string, key: string): boolean {
  if (!key.startsWith(prefix)) return false;
  const rest = key.slice(prefix.length);
  return (
    rest === ETCD_KEYS.placement ||
    rest === ETCD_KEYS.settings ||
    rest.startsWith(ETCD_KEYS.nodes) ||
    rest.startsWith(ETCD_KEYS.pins) ||
    rest.startsWith(ETCD_KEYS.moves)
  );
}

/** A JSON object held by `key`; throws InvalidArgumentError naming the key. */
export function etcdObject(key: string, text: string): Record<string, unknown> {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (err) {
    throw new InvalidArgumentError(key, text, `JSON (${(err as Error).message})`);
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) {
    throw new InvalidArgumentError(key, v, 'a JSON object');
  }
  return v as Record<string, unknown>;
}

function str(key: string, o: Record<string, unknown>, field: string, optional = false): string {
  const v = o[field];
  if (optional && v === undefined) return '';
  if (typeof v !== 'string') throw new InvalidArgumentError(`${key}.${field}`, v, 'a string');
  return v;
}

function pin(key: string, o: Record<string, unknown>): SpaceAssignment {
  const replicas = o.replicas ?? [];
  if (!Array.isArray(replicas) || replicas.some((r) => typeof r !== 'string')) {
    throw new InvalidArgumentError(`${key}.replicas`, replicas, 'a list of node ids');
  }
  return {
    spaceId: str(key, o, 'spaceId'),
    primary: str(key, o, 'primary'),
    replicas: replicas as string[],
  };
}

/**
 * The ring a router in etcd mode builds from the placement under `prefix` (`buildRing` takes
 * it as is): placed nodes (drained ones are out), joining and leaving ones, pins, pin moves,
 * and the shared settings. Null while the prefix holds no placement. Throws
 * InvalidArgumentError naming the key of a malformed entry (`buildRing` checks the rest).
 */
export function ringOptionsFromKeys(
  prefix: string,
  kvs: ReadonlyMap<string, string>,
): RingOptions | null {
  if (!kvs.has(`${prefix}${ETCD_KEYS.placement}`)) return null;
  const nodes: { id: string; address: string; zone: string; tokens?: readonly number[] }[] = [];
  const joining: string[] = [];
  const leaving: string[] = [];
  const assignments: SpaceAssignment[] = [];
  const pendingAssignments: PendingAssignment[] = [];
  let settings: Record<string, unknown> = {};
  for (const [key, text] of kvs) {
    if (!key.startsWith(prefix)) continue;
    const rest = key.slice(prefix.length);
    if (rest === ETCD_KEYS.settings) {
      settings = etcdObject(key, text);
    } else if (rest.startsWith(ETCD_KEYS.nodes)) {
      const o = etcdObject(key, text);
      const id = str(key, o, 'id');
      const lifecycle = str(key, o, 'lifecycle');
      if (lifecycle === 'drained') continue;
      const tokens = o.tokens;
      if (tokens !== undefined && !Array.isArray(tokens)) {
        throw new InvalidArgumentError(`${key}.tokens`, tokens, 'a list of ring tokens');
      }
      nodes.push({
        id,
        address: str(key, o, 'address'),
        zone: str(key, o, 'zone', true),
        // buildRing checks each token (an integer in range, none twice).
        ...(tokens !== undefined ? { tokens: tokens as number[] } : {}),
      });
      if (lifecycle === 'joining') joining.push(id);
      if (lifecycle === 'leaving') leaving.push(id);
    } else if (rest.startsWith(ETCD_KEYS.pins)) {
      assignments.push(pin(key, etcdObject(key, text)));
    } else if (rest.startsWith(ETCD_KEYS.moves)) {
      const o = etcdObject(key, text);
      const spaceId = str(key, o, 'spaceId');
      const to = o.to;
      pendingAssignments.push(
        to === null
          ? { spaceId, primary: null }
          : pin(`${key}.to`, typeof to === 'object' && to !== null ? (to as never) : {}),
      );
    }
  }
  const num = (field: string): number | undefined => {
    const v = settings[field];
    if (v === undefined) return undefined;
    if (typeof v !== 'number') {
      throw new InvalidArgumentError(`${prefix}${ETCD_KEYS.settings}.${field}`, v, 'a number');
    }
    return v;
  };
  const replicationFactor = num('replicationFactor');
  // Token mode (every node carries its allocated tokens): vnodesPerNode does not apply.
  const tokenMode = nodes.length > 0 && nodes.every((n) => n.tokens !== undefined);
  const vnodesPerNode = tokenMode ? undefined : num('vnodesPerNode');
  return {
    nodes,
    ...(replicationFactor !== undefined ? { replicationFactor } : {}),
    ...(vnodesPerNode !== undefined ? { vnodesPerNode } : {}),
    assignments,
    joining,
    leaving,
    pendingAssignments,
  };
}

/**
 * Validation of `RingOptions`, once, when a ring is built: every error names the offending
 * field (`nodes[2].address`, `joining[1]`, `pendingAssignments[0].replicas[1]`).
 */
import { parseAddress } from '@engram/common';
import { InvalidArgumentError } from '../errors.js';
import {
  MAX_NODE_ID_LENGTH,
  MAX_NODES,
  MAX_REPLICATION_FACTOR,
  MAX_RING_TOKENS,
  MAX_SPACE_ID_LENGTH,
  MAX_TOKEN,
  MAX_TOKENS_PER_NODE,
  MAX_ZONE_LENGTH,
} from '../limits.js';
import type { NodeInfo } from '../types.js';
import { ROLE_CODES } from './placement.js';

export function checkInteger(field: string, value: unknown, min: number, max: number): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
    throw new InvalidArgumentError(field, value, `an integer from ${min} to ${max}`);
  }
  return value;
}

function checkSpaceId(field: string, value: unknown): string {
  if (typeof value !== 'string' || value.length === 0 || value.length > MAX_SPACE_ID_LENGTH) {
    throw new InvalidArgumentError(
      field,
      value,
      `a non-empty string of at most ${MAX_SPACE_ID_LENGTH} characters`,
    );
  }
  return value;
}

export function validateNodes(nodes: unknown): NodeInfo[] {
  if (!Array.isArray(nodes)) throw new InvalidArgumentError('nodes', nodes, 'an array');
  if (nodes.length === 0) throw new InvalidArgumentError('nodes', nodes, 'a non-empty array');
  if (nodes.length > MAX_NODES) {
    throw new InvalidArgumentError('nodes', nodes.length, `an array of at most ${MAX_NODES} nodes`);
  }
  const seen = new Set<string>();
  const out: NodeInfo[] = [];
  for (let i = 0; i < nodes.length; i++) {
    const node: unknown = nodes[i];
    if (typeof node !== 'object' || node === null) {
      throw new InvalidArgumentError(`nodes[${i}]`, node, 'an object');
    }
    const { id, address, zone } = node as Record<string, unknown>;
    if (typeof id !== 'string' || id.length === 0 || id.length > MAX_NODE_ID_LENGTH) {
      throw new InvalidArgumentError(
        `nodes[${i}].id`,
        id,
        `a non-empty string of at most ${MAX_NODE_ID_LENGTH} characters`,
      );
    }
    if (seen.has(id))
      throw new InvalidArgumentError(`nodes[${i}].id`, id, 'unique among the nodes');
    seen.add(id);
    parseAddress(address, `nodes[${i}].address`);
    if (zone !== undefined && (typeof zone !== 'string' || zone.length > MAX_ZONE_LENGTH)) {
      throw new InvalidArgumentError(
        `nodes[${i}].zone`,
        zone,
        `a string of at most ${MAX_ZONE_LENGTH} characters when present`,
      );
    }
    out.push(
      Object.freeze(
        zone === undefined
          ? { id, address: address as string }
          : { id, address: address as string, zone },
      ),
    );
  }
  return out;
}

/**
 * The explicit tokens of already validated `nodes` (same order), or null when no node
 * carries any (tokens hashed from ids). Either all nodes carry tokens or none does. Each list
 * is checked here (integers in range, length); tokens held twice are found once sorted
 * (`duplicateTokenError`).
 */
export function validateNodeTokens(nodes: readonly unknown[]): Uint32Array[] | null {
  const carrying = nodes.findIndex((node) => (node as { tokens?: unknown }).tokens !== undefined);
  if (carrying < 0) return null;
  const out: Uint32Array[] = [];
  let total = 0;
  for (let i = 0; i < nodes.length; i++) {
    const field = `nodes[${i}].tokens`;
    const tokens: unknown = (nodes[i] as { tokens?: unknown }).tokens;
    if (tokens === undefined) {
      throw new InvalidArgumentError(
        field,
        tokens,
        `an array of tokens (nodes[${carrying}] carries tokens, so every node must)`,
      );
    }
    const list = checkTokenList(field, tokens);
    total += list.length;
    out.push(list);
  }
  if (total > MAX_RING_TOKENS) {
    throw new InvalidArgumentError('nodes', total, `at most ${MAX_RING_TOKENS} tokens in all`);
  }
  return out;
}

/** One node's tokens: 1 to MAX_TOKENS_PER_NODE integers in [0, MAX_TOKEN]. */
export function checkTokenList(field: string, tokens: unknown): Uint32Array {
  if (!Array.isArray(tokens) || tokens.length === 0 || tokens.length > MAX_TOKENS_PER_NODE) {
    throw new InvalidArgumentError(
      field,
      Array.isArray(tokens) ? tokens.length : tokens,
      `an array of 1 to ${MAX_TOKENS_PER_NODE} tokens`,
    );
  }
  const list = new Uint32Array(tokens.length);
  for (let k = 0; k < tokens.length; k++) {
    list[k] = checkInteger(`${field}[${k}]`, tokens[k], 0, MAX_TOKEN);
  }
  return list;
}

/**
 * The error for a token held twice: by input nodes `a` and `b` (may be equal: twice in one
 * list). Names the later occurrence, in input order.
 */
export function duplicateTokenError(
  nodes: readonly unknown[],
  a: number,
  b: number,
  token: number,
): InvalidArgumentError {
  const tokensOf = (i: number) => (nodes[i] as { tokens: readonly number[] }).tokens;
  const first = Math.min(a, b);
  const second = Math.max(a, b);
  const k =
    first === second ? tokensOf(second).lastIndexOf(token) : tokensOf(second).indexOf(token);
  return new InvalidArgumentError(
    `nodes[${second}].tokens[${k}]`,
    token,
    first === second
      ? 'a token the node does not already hold'
      : `a token no other node holds (nodes[${first}] holds it)`,
  );
}

/** What a membership change adds to the nodes: roles and the two sets of pins. */
export interface ValidatedChange {
  /** `ROLE_CODES` value per node index. */
  readonly roles: Uint8Array;
  readonly joiningCount: number;
  readonly leavingCount: number;
  /** Current pins: node indexes, primary first. */
  readonly assignments: Map<string, Uint16Array>;
  /** Future pins; `null`: the space goes back to the ring. */
  readonly pendingPins: Map<string, Uint16Array | null>;
}

interface ChangeOptions {
  readonly joining?: unknown;
  readonly leaving?: unknown;
  readonly assignments?: unknown;
  readonly pendingAssignments?: unknown;
}

/**
 * Validates `joining`, `leaving`, `assignments` and `pendingAssignments` against the nodes
 * (`indexOf`: node id to index). Refuses what would leave the current or the future
 * placement without nodes, a current pin on a joining node (it would be read before it has
 * the data), and a pin that the change would leave pointing at a departed node.
 */
export function validateChange(
  options: ChangeOptions,
  indexOf: ReadonlyMap<string, number>,
): ValidatedChange {
  const nodeCount = indexOf.size;
  const roles = new Uint8Array(nodeCount);
  const joiningCount = markRoles('joining', options.joining, indexOf, roles, ROLE_CODES.joining);
  const leavingCount = markRoles('leaving', options.leaving, indexOf, roles, ROLE_CODES.leaving);
  if (joiningCount === nodeCount) {
    throw new InvalidArgumentError(
      'joining',
      options.joining,
      'a list that leaves some node not joining (the current placement needs one)',
    );
  }
  if (leavingCount === nodeCount) {
    throw new InvalidArgumentError(
      'leaving',
      options.leaving,
      'a list that leaves some node staying (the future placement needs one)',
    );
  }
  const assignments = validatePins('assignments', options.assignments, indexOf, (index) =>
    roles[index] === ROLE_CODES.joining ? 'a node that is not joining (a pin serves reads)' : null,
  ) as Map<string, Uint16Array>; // null pins come only with `current`, i.e. pending ones
  const pendingPins = validatePins(
    'pendingAssignments',
    options.pendingAssignments,
    indexOf,
    (index) =>
      roles[index] === ROLE_CODES.leaving
        ? 'a node that is not leaving (a pending pin is where the space goes)'
        : null,
    assignments,
  );
  if (leavingCount > 0)
    checkPinsOutliveLeaving(options.assignments, assignments, pendingPins, roles);
  return { roles, joiningCount, leavingCount, assignments, pendingPins };
}

// Marks the nodes listed in `field` with `role`; returns how many.
function markRoles(
  field: 'joining' | 'leaving',
  list: unknown,
  indexOf: ReadonlyMap<string, number>,
  roles: Uint8Array,
  role: number,
): number {
  if (list === undefined) return 0;
  if (!Array.isArray(list)) throw new InvalidArgumentError(field, list, 'an array of node ids');
  for (let i = 0; i < list.length; i++) {
    const id: unknown = list[i];
    const index = typeof id === 'string' ? indexOf.get(id) : undefined;
    if (index === undefined) {
      throw new InvalidArgumentError(`${field}[${i}]`, id, 'the id of a node of the ring');
    }
    if (roles[index] === role) {
      throw new InvalidArgumentError(`${field}[${i}]`, id, `listed in ${field} once`);
    }
    if (roles[index] !== ROLE_CODES.normal) {
      throw new InvalidArgumentError(
        `${field}[${i}]`,
        id,
        'a node that is not both joining and leaving',
      );
    }
    roles[index] = role;
  }
  return list.length;
}

// Validates a list of pins. `refuse(index)` says why a node may not be pinned here (or null).
// With `current` (pending pins), `primary: null` is accepted for a space that has a current
// pin: the space returns to the ring.
function validatePins(
  field: 'assignments' | 'pendingAssignments',
  list: unknown,
  indexOf: ReadonlyMap<string, number>,
  refuse: (index: number) => string | null,
  current?: ReadonlyMap<string, Uint16Array>,
): Map<string, Uint16Array | null> {
  const map = new Map<string, Uint16Array | null>();
  if (list === undefined) return map;
  if (!Array.isArray(list)) throw new InvalidArgumentError(field, list, 'an array');
  for (let i = 0; i < list.length; i++) {
    const at = `${field}[${i}]`;
    const entry: unknown = list[i];
    if (typeof entry !== 'object' || entry === null) {
      throw new InvalidArgumentError(at, entry, 'an object');
    }
    const { spaceId, primary, replicas } = entry as Record<string, unknown>;
    checkSpaceId(`${at}.spaceId`, spaceId);
    if (map.has(spaceId as string)) {
      throw new InvalidArgumentError(`${at}.spaceId`, spaceId, 'a space not assigned before');
    }
    if (primary === null && current !== undefined) {
      if (!current.has(spaceId as string)) {
        throw new InvalidArgumentError(
          `${at}.primary`,
          primary,
          'a node id (null only returns a space with a current assignment to the ring)',
        );
      }
      if (replicas !== undefined && !(Array.isArray(replicas) && replicas.length === 0)) {
        throw new InvalidArgumentError(
          `${at}.replicas`,
          replicas,
          'absent or empty when primary is null (the ring chooses)',
        );
      }
      map.set(spaceId as string, null);
      continue;
    }
    const primaryIndex = typeof primary === 'string' ? indexOf.get(primary) : undefined;
    if (primaryIndex === undefined) {
      throw new InvalidArgumentError(`${at}.primary`, primary, 'the id of a node of the ring');
    }
    const primaryRefused = refuse(primaryIndex);
    if (primaryRefused !== null)
      throw new InvalidArgumentError(`${at}.primary`, primary, primaryRefused);
    const replicaList = replicas ?? [];
    if (!Array.isArray(replicaList)) {
      throw new InvalidArgumentError(`${at}.replicas`, replicas, 'an array of node ids');
    }
    if (replicaList.length + 1 > MAX_REPLICATION_FACTOR) {
      throw new InvalidArgumentError(
        `${at}.replicas`,
        replicaList.length,
        `an array of at most ${MAX_REPLICATION_FACTOR - 1} node ids`,
      );
    }
    const placement = new Uint16Array(replicaList.length + 1);
    placement[0] = primaryIndex;
    for (let r = 0; r < replicaList.length; r++) {
      const id: unknown = replicaList[r];
      const index = typeof id === 'string' ? indexOf.get(id) : undefined;
      if (index === undefined) {
        throw new InvalidArgumentError(`${at}.replicas[${r}]`, id, 'the id of a node of the ring');
      }
      if (placement.subarray(0, r + 1).includes(index)) {
        throw new InvalidArgumentError(
          `${at}.replicas[${r}]`,
          id,
          'distinct from the primary and the other replicas',
        );
      }
      const refused = refuse(index);
      if (refused !== null) throw new InvalidArgumentError(`${at}.replicas[${r}]`, id, refused);
      placement[r + 1] = index;
    }
    map.set(spaceId as string, placement);
  }
  return map;
}

// A current pin stays in force after the change unless a pending pin replaces it, so a pin
// on a leaving node needs one: otherwise its future would name a node that is gone.
function checkPinsOutliveLeaving(
  list: unknown,
  assignments: ReadonlyMap<string, Uint16Array>,
  pendingPins: ReadonlyMap<string, Uint16Array | null>,
  roles: Uint8Array,
): void {
  if (!Array.isArray(list)) return;
  for (let i = 0; i < list.length; i++) {
    const { spaceId, primary, replicas } = list[i] as Record<string, unknown>;
    const pin = assignments.get(spaceId as string)!;
    if (pendingPins.has(spaceId as string)) continue;
    for (let k = 0; k < pin.length; k++) {
      if (roles[pin[k]!] !== ROLE_CODES.leaving) continue;
      throw new InvalidArgumentError(
        k === 0 ? `assignments[${i}].primary` : `assignments[${i}].replicas[${k - 1}]`,
        k === 0 ? primary : (replicas as unknown[])[k - 1],
        'a node that is not leaving, unless pendingAssignments moves the space',
      );
    }
  }
}

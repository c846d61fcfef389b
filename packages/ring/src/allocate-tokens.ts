import { InvalidArgumentError } from './errors.js';
import { TokenAllocator } from './internal/allocator.js';
import { checkInteger, checkTokenList } from './internal/options.js';
import { compareCodePoints } from './internal/placement.js';
import {
  DEFAULT_REPLICATION_FACTOR,
  MAX_NODE_ID_LENGTH,
  MAX_NODES,
  MAX_REPLICATION_FACTOR,
  MAX_RING_TOKENS,
  MAX_TOKENS_PER_NODE,
  MAX_ZONE_LENGTH,
} from './limits.js';

/**
 * Tokens a node gets from the allocator by default. 16 already keep owned load within 1.05
 * max/mean at 100 and 1000 nodes (3 zones, replication factor 3: ~1.03); 64 keep it within
 * ~1.01 for a few ms more per join and 2 MiB of shared table at 1000 nodes (README:
 * explicit tokens; bench/tokens.ts).
 */
export const DEFAULT_TOKENS_PER_NODE = 64;

export interface TokenAllocationOptions {
  /** Tokens for each joining node, 1 to `MAX_TOKENS_PER_NODE`. Default `DEFAULT_TOKENS_PER_NODE`. */
  readonly tokensPerNode?: number;
  /** The replication factor of the ring the tokens are for. Default 3. */
  readonly replicationFactor?: number;
}

/** A node as the allocator sees it: id and zone (a `NodeInfo` will do). */
export interface TokenNode {
  readonly id: string;
  /** Failure domain; nodes without one share the zone `""`, as in the ring. */
  readonly zone?: string;
}

/** A node with its tokens (a `NodeInfo` carrying `tokens` will do). */
export interface TokenHolder extends TokenNode {
  readonly tokens: readonly number[];
}

/**
 * Chooses the tokens of a node joining a ring of explicit tokens, looking at the existing
 * ones so that owned load (hash space a node holds a replica of, under the ring's
 * zone-aware walk and `replicationFactor`) stays balanced. Pure and deterministic: the same
 * existing nodes (in any order), joining node and options give the same tokens. Returns
 * them sorted; none is held by an existing node. Existing tokens never move, so adding the
 * node moves data only to it. Throws `InvalidArgumentError` (field and value).
 */
export function allocateTokens(
  existing: readonly TokenHolder[],
  joining: TokenNode,
  options: TokenAllocationOptions = {},
): number[] {
  const settings = validateSettings(options);
  if (!Array.isArray(existing)) throw new InvalidArgumentError('existing', existing, 'an array');
  if (existing.length >= MAX_NODES) {
    throw new InvalidArgumentError('existing', existing.length, `fewer than ${MAX_NODES} nodes`);
  }
  const seen = new Set<string>();
  const nodes = existing.map((node, i) => {
    const checked = checkNode(`existing[${i}]`, node);
    if (seen.has(checked.id)) {
      throw new InvalidArgumentError(`existing[${i}].id`, checked.id, 'unique among the nodes');
    }
    seen.add(checked.id);
    return { ...checked, tokens: checkTokenList(`existing[${i}].tokens`, node.tokens), input: i };
  });
  const newcomer = checkNode('joining', joining);
  if (seen.has(newcomer.id)) {
    throw new InvalidArgumentError('joining.id', newcomer.id, 'an id no existing node has');
  }
  let total = settings.tokensPerNode;
  for (const node of nodes) total += node.tokens.length;
  if (total > MAX_RING_TOKENS) {
    throw new InvalidArgumentError('existing', total, `at most ${MAX_RING_TOKENS} tokens in all`);
  }
  nodes.sort((a, b) => compareCodePoints(a.id, b.id));
  checkDistinct(nodes);
  const allocator = new TokenAllocator(settings);
  allocator.seed(nodes);
  return allocator.join(newcomer.id, newcomer.zone, settings.tokensPerNode);
}

/**
 * Tokens for a whole cluster, as if its nodes joined one at a time in the order given (the
 * join history: a different order gives different tokens). For seeding a new cluster's
 * shared state, and for measuring the allocator. Returns the nodes in the same order with
 * their tokens. Incremental: one ring is kept across the joins, not rebuilt per node.
 */
export function allocateClusterTokens(
  nodes: readonly TokenNode[],
  options: TokenAllocationOptions = {},
): Array<{ id: string; zone?: string; tokens: number[] }> {
  const settings = validateSettings(options);
  if (!Array.isArray(nodes)) throw new InvalidArgumentError('nodes', nodes, 'an array');
  if (nodes.length > MAX_NODES) {
    throw new InvalidArgumentError('nodes', nodes.length, `at most ${MAX_NODES} nodes`);
  }
  if (nodes.length * settings.tokensPerNode > MAX_RING_TOKENS) {
    throw new InvalidArgumentError(
      'tokensPerNode',
      settings.tokensPerNode,
      `at most ${Math.floor(MAX_RING_TOKENS / nodes.length)} with ${nodes.length} nodes`,
    );
  }
  const seen = new Set<string>();
  const checked = nodes.map((node, i) => {
    const one = checkNode(`nodes[${i}]`, node);
    if (seen.has(one.id)) {
      throw new InvalidArgumentError(`nodes[${i}].id`, one.id, 'unique among the nodes');
    }
    seen.add(one.id);
    return one;
  });
  const allocator = new TokenAllocator(settings);
  return checked.map((node, i) => {
    const tokens = allocator.join(node.id, node.zone, settings.tokensPerNode);
    const zone = nodes[i]!.zone;
    return zone === undefined ? { id: node.id, tokens } : { id: node.id, zone, tokens };
  });
}

function validateSettings(options: TokenAllocationOptions): {
  tokensPerNode: number;
  replicationFactor: number;
} {
  if (typeof options !== 'object' || options === null) {
    throw new InvalidArgumentError('options', options, 'an object');
  }
  return {
    tokensPerNode: checkInteger(
      'tokensPerNode',
      options.tokensPerNode ?? DEFAULT_TOKENS_PER_NODE,
      1,
      MAX_TOKENS_PER_NODE,
    ),
    replicationFactor: checkInteger(
      'replicationFactor',
      options.replicationFactor ?? DEFAULT_REPLICATION_FACTOR,
      1,
      MAX_REPLICATION_FACTOR,
    ),
  };
}

function checkNode(field: string, node: unknown): { id: string; zone: string } {
  if (typeof node !== 'object' || node === null) {
    throw new InvalidArgumentError(field, node, 'an object');
  }
  const { id, zone } = node as Record<string, unknown>;
  if (typeof id !== 'string' || id.length === 0 || id.length > MAX_NODE_ID_LENGTH) {
    throw new InvalidArgumentError(
      `${field}.id`,
      id,
      `a non-empty string of at most ${MAX_NODE_ID_LENGTH} characters`,
    );
  }
  if (zone !== undefined && (typeof zone !== 'string' || zone.length > MAX_ZONE_LENGTH)) {
    throw new InvalidArgumentError(
      `${field}.zone`,
      zone,
      `a string of at most ${MAX_ZONE_LENGTH} characters when present`,
    );
  }
  return { id, zone: zone ?? '' };
}

// A token held twice (by two nodes, or twice by one) names its later holder in input order.
function checkDistinct(nodes: ReadonlyArray<{ tokens: Uint32Array; input: number }>): void {
  const holder = new Map<number, number>();
  const byInput = [...nodes].sort((a, b) => a.input - b.input);
  for (const node of byInput) {
    for (let k = 0; k < node.tokens.length; k++) {
      const token = node.tokens[k]!;
      const other = holder.get(token);
      if (other !== undefined) {
        throw new InvalidArgumentError(
          `existing[${node.input}].tokens[${k}]`,
          token,
          other === node.input
            ? 'a token the node does not already hold'
            : `a token no other node holds (existing[${other}] holds it)`,
        );
      }
      holder.set(token, node.input);
    }
  }
}

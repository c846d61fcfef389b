// A deliberately naive, obviously-correct placement, written straight from the scheme's
// definition, against which the optimized build is checked.
import { hashKey, type NodeInfo } from '../src/index.js';
import { murmur3x86_32 } from '../src/internal/murmur3.js';
import { compareCodePoints } from '../src/internal/placement.js';

type Vnode = { token: number; id: string; zone: string };
/** The last cluster's sorted vnodes: many keys are looked up on one cluster in a row. */
let cached: { key: string; vnodes: Vnode[] } | undefined;

function sortedVnodes(nodes: readonly NodeInfo[], vnodesPerNode: number): Vnode[] {
  const cacheKey = JSON.stringify([nodes, vnodesPerNode]);
  if (cached?.key === cacheKey) return cached.vnodes;
  const vnodes: Vnode[] = [];
  for (const node of nodes) {
    if (node.tokens !== undefined) {
      // Explicit tokens replace the hashed ones.
      for (const token of node.tokens) vnodes.push({ token, id: node.id, zone: node.zone ?? '' });
      continue;
    }
    const bytes = new TextEncoder().encode(node.id);
    for (let k = 0; k < vnodesPerNode; k++) {
      vnodes.push({
        token: murmur3x86_32(bytes, bytes.length, k),
        id: node.id,
        zone: node.zone ?? '',
      });
    }
  }
  vnodes.sort((a, b) => a.token - b.token || compareCodePoints(a.id, b.id));
  cached = { key: cacheKey, vnodes };
  return vnodes;
}

export function referencePlacement(
  nodes: readonly NodeInfo[],
  vnodesPerNode: number,
  replicationFactor: number,
  key: string,
): string[] {
  const vnodes = sortedVnodes(nodes, vnodesPerNode);
  const token = hashKey(key);
  let start = vnodes.findIndex((v) => v.token >= token);
  if (start < 0) start = 0;
  const want = Math.min(replicationFactor, nodes.length);
  const zoneCount = new Set(nodes.map((n) => n.zone ?? '')).size;
  const taken: string[] = [];
  const usedZones = new Set<string>();
  for (let s = 0; s < vnodes.length && taken.length < want; s++) {
    const v = vnodes[(start + s) % vnodes.length]!;
    if (taken.includes(v.id)) continue;
    if (usedZones.has(v.zone) && usedZones.size < zoneCount) continue;
    taken.push(v.id);
    usedZones.add(v.zone);
  }
  for (let s = 0; s < vnodes.length && taken.length < want; s++) {
    const v = vnodes[(start + s) % vnodes.length]!;
    if (!taken.includes(v.id)) taken.push(v.id);
  }
  return taken;
}

export function ids(placement: { primary: NodeInfo; replicas: readonly NodeInfo[] }): string[] {
  return [placement.primary.id, ...placement.replicas.map((n) => n.id)];
}

export function makeNodes(count: number, zones = 3, prefix = 'node'): NodeInfo[] {
  return Array.from({ length: count }, (_, i) => ({
    id: `${prefix}-${i}`,
    address: `127.0.0.1:${7000 + i}`,
    zone: `zone-${i % zones}`,
  }));
}

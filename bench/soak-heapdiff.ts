/**
 * Compares two V8 heap snapshots (.heapsnapshot, e.g. from the soak's SOAK_SNAPSHOT_AT): the
 * objects of each constructor (or node type, for strings, code, arrays...) by count and self
 * size, and the groups that grew the most between the two.
 *
 * Run: npx tsx soak-heapdiff.ts before.heapsnapshot after.heapsnapshot [rows, default 25]
 */
import { readFileSync } from 'node:fs';

interface Snapshot {
  snapshot: { meta: { node_fields: string[]; node_types: [string[], ...unknown[]] } };
  nodes: number[];
  strings: string[];
}

export interface Group {
  count: number;
  bytes: number;
}

/** Objects grouped by `type:name` (name = constructor for objects, kept only for those). */
export function groups(s: Snapshot): Map<string, Group> {
  const fields = s.snapshot.meta.node_fields;
  const width = fields.length;
  const typeAt = fields.indexOf('type');
  const nameAt = fields.indexOf('name');
  const sizeAt = fields.indexOf('self_size');
  const types = s.snapshot.meta.node_types[0];
  const out = new Map<string, Group>();
  for (let i = 0; i < s.nodes.length; i += width) {
    const type = types[s.nodes[i + typeAt]!]!;
    const named = type === 'object' || type === 'closure' || type === 'native';
    const key = named ? `${type}:${s.strings[s.nodes[i + nameAt]!]}` : type;
    const g = out.get(key) ?? { count: 0, bytes: 0 };
    g.count++;
    g.bytes += s.nodes[i + sizeAt]!;
    out.set(key, g);
  }
  return out;
}

function main(): void {
  const [beforeFile, afterFile, rowsArg] = process.argv.slice(2);
  if (beforeFile === undefined || afterFile === undefined) {
    console.error('usage: tsx soak-heapdiff.ts before.heapsnapshot after.heapsnapshot [rows]');
    process.exit(2);
  }
  const load = (f: string) => groups(JSON.parse(readFileSync(f, 'utf8')) as Snapshot);
  const before = load(beforeFile);
  const after = load(afterFile);
  const total = (m: Map<string, Group>) => [...m.values()].reduce((a, g) => a + g.bytes, 0);
  const keys = new Set([...before.keys(), ...after.keys()]);
  const rows = [...keys].map((k) => {
    const b = before.get(k) ?? { count: 0, bytes: 0 };
    const a = after.get(k) ?? { count: 0, bytes: 0 };
    return { k, count: a.count - b.count, bytes: a.bytes - b.bytes, after: a };
  });
  rows.sort((x, y) => y.bytes - x.bytes);
  console.log(
    `self size: ${(total(before) / 1e6).toFixed(2)} MB → ${(total(after) / 1e6).toFixed(2)} MB`,
  );
  console.log(`${'Δ bytes'.padStart(10)} ${'Δ count'.padStart(8)} ${'count'.padStart(8)}  group`);
  for (const r of rows.slice(0, Number(rowsArg ?? 25))) {
    console.log(
      `${String(r.bytes).padStart(10)} ${String(r.count).padStart(8)} ${String(r.after.count).padStart(8)}  ${r.k}`,
    );
  }
}

if (process.argv[1]?.endsWith('soak-heapdiff.ts')) main();

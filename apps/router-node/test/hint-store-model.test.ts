import { appendFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterEach, describe, expect, it } from 'vitest';
import { fileStem, hintFrameBytes } from '../src/internal/hint-format.js';
import { type Hint, HintStore, type HintStoreOptions } from '../src/internal/hint-store.js';
import { Cleanup, tempDir } from './helpers.js';

const cleanup = new Cleanup();
afterEach(() => cleanup.run());

const NODES = ['a', 'b/../c', 'ü'] as const;
const OPTIONS: HintStoreOptions = {
  maxBytesPerNode: 1_500,
  maxRecordBytes: 400,
  maxAgeMs: 200,
  // small enough that acknowledgements compact often
  compactAtBytes: 100,
};

type Op =
  | { kind: 'append'; node: number; size: number; age: number }
  | { kind: 'appendMany'; nodes: number[]; size: number }
  | { kind: 'ack'; node: number; count: number }
  | { kind: 'expire' }
  | { kind: 'restart'; tornBytes: Uint8Array | undefined; node: number };

const node = fc.integer({ min: 0, max: NODES.length - 1 });
// mostly small, now and then past maxRecordBytes
const size = fc.oneof(
  { arbitrary: fc.integer({ min: 0, max: 80 }), weight: 6 },
  { arbitrary: fc.integer({ min: 300, max: 400 }), weight: 1 },
);
const op: fc.Arbitrary<Op> = fc.oneof(
  {
    arbitrary: fc.record({
      kind: fc.constant('append' as const),
      node,
      size,
      age: fc.integer({ min: 0, max: 250 }),
    }),
    weight: 5,
  },
  {
    arbitrary: fc.record({
      kind: fc.constant('appendMany' as const),
      nodes: fc.array(node, { minLength: 1, maxLength: 12, size: 'max' }),
      size,
    }),
    weight: 2,
  },
  {
    arbitrary: fc.record({
      kind: fc.constant('ack' as const),
      node,
      count: fc.integer({ min: 0, max: 6 }),
    }),
    weight: 3,
  },
  { arbitrary: fc.record({ kind: fc.constant('expire' as const) }), weight: 1 },
  {
    arbitrary: fc.record({
      kind: fc.constant('restart' as const),
      tornBytes: fc.option(fc.uint8Array({ minLength: 1, maxLength: 40 }), { nil: undefined }),
      node,
    }),
    weight: 1,
  },
);

/** The reference: per node, the bodies and ages of what is pending, in order. */
type Model = Map<string, { body: string; createdAtMs: number; bytes: number }[]>;

describe('HintStore against an in-memory model', () => {
  it('agrees with the model over random appends, acks, expiries and restarts', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(op, { maxLength: 40, size: 'max' }), async (ops) => {
        const dir = tempDir(cleanup);
        let now = 1_000;
        let counter = 0;
        const options = { ...OPTIONS, wallClock: { now: () => now } };
        let store = await HintStore.open(dir, options);
        cleanup.add(() => store.close());
        const model: Model = new Map(NODES.map((id) => [id, []]));
        const hintFor = (nodeId: string, size: number, age = 0): Hint => {
          const tag = `#${counter++}:`;
          const body = Buffer.from(tag.padEnd(Math.max(size, tag.length), 'x'));
          return { nodeId, spaceId: 's', path: '/p', body, createdAtMs: now - age };
        };
        const expectStored = (h: Hint, result: string) => {
          const pending = model.get(h.nodeId)!;
          const bytes = hintFrameBytes(h);
          const used = pending.reduce((n, p) => n + p.bytes, 0);
          const fits = bytes <= OPTIONS.maxRecordBytes! && used + bytes <= OPTIONS.maxBytesPerNode!;
          expect(result).toBe(fits ? 'stored' : 'dropped');
          if (fits) pending.push({ body: h.body.toString(), createdAtMs: h.createdAtMs, bytes });
        };

        for (const o of ops) {
          now += 7;
          switch (o.kind) {
            case 'append': {
              const h = hintFor(NODES[o.node]!, o.size, o.age);
              expectStored(h, await store.append(h));
              break;
            }
            case 'appendMany': {
              // Concurrent: the model's order is the call order, whatever batches form.
              const hints = o.nodes.map((n) => hintFor(NODES[n]!, o.size));
              const results = await Promise.all(hints.map((h) => store.append(h)));
              for (const [i, h] of hints.entries()) expectStored(h, results[i]!);
              break;
            }
            case 'ack': {
              const pending = model.get(NODES[o.node]!)!;
              const count = Math.min(o.count, pending.length);
              await store.ack(NODES[o.node]!, count);
              pending.splice(0, count);
              break;
            }
            case 'expire': {
              const cutoff = now - OPTIONS.maxAgeMs!;
              const want = new Map<string, number>();
              for (const [id, pending] of model) {
                let n = 0;
                while (n < pending.length && pending[n]!.createdAtMs < cutoff) n++;
                pending.splice(0, n);
                if (n > 0) want.set(id, n);
              }
              expect(await store.expire()).toEqual(want);
              break;
            }
            case 'restart': {
              await store.close();
              // An append cut short by the crash: never acknowledged, so nothing to keep.
              const path = join(dir, `${fileStem(NODES[o.node]!)}.log`);
              const torn = o.tornBytes !== undefined && existsSync(path);
              if (torn) appendFileSync(path, o.tornBytes!);
              store = await HintStore.open(dir, options);
              const id = NODES[o.node]!;
              expect(store.dropped(id).corruptBytes).toBe(torn ? o.tornBytes!.length : 0);
              break;
            }
          }
          for (const [id, pending] of model) {
            const got = await store.peek(id, 1_000);
            expect(got.map((h) => h.body.toString())).toEqual(pending.map((p) => p.body));
            expect(store.pending(id)).toEqual({
              count: pending.length,
              bytes: pending.reduce((n, p) => n + p.bytes, 0),
            });
          }
          expect(store.nodes().sort()).toEqual(
            [...model]
              .filter(([, p]) => p.length > 0)
              .map(([id]) => id)
              .sort(),
          );
        }
        await store.close();
      }),
      { numRuns: 100 },
    );
  });
});

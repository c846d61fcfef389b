/**
 * The request-bytes hot path, old vs new, side by side in one run (tinybench):
 *  - baseline: commit 66b10a8's readSpaceId (stops at the first field 1) + stampStore;
 *  - ours: proto-reader.ts (whole message validated against the schema, last occurrence wins),
 *    readSpaceId then stampStore on one scan.
 * Run: pnpm --filter @engram/router-node exec tsx bench/proto-reader.ts
 */

import { BenchReport, benchTime, tinybenchRows } from '@engram/bench-kit';
import { MemoryServiceDefinition } from '@engram/proto';
import { Bench } from 'tinybench';
import { REQUEST, readSpaceId, stampStore } from '../src/internal/proto-reader.js';
import * as old from './baseline/wire-66b10a8.js';

const report = new BenchReport('router-node-proto-reader');

function frame(message: Buffer): Buffer {
  const out = Buffer.alloc(5 + message.length);
  out.writeUInt32BE(message.length, 1);
  message.copy(out, 5);
  return out;
}

const embedding = Array.from({ length: 768 }, (_, i) => Math.sin(i) / 2);
const store = frame(
  MemoryServiceDefinition.Store.requestSerialize({
    spaceId: 'alice/episodic',
    memory: {
      content: 'The otter held a smooth stone and tapped it twice on the ice. '.repeat(3),
      embedding,
      confidence: 0.9,
    },
  }),
);
const recallText = frame(
  MemoryServiceDefinition.Recall.requestSerialize({
    spaceId: 'alice/episodic',
    cue: { text: 'otter stone' },
    limit: 5,
  }),
);
const recallEmbedding = frame(
  MemoryServiceDefinition.Recall.requestSerialize({
    spaceId: 'alice/episodic',
    cue: { embedding },
    limit: 5,
  }),
);
const UUID = '123e4567-e89b-12d3-a456-426614174000';
const newId = () => UUID;
const VERSION = 1_764_000_000_123_456;

let sink = 0;
const bench = new Bench({ time: benchTime(1000), warmupTime: benchTime(200, 50) });
bench
  .add(`baseline: readSpaceId + stampStore, ${store.length} B Store (768 floats)`, () => {
    sink += old.readSpaceId(store)!.length + old.stampStore(store, newId, VERSION).length;
  })
  .add(`ours: readSpaceId + stampStore, ${store.length} B Store (768 floats)`, () => {
    sink += readSpaceId(store, REQUEST.store).length + stampStore(store, newId, VERSION).length;
  })
  .add(`baseline: readSpaceId, ${recallText.length} B Recall (text cue)`, () => {
    sink += old.readSpaceId(recallText)!.length;
  })
  .add(`ours: readSpaceId, ${recallText.length} B Recall (text cue)`, () => {
    sink += readSpaceId(recallText, REQUEST.recall).length;
  })
  .add(`baseline: readSpaceId, ${recallEmbedding.length} B Recall (768-float cue)`, () => {
    sink += old.readSpaceId(recallEmbedding)!.length;
  })
  .add(`ours: readSpaceId, ${recallEmbedding.length} B Recall (768-float cue)`, () => {
    sink += readSpaceId(recallEmbedding, REQUEST.recall).length;
  });
await bench.run();
const rows = tinybenchRows(bench);
for (let i = 0; i < rows.length; i += 2) {
  report.table({
    title: rows[i + 1]!.name.replace('ours: ', ''),
    unit: 'ns/op',
    baseline: rows[i]!.name,
    rows: [rows[i]!, rows[i + 1]!],
  });
}
report.write();
if (sink === -1) console.log(sink);

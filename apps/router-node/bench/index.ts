/**
 * Hot-path helpers of the data plane vs the protobuf way (tinybench, one run):
 *  - space_id from a Recall frame: readSpaceId (field-1 scan) vs full protobufjs decode
 *  - RoutingInfo onto a reply: appendRouting (field 15 appended) vs decode + set + encode
 * Run: pnpm --filter @engram/router-node bench
 */

import { BenchReport, benchTime, tinybenchRows } from '@engram/bench-kit';
import { encodeRoutingField, MemoryServiceDefinition } from '@engram/proto';
import { Bench } from 'tinybench';
import { appendRouting, readSpaceId } from '../src/index.js';

const report = new BenchReport('router-node');

function frame(message: Buffer): Buffer {
  const out = Buffer.alloc(5 + message.length);
  out.writeUInt32BE(message.length, 1);
  message.copy(out, 5);
  return out;
}

const recall = MemoryServiceDefinition.Recall;
const small = frame(
  recall.requestSerialize({ spaceId: 'alice/episodic', cue: { text: 'hello' }, limit: 5 }),
);
const large = frame(
  recall.requestSerialize({
    spaceId: 'alice/episodic',
    cue: { text: 'x'.repeat(4096), embedding: Array.from({ length: 768 }, (_, i) => i / 768) },
    limit: 5,
  }),
);
const reply = frame(
  recall.responseSerialize({
    memories: Array.from({ length: 5 }, (_, i) => ({
      memory: { id: `m${i}`, content: `memory number ${i} `.repeat(8), confidence: 0.9 },
      score: 0.5,
    })),
    routing: { servedBy: 'n1', attempts: 1, strategy: 'direct' },
  }),
);
const servedBy = Buffer.from('n2');
const strategy = Buffer.from('PrimaryWithFallback');
const routing = {
  servedBy: 'n2',
  attempts: 2,
  fallback: true,
  strategy: 'PrimaryWithFallback',
  tableEpoch: 7,
};

let sink = 0;
const bench = new Bench({ time: benchTime(500), warmupTime: benchTime(100, 50) });
bench
  .add(`baseline: protobufjs decode, ${small.length} B Recall`, () => {
    sink += (recall.requestDeserialize(small.subarray(5)) as { spaceId: string }).spaceId.length;
  })
  .add(`readSpaceId, ${small.length} B Recall`, () => {
    sink += readSpaceId(small)!.length;
  })
  .add(`baseline: protobufjs decode, ${large.length} B Recall`, () => {
    sink += (recall.requestDeserialize(large.subarray(5)) as { spaceId: string }).spaceId.length;
  })
  .add(`readSpaceId, ${large.length} B Recall`, () => {
    sink += readSpaceId(large)!.length;
  })
  .add(`baseline: decode + set routing + encode, ${reply.length} B reply`, () => {
    const r = recall.responseDeserialize(reply.subarray(5)) as unknown as Record<string, unknown>;
    r.routing = routing;
    sink += frame(recall.responseSerialize(r)).length;
  })
  .add(`baseline: concat encodeRoutingField, ${reply.length} B reply`, () => {
    sink += Buffer.concat([reply, encodeRoutingField(routing)]).length;
  })
  .add(`appendRouting, ${reply.length} B reply`, () => {
    sink += appendRouting(reply, servedBy, 2, true, strategy, 7)!.length;
  });
await bench.run();
const rows = tinybenchRows(bench);
const table = (title: string, part: typeof rows) =>
  report.table({ title, unit: 'ns/op', baseline: part[0]!.name, rows: part });
table(`space_id from a ${small.length} B Recall frame`, rows.slice(0, 2));
table(`space_id from a ${large.length} B Recall frame`, rows.slice(2, 4));
table(`RoutingInfo onto a ${reply.length} B reply`, rows.slice(4));
report.write();
if (sink === -1) console.log(sink);

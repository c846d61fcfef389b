/**
 * Codec cost of a typical RecallResponse (10 memories, 64-dim embeddings) with the
 * proto-loader serializers grpc-js uses, next to JSON as a baseline.
 */
import { BenchReport, benchTime, tinybenchRows } from '@engram/bench-kit';
import { Bench } from 'tinybench';
import { type Init, MemoryServiceDefinition, type RecallResponse } from '../src/index.js';

const response: Init<RecallResponse> = {
  memories: Array.from({ length: 10 }, (_, i) => ({
    memory: {
      id: `n1-deadbeef-${i}`,
      content: `memory number ${i} about alpha beta gamma`,
      embedding: Array.from({ length: 64 }, (_, d) => Math.fround(Math.sin(i + d))),
      confidence: 0.5,
      createdAtMs: 1_700_000_000_000 + i,
    },
    score: 0.9 - i * 0.01,
  })),
  routing: { servedBy: 'n1', attempts: 1, strategy: 'direct' },
};
const report = new BenchReport('proto');
const def = MemoryServiceDefinition.Recall;
const protoBytes = def.responseSerialize(response);
const jsonText = JSON.stringify(response);

const bench = new Bench({ time: benchTime(1000) });
bench
  .add('JSON.stringify', () => JSON.stringify(response))
  .add('protobuf serialize', () => def.responseSerialize(response))
  .add('JSON.parse', () => JSON.parse(jsonText))
  .add('protobuf deserialize', () => def.responseDeserialize(protoBytes));
await bench.run();
report.note(
  `RecallResponse: ${protoBytes.length} B protobuf, ${Buffer.byteLength(jsonText)} B JSON`,
);
const rows = tinybenchRows(bench, 1, 1e3);
report.table({
  title: 'RecallResponse encode (10 memories, 64-dim embeddings)',
  unit: 'µs/op',
  baseline: 'JSON.stringify',
  rows: rows.slice(0, 2),
});
report.table({
  title: 'RecallResponse decode (10 memories, 64-dim embeddings)',
  unit: 'µs/op',
  baseline: 'JSON.parse',
  rows: rows.slice(2),
});
report.write();

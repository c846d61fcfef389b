/**
 * Codec cost of a typical RecallResponse (10 memories, 64-dim embeddings) with the
 * proto-loader serializers grpc-js uses, next to JSON as a baseline.
 */
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
const def = MemoryServiceDefinition.Recall;
const protoBytes = def.responseSerialize(response);
const jsonText = JSON.stringify(response);

const bench = new Bench({ time: 1000 });
bench
  .add('JSON.stringify (baseline)', () => JSON.stringify(response))
  .add('protobuf serialize', () => def.responseSerialize(response))
  .add('JSON.parse (baseline)', () => JSON.parse(jsonText))
  .add('protobuf deserialize', () => def.responseDeserialize(protoBytes));
await bench.run();
console.log(
  `RecallResponse: ${protoBytes.length} B protobuf, ${Buffer.byteLength(jsonText)} B JSON`,
);
console.table(bench.table());

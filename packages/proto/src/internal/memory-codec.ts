import type { MessageTypeDefinition } from '@grpc/proto-loader';
import { packageDefinition } from './load.js';
import type { Init, Memory } from './messages.js';

const memoryType = packageDefinition['engram.v1.Memory'] as MessageTypeDefinition<object, Memory>;

/**
 * Canonical protobuf bytes of a Memory: fields in number order, fields at their default value
 * left out, the embedding packed, which is what a conforming proto3 encoder in any language
 * emits. Replicas compare these bytes to break last-write-wins ties (the larger wins), so
 * equal memories must encode equally wherever they are encoded.
 */
export function encodeMemory(memory: Init<Memory>): Buffer {
  // protobufjs writes a field whenever the property is present, defaults included, so a
  // default is left out of the object rather than passed through. Object.is keeps -0, which
  // proto3 encoders write (its bits are not zero).
  const canonical: Init<Memory> = {};
  if (memory.id) canonical.id = memory.id;
  if (memory.content) canonical.content = memory.content;
  if (memory.embedding !== undefined && memory.embedding.length > 0) {
    canonical.embedding = memory.embedding;
  }
  if (memory.confidence !== undefined && !Object.is(memory.confidence, 0)) {
    canonical.confidence = memory.confidence;
  }
  if (memory.createdAtMs) canonical.createdAtMs = memory.createdAtMs;
  if (memory.version) canonical.version = memory.version;
  return memoryType.serialize(canonical);
}

import { InvalidArgumentError } from '@engram/common';
import type {
  Init,
  Memory,
  MemoryServiceHandlers,
  RoutingInfo,
  SpaceError,
  SpaceResult,
} from '@engram/proto';
import * as grpc from '@grpc/grpc-js';
import type { Logger } from 'pino';
import type { DurableStore } from './durable-store.js';
import { toServiceError } from './service-error.js';
import { type Cue, toMergedGroups } from './store.js';
import {
  resolveLimit,
  resolveThreshold,
  type StoreLimits,
  validateEmbedding,
  validateMemory,
  validateSpaceId,
  validateVersion,
} from './validate.js';
import type { WallClock } from './versions.js';

/** What the MemoryService handlers share with the node. */
export interface MemoryServiceContext {
  readonly limits: StoreLimits;
  readonly durable: DurableStore;
  /** A fresh id for a memory stored without one. */
  readonly assignId: () => string;
  readonly clock: WallClock;
  /** The node answers directly: `served_by` is its id, strategy "direct". */
  readonly routing: Init<RoutingInfo>;
  readonly logger: Logger;
}

function readCue(cue: { text: string; embedding: number[] } | null, limits: StoreLimits): Cue {
  if (cue === null) return { text: '', embedding: [] };
  if (Buffer.byteLength(cue.text) > limits.maxContentBytes) {
    throw new InvalidArgumentError(
      'cue.text',
      cue.text,
      `at most ${limits.maxContentBytes} bytes (UTF-8)`,
    );
  }
  validateEmbedding(cue.embedding, 'cue.embedding', limits);
  return cue;
}

/** `engram.v1.MemoryService` over a node's store: validate, write durably, answer. */
export function memoryServiceHandlers(ctx: MemoryServiceContext): MemoryServiceHandlers {
  const { limits, durable, routing } = ctx;
  const store = durable.store;
  return {
    Store: (call, callback) => {
      const { spaceId } = call.request;
      let memory: Memory;
      try {
        validateSpaceId(spaceId, limits);
        memory = validateMemory(call.request.memory, limits, ctx.assignId, ctx.clock.now(), () =>
          durable.stamper.stamp(),
        );
      } catch (err) {
        callback(toServiceError(err));
        return;
      }
      // A Store that loses to a newer write (or a tombstone) is still answered OK: replays of
      // the same write, by a client or a router's hint, are idempotent.
      durable.put(spaceId, memory).then(
        () => callback(null, { memoryId: memory.id, routing }),
        (err: unknown) => callback(toServiceError(err)),
      );
    },

    Recall: (call, callback) => {
      try {
        const { spaceId } = call.request;
        validateSpaceId(spaceId, limits);
        const cue = readCue(call.request.cue, limits);
        const limit = resolveLimit(call.request.limit, limits);
        callback(null, { memories: store.recall(spaceId, cue, limit), routing });
      } catch (err) {
        callback(toServiceError(err));
      }
    },

    Consolidate: (call, callback) => {
      const { spaceId, version } = call.request;
      let threshold: number;
      try {
        validateSpaceId(spaceId, limits);
        threshold = resolveThreshold(call.request.similarityThreshold, limits);
        validateVersion(version, 'version');
      } catch (err) {
        callback(toServiceError(err));
        return;
      }
      durable.consolidate(spaceId, threshold, version).then(
        (plan) => {
          const merged = toMergedGroups(plan);
          ctx.logger.debug(
            { spaceId, groups: merged.length, version: plan.version },
            'consolidated',
          );
          callback(null, {
            merged,
            memoriesBefore: plan.before,
            memoriesAfter: store.size(spaceId),
            routing,
          });
        },
        (err: unknown) => callback(toServiceError(err)),
      );
    },

    Query: (call, callback) => {
      try {
        const { spaceIds } = call.request;
        if (spaceIds.length === 0) {
          throw new InvalidArgumentError('space_ids', spaceIds, 'a non-empty list');
        }
        if (spaceIds.length > limits.maxQuerySpaces) {
          throw new InvalidArgumentError(
            'space_ids',
            spaceIds,
            `a list of at most ${limits.maxQuerySpaces} space ids`,
          );
        }
        const cue = readCue(call.request.cue, limits);
        const limit = resolveLimit(call.request.limit, limits);
        const results: SpaceResult[] = [];
        const errors: SpaceError[] = [];
        const seen = new Set<string>();
        spaceIds.forEach((spaceId, i) => {
          if (seen.has(spaceId)) return;
          seen.add(spaceId);
          try {
            validateSpaceId(spaceId, limits, `space_ids[${i}]`);
            results.push({ spaceId, memories: store.recall(spaceId, cue, limit) });
          } catch (err) {
            const e = toServiceError(err);
            errors.push({
              spaceId,
              code: e.code ?? grpc.status.INTERNAL,
              message: e.details ?? '',
            });
          }
        });
        callback(null, { results, errors, routing });
      } catch (err) {
        callback(toServiceError(err));
      }
    },
  };
}

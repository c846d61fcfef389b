import type { ReplicaServiceHandlers } from '@engram/proto';
import type { DurableStore } from './durable-store.js';
import { toServiceError } from './service-error.js';
import {
  checkBytes,
  resolvePageLimit,
  type StoreLimits,
  validateEntries,
  validateSpaceId,
} from './validate.js';

/** Page sizes of ReplicaService: what `limit` 0 means, the largest accepted, the byte budget. */
export const REPLICA_PAGE_LIMITS = Object.freeze({
  /** ListSpaces `limit` 0 → this many spaces. */
  defaultListSpaces: 1000,
  /** Largest ListSpaces `limit`; above it is INVALID_ARGUMENT. */
  maxListSpaces: 10_000,
  /** ScanSpace `limit` 0 → this many entries (memories and tombstones together). */
  defaultScanEntries: 500,
  /** Largest ScanSpace `limit`; above it is INVALID_ARGUMENT. */
  maxScanEntries: 5000,
  /**
   * A page stops early (with `more`) once its entries reach about this many bytes: 5000 large
   * memories would exceed grpc's default 4 MiB receive limit of the caller. Always at least one
   * entry, and one memory within the node's limits fits in 4 MiB.
   */
  maxPageBytes: 1024 * 1024, // 1 MiB
} as const);

/** `engram.v1.ReplicaService` over a node's store, for routers streaming and repairing spaces. */
export function replicaServiceHandlers(
  limits: StoreLimits,
  durable: DurableStore,
): ReplicaServiceHandlers {
  const store = durable.store;
  const pages = REPLICA_PAGE_LIMITS;
  return {
    ListSpaces: (call, callback) => {
      try {
        const { after, spaceId } = call.request;
        checkBytes(after, limits.maxSpaceIdBytes, 'after');
        checkBytes(spaceId, limits.maxSpaceIdBytes, 'space_id');
        const limit = resolvePageLimit(
          call.request.limit,
          pages.defaultListSpaces,
          pages.maxListSpaces,
        );
        if (spaceId.length > 0) {
          const digest = store.digest(spaceId);
          callback(null, { spaces: digest === undefined ? [] : [digest], more: false });
          return;
        }
        callback(null, store.listSpaces(after, limit, pages.maxPageBytes));
      } catch (err) {
        callback(toServiceError(err));
      }
    },

    ScanSpace: (call, callback) => {
      try {
        const { spaceId, after } = call.request;
        validateSpaceId(spaceId, limits);
        checkBytes(after, limits.maxIdBytes, 'after');
        const limit = resolvePageLimit(
          call.request.limit,
          pages.defaultScanEntries,
          pages.maxScanEntries,
        );
        callback(null, store.scan(spaceId, after, limit, pages.maxPageBytes));
      } catch (err) {
        callback(toServiceError(err));
      }
    },

    ApplyEntries: (call, callback) => {
      const { spaceId } = call.request;
      let entries: ReturnType<typeof validateEntries>;
      try {
        validateSpaceId(spaceId, limits);
        entries = validateEntries(call.request.memories, call.request.tombstones, limits);
      } catch (err) {
        callback(toServiceError(err));
        return;
      }
      durable.applyEntries(spaceId, entries.memories, entries.tombstones).then(
        (applied) => callback(null, { applied }),
        (err: unknown) => callback(toServiceError(err)),
      );
    },
  };
}

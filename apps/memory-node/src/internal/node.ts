import { randomBytes } from 'node:crypto';
import { formatAddress, InvalidArgumentError, isEngramError } from '@engram/common';
import {
  addHealthService,
  type HealthReporter,
  type Init,
  MEMORY_SERVICE_NAME,
  MemoryServiceDefinition,
  type MemoryServiceHandlers,
  type RoutingInfo,
  type SpaceError,
  type SpaceResult,
} from '@engram/proto';
import * as grpc from '@grpc/grpc-js';
import { type Logger, pino } from 'pino';
import { MEMORY_NODE_ERROR_CODES, StorageFailedError } from './errors.js';
import { AppendLog } from './log.js';
import {
  type Cue,
  DEFAULT_MAX_SPACE_ID_BYTES,
  MemoryStore,
  resolveLimit,
  resolveThreshold,
  type StoreLimits,
  toMergedGroups,
  validateEmbedding,
  validateMemory,
  validateSpaceId,
} from './store.js';

/**
 * Source of wall-clock time (ms since the Unix epoch), injectable for tests. A wall clock on
 * purpose, unlike `@engram/common`'s monotonic `Clock`: it stamps `created_at_ms`, which
 * clients and other nodes read as a date.
 */
export interface WallClock {
  now(): number;
}

/** PEM contents (not paths) of the node's TLS material. */
export interface MemoryNodeTlsOptions {
  cert: string | Buffer;
  key: string | Buffer;
  /** When set, clients must present a certificate signed by this CA. */
  clientCa?: string | Buffer;
}

export interface MemoryNodeOptions {
  /** Node id, reported as `routing.served_by`. Required, non-empty. */
  id: string;
  /** Interface to bind. Default `'127.0.0.1'`. */
  host?: string;
  /** TCP port; 0 picks a free one. Default 0. */
  port?: number;
  /** Zone label (logged and returned). Default `''`. */
  zone?: string;
  /** Directory for the append-only log; absent = memory only. Default none. */
  dataDir?: string;
  /** Max UTF-8 bytes of `memory.content` and `cue.text`. Default 65 536 (64 KiB). */
  maxContentBytes?: number;
  /** Max embedding dimensions. Default 4096. */
  maxEmbeddingDims?: number;
  /** Max UTF-8 bytes of a client-supplied `memory.id`. Default 256. */
  maxIdBytes?: number;
  /**
   * Max UTF-8 bytes of a space id. Default 4096, so any space id the router accepts (up to 1024
   * UTF-16 units, @engram/ring's MAX_SPACE_ID_LENGTH) is accepted, whatever its characters.
   */
  maxSpaceIdBytes?: number;
  /** Recall/Query limit used when the request says 0. Default 10. */
  defaultRecallLimit?: number;
  /** Largest accepted `limit`. Default 1000. */
  maxRecallLimit?: number;
  /** Consolidate threshold used when the request says 0. Default 0.95. */
  defaultSimilarityThreshold?: number;
  /** Max `space_ids` in one Query. Default 256. */
  maxQuerySpaces?: number;
  /** Serve TLS instead of plaintext. Default plaintext. */
  tls?: MemoryNodeTlsOptions;
  /** pino logger. Default: a silent one. */
  logger?: Logger;
  /** Stamps `created_at_ms` when a memory arrives without one. Default `Date` (wall clock). */
  clock?: WallClock;
  /** Graceful shutdown waits this long for in-flight calls, then forces. Default 5000 ms. */
  shutdownTimeoutMs?: number;
}

export const MEMORY_NODE_DEFAULTS = Object.freeze({
  host: '127.0.0.1',
  port: 0,
  zone: '',
  maxContentBytes: 64 * 1024, // 64 KiB
  maxEmbeddingDims: 4096,
  maxIdBytes: 256,
  maxSpaceIdBytes: DEFAULT_MAX_SPACE_ID_BYTES, // 4096: 1024 UTF-16 units of any content
  defaultRecallLimit: 10,
  maxRecallLimit: 1000,
  defaultSimilarityThreshold: 0.95,
  maxQuerySpaces: 256,
  shutdownTimeoutMs: 5000, // 5 s
});

/** A running memory node. */
export interface MemoryNode {
  readonly id: string;
  readonly zone: string;
  readonly host: string;
  readonly port: number;
  /** `host:port`, e.g. `127.0.0.1:43567`. */
  readonly address: string;
  /** Health statuses served by this node ("" and "engram.v1.MemoryService"). */
  readonly health: HealthReporter;
  /** Records replayed from the data dir at start (0 without one). */
  readonly replayedRecords: number;
  /** Stops serving (in-flight calls finish, up to `shutdownTimeoutMs`) and closes the log. Idempotent. */
  close(): Promise<void>;
}

function checkInt(name: string, v: number, min: number, max: number): number {
  if (!Number.isInteger(v) || v < min || v > max) {
    throw new InvalidArgumentError(name, v, `an integer in [${min}, ${max}]`);
  }
  return v;
}

function resolveOptions(options: MemoryNodeOptions) {
  const d = MEMORY_NODE_DEFAULTS;
  if (typeof options.id !== 'string' || options.id.length === 0) {
    throw new InvalidArgumentError('id', options.id, 'a non-empty string');
  }
  const host = options.host ?? d.host;
  if (host.length === 0) throw new InvalidArgumentError('host', host, 'a non-empty host');
  const limits: StoreLimits = {
    maxContentBytes: checkInt(
      'maxContentBytes',
      options.maxContentBytes ?? d.maxContentBytes,
      1,
      3 * 1024 * 1024,
    ),
    maxEmbeddingDims: checkInt(
      'maxEmbeddingDims',
      options.maxEmbeddingDims ?? d.maxEmbeddingDims,
      1,
      65536,
    ),
    maxIdBytes: checkInt('maxIdBytes', options.maxIdBytes ?? d.maxIdBytes, 1, 4096),
    maxSpaceIdBytes: checkInt(
      'maxSpaceIdBytes',
      options.maxSpaceIdBytes ?? d.maxSpaceIdBytes,
      1,
      64 * 1024,
    ),
    maxRecallLimit: checkInt(
      'maxRecallLimit',
      options.maxRecallLimit ?? d.maxRecallLimit,
      1,
      100_000,
    ),
    defaultRecallLimit: 0,
    defaultSimilarityThreshold: options.defaultSimilarityThreshold ?? d.defaultSimilarityThreshold,
    maxQuerySpaces: checkInt(
      'maxQuerySpaces',
      options.maxQuerySpaces ?? d.maxQuerySpaces,
      1,
      100_000,
    ),
  };
  limits.defaultRecallLimit = checkInt(
    'defaultRecallLimit',
    options.defaultRecallLimit ?? d.defaultRecallLimit,
    1,
    limits.maxRecallLimit,
  );
  const t = limits.defaultSimilarityThreshold;
  if (!(t > 0 && t <= 1))
    throw new InvalidArgumentError('defaultSimilarityThreshold', t, 'in (0, 1]');
  if (options.tls !== undefined && (!options.tls.cert || !options.tls.key)) {
    throw new InvalidArgumentError('tls', '<redacted>', 'an object with both cert and key');
  }
  return {
    id: options.id,
    host,
    port: checkInt('port', options.port ?? d.port, 0, 65535),
    zone: options.zone ?? d.zone,
    dataDir: options.dataDir,
    limits,
    tls: options.tls,
    logger: options.logger ?? pino({ level: 'silent' }),
    clock: options.clock ?? Date,
    shutdownTimeoutMs: checkInt(
      'shutdownTimeoutMs',
      options.shutdownTimeoutMs ?? d.shutdownTimeoutMs,
      0,
      600_000,
    ),
  };
}

function toServiceError(err: unknown): Partial<grpc.StatusObject> {
  if (isEngramError(err, MEMORY_NODE_ERROR_CODES.InvalidArgument)) {
    return { code: grpc.status.INVALID_ARGUMENT, details: err.message };
  }
  if (err instanceof StorageFailedError) {
    return { code: grpc.status.INTERNAL, details: err.message };
  }
  return { code: grpc.status.INTERNAL, details: err instanceof Error ? err.message : String(err) };
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

function serverCredentials(tls: MemoryNodeTlsOptions | undefined): grpc.ServerCredentials {
  if (tls === undefined) return grpc.ServerCredentials.createInsecure();
  const ca = tls.clientCa === undefined ? null : Buffer.from(tls.clientCa);
  return grpc.ServerCredentials.createSsl(
    ca,
    [{ cert_chain: Buffer.from(tls.cert), private_key: Buffer.from(tls.key) }],
    ca !== null,
  );
}

/** Starts a memory node serving `engram.v1.MemoryService` and `grpc.health.v1.Health`. */
export async function startMemoryNode(options: MemoryNodeOptions): Promise<MemoryNode> {
  const o = resolveOptions(options);
  const { limits, logger, clock } = o;
  const store = new MemoryStore();
  // Ids are `<node>-<boot tag>-<counter>`: the random boot tag keeps them unique across restarts.
  const bootTag = randomBytes(4).toString('hex');
  let counter = 0;
  const assignId = () => `${o.id}-${bootTag}-${(++counter).toString(36)}`;

  let log: AppendLog | undefined;
  let replayedRecords = 0;
  if (o.dataDir !== undefined) {
    const opened = await AppendLog.open(o.dataDir);
    log = opened.log;
    for (const r of opened.replay.records) {
      if (r.t === 'store') store.put(r.s, r.m);
      else store.applyMerge(r.s, r.g);
    }
    replayedRecords = opened.replay.records.length;
    if (opened.replay.droppedBytes > 0) {
      logger.warn(
        { path: log.path, droppedBytes: opened.replay.droppedBytes },
        'truncated a torn record at the end of the log',
      );
    }
  }

  const routing: Init<RoutingInfo> = Object.freeze({
    servedBy: o.id,
    attempts: 1,
    fallback: false,
    strategy: 'direct',
    tableEpoch: 0,
  });

  let health: HealthReporter | undefined;
  const onStorageFailure = (err: unknown) => {
    if (err instanceof StorageFailedError) {
      logger.error({ err }, 'log write failed; refusing writes');
      health?.setStatus('', 'NOT_SERVING');
      health?.setStatus(MEMORY_SERVICE_NAME, 'NOT_SERVING');
    }
  };

  // Consolidations run one at a time so each plans on the result of the previous one.
  let consolidating: Promise<unknown> = Promise.resolve();

  const handlers: MemoryServiceHandlers = {
    Store: (call, callback) => {
      const { spaceId } = call.request;
      let memory: ReturnType<typeof validateMemory>;
      try {
        validateSpaceId(spaceId, limits);
        memory = validateMemory(call.request.memory, limits, assignId, clock.now());
      } catch (err) {
        callback(toServiceError(err));
        return;
      }
      const apply = () => store.put(spaceId, memory);
      if (log === undefined) {
        apply();
        callback(null, { memoryId: memory.id, routing });
        return;
      }
      log.append({ t: 'store', s: spaceId, m: memory }, apply).then(
        () => callback(null, { memoryId: memory.id, routing }),
        (err: unknown) => {
          onStorageFailure(err);
          callback(toServiceError(err));
        },
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
      const { spaceId } = call.request;
      let threshold: number;
      try {
        validateSpaceId(spaceId, limits);
        threshold = resolveThreshold(call.request.similarityThreshold, limits);
      } catch (err) {
        callback(toServiceError(err));
        return;
      }
      const run = async () => {
        const plan = store.planMerge(spaceId, threshold);
        const apply = () => store.applyMerge(spaceId, plan.groups);
        if (plan.groups.length > 0) {
          if (log === undefined) apply();
          else await log.append({ t: 'merge', s: spaceId, g: plan.groups }, apply);
        }
        return plan;
      };
      const done = consolidating.then(run);
      consolidating = done.catch(() => undefined);
      done.then(
        (plan) => {
          const merged = toMergedGroups(plan);
          logger.debug({ spaceId, groups: merged.length }, 'consolidated');
          callback(null, {
            merged,
            memoriesBefore: plan.before,
            memoriesAfter: store.size(spaceId),
            routing,
          });
        },
        (err: unknown) => {
          onStorageFailure(err);
          callback(toServiceError(err));
        },
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

  const server = new grpc.Server();
  server.addService(MemoryServiceDefinition, handlers);
  health = addHealthService(server, { '': 'SERVING', [MEMORY_SERVICE_NAME]: 'SERVING' });

  let port: number;
  try {
    port = await new Promise<number>((resolve, reject) =>
      server.bindAsync(formatAddress(o.host, o.port), serverCredentials(o.tls), (err, p) =>
        err ? reject(err) : resolve(p),
      ),
    );
  } catch (err) {
    server.forceShutdown();
    await log?.close();
    throw err;
  }
  const address = formatAddress(o.host, port);
  logger.info(
    {
      id: o.id,
      zone: o.zone,
      address,
      tls: o.tls !== undefined,
      dataDir: o.dataDir,
      replayedRecords,
    },
    'memory node listening',
  );

  let closing: Promise<void> | undefined;
  const close = (): Promise<void> => {
    closing ??= (async () => {
      health?.shutdown();
      await new Promise<void>((resolve) => {
        const timer = setTimeout(() => {
          logger.warn('graceful shutdown timed out; forcing');
          server.forceShutdown();
          resolve();
        }, o.shutdownTimeoutMs);
        server.tryShutdown(() => {
          clearTimeout(timer);
          resolve();
        });
      });
      await log?.close();
      logger.info({ id: o.id }, 'memory node stopped');
    })();
    return closing;
  };

  return { id: o.id, zone: o.zone, host: o.host, port, address, health, replayedRecords, close };
}

import { randomBytes } from 'node:crypto';
import { formatAddress, InvalidArgumentError } from '@engram/common';
import {
  addHealthService,
  type HealthReporter,
  type Init,
  MEMORY_SERVICE_NAME,
  MemoryServiceDefinition,
  REPLICA_SERVICE_NAME,
  ReplicaServiceDefinition,
  type RoutingInfo,
} from '@engram/proto';
import * as grpc from '@grpc/grpc-js';
import { type Logger, pino } from 'pino';
import { DurableStore, replayRecords } from './durable-store.js';
import type { StorageFailedError } from './errors.js';
import { type FaultAdmin, startFaultAdmin } from './fault-admin.js';
import { faultInterceptor } from './fault-interceptor.js';
import {
  type FaultControl,
  FaultInjector,
  type FaultUpdate,
  validateFaultUpdate,
} from './faults.js';
import { AppendLog } from './log.js';
import { memoryServiceHandlers } from './memory-service.js';
import { replicaServiceHandlers } from './replica-service.js';
import { MemoryStore } from './store.js';
import { DEFAULT_MAX_SPACE_ID_BYTES, type StoreLimits } from './validate.js';
import { VersionStamper, type WallClock } from './versions.js';

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
  /**
   * Stamps `created_at_ms` and the version (in µs) of a write that arrives without them.
   * Default `Date` (wall clock).
   */
  clock?: WallClock;
  /** Graceful shutdown waits this long for in-flight calls, then forces. Default 5000 ms. */
  shutdownTimeoutMs?: number;
  /**
   * Turns fault injection on, with these faults from the start (`{}`: none yet; see
   * `FaultSettings`); `MemoryNode.faults` and the admin endpoint change them at runtime.
   * Default off: no interceptor at all, as it costs every call (4–7 µs of CPU, 5–8% of a
   * Recall, measured side by side).
   */
  faults?: FaultUpdate;
  /**
   * Serve the HTTP admin endpoint (`GET`/`PUT /faults`) on this address; port 0 picks a free
   * one. Turns fault injection on (with `faults`, or none yet). Default none.
   */
  admin?: { host: string; port: number };
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
  /** Health statuses served by this node ("", "engram.v1.MemoryService", "engram.v1.ReplicaService"). */
  readonly health: HealthReporter;
  /** Records replayed from the data dir at start (0 without one). */
  readonly replayedRecords: number;
  /** The injected faults, read and changed at runtime; undefined unless `faults` or `admin` was given. */
  readonly faults: FaultControl | undefined;
  /** The admin endpoint, when `admin` was given: its bound port and `host:port`. */
  readonly admin: { readonly port: number; readonly address: string } | undefined;
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
  const admin = options.admin;
  if (admin !== undefined) {
    if (typeof admin.host !== 'string' || admin.host.length === 0) {
      throw new InvalidArgumentError('admin.host', admin.host, 'a non-empty host');
    }
    checkInt('admin.port', admin.port, 0, 65535);
  }
  return {
    id: options.id,
    host,
    faults:
      options.faults === undefined && admin === undefined
        ? undefined
        : validateFaultUpdate(options.faults ?? {}, (key) =>
            key === undefined ? 'faults' : `faults.${key}`,
          ),
    admin,
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

function serverCredentials(tls: MemoryNodeTlsOptions | undefined): grpc.ServerCredentials {
  if (tls === undefined) return grpc.ServerCredentials.createInsecure();
  const ca = tls.clientCa === undefined ? null : Buffer.from(tls.clientCa);
  return grpc.ServerCredentials.createSsl(
    ca,
    [{ cert_chain: Buffer.from(tls.cert), private_key: Buffer.from(tls.key) }],
    ca !== null,
  );
}

/**
 * Starts a memory node serving `engram.v1.MemoryService`, `engram.v1.ReplicaService` and
 * `grpc.health.v1.Health` on one port.
 */
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
    replayRecords(store, opened.replay.records);
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

  const faults = o.faults === undefined ? undefined : new FaultInjector(o.faults);
  const server = new grpc.Server(
    faults === undefined ? {} : { interceptors: [faultInterceptor(faults)] },
  );
  const health = addHealthService(server, {
    '': 'SERVING',
    [MEMORY_SERVICE_NAME]: 'SERVING',
    [REPLICA_SERVICE_NAME]: 'SERVING',
  });
  const onStorageFailure = (err: StorageFailedError) => {
    logger.error({ err }, 'log write failed; refusing writes');
    for (const service of ['', MEMORY_SERVICE_NAME, REPLICA_SERVICE_NAME]) {
      health.setStatus(service, 'NOT_SERVING');
    }
  };
  const durable = new DurableStore(store, new VersionStamper(clock), log, onStorageFailure);
  server.addService(
    MemoryServiceDefinition,
    memoryServiceHandlers({ limits, durable, assignId, clock, routing, logger }),
  );
  server.addService(ReplicaServiceDefinition, replicaServiceHandlers(limits, durable));

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
  let admin: FaultAdmin | undefined;
  if (o.admin !== undefined && faults !== undefined) {
    try {
      admin = await startFaultAdmin(faults, o.admin.host, o.admin.port, logger);
    } catch (err) {
      server.forceShutdown();
      await log?.close();
      throw err;
    }
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
      admin: admin?.address,
      faults: faults?.state(),
    },
    'memory node listening',
  );

  let closing: Promise<void> | undefined;
  const close = (): Promise<void> => {
    closing ??= (async () => {
      await admin?.close();
      // The node is going: a call held by `hang` goes on, to end with the others below.
      faults?.releaseHeld();
      health.shutdown();
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

  return {
    id: o.id,
    zone: o.zone,
    host: o.host,
    port,
    address,
    health,
    replayedRecords,
    faults,
    admin: admin === undefined ? undefined : { port: admin.port, address: admin.address },
    close,
  };
}

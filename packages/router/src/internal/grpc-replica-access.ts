import { type ConnectionPool, UnknownNodeError } from '@engram/pool';
import {
  type Memory,
  ReplicaServiceDefinition,
  type SpaceDigest,
  type Tombstone,
  type TypedMethodDefinition,
} from '@engram/proto';
import type { NodeInfo } from '@engram/ring';
import * as grpc from '@grpc/grpc-js';
import { ReplicaServiceMissingError } from './errors.js';
import type { ReplicaAccess, ScanPage } from './repair.js';

/** Deadline of one replica call (a page of a scan, one batch applied). */
export const REPLICA_CALL_TIMEOUT_MS = 30 * 1000; // 30 s

/**
 * `engram.v1.ReplicaService` over grpc-js clients of a connection pool (nodes registered on
 * first use), for repair, streaming and hint-free copies. One call per operation, no retries:
 * the callers (repair, streaming) are idempotent and try again as a whole. A node answering
 * UNIMPLEMENTED (no ReplicaService) fails with `ReplicaServiceMissingError`.
 */
export class GrpcReplicaAccess implements ReplicaAccess {
  readonly #pool: () => ConnectionPool;
  readonly #timeoutMs: number;

  constructor(pool: () => ConnectionPool, timeoutMs = REPLICA_CALL_TIMEOUT_MS) {
    this.#pool = pool;
    this.#timeoutMs = timeoutMs;
  }

  async digest(node: NodeInfo, spaceId: string): Promise<SpaceDigest | undefined> {
    const res = await this.#call(node, ReplicaServiceDefinition.ListSpaces, {
      spaceId,
      limit: 1,
    });
    return res.spaces.find((s) => s.spaceId === spaceId);
  }

  listSpaces(node: NodeInfo, after: string, limit: number) {
    return this.#call(node, ReplicaServiceDefinition.ListSpaces, { after, limit });
  }

  scan(node: NodeInfo, spaceId: string, after: string, limit: number): Promise<ScanPage> {
    return this.#call(node, ReplicaServiceDefinition.ScanSpace, { spaceId, after, limit });
  }

  async apply(
    node: NodeInfo,
    spaceId: string,
    memories: readonly Memory[],
    tombstones: readonly Tombstone[],
  ): Promise<number> {
    const res = await this.#call(node, ReplicaServiceDefinition.ApplyEntries, {
      spaceId,
      memories,
      tombstones,
    });
    return res.applied;
  }

  #call<Req, Res>(node: NodeInfo, method: TypedMethodDefinition<Req, Res>, request: unknown) {
    const pool = this.#pool();
    let slot = pool.slotOf(node.id);
    if (slot < 0) slot = pool.addNode(node.id, node.address);
    let client: grpc.Client;
    try {
      client = pool.acquireClient(slot);
    } catch (error) {
      if (!(error instanceof UnknownNodeError)) return Promise.reject(error);
      client = pool.acquireClient(pool.addNode(node.id, node.address));
    }
    return new Promise<Res>((resolve, reject) => {
      client.makeUnaryRequest<unknown, Res>(
        method.path,
        method.requestSerialize as (value: unknown) => Buffer,
        method.responseDeserialize,
        request,
        new grpc.Metadata(),
        { deadline: Date.now() + this.#timeoutMs },
        (error, response) => {
          if (error === null) resolve(response as Res);
          else if (error.code === grpc.status.UNIMPLEMENTED) {
            reject(new ReplicaServiceMissingError(node.id, method.path, { cause: error }));
          } else reject(error);
        },
      );
    });
  }
}

import type { ConnectionPool } from '@engram/pool';
import { MemoryServiceDefinition, type QueryResponse, type RecallResponse } from '@engram/proto';
import {
  copyExecuteOptions,
  type ExecuteOptions,
  type ExecuteOptionsCopy,
  LagTable,
  type QuorumReadOptions,
  RECALL_MERGE,
  type ReadMerge,
  type Routed,
  type Router,
  type RoutingDecision,
  singleSpaceQueryMerge,
  type WriteObserver,
} from '@engram/router';
import {
  type AttemptObserver,
  type ClientCall,
  forward,
  forwardTo,
  type Reply,
} from './forward.js';
import { FRAME_HEADER_BYTES, frameMessage } from './wire.js';

/** A write a replica missed, as the data plane hands it to the control plane's hint store. */
export interface HintRequest {
  readonly nodeId: string;
  readonly spaceId: string;
  /** gRPC method path, e.g. `/engram.v1.MemoryService/Store`. */
  readonly path: string;
  /** The exact request frame the replica should have received (id and version stamped). */
  readonly body: Buffer;
}

/**
 * Where hints go: the control plane, which writes them durably (and counts them in the lag
 * table) before the promise resolves. A worker reaches it by message, the main thread directly.
 */
export interface HintSink {
  add(hint: HintRequest): Promise<void>;
}

/**
 * A Store replicated to every replica of the space (the Router's `replicate`), the same request
 * bytes to each. Replica writes are not tied to the client's stream: a client that goes away
 * does not cancel them, so the replicas stay in step. A replica acknowledged after the client
 * raises the shared lag table until it lands; one that missed the write gets a hint.
 */
export function replicatedStore(
  router: Router,
  pool: ConnectionPool,
  hints: HintSink,
  decision: RoutingDecision,
  headers: string[],
  path: string,
  body: Buffer,
  options: ExecuteOptions,
  answered: (nodeId: string) => void,
  attempted?: AttemptObserver,
): Promise<Routed<Reply>> {
  const lag = router.lag;
  const bucket = LagTable.bucketOf(decision.spaceId);
  const observer: WriteObserver = {
    lagging: (node) => lag.add(router.slotOf(node), bucket, 1),
    settled: (node) => lag.add(router.slotOf(node), bucket, -1),
    missed: (node, spaceId) => hints.add({ nodeId: node.id, spaceId, path, body }),
  };
  // Copied field by field, not spread (`copyExecuteOptions`: a spread costs ~1 µs a call).
  const perWrite: ExecuteOptionsCopy & { observer?: WriteObserver } = copyExecuteOptions(options);
  perWrite.observer = observer;
  return router.replicateSettled<Reply>(
    decision,
    (ctx, settle) => forwardTo(pool, ctx, headers, body, detached(), settle, answered, attempted),
    perWrite,
  );
}

/** The client side of a replica write: never cancelled by the client. */
function detached(): ClientCall {
  return { gone: false, upstream: null, children: null };
}

/**
 * A ReadMerge over forwarded replies: each decoded with `def`, merged by `merge` (the
 * Router's), re-encoded as one reply without the nodes' RoutingInfo (the router appends its
 * own). A replica's non-OK answer (about the request) is passed on as is.
 */
function decodedReplyMerge<Res extends { routing?: unknown }>(
  def: { responseDeserialize(b: Buffer): unknown; responseSerialize(v: Res): Buffer },
  merge: ReadMerge<Res>,
): ReadMerge<Reply> {
  return Object.freeze({
    merge(values: readonly Reply[]) {
      const failed = values.find((v) => v.status !== 0 || v.body.length < FRAME_HEADER_BYTES);
      if (failed !== undefined) return { value: failed, diverged: false };
      const decoded = values.map(
        (v) => def.responseDeserialize(v.body.subarray(FRAME_HEADER_BYTES)) as Res,
      );
      const { value, diverged } = merge.merge(decoded);
      const body = frameMessage(def.responseSerialize({ ...value, routing: null }));
      return { value: { ...values[0]!, body }, diverged };
    },
  });
}

/** Recall answers of a quorum read merged (the Router's RECALL_MERGE). */
export const RECALL_REPLY_MERGE: ReadMerge<Reply> = decodedReplyMerge<RecallResponse>(
  MemoryServiceDefinition.Recall,
  RECALL_MERGE,
);

/** One space's Query answers of a quorum read merged (the Router's singleSpaceQueryMerge). */
export const QUERY_REPLY_MERGE: ReadMerge<Reply> = decodedReplyMerge<QueryResponse>(
  MemoryServiceDefinition.Query,
  singleSpaceQueryMerge,
);

/** `options` and a read repair's hook, as a quorum read takes them (copied, not spread). */
export function withDivergence(
  options: ExecuteOptions,
  onDivergence: (spaceId: string) => void,
): QuorumReadOptions {
  const perRead: ExecuteOptionsCopy & { onDivergence?: (spaceId: string) => void } =
    copyExecuteOptions(options);
  perRead.onDivergence = onDivergence;
  return perRead;
}

/** A quorum Recall over forwarded bytes, the client's call cancelling every replica's. */
export function quorumRecall(
  router: Router,
  pool: ConnectionPool,
  decision: RoutingDecision,
  headers: string[],
  body: Buffer,
  call: ClientCall,
  options: ExecuteOptions,
  answered: (nodeId: string) => void,
  onDivergence: (spaceId: string) => void,
  observer?: AttemptObserver,
): Promise<Routed<Reply>> {
  const subs: ClientCall[] = [];
  call.children = subs;
  return router.readQuorum(
    decision,
    (ctx) => {
      const sub: ClientCall = { gone: call.gone, upstream: null, children: null };
      subs.push(sub);
      return forward(pool, ctx, headers, body, sub, answered, observer);
    },
    RECALL_REPLY_MERGE,
    withDivergence(options, onDivergence),
  );
}

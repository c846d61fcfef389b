import type { H2Stream } from '@engram/h2';
import type { ConnectionPool } from '@engram/pool';
import { MemoryServiceDefinition, type QueryRequest, type QueryResponse } from '@engram/proto';
import { Deadline } from '@engram/retry';
import {
  copyExecuteOptions,
  type ExecuteOptions,
  gather,
  type Routed,
  type Router,
  type RoutingDecision,
  type RoutingInfo,
  type SpaceAnswer,
} from '@engram/router';
import { GRPC_STATUS, RouteError } from './errors.js';
import { type AttemptObserver, type ClientCall, forward, safeDecode } from './forward.js';
import { QUERY_REPLY_MERGE, withDivergence } from './replicated.js';
import type { Replies } from './reply.js';
import { FRAME_HEADER_BYTES, frameMessage, headerValue, readQuerySpaceIds } from './wire.js';

const Query = MemoryServiceDefinition.Query;

function malformed(what: string): RouteError {
  return new RouteError('InvalidArgument', GRPC_STATUS.INVALID_ARGUMENT, `malformed ${what}`);
}

/**
 * Query over many spaces (`body`: the request frame, uncompressed): one sub-query per distinct space, each routed by its own
 * ScatterGather decision (fallback per space) under the call's one deadline; the Router's
 * `gather` merges partial results and per-space errors; with `readConsistency: quorum` each
 * space is a quorum read like a Recall's. Decoding QueryRequest/Response is fine here: not
 * the hot path. Resolves with the merged RoutingInfo once the reply is sent.
 */
export async function scatterGather(
  router: Router,
  pool: ConnectionPool,
  replies: Replies,
  stream: H2Stream,
  fwd: string[],
  body: Buffer,
  options: ExecuteOptions & { deadlineMs: number },
  call: ClientCall,
  /** After a quorum read whose replicas differed: repair the space. */
  onDivergence: (spaceId: string) => void,
  /** Hears how each attempt to a node ended (per-node metrics). */
  observer?: AttemptObserver,
): Promise<RoutingInfo> {
  // The reader validates the message as the node will decode its sub-queries' source and
  // gives the space ids (MalformedMessageError otherwise); cue and limit come from the decode.
  const spaces = [...new Set(readQuerySpaceIds(body))];
  let request: QueryRequest;
  try {
    request = Query.requestDeserialize(body.subarray(FRAME_HEADER_BYTES)) as QueryRequest;
  } catch {
    throw malformed('QueryRequest');
  }
  if (spaces.length === 0) {
    throw new RouteError('InvalidArgument', GRPC_STATUS.INVALID_ARGUMENT, 'space_ids is empty');
  }
  // Every id is checked first: one bad id is InvalidArgument for the whole call.
  for (const spaceId of spaces) router.checkSpaceId(spaceId, 'space_ids[]');
  const decisions = spaces.map((spaceId): RoutingDecision | Error => {
    try {
      return router.routeDistributedQuery([spaceId])[0]!;
    } catch (err) {
      return err as Error;
    }
  });
  const perSpace = copyExecuteOptions(options);
  perSpace.deadline = Deadline.after(options.deadlineMs);
  const subs: ClientCall[] = [];
  call.children = subs;
  const epochs: number[] = [];
  const settled = await Promise.allSettled(
    spaces.map(async (spaceId, i): Promise<Routed<SpaceAnswer>> => {
      const d = decisions[i]!;
      if (d instanceof Error) throw d;
      epochs.push(d.epoch);
      const sub = frameMessage(
        Query.requestSerialize({ spaceIds: [spaceId], cue: request.cue, limit: request.limit }),
      );
      const headers = fwd.slice();
      // Each space its own upstream slot; the client's close cancels every one.
      const subCall: ClientCall = { gone: false, upstream: null, children: null };
      subs.push(subCall);
      // Each space read as a Recall is (readConsistency): one replica, or a quorum merged.
      const { value, routing } = router.readsQuorum(d)
        ? await router.readQuorum(
            d,
            (ctx) => {
              const replica: ClientCall = { gone: subCall.gone, upstream: null, children: null };
              subs.push(replica);
              return forward(pool, ctx, headers, sub, replica, undefined, observer);
            },
            QUERY_REPLY_MERGE,
            withDivergence(perSpace, onDivergence),
          )
        : await router.execute(
            d,
            (ctx) => forward(pool, ctx, headers, sub, subCall, undefined, observer),
            perSpace,
          );
      if (value.status !== 0) {
        const m = headerValue(value.trailers, 'grpc-message');
        const error = {
          spaceId,
          code: value.status,
          message: m === undefined ? '' : safeDecode(m),
        };
        return { value: { results: [], errors: [error] }, routing };
      }
      const res = Query.responseDeserialize(value.body.subarray(FRAME_HEADER_BYTES));
      return { value: res as QueryResponse, routing };
    }),
  );
  if (call.gone)
    throw new RouteError('Cancelled', GRPC_STATUS.CANCELLED, 'cancelled by the client');
  const merged = gather(spaces, settled, epochs, router.table.epoch);
  replies.sendMessage(stream, frameMessage(Query.responseSerialize(merged)), merged.routing);
  return merged.routing;
}

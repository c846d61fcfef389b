import { Buffer } from 'node:buffer';
import { CLOSE, H2_ERROR, type H2Stream, type StreamHandler } from '@engram/h2';
import type { ConnectionPool } from '@engram/pool';
import {
  type AttemptSettle,
  addCancelListener,
  attemptDeadlineAt,
  type CallContext,
  type CancelListener,
  isNodeFailureStatus,
  removeCancelListener,
} from '@engram/router';
import { inflateReply } from './compression.js';
import { GRPC_STATUS } from './errors.js';
import { AUTHORITY_AT, TIMEOUT_AT } from './upstream-headers.js';
import { formatGrpcTimeout, headerValue } from './wire.js';

/** What one attempt got back from a node. */
export interface Reply {
  /** The node's gRPC status (0 = OK). */
  status: number;
  /** Response headers (`[name, value, …]`), to pass through grpc-encoding. Read-only (shared). */
  headers: readonly string[];
  /** Trailers (or the headers of a trailers-only reply). Read-only (shared). */
  trailers: readonly string[];
  body: Buffer;
}

/** The client side of one routed call: whether the client went away, and the attempt in flight. */
export interface ClientCall {
  gone: boolean;
  upstream: H2Stream | null;
  /** Per-space sub-calls of a scatter-gather. */
  children: ClientCall[] | null;
}

/** The client left: resets the attempt in flight and every sub-call's. */
export function cancelCall(call: ClientCall): void {
  call.gone = true;
  const up = call.upstream;
  if (up !== null && !up.closed) up.reset(H2_ERROR.CANCEL);
  if (call.children !== null) for (const c of call.children) cancelCall(c);
}

/**
 * A failed attempt, shaped like a grpc-js error (`code` = gRPC status, `metadata.get` for
 * `grpc-retry-pushback-ms`) so the Router's policy classifies it as it does grpc-js errors.
 */
export class UpstreamError extends Error {
  readonly metadata: { get(key: string): string[] };
  constructor(
    readonly code: number,
    readonly details: string,
    readonly nodeId: string,
    trailers: readonly string[] = NO_TRAILERS,
  ) {
    super(details);
    this.metadata = {
      get: (key) => {
        const v = headerValue(trailers, key);
        return v === undefined ? [] : [v];
      },
    };
  }
}

const NO_TRAILERS: readonly string[] = Object.freeze([]);
/**
 * Largest message a compressed reply may inflate to. grpc-js nodes never compress replies
 * (grpc-js 1.14 writes flag 0 whatever the client accepts); another server might, and the
 * router must inflate to append RoutingInfo. 64 MiB: well past any client's receive limit
 * (4 MiB by default), so only a broken reply hits it.
 */
export const MAX_INFLATED_REPLY_BYTES = 64 * 1024 * 1024; // 64 MiB
const EMPTY = Buffer.alloc(0);

/**
 * How an attempt counts for outlier detection: the node `answered`, the attempt `failed` on the
 * node, or it says nothing of the node (`unjudged`: never sent, cancelled by the router, ended
 * by the caller's own deadline). See `attemptVerdict`.
 */
export type AttemptVerdict = 'answered' | 'failed' | 'unjudged';

/**
 * Hears of every attempt sent to a node: `started` as it is sent (before the pool is asked for
 * a connection), then exactly once `ended` with the token `started` returned, its gRPC status
 * (see `attemptStatus`; the metric's label), its time from sending to the end, in seconds, and
 * how it counts against the node (`attemptVerdict`; the outlier detector's input). Must not
 * throw.
 */
export interface AttemptObserver {
  started(nodeId: string): number;
  ended(token: number, grpcStatus: number, seconds: number, verdict: AttemptVerdict): void;
}

/**
 * Whether an attempt's recorded status is evidence against its node (outlier detection): a
 * node-failure status, no reply at all (UNAVAILABLE), or no reply in time (DEADLINE_EXCEEDED).
 * CANCELLED (the router gave the attempt up) is neither a failure nor an answer; every other
 * status is an answer. RESOURCE_EXHAUSTED counts as an answer: whether it came with pushback
 * is not kept in the counters.
 */
export function isFailedAttempt(status: number): boolean {
  return status === GRPC_STATUS.DEADLINE_EXCEEDED || isNodeFailureStatus(status, false);
}

/**
 * How an attempt that was sent and ended with `status` (a reply's, or `attemptStatus`) counts
 * against its node: CANCELLED says nothing of it; DEADLINE_EXCEEDED counts only when the
 * deadline the attempt was sent with was the router's own attempt timeout (earlier than the
 * call's deadline): a caller that asks for 20 ms of a node that answers in 30 ms learns that
 * its deadline is short, not that the node is unwell. Any other failed status
 * (`isFailedAttempt`) is a failure, the rest answers. (An attempt never sent, the pool having no
 * usable connection, is `unjudged` too: `forward` says so without asking this.)
 */
export function attemptVerdict(ctx: CallContext, status: number): AttemptVerdict {
  if (status === GRPC_STATUS.CANCELLED) return 'unjudged';
  if (status === GRPC_STATUS.DEADLINE_EXCEEDED) {
    return attemptDeadlineAt(ctx) < ctx.deadline.at ? 'failed' : 'unjudged';
  }
  return isFailedAttempt(status) ? 'failed' : 'answered';
}

/** `decodeURIComponent` that keeps malformed percent-encoding as it came. */
export function safeDecode(v: string): string {
  try {
    return decodeURIComponent(v);
  } catch {
    return v;
  }
}

/**
 * One attempt's upstream stream: collects the node's reply and settles the attempt. A status
 * the Router's policy counts against the node (`isNodeFailureStatus`) rejects, so the Router
 * retries or counts it; any other complete reply resolves and is passed to the client as is.
 * Also the attempt's cancel listener: a cancelled attempt resets its stream.
 */
class Attempt implements StreamHandler, CancelListener {
  headers: readonly string[] | null = null;
  trailers: readonly string[] | null = null;
  /** The upstream stream, once sent (then the attempt listens for its cancellation). */
  up: H2Stream | null = null;
  /** The reply's body: its first chunk (most replies have one), then any more. */
  #first: Buffer | null = null;
  #more: Buffer[] | null = null;
  #size = 0;

  constructor(
    readonly nodeId: string,
    readonly call: ClientCall,
    readonly settle: AttemptSettle<Reply>,
    readonly answered: ((nodeId: string) => void) | undefined,
    readonly ctx: CallContext,
    readonly observer: AttemptObserver | undefined,
    readonly token: number,
    readonly started: number,
  ) {}

  /** Tells the observer how this attempt ended. */
  #observe(status: number): void {
    const o = this.observer;
    if (o === undefined) return;
    o.ended(
      this.token,
      status,
      (this.ctx.deadline.clock.now() - this.started) / 1000,
      attemptVerdict(this.ctx, status),
    );
  }

  onHeaders(_s: H2Stream, h: readonly string[], end: boolean): void {
    if (this.headers === null) {
      this.headers = h;
      if (end) this.trailers = h; // trailers-only reply
    } else this.trailers = h;
  }

  onData(_s: H2Stream, chunk: Buffer): void {
    if (chunk.length === 0) return;
    if (this.#first === null) this.#first = chunk;
    else if (this.#more === null) this.#more = [this.#first, chunk];
    else this.#more.push(chunk);
    this.#size += chunk.length;
  }

  attemptCancelled(): void {
    const up = this.up;
    if (up !== null && !up.closed) up.reset(H2_ERROR.CANCEL);
  }

  onClose(s: H2Stream, code: number): void {
    if (this.up !== null) removeCancelListener(this.ctx, this);
    const call = this.call;
    if (call.upstream === s) call.upstream = null;
    const nodeId = this.nodeId;
    if (call.gone) {
      this.#observe(GRPC_STATUS.CANCELLED);
      this.settle.reject(
        new UpstreamError(GRPC_STATUS.CANCELLED, 'cancelled by the client', nodeId),
      );
      return;
    }
    const t = this.trailers;
    // A complete reply (headers and trailers) stands whatever ended the stream after it: a
    // node may stop an upload it no longer needs with RST_STREAM once it has answered.
    if (this.headers === null || t === null) {
      const why =
        code === CLOSE.CONNECTION_LOST
          ? 'connection lost'
          : code >= 0
            ? `stream reset (code ${code})`
            : 'stream closed without a reply';
      this.#observe(attemptStatus(this.ctx));
      this.settle.reject(
        new UpstreamError(GRPC_STATUS.UNAVAILABLE, `node ${nodeId}: ${why}`, nodeId),
      );
      return;
    }
    const raw = headerValue(t, 'grpc-status');
    const status = raw === undefined ? GRPC_STATUS.UNKNOWN : Number(raw);
    this.#observe(status);
    if (
      status !== 0 &&
      isNodeFailureStatus(status, headerValue(t, 'grpc-retry-pushback-ms') !== undefined)
    ) {
      const msg = headerValue(t, 'grpc-message');
      this.settle.reject(
        new UpstreamError(
          status,
          `node ${nodeId}: ${msg !== undefined ? safeDecode(msg) : `status ${status}`}`,
          nodeId,
          t,
        ),
      );
      return;
    }
    let body = this.#more !== null ? Buffer.concat(this.#more, this.#size) : (this.#first ?? EMPTY);
    if (body.length > 0 && body[0] !== 0) {
      // A compressed reply is passed on inflated (flag 0): RoutingInfo is appended to it, and
      // quorum and Query merges decode it. One the router cannot read is the node's fault.
      const plain = inflateReply(
        body,
        headerValue(this.headers, 'grpc-encoding'),
        MAX_INFLATED_REPLY_BYTES,
      );
      if (plain === null) {
        this.settle.reject(
          new UpstreamError(
            GRPC_STATUS.INTERNAL,
            `node ${nodeId}: unreadable compressed reply`,
            nodeId,
            t,
          ),
        );
        return;
      }
      body = plain;
    }
    this.answered?.(nodeId);
    this.settle.resolve({ status, headers: this.headers, trailers: t, body });
  }
}

/**
 * The status label of an attempt that ended without a reply: DEADLINE_EXCEEDED when its
 * attempt deadline had passed, CANCELLED when the router gave it up (hedge lost, operation
 * over), else UNAVAILABLE (connection lost, stream reset by the node).
 */
export function attemptStatus(ctx: CallContext): number {
  if (ctx.attemptDeadline.remaining() <= 0) return GRPC_STATUS.DEADLINE_EXCEEDED;
  return ctx.signal.aborted ? GRPC_STATUS.CANCELLED : GRPC_STATUS.UNAVAILABLE;
}

/**
 * One attempt: the exact request bytes over a pooled `@engram/h2` connection, the reply
 * buffered whole so the Router can retry or fail over before the client sees any header.
 * `answered` hears of every reply that is not a node failure (passive health evidence).
 * `headers` come from `upstreamHeaders` (authority and timeout set here, in place).
 * `observer` hears how each attempt ended (per-node metrics), a refused connection included.
 */
export function forward(
  pool: ConnectionPool,
  ctx: CallContext,
  headers: string[],
  body: Buffer,
  call: ClientCall,
  answered?: (nodeId: string) => void,
  observer?: AttemptObserver,
): Promise<Reply> {
  return new Promise<Reply>((resolve, reject) => {
    forwardTo(pool, ctx, headers, body, call, { resolve, reject }, answered, observer);
  });
}

/**
 * `forward` reporting to `settle` (`Router.executeTo`'s attempts) instead of a promise: the
 * node's reply, or the error the Router classifies, exactly once.
 */
export function forwardTo(
  pool: ConnectionPool,
  ctx: CallContext,
  headers: string[],
  body: Buffer,
  call: ClientCall,
  settle: AttemptSettle<Reply>,
  answered?: (nodeId: string) => void,
  observer?: AttemptObserver,
): void {
  const node = ctx.node;
  const nodeId = node.id;
  if (call.gone) {
    settle.reject(new UpstreamError(GRPC_STATUS.CANCELLED, 'cancelled by the client', nodeId));
    return;
  }
  let up: H2Stream;
  // One clock reading: the attempt's start (for the observer) and what is left of its deadline.
  const clock = ctx.deadline.clock;
  const started = clock.now();
  const token = observer === undefined ? -1 : observer.started(nodeId);
  try {
    const connection = pool.acquireH2(nodeId);
    headers[AUTHORITY_AT] = node.address;
    headers[TIMEOUT_AT] = formatGrpcTimeout(attemptDeadlineAt(ctx) - started);
    const attempt = new Attempt(nodeId, call, settle, answered, ctx, observer, token, started);
    up = connection.request(headers, body, attempt);
    attempt.up = up;
    // (A stream already closed, as it can be within `request`, has nothing left to cancel.)
    if (!up.closed) addCancelListener(ctx, attempt);
  } catch (err) {
    // Never sent (no usable connection: every one broken and awaiting its reconnect backoff;
    // or the pool closed): UNAVAILABLE in the metric, but no evidence against the node for
    // outlier detection (the attempts on a connection when it broke are counted already: one
    // refused connect must not become a failure per call until its backoff is over).
    // ConnectionFailed from the pool is retryable as it is; anything else: UNAVAILABLE.
    observer?.ended(token, GRPC_STATUS.UNAVAILABLE, (clock.now() - started) / 1000, 'unjudged');
    const code = (err as { code?: unknown })?.code;
    settle.reject(
      code === 'ConnectionFailed'
        ? err
        : new UpstreamError(
            GRPC_STATUS.UNAVAILABLE,
            `node ${nodeId}: ${(err as Error).message}`,
            nodeId,
          ),
    );
    return;
  }
  call.upstream = up;
}

import { CLOSE, type H2Stream, type StreamHandler } from '@engram/h2';
import type {
  AttemptRunner,
  AttemptSettle,
  CallContext,
  RoutedSink,
  RoutingInfo,
} from '@engram/router';
import { type ClientCall, cancelCall, type Reply } from './forward.js';

/** Where the per-call receiver of a complete request lives (the data plane). */
export interface Dispatcher {
  dispatch(call: IngressCall, tooLarge: boolean, body: Buffer): void;
  /** A Health/Watch stream ended. */
  watchEnded(stream: H2Stream): void;
  /** A routed call's reply (the call is the Router's sink). */
  routed(call: IngressCall, value: Reply, routing: RoutingInfo): void;
  /** A routed call's error. */
  failed(call: IngressCall, error: unknown): void;
  /** Runs one attempt of a call routed to one node at a time (the call is the AttemptRunner). */
  attempt(call: IngressCall, ctx: CallContext, settle: AttemptSettle<Reply>): void;
}

export const CALL_KIND = Object.freeze({ unary: 0, watch: 1 } as const);

const EMPTY = Buffer.alloc(0);

/**
 * One request stream on the ingress: buffers the request (unary calls are replayed on retry
 * and fall-back), then hands it to the dispatcher. Also the stream's handler, and the routed
 * call's attempt runner and sink, so a call costs no closures.
 */
export class IngressCall
  implements StreamHandler, ClientCall, RoutedSink<Reply>, AttemptRunner<Reply>
{
  gone = false;
  upstream: H2Stream | null = null;
  children: ClientCall[] | null = null;
  kind: number = CALL_KIND.unary;
  /** The MemoryService operation (layout.ts `OP`) and when it started (`turnClock`, ms). */
  op = 0;
  started = 0;
  /** What each attempt sends while the call is routed: the upstream headers and the message. */
  fwd: string[] | null = null;
  request: Buffer = EMPTY;
  /** The request body: its first chunk (a unary request has one), then the rest. */
  #first: Buffer | null = null;
  #more: Buffer[] | null = null;
  #size = 0;
  #tooLarge = false;

  constructor(
    readonly dispatcher: Dispatcher,
    readonly stream: H2Stream,
    readonly maxBytes: number,
  ) {}

  onHeaders(_s: H2Stream, _trailers: readonly string[], end: boolean): void {
    // Request trailers carry nothing a unary call uses, but they can end the request.
    if (end) this.requestComplete();
  }

  onData(_s: H2Stream, chunk: Buffer, end: boolean): void {
    if (chunk.length > 0 && !this.#tooLarge) {
      this.#size += chunk.length;
      if (this.#size > this.maxBytes) {
        this.#tooLarge = true;
        this.#first = null;
        this.#more = null;
      } else if (this.#first === null) this.#first = chunk;
      else if (this.#more === null) this.#more = [this.#first, chunk];
      else this.#more.push(chunk);
    }
    if (end) this.requestComplete();
  }

  onClose(_s: H2Stream, code: number): void {
    if (this.kind === CALL_KIND.watch) this.dispatcher.watchEnded(this.stream);
    // The client left before the reply: the routed call is cancelled (the attempt in flight
    // is reset and fails as CANCELLED, not retried).
    if (code !== CLOSE.OK) cancelCall(this);
  }

  routed(value: Reply, routing: RoutingInfo): void {
    this.dispatcher.routed(this, value, routing);
  }

  failed(error: unknown): void {
    this.dispatcher.failed(this, error);
  }

  runAttempt(ctx: CallContext, settle: AttemptSettle<Reply>): void {
    this.dispatcher.attempt(this, ctx, settle);
  }

  requestComplete(): void {
    const more = this.#more;
    const body = more !== null ? Buffer.concat(more, this.#size) : (this.#first ?? EMPTY);
    this.#first = null;
    this.#more = null;
    this.dispatcher.dispatch(this, this.#tooLarge, body);
  }
}

/** Where a refused request's body goes: nowhere (the stream stays flow-controlled). */
const DISCARD: StreamHandler = { onHeaders() {}, onData() {}, onClose() {} };

const TEXT = 'text/plain; charset=utf-8';
const NOT_POST = Buffer.from(
  'engram-router serves gRPC: requests are POST with content-type application/grpc. ' +
    'This request used another method.\n',
);
const NOT_GRPC = Buffer.from(
  'engram-router serves gRPC: requests are POST with content-type application/grpc. ' +
    'This request has another content type, or none.\n',
);
const METHOD_NOT_ALLOWED: readonly string[] = [
  ':status',
  '405',
  'allow',
  'POST',
  'content-type',
  TEXT,
];
const UNSUPPORTED_MEDIA_TYPE: readonly string[] = [
  ':status',
  '415',
  'accept',
  'application/grpc',
  'content-type',
  TEXT,
];

/** `application/grpc`, alone or with a `+format` or `;parameters` suffix (gRPC over HTTP/2). */
function isGrpcContentType(value: string): boolean {
  if (!value.startsWith('application/grpc')) return false;
  const next = value.charCodeAt(16);
  return Number.isNaN(next) || next === 0x2b /* + */ || next === 0x3b /* ; */;
}

/**
 * Answers a request that is not gRPC with a real HTTP error and a short text body, as the
 * gRPC over HTTP/2 spec asks (415 for another content type; 405 for a method other than
 * POST), and returns true; returns false for a gRPC request. The body makes the answer an
 * ordinary HTTP response: it is flow-controlled like any other, so a stream the peer holds
 * at a zero window stays open and counts against `maxConcurrentStreams`.
 */
export function refuseNonGrpc(stream: H2Stream): boolean {
  const headers = stream.headers!;
  let method = '';
  let contentType = '';
  for (let i = 0; i < headers.length; i += 2) {
    const name = headers[i]!;
    if (name === ':method') method = headers[i + 1]!;
    else if (name === 'content-type') contentType = headers[i + 1]!;
  }
  let head: readonly string[];
  let body: Buffer;
  if (method !== 'POST') {
    head = METHOD_NOT_ALLOWED;
    body = NOT_POST;
  } else if (!isGrpcContentType(contentType)) {
    head = UNSUPPORTED_MEDIA_TYPE;
    body = NOT_GRPC;
  } else return false;
  stream.handler = DISCARD;
  stream.sendHeaders(head, false);
  stream.sendData(body, true);
  return true;
}

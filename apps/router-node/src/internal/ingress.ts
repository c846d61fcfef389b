import { CLOSE, type H2Stream, type StreamHandler } from '@engram/h2';
import { type ClientCall, cancelCall } from './forward.js';

/** Where the per-call receiver of a complete request lives (the data plane). */
export interface Dispatcher {
  dispatch(call: IngressCall, tooLarge: boolean, body: Buffer): void;
  /** A Health/Watch stream ended. */
  watchEnded(stream: H2Stream): void;
}

export const CALL_KIND = Object.freeze({ unary: 0, watch: 1 } as const);

const EMPTY = Buffer.alloc(0);

/**
 * One request stream on the ingress: buffers the request (unary calls are replayed on retry
 * and fall-back), then hands it to the dispatcher. Also the stream's handler, so a call costs
 * no closures.
 */
export class IngressCall implements StreamHandler, ClientCall {
  gone = false;
  upstream: H2Stream | null = null;
  children: ClientCall[] | null = null;
  kind: number = CALL_KIND.unary;
  #chunks: Buffer[] = [];
  #size = 0;
  #tooLarge = false;

  constructor(
    readonly dispatcher: Dispatcher,
    readonly stream: H2Stream,
    readonly maxBytes: number,
  ) {}

  onHeaders(_s: H2Stream, _trailers: string[], end: boolean): void {
    // Request trailers carry nothing a unary call uses, but they can end the request.
    if (end) this.requestComplete();
  }

  onData(_s: H2Stream, chunk: Buffer, end: boolean): void {
    if (chunk.length > 0 && !this.#tooLarge) {
      this.#size += chunk.length;
      if (this.#size > this.maxBytes) {
        this.#tooLarge = true;
        this.#chunks.length = 0;
      } else this.#chunks.push(chunk);
    }
    if (end) this.requestComplete();
  }

  onClose(_s: H2Stream, code: number): void {
    if (this.kind === CALL_KIND.watch) this.dispatcher.watchEnded(this.stream);
    // The client left before the reply: the routed call is cancelled (the attempt in flight
    // is reset and fails as CANCELLED, not retried).
    if (code !== CLOSE.OK) cancelCall(this);
  }

  requestComplete(): void {
    const chunks = this.#chunks;
    const body =
      chunks.length === 1
        ? chunks[0]!
        : chunks.length === 0
          ? EMPTY
          : Buffer.concat(chunks, this.#size);
    this.#chunks = [];
    this.dispatcher.dispatch(this, this.#tooLarge, body);
  }
}

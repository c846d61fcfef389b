import type net from 'node:net';
import tls from 'node:tls';
import { InvalidArgumentError } from '@engram/common';
import {
  CLOSE,
  type ConnectionOptions,
  H2Connection,
  H2Stream,
  type LocalSettings,
  resolveLocalSettings,
  type StreamHandler,
} from './connection.js';
import { H2_ERROR_CODES, H2Error } from './errors.js';
import { MAX_STREAM_ID } from './frames.js';
import { connectSharedReads } from './socket-reads.js';

export interface H2ClientOptions {
  readonly host: string;
  readonly port: number;
  /** TLS (ALPN `h2`) when set; plaintext HTTP/2 (prior knowledge) otherwise. */
  readonly tls?: tls.ConnectionOptions | null;
  readonly settings?: Partial<LocalSettings>;
  /**
   * Id of the first stream (odd). Default 1. For tests of id exhaustion: a connection whose
   * ids run out closes gracefully and tells `onGoaway`, so a pool replaces it.
   */
  readonly firstStreamId?: number;
}

interface Waiting {
  readonly stream: H2Stream;
  readonly headers: readonly string[];
  readonly body: Buffer | null;
}

/**
 * The client side of one connection. `request` opens a stream, sends the header block and
 * (for unary calls) the whole body with END_STREAM; requests beyond the server's
 * MAX_CONCURRENT_STREAMS wait in order for a slot.
 */
export class H2ClientConnection extends H2Connection {
  /** Called once when the server's SETTINGS arrive (the connection is usable). */
  onReady: (() => void) | null = null;
  /** Called when the server sends GOAWAY (no new streams on this connection). */
  onGoaway: ((lastStreamId: number, code: number) => void) | null = null;
  #nextId = 1;
  #waiting: Waiting[] = [];

  constructor(socket: net.Socket, options: ConnectionOptions, firstStreamId = 1) {
    super(socket, false, options);
    if (
      !Number.isInteger(firstStreamId) ||
      firstStreamId < 1 ||
      firstStreamId > MAX_STREAM_ID ||
      firstStreamId % 2 !== 1
    ) {
      throw new InvalidArgumentError(
        'firstStreamId',
        firstStreamId,
        'an odd integer in 1..2147483647',
      );
    }
    this.#nextId = firstStreamId;
    this.start();
  }

  /** Opens a connection (TCP or TLS) and starts HTTP/2 on it at once. */
  static connect(options: H2ClientOptions): H2ClientConnection {
    // Checked before the socket exists, so a bad value leaks nothing.
    const settings = { settings: resolveLocalSettings(options.settings) };
    const first = options.firstStreamId ?? 1;
    if (!Number.isInteger(first) || first < 1 || first > MAX_STREAM_ID || first % 2 !== 1) {
      throw new InvalidArgumentError('firstStreamId', first, 'an odd integer in 1..2147483647');
    }
    if (options.tls != null) {
      const socket = tls.connect({
        ...options.tls,
        host: options.host,
        port: options.port,
        ALPNProtocols: ['h2'],
      });
      const c = new H2ClientConnection(socket, settings, first);
      socket.once('secureConnect', () => {
        if (socket.alpnProtocol !== 'h2') {
          c.destroy(
            new H2Error(
              H2_ERROR_CODES.H2ProtocolError,
              `server did not negotiate h2 (ALPN ${socket.alpnProtocol})`,
            ),
          );
        }
      });
      return c;
    }
    return new H2ClientConnection(connectSharedReads(options.host, options.port), settings, first);
  }

  /**
   * Takes new streams: open, no GOAWAY either way, ids left. Requests may go out before the
   * server's SETTINGS arrive (RFC 9113 §3.4): they use the protocol's default limits.
   */
  get available(): boolean {
    return (
      !this.destroyed &&
      !this.goawaySent &&
      this.goawayLastStreamId < 0 &&
      this.#nextId <= MAX_STREAM_ID
    );
  }

  /**
   * Sends a request: `headers` (`[name, value, …]`, pseudo-headers first) and, unless `body`
   * is null, the body with END_STREAM. Throws `H2Unavailable` when the connection takes no
   * new streams. Events go to `handler`; `stream.reset()` cancels.
   */
  request(headers: readonly string[], body: Buffer | null, handler: StreamHandler): H2Stream {
    if (!this.available) {
      throw new H2Error(H2_ERROR_CODES.H2Unavailable, 'connection does not take new streams');
    }
    // Behind earlier waiting requests too: slots go out in request order.
    if (this.#waiting.length > 0 || this.streams.size >= this.remoteMaxConcurrentStreams) {
      const s = new H2Stream(0, this, 0, 0);
      s.handler = handler;
      // A copy: the caller may reuse its array for the next request (the router does).
      this.#waiting.push({ stream: s, headers: headers.slice(), body });
      return s;
    }
    const s = this.#open(handler);
    this.#send(s, headers, body);
    return s;
  }

  protected override nextLocalStreamId(): number {
    return this.#nextId;
  }

  #open(handler: StreamHandler): H2Stream {
    const id = this.#nextId;
    this.#nextId += 2;
    const s = this.newStream(id);
    s.handler = handler;
    if (this.#nextId > MAX_STREAM_ID) queueMicrotask(() => this.#idsExhausted(id));
    return s;
  }

  /** The last stream id is taken: close gracefully and tell the owner, as a GOAWAY would. */
  #idsExhausted(lastId: number): void {
    if (this.destroyed) return;
    this.close();
    const cb = this.onGoaway;
    if (cb !== null) cb(lastId, 0);
  }

  #send(s: H2Stream, headers: readonly string[], body: Buffer | null): void {
    if (body === null) {
      this.sendHeaders(s, headers, false);
      return;
    }
    this.sendHeaders(s, headers, body.length === 0);
    if (body.length > 0) this.sendData(s, body, true);
  }

  protected onPeerStream(id: number): void {
    // Servers cannot open streams toward a client except by PUSH_PROMISE, which is refused.
    this.fail(1 /* PROTOCOL_ERROR */, `server opened stream ${id}`);
  }

  protected override peerSettingsReceived(): void {
    const cb = this.onReady;
    this.onReady = null;
    if (cb !== null) cb();
    this.#startWaiting();
  }

  protected override goawayReceived(lastStreamId: number, code: number): void {
    this.#refuseWaiting();
    const cb = this.onGoaway;
    if (cb !== null) cb(lastStreamId, code);
    // An error code means the server is failing the connection: its open streams will not
    // be answered, whether or not it closes the socket.
    if (code !== 0) {
      queueMicrotask(() =>
        this.destroy(
          new H2Error(H2_ERROR_CODES.H2ConnectionClosed, `GOAWAY with error code ${code}`, code),
        ),
      );
    }
  }

  /** Requests still waiting for a slot never went out: refused (safe to retry elsewhere). */
  #refuseWaiting(): void {
    for (const w of this.#waiting.splice(0)) this.closeStream(w.stream, 7 /* REFUSED_STREAM */);
  }

  override close(): void {
    this.#refuseWaiting();
    super.close();
  }

  protected override connectionLost(): void {
    for (const w of this.#waiting.splice(0)) this.closeStream(w.stream, CLOSE.CONNECTION_LOST);
  }

  protected override closeStream(stream: H2Stream, code: number): void {
    if (stream.id === 0 && !stream.closed) {
      const i = this.#waiting.findIndex((w) => w.stream === stream);
      if (i >= 0) this.#waiting.splice(i, 1);
    }
    super.closeStream(stream, code);
  }

  protected override streamClosed(): void {
    this.#startWaiting();
    super.streamClosed();
  }

  override destroy(error?: H2Error): void {
    const waiting = this.#waiting.splice(0);
    super.destroy(error);
    for (const w of waiting) this.closeStream(w.stream, CLOSE.CONNECTION_LOST);
  }

  #startWaiting(): void {
    while (
      this.#waiting.length > 0 &&
      this.available &&
      this.streams.size < this.remoteMaxConcurrentStreams
    ) {
      const w = this.#waiting.shift()!;
      const id = this.#nextId;
      this.#nextId += 2;
      w.stream.id = id;
      w.stream.sendWindow = this.remoteInitialWindow;
      w.stream.recvWindow = this.local.initialWindowSize;
      this.streams.set(id, w.stream);
      if (w.stream.queue === null) this.#send(w.stream, w.headers, w.body);
      else this.startQueued(w.stream, w.headers, w.body);
    }
  }
}

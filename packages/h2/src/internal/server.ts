import net from 'node:net';
import { performance } from 'node:perf_hooks';
import tls from 'node:tls';
import { InvalidArgumentError } from '@engram/common';
import {
  type ConnectionOptions,
  H2Connection,
  type H2Stream,
  type LocalSettings,
  resolveLocalSettings,
} from './connection.js';
import { H2_ERROR } from './frames.js';
import { adoptSharedReads } from './socket-reads.js';
import { StallTimeouts } from './stall-timeouts.js';

/** Gets each new request stream; `stream.headers` holds the request headers. */
export type StreamListener = (stream: H2Stream) => void;

/** The server side of one connection. */
export class H2ServerConnection extends H2Connection {
  readonly #onStream: StreamListener;

  constructor(socket: net.Socket, options: ConnectionOptions, onStream: StreamListener) {
    super(socket, true, options);
    this.#onStream = onStream;
    this.start();
  }

  protected onPeerStream(
    id: number,
    headers: readonly string[],
    endStream: boolean,
    contentLength: number,
  ): void {
    if (this.goawaySent || this.streams.size >= this.local.maxConcurrentStreams) {
      this.refuseStream(id, H2_ERROR.REFUSED_STREAM);
      return;
    }
    const s = this.newStream(id);
    s.headers = headers;
    s.remoteEnded = endStream;
    s.contentLeft = contentLength;
    this.#onStream(s);
  }

  /** The header read timeout passed: the peer is stuck mid-frame or mid-handshake. */
  readTimedOut(): void {
    this.fail(H2_ERROR.NO_ERROR, 'read timeout');
  }
}

const REQUEST_TIMEOUT: readonly string[] = [':status', '408'];

export interface H2ServerOptions {
  /** TLS (ALPN `h2`) when set; plaintext HTTP/2 (prior knowledge) otherwise. */
  readonly tls?: tls.TlsOptions | null;
  readonly settings?: Partial<LocalSettings>;
  /**
   * A connection with no open stream and no traffic for this long gets GOAWAY and is ended;
   * one still there after another such period is destroyed (clients that connect and never
   * speak, or never close after GOAWAY). 0 = never. Default 300 000 (5 min).
   */
  readonly idleTimeoutMs?: number;
  /**
   * A connection must complete what it started reading (the preface and first SETTINGS, a
   * frame, a header block) within this long, or it is closed: slowloris on headers. Bytes
   * trickling in are no progress; a parsed frame is. 0 = off. Default 10 000 (10 s).
   */
  readonly headerTimeoutMs?: number;
  /**
   * A request stream must be complete (END_STREAM) within this long of being opened, or it
   * gets HTTP 408 and RST_STREAM: slowloris on bodies. 0 = off. Default 30 000 (30 s).
   */
  readonly bodyTimeoutMs?: number;
  /**
   * Each this many bytes of request body received earn one more second beyond
   * `bodyTimeoutMs` (a large body on a slow link gets the time its size needs; a trickle
   * does not). Default 16 384 (16 KiB/s).
   */
  readonly bodyMinBytesPerSecond?: number;
  /**
   * A reply held back by the client's flow-control window must make progress within this
   * long, or its stream is reset (CANCEL); a connection whose socket output the kernel does
   * not take (the client does not read TCP) is closed after as long: a client that never
   * reads cannot park replies in memory. 0 = off. Default 30 000 (30 s).
   */
  readonly sendTimeoutMs?: number;
  /**
   * Connections served at once; one more is closed as soon as it is accepted. 0 = no limit.
   * Default 0.
   */
  readonly maxConnections?: number;
  /**
   * Monotonic milliseconds for the stream-reset rate limit and the read timeouts (tests).
   * Default `performance.now`.
   */
  readonly now?: () => number;
  /** Called for every request stream on every connection. */
  readonly onStream: StreamListener;
  /** Called each time a limit acts (for metrics); the counters on `H2Server` say the same. */
  readonly onLimit?: (kind: LimitKind) => void;
}

/**
 * What a server limit did: closed a connection stuck mid-read (`header_timeout`), answered an
 * overdue request 408 (`body_timeout`), reset a reply stuck behind flow control
 * (`send_timeout`), closed a connection whose peer does not read (`unread`), or refused a
 * connection over `maxConnections` (`max_connections`).
 */
export const LIMIT_KINDS = Object.freeze([
  'header_timeout',
  'body_timeout',
  'send_timeout',
  'unread',
  'max_connections',
] as const);
export type LimitKind = (typeof LIMIT_KINDS)[number];

export const DEFAULT_IDLE_TIMEOUT_MS = 300_000; // 5 min
export const DEFAULT_HEADER_TIMEOUT_MS = 10_000; // 10 s
export const DEFAULT_BODY_TIMEOUT_MS = 30_000; // 30 s
export const DEFAULT_SEND_TIMEOUT_MS = 30_000; // 30 s
export const DEFAULT_BODY_MIN_BYTES_PER_SECOND = 16 * 1024; // 16 KiB/s
/** Node's own TLS handshake timeout, used when the header timeout is off. */
const TLS_HANDSHAKE_TIMEOUT_MS = 120_000; // 2 min

const MAX_TIMER_MS = 2 ** 31 - 1;

function checkMs(field: string, value: number): number {
  if (!Number.isInteger(value) || value < 0 || value > MAX_TIMER_MS) {
    throw new InvalidArgumentError(field, value, `an integer in 0..${MAX_TIMER_MS} (ms)`);
  }
  return value;
}

/**
 * An HTTP/2 server: a `net.Server` (or `tls.Server`) whose connections are
 * `H2ServerConnection`s. Listen through `server` (`listen(port, host)` or `listen({ fd })`).
 */
export class H2Server {
  readonly server: net.Server;
  readonly connections = new Set<H2ServerConnection>();
  readonly #options: ConnectionOptions;
  readonly #onStream: StreamListener;
  readonly #onLimit: (kind: LimitKind) => void;
  readonly #idleTimeoutMs: number;
  readonly #stalls: StallTimeouts;
  readonly #now: () => number;
  #sweepTimer: NodeJS.Timeout | null = null;
  #closeWaiters: (() => void)[] = [];
  /** Connections closed by the header read timeout. */
  headerTimeouts = 0;
  /** Request streams answered 408 by the body read timeout. */
  bodyTimeouts = 0;
  /** Streams reset because their reply made no progress behind flow control. */
  sendTimeouts = 0;
  /** Connections closed because the kernel took none of their output (the peer does not read). */
  unreadTimeouts = 0;
  /** Connections closed at accept because `maxConnections` were open. */
  refusedConnections = 0;

  constructor(options: H2ServerOptions) {
    // Checked here, once: a bad value must not surface as a throw on every accepted socket.
    this.#options = {
      settings: resolveLocalSettings(options.settings),
      ...(options.now === undefined ? {} : { now: options.now }),
    };
    this.#idleTimeoutMs = checkMs(
      'idleTimeoutMs',
      options.idleTimeoutMs ?? DEFAULT_IDLE_TIMEOUT_MS,
    );
    const limits = {
      headerTimeoutMs: checkMs(
        'headerTimeoutMs',
        options.headerTimeoutMs ?? DEFAULT_HEADER_TIMEOUT_MS,
      ),
      bodyTimeoutMs: checkMs('bodyTimeoutMs', options.bodyTimeoutMs ?? DEFAULT_BODY_TIMEOUT_MS),
      sendTimeoutMs: checkMs('sendTimeoutMs', options.sendTimeoutMs ?? DEFAULT_SEND_TIMEOUT_MS),
      bodyMinBytesPerSecond: options.bodyMinBytesPerSecond ?? DEFAULT_BODY_MIN_BYTES_PER_SECOND,
    };
    if (!Number.isInteger(limits.bodyMinBytesPerSecond) || limits.bodyMinBytesPerSecond < 1) {
      throw new InvalidArgumentError(
        'bodyMinBytesPerSecond',
        limits.bodyMinBytesPerSecond,
        'an integer ≥ 1',
      );
    }
    const maxConnections = options.maxConnections ?? 0;
    if (!Number.isInteger(maxConnections) || maxConnections < 0) {
      throw new InvalidArgumentError('maxConnections', maxConnections, 'an integer ≥ 0');
    }
    this.#stalls = new StallTimeouts(limits);
    this.#now = options.now ?? performance.now.bind(performance);
    this.#onStream = options.onStream;
    this.#onLimit = options.onLimit ?? (() => {});
    if (options.tls != null) {
      // A stalled TLS handshake is a header stall too: it holds a connection slot as long.
      const server = tls.createServer({
        handshakeTimeout:
          limits.headerTimeoutMs > 0 ? limits.headerTimeoutMs : TLS_HANDSHAKE_TIMEOUT_MS,
        ...options.tls,
        ALPNProtocols: ['h2'],
      });
      server.on('secureConnection', (socket: tls.TLSSocket) => {
        // gRPC clients always negotiate h2; anything else cannot be served.
        if (socket.alpnProtocol !== 'h2') socket.destroy();
        else this.#accept(socket);
      });
      server.on('tlsClientError', () => {});
      this.server = server;
    } else {
      // Paused on accept: `#accept` sets the socket's reads up before the first one.
      this.server = net.createServer({ pauseOnConnect: true }, (socket) => {
        adoptSharedReads(socket); // else the connection reads through 'data' events
        this.#accept(socket);
        socket.resume();
      });
    }
    if (maxConnections > 0) {
      // net.Server closes sockets past the limit itself, before any TLS or HTTP/2 work.
      this.server.maxConnections = maxConnections;
      this.server.on('drop', () => {
        this.refusedConnections++;
        this.#onLimit('max_connections');
      });
    }
    const period = StallTimeouts.periodMs(limits);
    if (period > 0) {
      this.#sweepTimer = setInterval(() => this.sweep(), period);
      this.#sweepTimer.unref();
      this.server.once('close', () => this.#stopSweep());
    }
  }

  /**
   * Applies the stall timeouts now (the server's timer calls it every quarter of the shortest
   * timeout; tests call it on fake time): closes connections stuck mid-read, answers request
   * streams whose body is overdue with 408 and RST_STREAM, resets streams whose reply is stuck
   * behind the client's flow control.
   */
  sweep(): void {
    const stuck = this.#stalls.sweep(this.connections, this.#now());
    for (const c of stuck.connections) {
      this.headerTimeouts++;
      this.#onLimit('header_timeout');
      (c as H2ServerConnection).readTimedOut();
    }
    for (const c of stuck.unread) {
      this.unreadTimeouts++;
      this.#onLimit('unread');
      c.destroy();
    }
    for (const s of stuck.requests) {
      if (s.closed) continue;
      this.bodyTimeouts++;
      this.#onLimit('body_timeout');
      if (!s.sentHeaders) s.sendHeaders(REQUEST_TIMEOUT, true);
      // The reply is complete; RST_STREAM(NO_ERROR) stops the upload (RFC 9113 §8.1).
      s.reset(s.sentHeaders && s.localEnded ? H2_ERROR.NO_ERROR : H2_ERROR.CANCEL);
    }
    for (const s of stuck.replies) {
      if (s.closed) continue;
      this.sendTimeouts++;
      this.#onLimit('send_timeout');
      s.reset(H2_ERROR.CANCEL);
    }
  }

  #stopSweep(): void {
    if (this.#sweepTimer !== null) clearInterval(this.#sweepTimer);
    this.#sweepTimer = null;
  }

  #accept(socket: net.Socket): void {
    socket.on('error', () => {});
    const c = new H2ServerConnection(socket, this.#options, this.#onStream);
    this.connections.add(c);
    if (this.#idleTimeoutMs > 0) {
      // Node re-arms the socket's timer on every read and write: no cost per frame here.
      socket.setTimeout(this.#idleTimeoutMs);
      socket.on('timeout', () => {
        if (c.streams.size > 0) return; // long-lived streams (Health/Watch) are not idle
        if (c.isClosing) c.destroy();
        else c.close();
      });
    }
    c.onClose = () => {
      this.connections.delete(c);
      if (this.connections.size === 0) for (const w of this.#closeWaiters.splice(0)) w();
    };
  }

  /**
   * Stops accepting and sends GOAWAY on every connection; each closes once its open streams
   * have. Resolves true when all are closed, false when `graceMs` passed first.
   */
  async shutdown(graceMs: number): Promise<boolean> {
    if (this.server.listening) this.server.close();
    for (const c of this.connections) c.close();
    if (this.connections.size === 0) return true;
    return new Promise<boolean>((resolve) => {
      const t = setTimeout(() => resolve(false), graceMs);
      this.#closeWaiters.push(() => {
        clearTimeout(t);
        resolve(true);
      });
    });
  }

  /** Closes every connection now; their open streams close with `CLOSE.CONNECTION_LOST`. */
  destroy(): void {
    this.#stopSweep();
    if (this.server.listening) this.server.close();
    for (const c of this.connections) c.destroy();
  }

  /** `shutdown(graceMs)`, then `destroy()` whatever is left. */
  async close(graceMs: number): Promise<void> {
    await this.shutdown(graceMs);
    this.destroy();
  }
}

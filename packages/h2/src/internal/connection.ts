/**
 * Why this module is long (~1300 lines): it is one HTTP/2 connection state machine (RFC 9113
 * frames, both flow-control windows, stream states, SETTINGS/PING/GOAWAY, the output slab),
 * shared by client and server. Its invariants (stream and window accounting, when a frame is
 * a connection or a stream error) cross every handler; split across files they would be
 * argued in several places. Server- and client-only parts live in server.ts and client.ts.
 */
import { Buffer } from 'node:buffer';
import type { Socket } from 'node:net';
import { performance } from 'node:perf_hooks';
import { InvalidArgumentError, readU16BE, readU32BE, writeU16BE, writeU32BE } from '@engram/common';
import { H2_ERROR_CODES, H2Error } from './errors.js';
import { checkFields, FIELD_SECTION, FIELDS_VERDICT, type FieldSection } from './fields.js';
import {
  CLIENT_PREFACE,
  DEFAULT_MAX_FRAME_BYTES,
  DEFAULT_WINDOW_BYTES,
  FLAG,
  FRAME_HEADER_BYTES,
  FRAME_TYPE,
  H2_ERROR,
  MAX_FRAME_BYTES_LIMIT,
  MAX_WINDOW_BYTES,
  SETTING,
} from './frames.js';
import { HpackDecoder, HpackEncoder } from './hpack.js';
import { type Flushable, scheduleFlush } from './output.js';
import { takeSharedReads } from './socket-reads.js';
import { StreamIdRing } from './stream-id-ring.js';
import { StreamTable } from './stream-table.js';

/** Settings this side advertises and enforces. */
export interface LocalSettings {
  /** Streams the peer may open at once (server side). Default 1000. */
  readonly maxConcurrentStreams: number;
  /** Receive window of each stream, bytes. Default 1 MiB. */
  readonly initialWindowSize: number;
  /** Receive window of the connection, bytes. Default 16 MiB. */
  readonly connectionWindowSize: number;
  /** Largest frame payload accepted, bytes. Default 16 384 (the protocol's minimum). */
  readonly maxFrameSize: number;
  /** Largest decoded header list accepted (names + values + 32 per field). Default 64 KiB. */
  readonly maxHeaderListSize: number;
}

export const DEFAULT_LOCAL_SETTINGS: LocalSettings = Object.freeze({
  maxConcurrentStreams: 1000,
  initialWindowSize: 1024 * 1024, // 1 MiB
  connectionWindowSize: 16 * 1024 * 1024, // 16 MiB
  maxFrameSize: DEFAULT_MAX_FRAME_BYTES,
  maxHeaderListSize: 64 * 1024, // 64 KiB
});

const SETTING_LIMITS: { readonly [K in keyof LocalSettings]: readonly [number, number] } = {
  maxConcurrentStreams: [0, 2 ** 32 - 1],
  initialWindowSize: [0, MAX_WINDOW_BYTES],
  connectionWindowSize: [0, MAX_WINDOW_BYTES],
  maxFrameSize: [DEFAULT_MAX_FRAME_BYTES, MAX_FRAME_BYTES_LIMIT],
  maxHeaderListSize: [0, 2 ** 32 - 1],
};

/**
 * `DEFAULT_LOCAL_SETTINGS` overridden by `settings`, each field checked against the range the
 * protocol allows (RFC 9113 §6.5.2, §6.9). Throws `InvalidArgumentError` naming the field:
 * a value out of range would otherwise throw while writing our SETTINGS on every new
 * connection, or make every peer close the connection.
 */
export function resolveLocalSettings(settings?: Partial<LocalSettings>): LocalSettings {
  const out = { ...DEFAULT_LOCAL_SETTINGS, ...settings };
  for (const key of Object.keys(SETTING_LIMITS) as (keyof LocalSettings)[]) {
    const [min, max] = SETTING_LIMITS[key];
    const value = out[key];
    if (!Number.isInteger(value) || value < min || value > max) {
      throw new InvalidArgumentError(`settings.${key}`, value, `an integer in [${min}, ${max}]`);
    }
  }
  return out;
}

/** How a stream ended, passed to `onClose`: `CLOSE.OK`, `CLOSE.CONNECTION_LOST` or an RST code ≥ 0. */
export const CLOSE = {
  /** Both sides ended the stream normally. */
  OK: -1,
  /** The connection closed or failed before the stream ended. */
  CONNECTION_LOST: -2,
} as const;

/** Receives a stream's events; one object per stream, so no closure per call is needed. */
export interface StreamHandler {
  /**
   * A header block: response headers, trailers, or (server side) request trailers. Read-only
   * and possibly shared (see `H2Stream.headers`).
   */
  onHeaders(stream: H2Stream, headers: readonly string[], endStream: boolean): void;
  /** Request/response body bytes (a view into the read buffer: copy or keep, never mutate). */
  onData(stream: H2Stream, chunk: Buffer, endStream: boolean): void;
  /** The stream is over: `code` is `CLOSE.OK`, `CLOSE.CONNECTION_LOST` or the RST_STREAM code. */
  onClose(stream: H2Stream, code: number): void;
}

/** One HTTP/2 stream. Its handler is set by whoever opened or accepted it. */
export class H2Stream {
  /** Stream id; 0 while a client request waits for a concurrency slot. */
  id: number;
  readonly connection: H2Connection;
  /** Hears the stream's events; cleared once `onClose` has run (see `closeStream`). */
  handler: StreamHandler | null = null;
  /** Opaque slot for the owner (e.g. the call this stream serves); cleared when it closes. */
  context: unknown = null;
  /**
   * The first header block received (request headers on a server, response headers on a
   * client). Read-only: a list may be shared by streams whose blocks were the same (it is
   * frozen then; see `HpackDecoder.decodeList`).
   */
  headers: readonly string[] | null = null;
  /** True once a header block was sent on this stream. */
  sentHeaders = false;
  /** True once END_STREAM was sent (or queued behind flow control). */
  localEnded = false;
  /** True once END_STREAM was received. */
  remoteEnded = false;
  closed = false;
  /** Set when the stream closed: `CLOSE.OK`, `CLOSE.CONNECTION_LOST` or an RST code. */
  closeCode: number = CLOSE.OK;
  /** @internal */ sendWindow: number;
  /** @internal */ recvWindow: number;
  /** @internal Bytes received and not yet returned by a WINDOW_UPDATE. */
  recvUnacked = 0;
  /** @internal DATA waiting for flow-control window. */
  queue: Buffer[] | null = null;
  /** @internal */ queuedEnd = false;
  /** @internal Trailers to send once the queue drains. */
  /** Trailers held behind queued data: a field list, or a block encoded up front. */
  queuedTrailers: string[] | Buffer | null = null;
  /**
   * @internal Body bytes the peer's `content-length` still announces (server side); -1 when
   * it sent none. Checked on each DATA frame and at END_STREAM (RFC 9113 §8.1.1).
   */
  contentLeft = -1;
  /** DATA payload bytes received on the stream (padding included): a server's body-timeout progress. */
  bytesReceived = 0;

  constructor(id: number, connection: H2Connection, sendWindow: number, recvWindow: number) {
    this.id = id;
    this.connection = connection;
    this.sendWindow = sendWindow;
    this.recvWindow = recvWindow;
  }

  /** Sends a header block (`[name, value, …]` or a block pre-encoded with `encodeHeaderBlock`). */
  sendHeaders(headers: readonly string[] | Buffer, endStream: boolean): void {
    this.connection.sendHeaders(this, headers, endStream);
  }

  /** Sends body bytes, held back by flow control when the peer's window is short. */
  sendData(data: Buffer, endStream: boolean): void {
    this.connection.sendData(this, data, endStream);
  }

  /**
   * Sends `parts` as one body, back to back: one DATA frame when they fit the peer's windows
   * and frame size, copied straight into the connection's output (no joined copy made first).
   * The parts are copied before this returns, so the caller may reuse them at once.
   */
  sendDataParts(parts: readonly Buffer[], endStream: boolean): void {
    this.connection.sendDataParts(this, parts, endStream);
  }

  /**
   * Sends trailers (a header block with END_STREAM), after any queued data: a field list, or
   * a block encoded once up front with `encodeHeaderBlock` (no dynamic table, so it is valid
   * on every connection).
   */
  sendTrailers(trailers: readonly string[] | Buffer): void {
    this.connection.sendTrailers(this, trailers);
  }

  /** Resets the stream (RST_STREAM) and closes it with `code`. */
  reset(code: number = H2_ERROR.CANCEL): void {
    this.connection.resetStream(this, code);
  }
}

const ZERO = Buffer.alloc(0);

/** A copy of `buf[0, end)` (a read from the shared buffer, to be parsed and kept). */
function copyOfRead(buf: Buffer, end: number): Buffer {
  const copy = Buffer.allocUnsafe(end);
  buf.copy(copy, 0, 0, end);
  return copy;
}

/** Dynamic table our encoder fills on each connection (RFC 9113's initial 4096 octets). */
const ENCODER_TABLE_OCTETS = 4096;
const NO_HEADERS: readonly string[] = [];
const HEADERS_TOO_LARGE: readonly string[] = [':status', '431'];
/** The answer to a well-formed CONNECT (§8.5): a gRPC proxy tunnels nothing. */
const CONNECT_NOT_IMPLEMENTED: readonly string[] = [':status', '501'];
/**
 * Not a wire flag: set beside a HEADERS frame's flags (which use 8 bits) when its priority
 * block names the stream itself (RFC 7540 §5.3.1), so the verdict waits for the whole block.
 */
const SELF_DEPENDENT = 0x100;
/**
 * CONTINUATION frames one header block may take. Tiny or empty CONTINUATION frames cost a
 * parse each without adding bytes, so the byte cap alone does not bound the CPU a block costs
 * (CVE-2024-27316 class). At the default settings the byte cap admits a block of 17 full
 * frames; peers split blocks at their max frame size (nghttp2 accepts 8 CONTINUATIONs), so 64
 * leaves room for any honest peer. Past it: GOAWAY ENHANCE_YOUR_CALM.
 */
export const MAX_CONTINUATION_FRAMES = 64;
/**
 * Stream ids we reset (RST_STREAM sent: cancel, refusal, stream error) that are remembered so
 * the peer's late frames on them are ignored (RFC 9113 §5.1: it may have sent them before it
 * saw our reset). A late frame for an id forgotten since is judged as on any closed stream.
 * 512 ids (2 KiB, allocated on the first reset) outlast the round trip of any honest peer:
 * forgetting needs 512 more resets on the same connection in that time.
 */
export const RECENTLY_RESET_STREAMS = 512;
/**
 * Stream ids that closed with the peer knowing: stored as `id` when both sides ended it (then
 * HEADERS or DATA on it is a connection error STREAM_CLOSED), as `-id` when the peer reset it
 * (then a stream error STREAM_CLOSED), RFC 9113 §5.1 and RFC 7540 §5.1. A stream the peer
 * would open that is neither open nor remembered is taken for a reused id (§5.1.1). 128 ids
 * (512 B, allocated on the first close).
 */
export const RECENTLY_CLOSED_STREAMS = 128;
/**
 * The decoder's own cap, a multiple of SETTINGS_MAX_HEADER_LIST_SIZE: past it the block is an
 * HPACK bomb and the connection fails; between the two only the stream does.
 */
const DECODER_LIST_SIZE_FACTOR = 4;
const MAX_SETTING_VALUE = 2 ** 32 - 1;

/** An HPACK dynamic table size update takes at most this many octets (5-bit prefix, 32-bit value). */
const SIZE_UPDATE_MAX_BYTES = 6;
/** First output slab of a connection (allocated on its first write): small, so idle connections cost little. */
const INITIAL_SLAB_BYTES = 2 * 1024;
/** Slabs double, up to this, for connections whose output per turn outgrows them. */
const MAX_SLAB_BYTES = 256 * 1024;
const NO_SLAB = Buffer.alloc(0);
/**
 * Frames written only because the peer asked (PING and SETTINGS ACKs, RST_STREAM for frames on
 * closed streams) while the socket's write buffer is full: a peer that sends them faster than
 * it reads would otherwise grow our output without bound (ping / settings / reset floods).
 */
const MAX_UNREAD_ANSWERS = 10_000;
/** Payloads at least this large are written by reference instead of copied into the slab. */
const COPY_LIMIT_BYTES = 4096;

export interface ConnectionOptions {
  readonly settings?: Partial<LocalSettings>;
  /** Milliseconds on a monotonic clock, for the stream-reset rate limit. Default `performance.now`. */
  readonly now?: () => number;
}

/**
 * Streams a client may reset in a burst, and per second after it, before the connection is
 * closed with ENHANCE_YOUR_CALM: the "Rapid Reset" attack (CVE-2023-44487) opens and resets
 * streams so each costs the server work while never counting against MAX_CONCURRENT_STREAMS.
 * nghttp2's defaults.
 */
export const STREAM_RESET_BURST = 1000;
export const STREAM_RESET_PER_SECOND = 33;

/**
 * One HTTP/2 connection over a socket, either side. Parses frames, keeps HPACK and
 * flow-control state, and exposes streams through `StreamHandler`s. It covers what a gRPC
 * proxy needs: HEADERS/CONTINUATION/DATA, SETTINGS, PING, GOAWAY, RST_STREAM and
 * WINDOW_UPDATE with both connection and stream windows; PRIORITY is ignored and server push
 * is refused (SETTINGS_ENABLE_PUSH = 0).
 */
export abstract class H2Connection implements Flushable {
  readonly socket: Socket;
  readonly local: LocalSettings;
  readonly isServer: boolean;
  /** Open streams by id (`StreamTable`: a Map's get/set/delete/size/values, cheaper). */
  readonly streams = new StreamTable<H2Stream>();
  /** Called once when the connection is gone (socket closed); `error` when it failed. */
  onClose: ((error: H2Error | null) => void) | null = null;

  protected readonly decoder: HpackDecoder;
  /**
   * Keeps the peer decoder's dynamic table in step (the protocol's default 4096 octets, or
   * less when the peer asks): a field this connection sent before goes out as one or two
   * octets. Blocks are encoded in the order they are written (`#encodeHeaders`).
   */
  protected readonly encoder = new HpackEncoder({ tableSize: ENCODER_TABLE_OCTETS });
  /** Peer's settings in force. */
  protected remoteMaxFrameSize = DEFAULT_MAX_FRAME_BYTES;
  protected remoteInitialWindow = DEFAULT_WINDOW_BYTES;
  protected remoteMaxConcurrentStreams = Number.POSITIVE_INFINITY;
  protected gotRemoteSettings = false;
  /** Highest stream id the peer opened (server) — GOAWAY's last-stream-id. */
  protected lastPeerStreamId = 0;
  /** GOAWAY sent: no new streams accepted or opened. */
  protected goawaySent = false;
  /** GOAWAY received: last stream id the peer will process (client side). */
  protected goawayLastStreamId = -1;
  protected destroyed = false;
  protected error: H2Error | null = null;

  #sendConnWindow = DEFAULT_WINDOW_BYTES;
  #recvConnWindow = DEFAULT_WINDOW_BYTES;
  #recvConnUnacked = 0;
  #pending: Buffer | null = null;
  #needPreface: boolean;
  /** Header block being assembled from HEADERS + CONTINUATION. */
  #hbStream = 0;
  #hbFlags = 0;
  #hbParts: Buffer[] = [];
  /** Octets of the header block being assembled (bounded: CONTINUATION floods). */
  #hbBytes = 0;
  /** CONTINUATION frames of the header block being assembled (bounded: empty-frame floods). */
  #hbFrames = 0;
  /** Ids of streams we reset, whose late frames are ignored. */
  readonly #resetIds = new StreamIdRing(RECENTLY_RESET_STREAMS);
  /** Ids of streams that closed with the peer knowing (`-id`: it reset them): frames on them are errors. */
  readonly #closedIds = new StreamIdRing(RECENTLY_CLOSED_STREAMS);
  /** Streams waiting for send window. */
  #blocked: H2Stream[] = [];
  #out: Buffer = NO_SLAB;
  #slabBytes = INITIAL_SLAB_BYTES;
  #outStart = 0;
  #outEnd = 0;
  #flushQueued = false;
  #pings: ((err: Error | null) => void)[] = [];
  #pingPayload = Buffer.alloc(8);
  #pingCounter = 0;
  #unreadAnswers = 0;
  readonly #now: () => number;
  /** The peer opened a stream id more than 2 above the last: lower ids may be unused. */
  #peerSkippedIds = false;
  /** The last list checked per field section, and its verdict (`#checkFields`). */
  readonly #checkedLists: (readonly string[] | null)[] = [null, null, null];
  readonly #checkedVerdicts = new Float64Array(3);
  #resetTokens = STREAM_RESET_BURST;
  #resetRefilledAt = -1;

  protected constructor(socket: Socket, isServer: boolean, options: ConnectionOptions) {
    this.socket = socket;
    this.isServer = isServer;
    this.local = resolveLocalSettings(options.settings);
    this.#now = options.now ?? performance.now.bind(performance);
    this.decoder = new HpackDecoder({
      maxHeaderListSize: Math.min(
        this.local.maxHeaderListSize * DECODER_LIST_SIZE_FACTOR,
        MAX_SETTING_VALUE,
      ),
    });
    this.#needPreface = isServer;
    socket.setNoDelay(true);
    // A socket this package set up reads into the thread's shared buffer (socket-reads.ts),
    // each read copied once before parsing. Any other socket is read through 'data'.
    const shared = takeSharedReads(socket, (buf, end) => this.#received(buf, end, true));
    if (!shared) socket.on('data', (chunk: Buffer) => this.#received(chunk, chunk.length, false));
    socket.on('error', (err: Error) => {
      this.error ??= new H2Error(H2_ERROR_CODES.H2ConnectionClosed, err.message, 0, { cause: err });
    });
    socket.on('close', () => this.#onSocketClose());
  }

  /** Starts the exchange: the client preface (client side) and our SETTINGS. */
  protected start(): void {
    if (!this.isServer) this.#writeRaw(CLIENT_PREFACE);
    const s = this.local;
    const entries: [number, number][] = [
      [SETTING.MAX_CONCURRENT_STREAMS, s.maxConcurrentStreams],
      [SETTING.INITIAL_WINDOW_SIZE, s.initialWindowSize],
      [SETTING.MAX_FRAME_SIZE, s.maxFrameSize],
      [SETTING.MAX_HEADER_LIST_SIZE, s.maxHeaderListSize],
    ];
    if (!this.isServer) entries.push([SETTING.ENABLE_PUSH, 0]);
    const at = this.#reserve(FRAME_HEADER_BYTES + entries.length * 6);
    const b = this.#out;
    writeFrameHead(b, at, entries.length * 6, FRAME_TYPE.SETTINGS, 0, 0);
    let p = at + FRAME_HEADER_BYTES;
    for (const [id, value] of entries) {
      writeU16BE(b, p, id);
      writeU32BE(b, p + 2, value);
      p += 6;
    }
    this.#commit(p);
    // Our stream windows apply from the peer's first read of SETTINGS; until it ACKs, it may
    // still count on 65 535 per stream, which is smaller: accepting more is always safe.
    this.#recvConnWindow = DEFAULT_WINDOW_BYTES;
    if (s.connectionWindowSize > DEFAULT_WINDOW_BYTES) {
      this.#writeWindowUpdate(0, s.connectionWindowSize - DEFAULT_WINDOW_BYTES);
      this.#recvConnWindow = s.connectionWindowSize;
    }
  }

  /** GOAWAY was sent or received: the connection ends once its streams have. */
  get isClosing(): boolean {
    return this.goawaySent;
  }

  get isDestroyed(): boolean {
    return this.destroyed;
  }

  /** The peer's SETTINGS have arrived (a client is usable from then on). */
  get isReady(): boolean {
    return this.gotRemoteSettings && !this.destroyed;
  }

  /**
   * Frames parsed so far, CONTINUATIONs not counted except the one that ends a header block
   * (a block counts when it starts and when it ends). A server's read-timeout sweep compares it
   * between its rounds to see progress, so no clock is read per frame, and a header block
   * trickled as CONTINUATIONs is no progress.
   */
  framesReceived = 0;

  /**
   * True while the connection waits for the rest of something it started reading: the
   * preface and first SETTINGS, a frame, or a header block (HEADERS + CONTINUATION). Sampled
   * by a server's read timeouts; a peer that stays here is trickling bytes (slowloris).
   */
  get isMidRead(): boolean {
    return !this.gotRemoteSettings || this.#pending !== null || this.#hbStream !== 0;
  }

  /**
   * Sends a PING; `callback` gets null when its ACK arrives, or an error when the
   * connection closes first. Returns false when the connection is closed.
   */
  ping(callback: (err: Error | null) => void): boolean {
    if (this.destroyed) return false;
    writeU32BE(this.#pingPayload, 4, ++this.#pingCounter >>> 0);
    this.#pings.push(callback);
    this.#writeControl(FRAME_TYPE.PING, 0, 0, this.#pingPayload);
    return true;
  }

  /**
   * Graceful close: GOAWAY (NO_ERROR), no new streams; the socket ends once every open
   * stream has closed.
   */
  close(): void {
    if (this.destroyed) return;
    if (!this.goawaySent) this.#writeGoaway(H2_ERROR.NO_ERROR, '');
    this.goawaySent = true;
    this.#endIfIdle();
  }

  /** Closes the socket now; open streams close with `CLOSE.CONNECTION_LOST`. */
  destroy(error?: H2Error): void {
    if (this.destroyed) return;
    if (error !== undefined) this.error ??= error;
    this.flush();
    this.socket.destroy();
    this.#onSocketClose();
  }

  // ---- sending ---------------------------------------------------------------------------

  /** @internal */
  sendHeaders(stream: H2Stream, headers: readonly string[] | Buffer, endStream: boolean): void {
    // Id 0: a client request waiting for a slot; its header block is the one given to request().
    if (stream.closed || stream.localEnded || this.destroyed || stream.id === 0) return;
    const flags = endStream ? FLAG.END_STREAM : 0;
    stream.sentHeaders = true;
    if (Buffer.isBuffer(headers)) this.#writePrebuilt(stream.id, headers, flags);
    else this.#encodeHeaders(stream.id, headers, flags);
    if (endStream) this.#localEnd(stream);
  }

  /** @internal */
  sendData(stream: H2Stream, data: Buffer, endStream: boolean): void {
    if (stream.closed || stream.localEnded || this.destroyed) return;
    if (stream.queue !== null || stream.id === 0) {
      // Behind flow control, or (id 0) a request waiting for a slot: sent by startQueued().
      if (stream.queue === null) stream.queue = [data];
      else stream.queue.push(data);
      if (endStream) {
        stream.queuedEnd = true;
        stream.localEnded = true;
      }
      return;
    }
    const sent = this.#writeData(stream, data, 0, endStream);
    if (sent < data.length) {
      stream.queue = [sent === 0 ? data : data.subarray(sent)];
      stream.queuedEnd = endStream;
      if (endStream) stream.localEnded = true;
      this.#blocked.push(stream);
    } else if (endStream) {
      this.#localEnd(stream);
    }
  }

  /** @internal */
  sendDataParts(stream: H2Stream, parts: readonly Buffer[], endStream: boolean): void {
    if (stream.closed || stream.localEnded || this.destroyed) return;
    let total = 0;
    for (let i = 0; i < parts.length; i++) total += parts[i]!.length;
    if (
      stream.queue !== null ||
      stream.id === 0 ||
      total === 0 ||
      total >= COPY_LIMIT_BYTES ||
      total > this.#sendConnWindow ||
      total > stream.sendWindow ||
      total > this.remoteMaxFrameSize
    ) {
      // Queued, empty, large or short of window: joined, then as any body.
      this.sendData(stream, Buffer.concat(parts, total), endStream);
      return;
    }
    const at = this.#reserve(FRAME_HEADER_BYTES + total);
    const out = this.#out;
    writeFrameHead(out, at, total, FRAME_TYPE.DATA, endStream ? FLAG.END_STREAM : 0, stream.id);
    let p = at + FRAME_HEADER_BYTES;
    for (let i = 0; i < parts.length; i++) {
      const part = parts[i]!;
      out.set(part, p);
      p += part.length;
    }
    this.#commit(p);
    this.#sendConnWindow -= total;
    stream.sendWindow -= total;
    if (endStream) this.#localEnd(stream);
  }

  /** @internal */
  sendTrailers(stream: H2Stream, trailers: readonly string[] | Buffer): void {
    if (stream.closed || stream.localEnded || this.destroyed) return;
    if (stream.queue !== null || stream.id === 0) {
      stream.queue ??= [];
      stream.queuedTrailers = Buffer.isBuffer(trailers) ? trailers : trailers.slice();
      stream.localEnded = true;
      return;
    }
    this.#writeTrailers(stream.id, trailers);
    this.#localEnd(stream);
  }

  #writeTrailers(id: number, trailers: readonly string[] | Buffer): void {
    if (Buffer.isBuffer(trailers)) this.#writePrebuilt(id, trailers, FLAG.END_STREAM);
    else this.#encodeHeaders(id, trailers, FLAG.END_STREAM);
  }

  /** @internal */
  resetStream(stream: H2Stream, code: number): void {
    if (stream.closed) return;
    // Id 0: a request still queued behind MAX_CONCURRENT_STREAMS, never sent.
    if (!this.destroyed && stream.id !== 0) {
      this.writeRst(stream.id, code);
      this.#resetIds.add(stream.id);
    }
    this.closeStream(stream, code);
  }

  /** Writes what is buffered: one `socket.write` for everything since the last flush. */
  flush(): void {
    this.#flushQueued = false;
    if (this.#outEnd === this.#outStart) return;
    if (this.socket.destroyed || this.socket.writableEnded) {
      // After end() (graceful close done) a late control frame (PING ACK, SETTINGS ACK...)
      // must not be written: a write after end makes Node destroy the socket and drop
      // reply bytes still queued for a slow reader.
      this.#outStart = 0;
      this.#outEnd = 0;
      return;
    }
    this.socket.write(this.#out.subarray(this.#outStart, this.#outEnd));
    if (this.socket.writableLength === 0) {
      // Written through to the kernel synchronously: nothing references the slab any more,
      // so it is reused from the start (no allocation per turn, no garbage).
      this.#outStart = 0;
      this.#outEnd = 0;
      return;
    }
    // A pending write still reads [outStart, outEnd): append after it, or take a new slab.
    this.#outStart = this.#outEnd;
    if (this.#out.length - this.#outEnd < 1024) this.#out = NO_SLAB;
  }

  // ---- for subclasses ----------------------------------------------------------------------

  /**
   * A new stream opened by the peer (server) — subclasses decide. On a server the request
   * headers are well-formed (RFC 9113 §8.1.1); `contentLength` is their `content-length`, -1
   * when absent.
   */
  protected abstract onPeerStream(
    id: number,
    headers: readonly string[],
    endStream: boolean,
    contentLength: number,
  ): void;

  /**
   * Resets a stream that is not (or no longer) in `streams` but that the peer opened: its late
   * frames will be ignored.
   */
  protected refuseStream(id: number, code: number): void {
    // A peer that sends refused requests faster than it reads the answers grows our output:
    // capped like every other answer it asks for.
    if (!this.#flooded()) this.writeRst(id, code);
    this.#resetIds.add(id);
  }

  /** Called after each SETTINGS from the peer was applied (the first makes a client ready). */
  protected peerSettingsReceived(): void {}

  /** Called when the socket is gone, after open streams were closed (clients fail queued requests). */
  protected connectionLost(): void {}

  /** Called after a GOAWAY from the peer was applied. */
  protected goawayReceived(_lastStreamId: number, _code: number): void {}

  protected newStream(id: number): H2Stream {
    const s = new H2Stream(id, this, this.remoteInitialWindow, this.local.initialWindowSize);
    this.streams.set(id, s);
    return s;
  }

  /**
   * Opens a client request that waited for a slot and whose owner queued data or trailers on
   * it meanwhile (`stream.queue` set): the header block, then the body (if any) and the queue,
   * as flow control allows.
   */
  protected startQueued(stream: H2Stream, headers: readonly string[], body: Buffer | null): void {
    if (body !== null) {
      stream.queue!.unshift(body);
      stream.queuedEnd = true;
      stream.localEnded = true;
    }
    stream.sentHeaders = true;
    this.#encodeHeaders(stream.id, headers, 0);
    this.#blocked.push(stream);
    this.#drainBlocked();
  }

  /** Closes `stream` once (map removal, handler notified). */
  protected closeStream(stream: H2Stream, code: number): void {
    if (stream.closed) return;
    stream.closed = true;
    stream.closeCode = code;
    stream.queue = null;
    stream.queuedTrailers = null;
    this.streams.delete(stream.id);
    // Both sides ended it: the peer knows it is closed.
    if (code === CLOSE.OK) this.#closedIds.add(stream.id);
    const h = stream.handler;
    if (h !== null) h.onClose(stream, code);
    // A closed stream lets go of its owner's objects. Something may still point at the stream
    // (its call, a pending write): were the stream promoted to the old generation and die
    // there, its handler's whole call would be kept through every scavenge until the next
    // full GC, and what that call references in turn (generational nepotism). Measured on
    // replicated Stores: 5 MB kept per scavenge without this, 1.5 MB with it (issue 15 notes).
    stream.handler = null;
    stream.context = null;
    this.streamClosed();
  }

  /** Hook after any stream closed (clients start queued requests here). */
  protected streamClosed(): void {
    this.#endIfIdle();
  }

  /** Connection error: GOAWAY with `code`, then the socket goes. */
  protected fail(code: number, message: string): void {
    if (this.destroyed) return;
    this.#writeGoaway(code, message);
    this.destroy(new H2Error(H2_ERROR_CODES.H2ProtocolError, message, code));
  }

  #onHandlerError(err: unknown): void {
    const message = err instanceof Error ? err.message : String(err);
    this.error ??= new H2Error(
      H2_ERROR_CODES.H2ConnectionClosed,
      `stream handler threw: ${message}`,
      H2_ERROR.INTERNAL_ERROR,
      { cause: err },
    );
    this.fail(H2_ERROR.INTERNAL_ERROR, 'internal error');
  }

  /**
   * Counts an answer the peer asked for; true (and the connection failed with
   * ENHANCE_YOUR_CALM) once too many pile up unread. The count restarts whenever the socket's
   * write buffer has room, so a peer that reads is never cut off.
   */
  #flooded(): boolean {
    if (!this.socket.writableNeedDrain) {
      this.#unreadAnswers = 0;
      return false;
    }
    if (++this.#unreadAnswers <= MAX_UNREAD_ANSWERS) return false;
    this.fail(H2_ERROR.ENHANCE_YOUR_CALM, 'peer does not read the answers it asks for');
    return true;
  }

  /** Stream error (RFC 9113 §5.4.2): RST_STREAM, the connection lives on. */
  protected streamError(id: number, code: number): void {
    const s = this.streams.get(id);
    if (s !== undefined) {
      // A stream error the client provokes on a stream it opened (a self-dependency, DATA past
      // content-length, a zero WINDOW_UPDATE...) frees its slot and cancels its call just as
      // its own RST_STREAM would: the same Rapid Reset budget (CVE-2025-8671, MadeYouReset).
      if (this.isServer && !this.#takeResetToken()) this.#calm('too many streams reset');
      this.resetStream(s, code);
    } else if (!this.#flooded()) this.writeRst(id, code);
  }

  // ---- receiving ---------------------------------------------------------------------------

  /**
   * Bytes `chunk[0, end)` arrived. `transient`: `chunk` is the shared read buffer, reused by
   * the next read: the read is copied once, exactly sized, and parsed from the copy, so DATA
   * payloads, a partial frame or a header block cut between reads can be kept as views. (One
   * copy per read beat one per kept payload: a loaded read holds a dozen calls.)
   */
  #received(chunk: Buffer, end: number, transient: boolean): void {
    // Nothing may escape a read callback (it would take the process down): a throwing stream
    // handler costs its connection, never the process.
    try {
      this.#onBytes(chunk, end, transient);
    } catch (err) {
      this.#onHandlerError(err);
    }
  }

  #onBytes(chunk: Buffer, end: number, transient: boolean): void {
    if (this.destroyed) return;
    let buf: Buffer;
    if (this.#pending !== null) {
      buf = Buffer.concat([this.#pending, chunk.subarray(0, end)]);
      this.#pending = null;
    } else buf = transient ? copyOfRead(chunk, end) : chunk;
    const n = buf.length;
    let pos = 0;
    if (this.#needPreface) {
      if (n < CLIENT_PREFACE.length) {
        if (buf.compare(CLIENT_PREFACE, 0, n, 0, n) !== 0) {
          this.fail(H2_ERROR.PROTOCOL_ERROR, 'bad connection preface');
          return;
        }
        this.#pending = buf;
        return;
      }
      if (buf.compare(CLIENT_PREFACE, 0, CLIENT_PREFACE.length, 0, CLIENT_PREFACE.length) !== 0) {
        this.fail(H2_ERROR.PROTOCOL_ERROR, 'bad connection preface');
        return;
      }
      this.#needPreface = false;
      pos = CLIENT_PREFACE.length;
    }
    const maxFrame = this.local.maxFrameSize;
    while (n - pos >= FRAME_HEADER_BYTES) {
      const len = (buf[pos]! << 16) | (buf[pos + 1]! << 8) | buf[pos + 2]!;
      if (len > maxFrame) {
        this.fail(H2_ERROR.FRAME_SIZE_ERROR, `frame of ${len} bytes exceeds ${maxFrame}`);
        return;
      }
      if (n - pos - FRAME_HEADER_BYTES < len) break;
      const type = buf[pos + 3]!;
      const flags = buf[pos + 4]!;
      const id = readU32BE(buf, pos + 5) & 0x7fffffff;
      const start = pos + FRAME_HEADER_BYTES;
      pos = start + len;
      // A header block counts when it starts and when it ends, not in between.
      if (type !== FRAME_TYPE.CONTINUATION || (flags & FLAG.END_HEADERS) !== 0) {
        this.framesReceived++;
      }
      this.#onFrame(type, flags, id, buf, start, pos);
      if (this.destroyed) return;
    }
    if (pos < n) this.#pending = pos === 0 ? buf : buf.subarray(pos);
  }

  #onFrame(type: number, flags: number, id: number, buf: Buffer, start: number, end: number): void {
    if (!this.gotRemoteSettings && type !== FRAME_TYPE.SETTINGS) {
      this.fail(H2_ERROR.PROTOCOL_ERROR, 'first frame is not SETTINGS');
      return;
    }
    if (this.#hbStream !== 0 && type !== FRAME_TYPE.CONTINUATION) {
      this.fail(H2_ERROR.PROTOCOL_ERROR, 'header block interrupted by another frame');
      return;
    }
    switch (type) {
      case FRAME_TYPE.DATA:
        this.#onData(flags, id, buf, start, end);
        return;
      case FRAME_TYPE.HEADERS:
        this.#onHeadersFrame(flags, id, buf, start, end);
        return;
      case FRAME_TYPE.CONTINUATION:
        if (this.#hbStream === 0 || id !== this.#hbStream) {
          this.fail(H2_ERROR.PROTOCOL_ERROR, 'CONTINUATION without an open header block');
          return;
        }
        this.#hbBytes += end - start;
        if (this.#hbBytes > this.#maxHeaderBlockBytes()) {
          this.fail(H2_ERROR.ENHANCE_YOUR_CALM, 'header block too large');
          return;
        }
        if (++this.#hbFrames > MAX_CONTINUATION_FRAMES) {
          this.fail(H2_ERROR.ENHANCE_YOUR_CALM, 'too many CONTINUATION frames');
          return;
        }
        if (end > start) this.#hbParts.push(buf.subarray(start, end));
        if (flags & FLAG.END_HEADERS) this.#endHeaderBlock();
        return;
      case FRAME_TYPE.PRIORITY:
        if (id === 0) this.fail(H2_ERROR.PROTOCOL_ERROR, 'PRIORITY on stream 0');
        else if (end - start !== 5) this.streamError(id, H2_ERROR.FRAME_SIZE_ERROR);
        else if ((readU32BE(buf, start) & 0x7fffffff) === id) {
          // A stream cannot depend on itself: a stream error (RFC 7540 §5.3.1). RST_STREAM
          // must not name an idle stream (§6.4), so there it becomes a connection error (§5.4).
          if (this.#idle(id)) this.fail(H2_ERROR.PROTOCOL_ERROR, 'stream depends on itself');
          else this.streamError(id, H2_ERROR.PROTOCOL_ERROR);
        }
        return;
      case FRAME_TYPE.RST_STREAM: {
        if (id === 0) {
          this.fail(H2_ERROR.PROTOCOL_ERROR, 'RST_STREAM on stream 0');
          return;
        }
        if (end - start !== 4) {
          this.fail(H2_ERROR.FRAME_SIZE_ERROR, 'RST_STREAM size');
          return;
        }
        const s = this.streams.get(id);
        if (s !== undefined) {
          const code = readU32BE(buf, start);
          // NO_ERROR after the peer's complete reply only stops our upload (RFC 9113 §8.1):
          // the reply stands.
          if (code === H2_ERROR.NO_ERROR && s.remoteEnded) {
            this.closeStream(s, CLOSE.OK);
            return;
          }
          if (this.isServer && !this.#takeResetToken())
            this.#calm('too many streams reset by the client');
          this.#closedIds.add(-id);
          this.closeStream(s, code);
        } else if (this.#idle(id)) {
          this.fail(H2_ERROR.PROTOCOL_ERROR, 'RST_STREAM on an idle stream');
        }
        return;
      }
      case FRAME_TYPE.SETTINGS:
        this.#onSettings(flags, id, buf, start, end);
        return;
      case FRAME_TYPE.PUSH_PROMISE:
        this.fail(H2_ERROR.PROTOCOL_ERROR, 'PUSH_PROMISE is not accepted');
        return;
      case FRAME_TYPE.PING:
        if (id !== 0) {
          this.fail(H2_ERROR.PROTOCOL_ERROR, 'PING on a stream');
          return;
        }
        if (end - start !== 8) {
          this.fail(H2_ERROR.FRAME_SIZE_ERROR, 'PING size');
          return;
        }
        if (flags & FLAG.ACK) {
          const cb = this.#pings.shift();
          if (cb !== undefined) cb(null);
        } else {
          if (this.#flooded()) return;
          this.#writeControl(FRAME_TYPE.PING, FLAG.ACK, 0, buf.subarray(start, end));
        }
        return;
      case FRAME_TYPE.GOAWAY: {
        if (id !== 0) {
          this.fail(H2_ERROR.PROTOCOL_ERROR, 'GOAWAY on a stream');
          return;
        }
        if (end - start < 8) {
          this.fail(H2_ERROR.FRAME_SIZE_ERROR, 'GOAWAY size');
          return;
        }
        const last = readU32BE(buf, start) & 0x7fffffff;
        const code = readU32BE(buf, start + 4);
        this.goawayLastStreamId =
          this.goawayLastStreamId < 0 ? last : Math.min(last, this.goawayLastStreamId);
        this.goawayReceived(last, code);
        // Streams we opened above `last` were never processed: safe to retry elsewhere.
        for (const s of this.streams.values()) {
          if (s.id > last && (s.id & 1) === (this.isServer ? 0 : 1)) {
            this.closeStream(s, H2_ERROR.REFUSED_STREAM);
          }
        }
        if (!this.goawaySent) {
          this.goawaySent = true;
          this.#writeGoaway(H2_ERROR.NO_ERROR, '');
        }
        this.#endIfIdle();
        return;
      }
      case FRAME_TYPE.WINDOW_UPDATE:
        this.#onWindowUpdate(id, buf, start, end);
        return;
      default:
        return; // Unknown frame types are ignored (RFC 9113 §4.1).
    }
  }

  /**
   * The peer ended its side of `s`. Both sides ended: the stream is over. A client whose
   * request is still going out already has the complete reply: it stops the upload with
   * RST_STREAM(CANCEL) and the stream ends OK (a server's response may still be streaming).
   */
  #remoteEnded(s: H2Stream): void {
    if (s.localEnded && s.queue === null) {
      this.closeStream(s, CLOSE.OK);
    } else if (!this.isServer) {
      this.writeRst(s.id, H2_ERROR.CANCEL);
      this.#resetIds.add(s.id);
      this.closeStream(s, CLOSE.OK);
    }
  }

  /**
   * An abusive but well-formed peer: GOAWAY(ENHANCE_YOUR_CALM) and a graceful close, so the
   * streams it already opened still finish and it can open no more.
   */
  #calm(message: string): void {
    if (this.goawaySent) return;
    this.#writeGoaway(H2_ERROR.ENHANCE_YOUR_CALM, message);
    this.goawaySent = true;
    this.#endIfIdle();
  }

  /** Token bucket of client stream resets (only RST_STREAM frames read the clock). */
  #takeResetToken(): boolean {
    const now = this.#now();
    if (this.#resetRefilledAt >= 0) {
      const refill = ((now - this.#resetRefilledAt) * STREAM_RESET_PER_SECOND) / 1000;
      this.#resetTokens = Math.min(STREAM_RESET_BURST, this.#resetTokens + refill);
    }
    this.#resetRefilledAt = now;
    if (this.#resetTokens < 1) return false;
    this.#resetTokens -= 1;
    return true;
  }

  /** A stream id the peer could not have used yet. */
  #idle(id: number): boolean {
    const peerOpened = (id & 1) === (this.isServer ? 1 : 0);
    return peerOpened ? id > this.lastPeerStreamId : id >= this.nextLocalStreamId();
  }

  /**
   * Next id this side would open. A server never opens streams (push is refused), so every
   * even id is idle: a client using one breaks §5.1.1.
   */
  protected nextLocalStreamId(): number {
    return 2;
  }

  #onData(flags: number, id: number, buf: Buffer, start: number, end: number): void {
    if (id === 0) {
      this.fail(H2_ERROR.PROTOCOL_ERROR, 'DATA on stream 0');
      return;
    }
    const len = end - start;
    // Flow control counts the whole payload, padding included.
    this.#recvConnWindow -= len;
    if (this.#recvConnWindow < 0) {
      this.fail(H2_ERROR.FLOW_CONTROL_ERROR, 'connection receive window exceeded');
      return;
    }
    this.#recvConnUnacked += len;
    // `> 0`: with a window of 0 or 1 the threshold is 0, and an increment of 0 is illegal.
    if (
      this.#recvConnUnacked >= this.local.connectionWindowSize >>> 1 &&
      this.#recvConnUnacked > 0
    ) {
      this.#writeWindowUpdate(0, this.#recvConnUnacked);
      this.#recvConnWindow += this.#recvConnUnacked;
      this.#recvConnUnacked = 0;
    }
    if (flags & FLAG.PADDED) {
      if (len < 1) {
        this.fail(H2_ERROR.PROTOCOL_ERROR, 'DATA padding');
        return;
      }
      const pad = buf[start]!;
      start += 1;
      end -= pad;
      if (end < start) {
        this.fail(H2_ERROR.PROTOCOL_ERROR, 'DATA padding too long');
        return;
      }
    }
    const s = this.streams.get(id);
    if (s === undefined) {
      if (this.#idle(id)) {
        this.fail(H2_ERROR.PROTOCOL_ERROR, 'DATA on an idle stream');
        return;
      }
      // DATA after both sides ended the stream: the peer's state machine is broken (RFC 9113
      // §5.1 allows, RFC 7540 §5.1 required, a connection error STREAM_CLOSED).
      if (this.#closedIds.has(id) && !this.#resetIds.has(id)) {
        this.fail(H2_ERROR.STREAM_CLOSED, `DATA on closed stream ${id}`);
        return;
      }
      // DATA on a stream this side reset was in flight before the peer saw the reset: ignored
      // (RFC 9113 §5.1), the bytes counted above. A client's closed streams are mostly ones it
      // reset (cancelled attempts), so a client never answers; answering each with RST_STREAM
      // would spend the server's own reset budget. A server answers DATA on a stream the peer
      // reset with RST_STREAM (bounded by the unread-answer cap): the stream error
      // STREAM_CLOSED due after the peer's own RST_STREAM (RFC 7540 §5.1).
      if (this.isServer && !this.#resetIds.has(id) && !this.#flooded()) {
        this.writeRst(id, H2_ERROR.STREAM_CLOSED);
      }
      return;
    }
    if (s.remoteEnded) {
      this.streamError(id, H2_ERROR.STREAM_CLOSED);
      return;
    }
    s.recvWindow -= len;
    if (s.recvWindow < 0) {
      this.streamError(id, H2_ERROR.FLOW_CONTROL_ERROR);
      return;
    }
    s.bytesReceived += len;
    const endStream = (flags & FLAG.END_STREAM) !== 0;
    if (s.contentLeft >= 0) {
      // The request announced its length: more DATA than that, or an end before it, is a
      // malformed request (§8.1.1), failed before the handler sees the offending bytes.
      s.contentLeft -= end - start;
      if (s.contentLeft < 0 || (endStream && s.contentLeft !== 0)) {
        this.streamError(id, H2_ERROR.PROTOCOL_ERROR);
        return;
      }
    }
    if (endStream) s.remoteEnded = true;
    else {
      s.recvUnacked += len;
      if (s.recvUnacked >= this.local.initialWindowSize >>> 1 && s.recvUnacked > 0) {
        this.#writeWindowUpdate(id, s.recvUnacked);
        s.recvWindow += s.recvUnacked;
        s.recvUnacked = 0;
      }
    }
    const h = s.handler;
    if (h !== null && (end > start || endStream)) {
      h.onData(s, end > start ? buf.subarray(start, end) : ZERO, endStream);
    }
    if (endStream && !s.closed) this.#remoteEnded(s);
  }

  #onHeadersFrame(flags: number, id: number, buf: Buffer, start: number, end: number): void {
    if (id === 0) {
      this.fail(H2_ERROR.PROTOCOL_ERROR, 'HEADERS on stream 0');
      return;
    }
    if (flags & FLAG.PADDED) {
      if (end - start < 1) {
        this.fail(H2_ERROR.PROTOCOL_ERROR, 'HEADERS padding');
        return;
      }
      const pad = buf[start]!;
      start += 1;
      end -= pad;
    }
    if (flags & FLAG.PRIORITY) {
      if (end - start >= 5 && (readU32BE(buf, start) & 0x7fffffff) === id) {
        flags |= SELF_DEPENDENT;
      }
      start += 5;
    }
    if (end < start) {
      this.fail(H2_ERROR.PROTOCOL_ERROR, 'HEADERS padding too long');
      return;
    }
    if (flags & FLAG.END_HEADERS) {
      this.#onHeaderBlock(id, flags, buf, start, end);
      return;
    }
    this.#hbStream = id;
    this.#hbFlags = flags;
    this.#hbParts.length = 0;
    this.#hbParts.push(buf.subarray(start, end));
    this.#hbBytes = end - start;
    this.#hbFrames = 0;
  }

  /**
   * Largest header block assembled from HEADERS + CONTINUATION. Encoded fields are smaller than
   * their decoded size (name + value + 32) except for Huffman's worst case (30 bits per octet),
   * so 4× the header list limit never cuts off a block the decoder would accept.
   */
  #maxHeaderBlockBytes(): number {
    return 4 * this.local.maxHeaderListSize + this.local.maxFrameSize;
  }

  #endHeaderBlock(): void {
    const id = this.#hbStream;
    const block = Buffer.concat(this.#hbParts);
    this.#hbStream = 0;
    this.#hbParts.length = 0;
    this.#onHeaderBlock(id, this.#hbFlags, block, 0, block.length);
  }

  /**
   * `checkFields` of a list just decoded, remembered per section for the last list: a list the
   * decoder hands out again (a repeated block, `decodeList`) is the same fields, the same
   * verdict.
   */
  #checkFields(headers: readonly string[], section: FieldSection): number {
    if (this.#checkedLists[section] === headers) return this.#checkedVerdicts[section]!;
    const verdict = checkFields(headers, section, this.decoder.charsValid);
    this.#checkedLists[section] = headers;
    this.#checkedVerdicts[section] = verdict;
    return verdict;
  }

  #onHeaderBlock(id: number, flags: number, buf: Buffer, start: number, end: number): void {
    // Every block is decoded, even for streams we drop: the HPACK table is connection state.
    // The list is exactly sized, read-only, and shared by blocks repeated against an unchanged
    // table (`HpackDecoder.decodeList`): a node's usual reply headers and trailers, a client's
    // usual request headers, decoded once.
    let headers: readonly string[];
    try {
      headers = this.decoder.decodeList(buf, start, end);
    } catch (err) {
      this.fail(H2_ERROR.COMPRESSION_ERROR, (err as Error).message);
      return;
    }
    const endStream = (flags & FLAG.END_STREAM) !== 0;
    const tooLarge = this.decoder.listSize > this.local.maxHeaderListSize;
    const s = this.streams.get(id);
    if (s === undefined) {
      const peerOpened = (id & 1) === (this.isServer ? 1 : 0);
      if (peerOpened && id > this.lastPeerStreamId) {
        if (id > this.lastPeerStreamId + 2) this.#peerSkippedIds = true;
        this.lastPeerStreamId = id;
        if (this.isServer) this.#onRequest(id, flags, headers, endStream, tooLarge);
        else this.onPeerStream(id, headers, endStream, -1);
        return;
      }
      if (this.#idle(id)) {
        this.fail(H2_ERROR.PROTOCOL_ERROR, 'HEADERS on an idle stream');
        return;
      }
      this.#onClosedStreamHeaders(id, peerOpened, endStream);
      return;
    }
    if (s.remoteEnded) {
      this.streamError(id, H2_ERROR.STREAM_CLOSED);
      return;
    }
    if (tooLarge || (flags & SELF_DEPENDENT) !== 0) {
      // A reply (or trailers) above our limit fails its stream, not the connection; so does a
      // stream made to depend on itself (RFC 7540 §5.3.1).
      this.streamError(id, H2_ERROR.PROTOCOL_ERROR);
      return;
    }
    if (s.headers === null) {
      // Client side: the response (a server's streams have their request headers already).
      if (this.#checkFields(headers, FIELD_SECTION.RESPONSE) === FIELDS_VERDICT.MALFORMED) {
        this.streamError(id, H2_ERROR.PROTOCOL_ERROR);
        return;
      }
      // Well-formed: `:status` comes first.
      if (headers[1]!.charCodeAt(0) === 0x31 /* '1' */) {
        // 1xx informational response (§8.1): skipped; the final response follows. It never
        // ends the stream.
        if (endStream) this.streamError(id, H2_ERROR.PROTOCOL_ERROR);
        return;
      }
      s.headers = headers;
    } else if (
      // A second block is trailers: it ends the stream (§8.1), holds no pseudo-header (§8.1),
      // and ends a body as long as the request's content-length said (§8.1.1).
      !endStream ||
      s.contentLeft > 0 ||
      this.#checkFields(headers, FIELD_SECTION.TRAILERS) === FIELDS_VERDICT.MALFORMED
    ) {
      this.streamError(id, H2_ERROR.PROTOCOL_ERROR);
      return;
    }
    if (endStream) s.remoteEnded = true;
    const h = s.handler;
    if (h !== null) h.onHeaders(s, headers, endStream);
    if (endStream && !s.closed) this.#remoteEnded(s);
  }

  /**
   * Request headers opening stream `id` (server side). Only a well-formed request reaches
   * `onPeerStream`; the others fail their stream alone (RFC 9113 §8.1.1), never reaching the
   * stream listener.
   */
  #onRequest(
    id: number,
    flags: number,
    headers: readonly string[],
    endStream: boolean,
    tooLarge: boolean,
  ): void {
    if (tooLarge) {
      // Only this request fails (RFC 9113 §10.5.1: 431); the others on the connection live.
      this.#answerAndClose(id, HEADERS_TOO_LARGE, endStream);
      return;
    }
    const verdict =
      (flags & SELF_DEPENDENT) !== 0
        ? FIELDS_VERDICT.MALFORMED
        : this.#checkFields(headers, FIELD_SECTION.REQUEST);
    if (verdict === FIELDS_VERDICT.CONNECT) {
      this.#answerAndClose(id, CONNECT_NOT_IMPLEMENTED, endStream);
      return;
    }
    // A content-length above 0 on a request without DATA is already a body that fell short.
    if (verdict === FIELDS_VERDICT.MALFORMED || (endStream && verdict > 0)) {
      this.refuseStream(id, H2_ERROR.PROTOCOL_ERROR);
      return;
    }
    this.onPeerStream(id, headers, endStream, verdict);
  }

  /** A final answer of our own to a request its handler never sees; the stream is over. */
  #answerAndClose(id: number, block: readonly string[], endStream: boolean): void {
    if (this.#flooded()) return;
    this.#encodeHeaders(id, block, FLAG.END_STREAM);
    // The peer ended its side too: closed for both. Otherwise the rest of the request is
    // refused (NO_ERROR: the answer stands, §8.1).
    if (endStream) this.#closedIds.add(id);
    else this.refuseStream(id, H2_ERROR.NO_ERROR);
  }

  /**
   * HEADERS on a stream that is no longer open and not idle (RFC 9113 §5.1, §5.1.1):
   * - we reset it: late trailers the peer sent before it saw our RST_STREAM, ignored (a block
   *   without END_STREAM cannot be trailers: an id reused, PROTOCOL_ERROR);
   * - both sides ended it: connection error STREAM_CLOSED. A connection error, not
   *   RST_STREAM: RFC 7540 required it after END_STREAM, RFC 9113 allows it, and a peer that
   *   sends on a stream it ended has a broken state machine;
   * - the peer reset it: stream error STREAM_CLOSED (RFC 7540 §5.1's rule after RST_STREAM;
   *   the connection lives on, as for DATA on such a stream);
   * - neither, on a stream id the peer would open: an id lower than one it already used opens
   *   no stream (§5.1.1), connection error PROTOCOL_ERROR. On a client, a stream of ours that
   *   closed otherwise (refused by GOAWAY, or forgotten): ignored, as before.
   */
  #onClosedStreamHeaders(id: number, peerOpened: boolean, endStream: boolean): void {
    if (this.#resetIds.has(id)) {
      if (peerOpened && !endStream) {
        this.fail(H2_ERROR.PROTOCOL_ERROR, `HEADERS reusing stream id ${id}`);
      }
      return;
    }
    if (this.#closedIds.has(id)) {
      this.fail(H2_ERROR.STREAM_CLOSED, `HEADERS on closed stream ${id}`);
      return;
    }
    if (this.#closedIds.has(-id)) {
      this.streamError(id, H2_ERROR.STREAM_CLOSED);
      return;
    }
    // Neither ring remembers it. A peer that never skipped an id used every lower one: this
    // is an old stream, likely one reset by us longer ago than the ring remembers, whose
    // trailers came late: a stream error, not the connection's end. Otherwise the id may
    // never have been used: opening it now breaks §5.1.1.
    if (peerOpened && endStream && !this.#peerSkippedIds) {
      this.streamError(id, H2_ERROR.STREAM_CLOSED);
    } else if (peerOpened) {
      this.fail(H2_ERROR.PROTOCOL_ERROR, `HEADERS reusing stream id ${id}`);
    }
  }

  #onSettings(flags: number, id: number, buf: Buffer, start: number, end: number): void {
    if (id !== 0) {
      this.fail(H2_ERROR.PROTOCOL_ERROR, 'SETTINGS on a stream');
      return;
    }
    if (flags & FLAG.ACK) {
      if (end !== start) this.fail(H2_ERROR.FRAME_SIZE_ERROR, 'SETTINGS ACK with a payload');
      return;
    }
    if ((end - start) % 6 !== 0) {
      this.fail(H2_ERROR.FRAME_SIZE_ERROR, 'SETTINGS size');
      return;
    }
    for (let p = start; p < end; p += 6) {
      const key = readU16BE(buf, p);
      const value = readU32BE(buf, p + 2);
      switch (key) {
        case SETTING.INITIAL_WINDOW_SIZE: {
          if (value > MAX_WINDOW_BYTES) {
            this.fail(H2_ERROR.FLOW_CONTROL_ERROR, 'INITIAL_WINDOW_SIZE too large');
            return;
          }
          const delta = value - this.remoteInitialWindow;
          this.remoteInitialWindow = value;
          for (const s of this.streams.values()) {
            s.sendWindow += delta;
            if (s.sendWindow > MAX_WINDOW_BYTES) {
              this.fail(H2_ERROR.FLOW_CONTROL_ERROR, 'stream window overflow');
              return;
            }
          }
          break;
        }
        case SETTING.MAX_FRAME_SIZE:
          if (value < DEFAULT_MAX_FRAME_BYTES || value > MAX_FRAME_BYTES_LIMIT) {
            this.fail(H2_ERROR.PROTOCOL_ERROR, `MAX_FRAME_SIZE ${value}`);
            return;
          }
          this.remoteMaxFrameSize = value;
          break;
        case SETTING.MAX_CONCURRENT_STREAMS:
          this.remoteMaxConcurrentStreams = value;
          break;
        case SETTING.ENABLE_PUSH:
          if (value > 1) {
            this.fail(H2_ERROR.PROTOCOL_ERROR, `ENABLE_PUSH ${value}`);
            return;
          }
          break;
        case SETTING.HEADER_TABLE_SIZE:
          // Our encoder never indexes, but a shrinking table must still be acknowledged by a
          // size update at the start of the next block (RFC 7541 §4.2; nghttp2 checks it).
          this.encoder.setPeerMaxTableSize(value);
          break;
        default:
          break;
      }
    }
    if (this.#flooded()) return;
    this.#writeControl(FRAME_TYPE.SETTINGS, FLAG.ACK, 0, ZERO);
    this.gotRemoteSettings = true;
    // Every time: a raised MAX_CONCURRENT_STREAMS lets queued requests go.
    this.peerSettingsReceived();
    this.#drainBlocked();
  }

  #onWindowUpdate(id: number, buf: Buffer, start: number, end: number): void {
    if (end - start !== 4) {
      this.fail(H2_ERROR.FRAME_SIZE_ERROR, 'WINDOW_UPDATE size');
      return;
    }
    const inc = readU32BE(buf, start) & 0x7fffffff;
    if (id === 0) {
      if (inc === 0) {
        this.fail(H2_ERROR.PROTOCOL_ERROR, 'WINDOW_UPDATE of 0');
        return;
      }
      this.#sendConnWindow += inc;
      if (this.#sendConnWindow > MAX_WINDOW_BYTES) {
        this.fail(H2_ERROR.FLOW_CONTROL_ERROR, 'connection window overflow');
        return;
      }
    } else {
      const s = this.streams.get(id);
      if (s === undefined) {
        if (this.#idle(id)) this.fail(H2_ERROR.PROTOCOL_ERROR, 'WINDOW_UPDATE on an idle stream');
        return;
      }
      if (inc === 0) {
        this.streamError(id, H2_ERROR.PROTOCOL_ERROR);
        return;
      }
      s.sendWindow += inc;
      if (s.sendWindow > MAX_WINDOW_BYTES) {
        this.streamError(id, H2_ERROR.FLOW_CONTROL_ERROR);
        return;
      }
    }
    this.#drainBlocked();
  }

  #onSocketClose(): void {
    if (this.destroyed) return;
    this.destroyed = true;
    const lost = this.error ?? new H2Error(H2_ERROR_CODES.H2ConnectionClosed, 'connection closed');
    for (const s of [...this.streams.values()]) this.closeStream(s, CLOSE.CONNECTION_LOST);
    this.connectionLost();
    for (const cb of this.#pings.splice(0)) cb(lost);
    this.#blocked.length = 0;
    const cb = this.onClose;
    this.onClose = null;
    if (cb !== null) cb(this.error);
  }

  #endIfIdle(): void {
    if (this.goawaySent && this.streams.size === 0 && !this.destroyed) {
      this.flush();
      this.socket.end();
    }
  }

  // ---- frame writers -----------------------------------------------------------------------

  /** Space for `n` bytes at the end of the output slab; returns its offset. */
  #reserve(n: number): number {
    if (this.#outEnd + n > this.#out.length) {
      // One turn's output outgrew the slab: the rest of the turn goes into one twice the size
      // (reusing the small one after a synchronous write would mean a write per slab-full).
      const grow = this.#out !== NO_SLAB && this.#slabBytes < MAX_SLAB_BYTES;
      if (grow) this.#slabBytes *= 2;
      this.flush();
      if (grow || this.#outEnd + n > this.#out.length) {
        this.#out = Buffer.allocUnsafeSlow(Math.max(this.#slabBytes, n));
        this.#outStart = 0;
        this.#outEnd = 0;
      }
    }
    return this.#outEnd;
  }

  #commit(end: number): void {
    this.#outEnd = end;
    if (!this.#flushQueued) {
      this.#flushQueued = true;
      scheduleFlush(this);
    }
  }

  #writeRaw(bytes: Buffer): void {
    const at = this.#reserve(bytes.length);
    bytes.copy(this.#out, at);
    this.#commit(at + bytes.length);
  }

  #writeControl(type: number, flags: number, id: number, payload: Buffer): void {
    const at = this.#reserve(FRAME_HEADER_BYTES + payload.length);
    writeFrameHead(this.#out, at, payload.length, type, flags, id);
    payload.copy(this.#out, at + FRAME_HEADER_BYTES);
    this.#commit(at + FRAME_HEADER_BYTES + payload.length);
  }

  protected writeRst(id: number, code: number): void {
    const at = this.#reserve(FRAME_HEADER_BYTES + 4);
    writeFrameHead(this.#out, at, 4, FRAME_TYPE.RST_STREAM, 0, id);
    writeU32BE(this.#out, at + FRAME_HEADER_BYTES, code);
    this.#commit(at + FRAME_HEADER_BYTES + 4);
  }

  #writeWindowUpdate(id: number, inc: number): void {
    const at = this.#reserve(FRAME_HEADER_BYTES + 4);
    writeFrameHead(this.#out, at, 4, FRAME_TYPE.WINDOW_UPDATE, 0, id);
    writeU32BE(this.#out, at + FRAME_HEADER_BYTES, inc);
    this.#commit(at + FRAME_HEADER_BYTES + 4);
  }

  #writeGoaway(code: number, debug: string): void {
    const msg = Buffer.from(debug.slice(0, 256), 'utf8');
    const at = this.#reserve(FRAME_HEADER_BYTES + 8 + msg.length);
    const b = this.#out;
    writeFrameHead(b, at, 8 + msg.length, FRAME_TYPE.GOAWAY, 0, 0);
    writeU32BE(b, at + FRAME_HEADER_BYTES, this.lastPeerStreamId);
    writeU32BE(b, at + FRAME_HEADER_BYTES + 4, code);
    msg.copy(b, at + FRAME_HEADER_BYTES + 8);
    this.#commit(at + FRAME_HEADER_BYTES + 8 + msg.length);
  }

  #encodeHeaders(id: number, headers: readonly string[], flags: number): void {
    const cap = HpackEncoder.maxEncodedLength(headers);
    const at = this.#reserve(FRAME_HEADER_BYTES + cap);
    const end = this.encoder.encode(headers, this.#out, at + FRAME_HEADER_BYTES);
    const len = end - at - FRAME_HEADER_BYTES;
    if (len <= this.remoteMaxFrameSize) {
      writeFrameHead(this.#out, at, len, FRAME_TYPE.HEADERS, flags | FLAG.END_HEADERS, id);
      this.#commit(end);
      return;
    }
    // Rare: a block larger than a frame goes out as HEADERS + CONTINUATION frames.
    const block = Buffer.from(this.#out.subarray(at + FRAME_HEADER_BYTES, end));
    this.#writeHeaderBlock(id, block, flags);
  }

  /** A block encoded once up front; a pending table size update (if any) goes in front. */
  #writePrebuilt(id: number, block: Buffer, flags: number): void {
    const at = this.#reserve(FRAME_HEADER_BYTES + SIZE_UPDATE_MAX_BYTES + block.length);
    const start = at + FRAME_HEADER_BYTES;
    const p = this.encoder.encode(NO_HEADERS, this.#out, start);
    const end = p + block.copy(this.#out, p);
    const len = end - start;
    if (len <= this.remoteMaxFrameSize) {
      writeFrameHead(this.#out, at, len, FRAME_TYPE.HEADERS, flags | FLAG.END_HEADERS, id);
      this.#commit(end);
      return;
    }
    this.#writeHeaderBlock(id, Buffer.from(this.#out.subarray(start, end)), flags);
  }

  #writeHeaderBlock(id: number, block: Buffer, flags: number): void {
    const max = this.remoteMaxFrameSize;
    let type: number = FRAME_TYPE.HEADERS;
    let off = 0;
    do {
      const len = Math.min(max, block.length - off);
      const last = off + len === block.length;
      const f = (type === FRAME_TYPE.HEADERS ? flags : 0) | (last ? FLAG.END_HEADERS : 0);
      const at = this.#reserve(FRAME_HEADER_BYTES + len);
      writeFrameHead(this.#out, at, len, type, f, id);
      block.copy(this.#out, at + FRAME_HEADER_BYTES, off, off + len);
      this.#commit(at + FRAME_HEADER_BYTES + len);
      off += len;
      type = FRAME_TYPE.CONTINUATION;
    } while (off < block.length);
  }

  /**
   * Writes as much of data[from…] as the windows allow (frames of at most the peer's max
   * frame size); returns the offset reached. END_STREAM goes on the last frame only when
   * everything was written.
   */
  #writeData(stream: H2Stream, data: Buffer, from: number, endStream: boolean): number {
    const total = data.length;
    if (total === from) {
      if (endStream) this.#writeDataFrame(stream.id, data, from, from, FLAG.END_STREAM);
      return from;
    }
    let off = from;
    while (off < total) {
      const room = Math.min(this.#sendConnWindow, stream.sendWindow, this.remoteMaxFrameSize);
      if (room <= 0) break;
      const len = Math.min(room, total - off);
      const last = off + len === total;
      this.#writeDataFrame(
        stream.id,
        data,
        off,
        off + len,
        last && endStream ? FLAG.END_STREAM : 0,
      );
      this.#sendConnWindow -= len;
      stream.sendWindow -= len;
      off += len;
    }
    return off;
  }

  #writeDataFrame(id: number, data: Buffer, start: number, end: number, flags: number): void {
    const len = end - start;
    if (len < COPY_LIMIT_BYTES) {
      const at = this.#reserve(FRAME_HEADER_BYTES + len);
      writeFrameHead(this.#out, at, len, FRAME_TYPE.DATA, flags, id);
      data.copy(this.#out, at + FRAME_HEADER_BYTES, start, end);
      this.#commit(at + FRAME_HEADER_BYTES + len);
      return;
    }
    // Large payloads go by reference: frame header, flush, then the bytes themselves.
    const at = this.#reserve(FRAME_HEADER_BYTES);
    writeFrameHead(this.#out, at, len, FRAME_TYPE.DATA, flags, id);
    this.#commit(at + FRAME_HEADER_BYTES);
    this.flush();
    if (!this.socket.writableEnded && !this.socket.destroyed)
      this.socket.write(data.subarray(start, end));
  }

  #localEnd(stream: H2Stream): void {
    stream.localEnded = true;
    if (stream.remoteEnded && !stream.closed) this.closeStream(stream, CLOSE.OK);
  }

  /** Sends queued data of blocked streams after a window grew. */
  #drainBlocked(): void {
    const blocked = this.#blocked;
    if (blocked.length === 0) return;
    let keep = 0;
    for (let i = 0; i < blocked.length; i++) {
      const s = blocked[i]!;
      if (s.closed || s.queue === null) continue;
      const q = s.queue;
      while (q.length > 0) {
        const chunk = q[0]!;
        const lastChunk = q.length === 1;
        const sent = this.#writeData(
          s,
          chunk,
          0,
          lastChunk && s.queuedEnd && s.queuedTrailers === null,
        );
        if (sent < chunk.length) {
          q[0] = chunk.subarray(sent);
          break;
        }
        q.shift();
      }
      if (q.length > 0) {
        blocked[keep++] = s;
        continue;
      }
      s.queue = null;
      if (s.queuedTrailers !== null) {
        const t = s.queuedTrailers;
        s.queuedTrailers = null;
        this.#writeTrailers(s.id, t);
        this.#localEnd(s);
      } else if (s.queuedEnd) {
        this.#localEnd(s);
      }
    }
    blocked.length = keep;
  }
}

export function writeFrameHead(
  b: Buffer,
  at: number,
  len: number,
  type: number,
  flags: number,
  id: number,
): void {
  b[at] = (len >>> 16) & 0xff;
  b[at + 1] = (len >>> 8) & 0xff;
  b[at + 2] = len & 0xff;
  b[at + 3] = type;
  b[at + 4] = flags;
  writeU32BE(b, at + 5, id);
}

/**
 * Why this module is long (~600 lines): the HPACK codec is one format (RFC 7541); the decoder
 * and the encoder share its integer and string primitives, the static table's lookups and the
 * dynamic table's accounting.
 * Huffman and the static table, which stand alone, have their own modules.
 */
/**
 * HPACK (RFC 7541): a decoder with a ring-buffer dynamic table, and an encoder that is
 * stateless or keeps the peer's table in step.
 *
 * Header names and values are latin1 strings: one char per octet, so any octet sequence
 * round-trips and `string.length` is the octet length the RFC's size accounting needs.
 */
import { Buffer } from 'node:buffer';
import { InvalidArgumentError } from '@engram/common';
import { H2_ERROR_CODES, H2Error } from './errors.js';
import { isValidField } from './field-chars.js';
import { H2_ERROR } from './frames.js';
import { STATIC_LOOKUP, STATIC_NAMES, STATIC_TABLE_LENGTH, STATIC_VALUES } from './hpack-static.js';
import { HUFFMAN_ERR_EOS, huffmanDecode, huffmanMaxDecodedLength } from './huffman.js';

/** Any malformed header block; the connection must fail with COMPRESSION_ERROR. */
export class HpackError extends H2Error {
  declare readonly code: 'CompressionError';
  constructor(message: string) {
    super(H2_ERROR_CODES.CompressionError, message, H2_ERROR.COMPRESSION_ERROR);
    this.name = 'HpackError';
  }
}

export interface HpackDecoderOptions {
  /** Our SETTINGS_HEADER_TABLE_SIZE: the largest dynamic table the peer may ask for. Default 4096 octets. */
  maxTableSize?: number;
  /** Largest decoded header list (sum of name + value + 32 per field, RFC 9113). Default 65536 octets. */
  maxHeaderListSize?: number;
}

const DEFAULTS = Object.freeze({
  maxTableSize: 4096, // octets, RFC 7541 / RFC 9113 initial SETTINGS_HEADER_TABLE_SIZE
  maxHeaderListSize: 65536, // octets
});

/** Largest value a SETTINGS parameter can carry. */
const MAX_SETTING_VALUE = 0xffffffff;
/** Per-entry overhead of the dynamic table size accounting (RFC 7541 4.1). */
const ENTRY_OVERHEAD_OCTETS = 32;
/** Decoded HPACK integers above this are rejected (no legitimate index/length/size is larger). */
const MAX_INTEGER = 0x7fffffff;
/** Initial number of ring slots; grows by doubling when full (entries are >= 32 octets). */
const INITIAL_RING_SLOTS = 16;
/** Initial Huffman scratch size; grows to the largest Huffman string seen. */
const INITIAL_SCRATCH_OCTETS = 256;
/**
 * Short Huffman literals seen recently, keyed by their encoded octets: nghttp2 never indexes
 * `:path`, so every request re-sends the same few Huffman paths; a hit skips the Huffman decode
 * and returns the same string instance (whose hash V8 has already computed for Map lookups).
 */
const HUFFMAN_CACHE_SLOTS = 64; // power of two
const HUFFMAN_CACHE_MAX_OCTETS = 48; // encoded octets; longer strings bypass the cache

/**
 * Whole header blocks seen recently that left the dynamic table as it was (indexed fields and
 * literals without indexing): the same octets against the same table decode to the same list,
 * so `decodeList` hands back the list decoded before. On a busy connection nearly every block
 * is one of a few (a node's reply headers and trailers, a client's request headers).
 */
const BLOCK_CACHE_SLOTS = 4;
const BLOCK_CACHE_MAX_OCTETS = 96; // longer blocks are decoded every time

/** Largest block `HpackEncoder` keeps a copy of to send again (a typical request is ~15). */
const MEMO_MAX_OCTETS = 128;

/** Whether `a` holds the same fields in the same order as the first `n` of `b`. */
function sameFields(a: readonly string[], b: readonly string[], n: number): boolean {
  if (a.length !== n) return false;
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return false;
  return true;
}

interface Latin1Codec {
  latin1Slice(this: Uint8Array, start: number, end: number): string;
  latin1Write(this: Uint8Array, s: string, offset: number, length: number): number;
}
// Buffer's latin1 fast paths; they work on any Uint8Array receiver and skip toString's argument juggling.
const { latin1Slice, latin1Write } = Buffer.prototype as unknown as Latin1Codec;

function validateSize(field: string, value: number): number {
  if (!Number.isInteger(value) || value < 0 || value > MAX_SETTING_VALUE) {
    throw new InvalidArgumentError(field, value, `an integer in [0, ${MAX_SETTING_VALUE}]`);
  }
  return value;
}

export class HpackDecoder {
  private readonly maxTableSize: number;
  private readonly maxHeaderListSize: number;
  /** Current dynamic table limit, as last set by a size update (<= maxTableSize). */
  private capacity: number;
  /** Current dynamic table size in octets (RFC 7541 4.1). */
  private size = 0;
  private count = 0;
  /** Ring slot of the newest entry; dynamic index k (1-based) lives at (head - k + 1) & mask. */
  private head = 0;
  private mask = INITIAL_RING_SLOTS - 1;
  private names: string[] = new Array<string>(INITIAL_RING_SLOTS).fill('');
  private values: string[] = new Array<string>(INITIAL_RING_SLOTS).fill('');
  private sizes = new Int32Array(INITIAL_RING_SLOTS);
  /** 1 when an entry's characters are valid HTTP/2 (`isValidField`), checked once on insert. */
  private oks = new Uint8Array(INITIAL_RING_SLOTS);
  /**
   * After `decode`: every field of the block has valid HTTP/2 characters (RFC 9113 §8.2.1).
   * Literals are checked as they are decoded and dynamic-table entries once, when inserted;
   * static entries are valid. A block of indexed fields, the usual case on a busy connection,
   * costs no per-character scan. False tells `checkFields` to scan the list itself.
   */
  charsValid = true;
  /**
   * After `decode`: the block's header list size as RFC 9113 §6.5.2 counts it (names + values
   * + 32 octets per field), for a caller's SETTINGS_MAX_HEADER_LIST_SIZE check.
   */
  listSize = 0;
  private scratch = Buffer.allocUnsafe(INITIAL_SCRATCH_OCTETS);
  private readonly cacheOctets = new Uint8Array(HUFFMAN_CACHE_SLOTS * HUFFMAN_CACHE_MAX_OCTETS);
  /** Encoded length of each cache slot; 0 = empty (the empty string is never cached). */
  private readonly cacheLengths = new Uint8Array(HUFFMAN_CACHE_SLOTS);
  private readonly cacheStrings: string[] = new Array<string>(HUFFMAN_CACHE_SLOTS).fill('');
  /** Read position after readInteger/readString (avoids returning tuples). */
  private pos = 0;
  /** Bumped on every change to the dynamic table (insertion, size update): cached blocks expire. */
  private tableVersion = 0;
  private readonly blockOctets = new Uint8Array(BLOCK_CACHE_SLOTS * BLOCK_CACHE_MAX_OCTETS);
  /** Length of each cached block; 0 = empty slot. */
  private readonly blockLengths = new Int32Array(BLOCK_CACHE_SLOTS);
  /** The table version each cached block was decoded against (exact: doubles, never wrap). */
  private readonly blockVersions = new Float64Array(BLOCK_CACHE_SLOTS);
  private readonly blockCharsValid = new Uint8Array(BLOCK_CACHE_SLOTS);
  private readonly blockListSizes = new Float64Array(BLOCK_CACHE_SLOTS);
  private readonly blockLists: (readonly string[])[] = new Array<readonly string[]>(
    BLOCK_CACHE_SLOTS,
  ).fill([]);
  private nextBlockSlot = 0;
  /** Where `decodeList` decodes before copying out exactly the fields. */
  private readonly scratchList: string[] = [];

  constructor(options?: HpackDecoderOptions) {
    this.maxTableSize = validateSize(
      'maxTableSize',
      options?.maxTableSize ?? DEFAULTS.maxTableSize,
    );
    this.maxHeaderListSize = validateSize(
      'maxHeaderListSize',
      options?.maxHeaderListSize ?? DEFAULTS.maxHeaderListSize,
    );
    this.capacity = this.maxTableSize;
  }

  /** Current dynamic table size in octets (for tests and diagnostics). */
  get dynamicTableSize(): number {
    return this.size;
  }

  /** Dynamic table entries newest first as [name, value] (for tests and diagnostics; allocates). */
  dynamicTableEntries(): [string, string][] {
    const entries: [string, string][] = [];
    for (let k = 0; k < this.count; k++) {
      const slot = (this.head - k) & this.mask;
      entries.push([this.names[slot] as string, this.values[slot] as string]);
    }
    return entries;
  }

  /**
   * Decodes one complete header block (HEADERS + CONTINUATION payloads already joined) from
   * buf[start, end), appending name, value, name, value… to `out`. Throws HpackError on any
   * malformed input; the dynamic table carries over to the next block. After an error the table
   * state is undefined: the connection is failing with COMPRESSION_ERROR, drop the decoder.
   */
  decode(buf: Uint8Array, start: number, end: number, out: string[]): void {
    this.decodeAt(buf, start, end, out, out.length);
  }

  /**
   * `decode` into a list of its own, exactly sized. The list is read-only and may be shared: a
   * block whose octets equal one decoded recently, against an unchanged dynamic table, gets that
   * block's list again, without decoding. It is not frozen: V8 (Node 20) reads the elements of
   * a frozen array through its generic keyed-load stub, ~3.5× slower per read in optimized
   * code, and every consumer of a call's headers reads them by index. `charsValid` and `listSize` are set as
   * `decode` sets them.
   * Errors as `decode`.
   */
  decodeList(buf: Uint8Array, start: number, end: number): readonly string[] {
    const length = end - start;
    if (length > 0 && length <= BLOCK_CACHE_MAX_OCTETS && start >= 0 && end <= buf.length) {
      const version = this.tableVersion;
      const lengths = this.blockLengths;
      for (let k = 0; k < BLOCK_CACHE_SLOTS; k++) {
        if (lengths[k] !== length || this.blockVersions[k] !== version) continue;
        const octets = this.blockOctets;
        const base = k * BLOCK_CACHE_MAX_OCTETS - start;
        let i = start;
        while (i < end && octets[base + i] === buf[i]) i++;
        if (i === end) {
          this.charsValid = this.blockCharsValid[k] === 1;
          this.listSize = this.blockListSizes[k]!;
          return this.blockLists[k] as readonly string[];
        }
      }
    }
    const before = this.tableVersion;
    const scratch = this.scratchList;
    const n = this.decodeAt(buf, start, end, scratch, 0);
    const list = scratch.slice(0, n);
    if (length > 0 && length <= BLOCK_CACHE_MAX_OCTETS && this.tableVersion === before) {
      // The block left the table as it was: decoding it again would give this same list.
      const k = this.nextBlockSlot;
      this.nextBlockSlot = (k + 1) % BLOCK_CACHE_SLOTS;
      this.blockOctets.set(buf.subarray(start, end), k * BLOCK_CACHE_MAX_OCTETS);
      this.blockLengths[k] = length;
      this.blockVersions[k] = before;
      this.blockCharsValid[k] = this.charsValid ? 1 : 0;
      this.blockListSizes[k] = this.listSize;
      this.blockLists[k] = list;
    }
    return list;
  }

  /**
   * `decode`, writing the fields at `out[at…]` (over what is there) instead of appending;
   * returns the index after the last one written. For a caller that decodes into one scratch
   * list and copies out exactly what it needs.
   */
  decodeAt(buf: Uint8Array, start: number, end: number, out: string[], at: number): number {
    if (!(start >= 0 && start <= end && end <= buf.length)) {
      throw new InvalidArgumentError(
        '[start, end)',
        `[${start}, ${end})`,
        `a range inside the buffer's ${buf.length} octets`,
      );
    }
    let p = start;
    let n = at;
    let listSize = 0;
    let sizeUpdateAllowed = true;
    let charsValid = true;
    this.charsValid = false; // until the whole block decoded
    while (p < end) {
      const first = buf[p++] as number;
      let name: string;
      let value: string;
      if (first >= 0x80) {
        // 6.1 Indexed Header Field
        let index = first & 0x7f;
        if (index === 0x7f) {
          index = this.readInteger(buf, p, end, 0x7f);
          p = this.pos;
        }
        if (index <= STATIC_TABLE_LENGTH) {
          if (index === 0) throw new HpackError('index 0 is not a valid header field index');
          name = STATIC_NAMES[index] as string;
          value = STATIC_VALUES[index] as string;
        } else {
          const k = index - STATIC_TABLE_LENGTH - 1;
          if (k >= this.count) throw this.indexError(index);
          const slot = (this.head - k) & this.mask;
          name = this.names[slot] as string;
          value = this.values[slot] as string;
          if (this.oks[slot] === 0) charsValid = false;
        }
      } else if (first >= 0x20 && first < 0x40) {
        // 6.3 Dynamic Table Size Update
        if (!sizeUpdateAllowed) {
          throw new HpackError('dynamic table size update after a header field');
        }
        let newSize = first & 0x1f;
        if (newSize === 0x1f) {
          newSize = this.readInteger(buf, p, end, 0x1f);
          p = this.pos;
        }
        if (newSize > this.maxTableSize) {
          throw new HpackError(
            `dynamic table size update to ${newSize} exceeds SETTINGS_HEADER_TABLE_SIZE ${this.maxTableSize}`,
          );
        }
        this.capacity = newSize;
        this.evictTo(newSize);
        this.tableVersion++;
        continue;
      } else {
        // 6.2 Literal Header Field: with incremental indexing (01, 6-bit prefix),
        // without indexing (0000, 4-bit prefix) or never indexed (0001, 4-bit prefix).
        const indexing = first >= 0x40;
        const prefixMax = indexing ? 0x3f : 0x0f;
        let index = first & prefixMax;
        if (index === prefixMax) {
          index = this.readInteger(buf, p, end, prefixMax);
          p = this.pos;
        }
        if (index === 0) {
          name = this.readString(buf, p, end);
          p = this.pos;
        } else if (index <= STATIC_TABLE_LENGTH) {
          name = STATIC_NAMES[index] as string;
        } else {
          const k = index - STATIC_TABLE_LENGTH - 1;
          if (k >= this.count) throw this.indexError(index);
          name = this.names[(this.head - k) & this.mask] as string;
        }
        value = this.readString(buf, p, end);
        p = this.pos;
        const ok = isValidField(name, value);
        if (!ok) charsValid = false;
        if (indexing) this.insert(name, value, ok);
      }
      sizeUpdateAllowed = false;
      listSize += name.length + value.length + ENTRY_OVERHEAD_OCTETS;
      if (listSize > this.maxHeaderListSize) throw this.listSizeError();
      out[n++] = name;
      out[n++] = value;
    }
    this.charsValid = charsValid;
    this.listSize = listSize;
    return n;
  }

  private indexError(index: number): HpackError {
    return new HpackError(
      `index ${index} out of range (static ${STATIC_TABLE_LENGTH} + dynamic ${this.count} entries)`,
    );
  }

  /** 5.1 integer continuation after a full prefix; sets this.pos. */
  private readInteger(buf: Uint8Array, p: number, end: number, prefixMax: number): number {
    let value = prefixMax;
    let multiplier = 1;
    for (;;) {
      if (p >= end) throw new HpackError('truncated integer');
      const b = buf[p++] as number;
      value += (b & 0x7f) * multiplier;
      if (b < 0x80) break;
      multiplier *= 128;
      // 5 continuation octets carry 35 bits, more than any value below MAX_INTEGER needs.
      if (multiplier > 2 ** 28) throw new HpackError('integer encoding longer than 5 octets');
    }
    if (value > MAX_INTEGER) throw new HpackError(`integer ${value} exceeds ${MAX_INTEGER}`);
    this.pos = p;
    return value;
  }

  /** 5.2 string literal; sets this.pos. */
  private readString(buf: Uint8Array, p: number, end: number): string {
    if (p >= end) throw new HpackError('truncated string literal');
    const first = buf[p++] as number;
    let length = first & 0x7f;
    if (length === 0x7f) {
      length = this.readInteger(buf, p, end, 0x7f);
      p = this.pos;
    }
    if (length > end - p) {
      throw new HpackError(`string literal of ${length} octets truncated (${end - p} left)`);
    }
    const stop = p + length;
    this.pos = stop;
    if (first < 0x80) {
      if (length > this.maxHeaderListSize) throw this.listSizeError();
      return latin1Slice.call(buf, p, stop);
    }
    if (length === 0) return '';
    let slot = -1;
    if (length <= HUFFMAN_CACHE_MAX_OCTETS) {
      let hash = 0x811c9dc5; // FNV-1a
      for (let i = p; i < stop; i++) hash = Math.imul(hash ^ (buf[i] as number), 0x01000193);
      slot = (hash ^ (hash >>> 16)) & (HUFFMAN_CACHE_SLOTS - 1);
      if (this.cacheLengths[slot] === length) {
        const octets = this.cacheOctets;
        const base = slot * HUFFMAN_CACHE_MAX_OCTETS - p;
        let i = p;
        while (i < stop && octets[base + i] === buf[i]) i++;
        if (i === stop) return this.cacheStrings[slot] as string;
      }
    }
    let scratch = this.scratch;
    const maxDecoded = huffmanMaxDecodedLength(length);
    if (scratch.length < maxDecoded) {
      scratch = Buffer.allocUnsafe(Math.max(maxDecoded, scratch.length * 2));
      this.scratch = scratch;
    }
    const n = huffmanDecode(buf, p, stop, scratch);
    if (n < 0) {
      throw new HpackError(
        n === HUFFMAN_ERR_EOS
          ? 'EOS symbol inside a Huffman string'
          : 'bad Huffman padding (longer than 7 bits or not all 1s)',
      );
    }
    if (n > this.maxHeaderListSize) throw this.listSizeError();
    const decoded: string = latin1Slice.call(scratch, 0, n);
    if (slot >= 0) {
      this.cacheOctets.set(buf.subarray(p, stop), slot * HUFFMAN_CACHE_MAX_OCTETS);
      this.cacheLengths[slot] = length;
      this.cacheStrings[slot] = decoded;
    }
    return decoded;
  }

  private listSizeError(): HpackError {
    return new HpackError(`header list larger than ${this.maxHeaderListSize} bytes`);
  }

  /** 4.4 entry addition: evict from the oldest end, then add unless the entry alone is too big. */
  private insert(name: string, value: string, ok: boolean): void {
    this.tableVersion++;
    const entrySize = name.length + value.length + ENTRY_OVERHEAD_OCTETS;
    if (entrySize > this.capacity) {
      this.evictTo(0);
      return;
    }
    this.evictTo(this.capacity - entrySize);
    if (this.count > this.mask) this.grow();
    const slot = (this.head + 1) & this.mask;
    this.head = slot;
    this.names[slot] = name;
    this.values[slot] = value;
    this.sizes[slot] = entrySize;
    this.oks[slot] = ok ? 1 : 0;
    this.count++;
    this.size += entrySize;
  }

  private evictTo(limit: number): void {
    while (this.size > limit) {
      const slot = (this.head - this.count + 1) & this.mask;
      this.size -= this.sizes[slot] as number;
      this.names[slot] = '';
      this.values[slot] = '';
      this.count--;
    }
  }

  /** Doubles the ring, re-laying entries oldest first at slots 0..count-1. */
  private grow(): void {
    const slots = (this.mask + 1) * 2;
    const names = new Array<string>(slots).fill('');
    const values = new Array<string>(slots).fill('');
    const sizes = new Int32Array(slots);
    const oks = new Uint8Array(slots);
    for (let i = 0; i < this.count; i++) {
      const from = (this.head - this.count + 1 + i) & this.mask;
      names[i] = this.names[from] as string;
      values[i] = this.values[from] as string;
      sizes[i] = this.sizes[from] as number;
      oks[i] = this.oks[from] as number;
    }
    this.names = names;
    this.values = values;
    this.sizes = sizes;
    this.oks = oks;
    this.mask = slots - 1;
    this.head = this.count - 1;
  }
}

/** Octets of an HPACK integer with an n-bit prefix whose prefix maximum is prefixMax. */
function integerLength(value: number, prefixMax: number): number {
  if (value < prefixMax) return 1;
  let rest = value - prefixMax;
  let n = 2;
  while (rest >= 128) {
    rest = Math.floor(rest / 128);
    n++;
  }
  return n;
}

/** Strings longer than this are copied with Buffer's latin1Write instead of a JS loop. */
const NATIVE_WRITE_MIN_CHARS = 32;

export interface HpackEncoderOptions {
  /**
   * Octets of dynamic table the encoder may fill, never more than the peer's
   * SETTINGS_HEADER_TABLE_SIZE. 0 (the default): stateless, nothing is ever indexed, so a block
   * is valid on any connection (`encodeHeaderBlock`).
   */
  tableSize?: number;
}

/**
 * Names whose values are secrets: never indexed, here or by any intermediary (RFC 7541 7.1.3),
 * so a peer sharing a connection cannot learn them from the sizes of its own indexed headers.
 */
const NEVER_INDEXED = new Set([
  'authorization',
  'proxy-authorization',
  'cookie',
  'set-cookie',
  'x-api-key',
  'x-auth-token',
]);
/**
 * Names whose values change from one message to the next (deadlines, lengths, ids, trace
 * contexts, error text): indexing each value would only push reusable entries out of the
 * table. One entry goes in (the first value) so the name is indexed after that.
 */
const VOLATILE = new Set([
  'grpc-timeout',
  'grpc-message',
  'grpc-status-details-bin',
  'grpc-trace-bin',
  'content-length',
  'date',
  'etag',
  'last-modified',
  'x-request-id',
  'traceparent',
  'tracestate',
]);
/** An entry bigger than this share of the table is not indexed (it would evict most others). */
const MAX_ENTRY_SHARE = 4;

/**
 * HPACK encoder. Exact static-table matches become a 1-octet indexed field. Stateless (the
 * default, `tableSize` 0) it never adds to the dynamic table, so its output is valid whatever
 * the peer's table holds: a static name becomes a literal without indexing with an indexed
 * name, anything else a literal with a literal name.
 *
 * With a `tableSize` (one encoder per connection, its blocks sent in the order encoded) it
 * keeps the peer decoder's dynamic table in step: a field seen before is one indexed octet or
 * two, and a new one goes in as a literal with incremental indexing, except secrets (never
 * indexed, RFC 7541 7.1.3), values that change with every message (`VOLATILE`: once the name
 * is in, only by name) and entries over a quarter of the table. The oldest entries are evicted
 * first, as the decoder does.
 *
 * Never Huffman-encodes (the least CPU); values are written as latin1 (chars above 0xff keep
 * their low octet, as Buffer's latin1 does).
 */
export class HpackEncoder {
  /** A dynamic table size update the next encode() must start with, or -1. */
  private pendingSizeUpdate = -1;
  private peerTableSize: number = DEFAULTS.maxTableSize;
  /** Octets the table may hold: the option, lowered to the peer's setting (never raised). */
  private capacity: number;
  private size = 0;
  /** Entries ever inserted; entry number k is at dynamic index `inserted - k` (1 = newest). */
  private inserted = 0;
  /** Number of the oldest entry still in the table. */
  private oldest = 0;
  private readonly mask: number;
  private readonly names: string[];
  private readonly values: string[];
  /** Entry number of each (name, value) in the table, by name then value. */
  private readonly byField = new Map<string, Map<string, number>>();
  /** Newest entry number with each name. */
  private readonly byName = new Map<string, number>();
  /** Bumped on every change to the table (insertion, eviction, capacity): memos expire. */
  private tableVersion = 0;
  /**
   * The last block that changed nothing (no insertion, no size update) and the fields it was
   * encoded from: the same fields against the same table encode to the same octets, so they
   * are copied instead (a connection sends the same request fields call after call).
   */
  private readonly memoFields: string[] = [];
  /** Entries of `memoFields` in use (the list is reused, never shortened). */
  private memoFieldCount = 0;
  private readonly memoOctets = new Uint8Array(MEMO_MAX_OCTETS);
  private memoLength = 0;
  private memoVersion = -1;

  constructor(options?: HpackEncoderOptions) {
    this.capacity = Math.min(
      validateSize('tableSize', options?.tableSize ?? 0),
      DEFAULTS.maxTableSize,
    );
    // Every entry is at least 32 octets: capacity / 32 entries at most.
    let slots = 1;
    while (slots <= this.capacity / ENTRY_OVERHEAD_OCTETS) slots <<= 1;
    this.mask = slots - 1;
    this.names = new Array<string>(slots).fill('');
    this.values = new Array<string>(slots).fill('');
    // A table smaller than the protocol's initial one is announced, so the peer's decoder
    // evicts as this encoder does (their tables stay the same size).
    if (this.capacity > 0 && this.capacity < DEFAULTS.maxTableSize) {
      this.pendingSizeUpdate = this.capacity;
    }
  }

  /** Worst-case octets encoding `headers` (flat name, value array) can take, size update included. */
  static maxEncodedLength(headers: readonly string[]): number {
    // An indexed field or an indexed name is never longer than the literal it replaces.
    let n = 6; // a pending dynamic table size update: 1 prefix octet + up to 5 continuation octets
    for (let i = 0; i < headers.length; i++) {
      const length = (headers[i] as string).length;
      n += length + integerLength(length, 0x7f);
    }
    return n + (headers.length >>> 1); // one representation octet per field
  }

  /** Octets the dynamic table holds now (the peer decoder's table holds the same entries). */
  get dynamicTableSize(): number {
    return this.size;
  }

  /**
   * Records the peer's SETTINGS_HEADER_TABLE_SIZE. When it shrinks, RFC 7541 4.2 requires the
   * next header block to start with a dynamic table size update (nghttp2 enforces this); the
   * next encode() writes it, and the table is cut to fit. Blocks from encodeHeaderBlock() never
   * carry it. A table allowed to grow stays as it is: the encoder may use less than allowed.
   */
  setPeerMaxTableSize(size: number): void {
    validateSize('peer SETTINGS_HEADER_TABLE_SIZE', size);
    const shrinks = size < this.peerTableSize;
    this.peerTableSize = size;
    if (this.capacity === 0) {
      if (shrinks) this.pendingSizeUpdate = size;
      return;
    }
    if (size < this.capacity) {
      this.capacity = size;
      this.tableVersion++;
      this.evict(0);
    }
    if (shrinks) this.pendingSizeUpdate = Math.min(size, this.capacity);
  }

  /** Writes the block into out at offset; returns the offset after it. */
  encode(headers: readonly string[], out: Uint8Array, offset: number): number {
    // Only a connection's (indexing) encoder keeps a memo: a stateless one encodes constant
    // blocks once up front (`encodeHeaderBlock`) and varied ones otherwise.
    if (this.capacity === 0) return this.encodeFields(headers, out, offset);
    const version = this.tableVersion;
    const sizeUpdate = this.pendingSizeUpdate >= 0;
    if (
      !sizeUpdate &&
      this.memoVersion === version &&
      sameFields(headers, this.memoFields, this.memoFieldCount)
    ) {
      // A byte loop: a block is a few dozen octets, less than a subarray costs to make.
      const memo = this.memoOctets;
      const length = this.memoLength;
      for (let i = 0; i < length; i++) out[offset + i] = memo[i] as number;
      return offset + length;
    }
    const end = this.encodeFields(headers, out, offset);
    if (!sizeUpdate && this.tableVersion === version && end - offset <= MEMO_MAX_OCTETS) {
      // Copied into storage kept for it (no allocation per block): `out` is usually a
      // connection's output slab, which later frames overwrite.
      const fields = this.memoFields;
      for (let i = 0; i < headers.length; i++) fields[i] = headers[i] as string;
      this.memoFieldCount = headers.length;
      const memo = this.memoOctets;
      for (let i = offset; i < end; i++) memo[i - offset] = out[i] as number;
      this.memoLength = end - offset;
      this.memoVersion = version;
    }
    return end;
  }

  private encodeFields(headers: readonly string[], out: Uint8Array, offset: number): number {
    let p = offset;
    if (this.pendingSizeUpdate >= 0) {
      p = writeInteger(out, p, 0x20, 0x1f, this.pendingSizeUpdate);
      this.pendingSizeUpdate = -1;
    }
    const indexing = this.capacity > 0;
    for (let i = 0; i + 1 < headers.length; i += 2) {
      const name = headers[i] as string;
      const value = headers[i + 1] as string;
      const entry = STATIC_LOOKUP.get(name);
      if (entry !== undefined) {
        const index = entry.values.get(value);
        if (index !== undefined) {
          out[p++] = 0x80 | index;
          continue;
        }
      }
      if (!indexing) {
        p = this.writeLiteral(out, p, name, value, entry?.nameIndex ?? 0, 0x00);
        continue;
      }
      const k = this.byField.get(name)?.get(value);
      if (k !== undefined) {
        p = writeInteger(out, p, 0x80, 0x7f, STATIC_TABLE_LENGTH + this.inserted - k);
        continue;
      }
      let nameIndex = entry?.nameIndex ?? 0;
      if (nameIndex === 0) {
        const named = this.byName.get(name);
        if (named !== undefined) nameIndex = STATIC_TABLE_LENGTH + this.inserted - named;
      }
      const entrySize = name.length + value.length + ENTRY_OVERHEAD_OCTETS;
      if (NEVER_INDEXED.has(name)) {
        p = this.writeLiteral(out, p, name, value, nameIndex, 0x10);
      } else if (
        (VOLATILE.has(name) && nameIndex !== 0) ||
        entrySize * MAX_ENTRY_SHARE > this.capacity
      ) {
        // A changing value of a name the tables know: its name by index, its value literal.
        p = this.writeLiteral(out, p, name, value, nameIndex, 0x00);
      } else {
        // (A volatile name not in either table goes in once, so later values have a name index.)
        // Literal with incremental indexing (01, 6-bit name index prefix).
        if (nameIndex === 0) {
          out[p++] = 0x40;
          p = writeString(out, p, name);
        } else {
          p = writeInteger(out, p, 0x40, 0x3f, nameIndex);
        }
        p = writeString(out, p, value);
        this.insert(name, value, entrySize);
      }
    }
    return p;
  }

  /** A literal not indexed (`pattern` 0x00) or never indexed (0x10), 4-bit name index prefix. */
  private writeLiteral(
    out: Uint8Array,
    at: number,
    name: string,
    value: string,
    nameIndex: number,
    pattern: number,
  ): number {
    let p = at;
    if (nameIndex === 0) {
      out[p++] = pattern;
      p = writeString(out, p, name);
    } else {
      p = writeInteger(out, p, pattern, 0x0f, nameIndex);
    }
    return writeString(out, p, value);
  }

  /** Adds an entry as the peer's decoder does: the oldest go first until it fits. */
  private insert(name: string, value: string, entrySize: number): void {
    this.tableVersion++;
    this.evict(entrySize);
    const k = this.inserted++;
    this.names[k & this.mask] = name;
    this.values[k & this.mask] = value;
    this.size += entrySize;
    let byValue = this.byField.get(name);
    if (byValue === undefined) {
      byValue = new Map<string, number>();
      this.byField.set(name, byValue);
    }
    byValue.set(value, k);
    this.byName.set(name, k);
  }

  /** Evicts the oldest entries until `room` more octets fit in the capacity. */
  private evict(room: number): void {
    while (this.oldest < this.inserted && this.size + room > this.capacity) {
      const k = this.oldest++;
      const name = this.names[k & this.mask] as string;
      const value = this.values[k & this.mask] as string;
      this.size -= name.length + value.length + ENTRY_OVERHEAD_OCTETS;
      const byValue = this.byField.get(name)!;
      if (byValue.get(value) === k) byValue.delete(value);
      if (byValue.size === 0) this.byField.delete(name);
      if (this.byName.get(name) === k) this.byName.delete(name);
    }
  }
}

function writeInteger(
  out: Uint8Array,
  p: number,
  pattern: number,
  prefixMax: number,
  value: number,
): number {
  if (value < prefixMax) {
    out[p++] = pattern | value;
    return p;
  }
  out[p++] = pattern | prefixMax;
  let rest = value - prefixMax;
  while (rest >= 128) {
    out[p++] = (rest % 128) | 0x80;
    rest = Math.floor(rest / 128);
  }
  out[p++] = rest;
  return p;
}

/** 5.2 string literal without Huffman coding. */
function writeString(out: Uint8Array, p: number, s: string): number {
  const length = s.length;
  if (length < 0x7f) {
    out[p++] = length;
  } else {
    p = writeInteger(out, p, 0, 0x7f, length);
  }
  if (length >= NATIVE_WRITE_MIN_CHARS) {
    latin1Write.call(out, s, p, length);
    return p + length;
  }
  for (let i = 0; i < length; i++) out[p++] = s.charCodeAt(i);
  return p;
}

const SHARED_ENCODER = new HpackEncoder();

/** Encodes a constant block once (e.g. ':status 200, content-type application/grpc') → Buffer. */
export function encodeHeaderBlock(headers: readonly string[]): Buffer {
  const out = Buffer.allocUnsafe(HpackEncoder.maxEncodedLength(headers));
  const end = SHARED_ENCODER.encode(headers, out, 0);
  return Buffer.from(out.subarray(0, end));
}

/**
 * Shared-memory layout of a breaker table. Everything that lives in the buffer is named here.
 *
 * The buffer is a header followed by `capacity` slots of `stride` Int32 words each; a slot is
 * padded to a multiple of 16 words (64 bytes, one cache line) so that two nodes never share a
 * line.
 *
 * Who writes, who reads, and why a read is consistent:
 * - The header is written once by the thread that creates the table, before the buffer is
 *   posted to any worker; `postMessage` orders those writes before every read in a worker.
 *   Afterwards it is read-only.
 * - `SLOT_STATE` is the single source of truth for a breaker. It packs the state (2 low bits)
 *   with a 30-bit time (ms since the header's origin, modulo 2^30): for `open` the time at which
 *   the breaker may go half-open, for `half-open` the time it entered half-open, for `closed`
 *   the time it closed. Every transition is one `Atomics.compareExchange` on this word, so the
 *   data needed to interpret a state is published together with the state, and the 30-bit
 *   time makes a word practically unique (no ABA between two periods of the same state).
 * - `SLOT_OPEN_STREAK` (consecutive opens without a close, which grows the open timeout) is
 *   written only by the thread that won the transition, after winning it. A racing reader may
 *   see the previous value; the only effect is one open period with the previous timeout.
 * - `SLOT_PERMITS` are the half-open probe permits, one word each. A permit word is `FREE`
 *   (-1, never produced otherwise since flag value 3 is unused) or `(acquiredAt30 << 2) | flag`
 *   with flag held / done (probe succeeded) / released (given back; the time is kept so that
 *   the next token of this word is strictly larger and an old admission never matches it).
 *   A permit is taken by CAS from a value that is free, released, stale (acquired before the
 *   current half-open period began) or hung (held longer than the probe timeout), and then
 *   the state word is re-read: if it changed, the permit is given back. Because every operation is sequentially consistent, a permit taken while the state
 *   word still reads the half-open word W belongs to period W; permits of older periods are
 *   recognised by their time, so no one has to clear them on a transition.
 * - Trip-rule words (`SLOT_RULES` onwards) are owned by the rules; they are updated only
 *   while the state word reads `closed` (a thread that read `closed` just before an open may
 *   still add one count after it). They are reset by the thread that wins a transition out of
 *   or into `closed`, and only after winning its CAS. With several half-open probes several
 *   threads can see every permit done and try to close; if each reset the rules before its
 *   CAS, a loser could reset them after the winner had closed and wipe failures already
 *   counted in the new closed period. Resetting after the win leaves a window between the
 *   closing CAS and the reset in which a call admitted after the close may count a failure
 *   that the reset then wipes. That is harmless: the words hold no old trip state then (they
 *   were reset when the breaker opened, so a failure in the window cannot trip on old
 *   counts), and losing it is the same outcome as if the call had settled a moment earlier,
 *   before the close, when closed-call verdicts are not counted. At most one such failure per
 *   thread, and only while the closing thread runs a few instructions.
 * - `SLOT_TRANSITIONS + state` count the transitions into `state` (closed, open, half-open),
 *   each added with `Atomics.add` by the thread whose CAS made the transition, after winning
 *   it, so each transition counts once whichever thread made it. Uint32 counts (they wrap at
 *   2^32); a reset keeps them (they are monotonic per slot, for metrics).
 */

/** Int32 words in the header. */
export const HEADER_WORDS = 16;
/** Header word offsets (Int32 indexes). */
export const HDR_MAGIC = 0;
export const HDR_VERSION = 1;
export const HDR_CAPACITY = 2;
export const HDR_STRIDE = 3;
export const HDR_HALF_OPEN_PROBES = 4;
export const HDR_RULE_WORDS = 5;
export const HDR_RULES_FINGERPRINT = 6;
/** Float64 index of the time origin (ms on the clock's scale): bytes 32..39 = Int32 words 8..9. */
export const HDR_ORIGIN_F64 = 4;

export const MAGIC = 0x45425231; // "EBR1"
/** 2: transition counters added to every slot. */
export const LAYOUT_VERSION = 2;

/** Slot word offsets (Int32 indexes relative to the slot's first word). */
export const SLOT_STATE = 0;
export const SLOT_OPEN_STREAK = 1;
/** Three counters, indexed by the state code a transition went to (CLOSED, OPEN, HALF_OPEN). */
export const SLOT_TRANSITIONS = 2;
export const SLOT_PERMITS = 5;
/** Words before the permits; rules start at `SLOT_PERMITS + halfOpenProbes`. */
export const SLOT_FIXED_WORDS = 5;

export const CACHE_LINE_WORDS = 16;

/** State codes in the low 2 bits of `SLOT_STATE`. */
export const CLOSED = 0;
export const OPEN = 1;
export const HALF_OPEN = 2;
export const STATE_MASK = 3;

/** Permit word: `FREE`, or `(time30 << 2) | flags` (flags: held, done, released). */
export const PERMIT_FREE = -1;
export const PERMIT_FLAGS = 3;
export const PERMIT_HELD = 0;
export const PERMIT_DONE = 1;
export const PERMIT_RELEASED = 2;

/** Times in the buffer are ms since the origin modulo 2^30 (about 12.4 days). */
export const TIME_MASK = 0x3fffffff;

export function strideWords(halfOpenProbes: number, ruleWords: number): number {
  const raw = SLOT_FIXED_WORDS + halfOpenProbes + ruleWords;
  return Math.ceil(raw / CACHE_LINE_WORDS) * CACHE_LINE_WORDS;
}

export function byteLengthFor(capacity: number, stride: number): number {
  return (HEADER_WORDS + capacity * stride) * 4;
}

/** Signed difference `a - b` of two 30-bit times (valid while |a - b| < 2^29 ms, ~6.2 days). */
export function diff30(a: number, b: number): number {
  return ((a - b) << 2) >> 2;
}

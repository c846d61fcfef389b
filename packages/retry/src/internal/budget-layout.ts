/**
 * Shared-memory layout of a retry budget (Finagle's leaky token bucket over a window).
 *
 * Tokens are counted in thousandths of a retry: a request deposits `ratio * 1000`, a retry
 * withdraws 1000. Deposits and withdrawals land in the slice of the window that `now` falls
 * in; the window is `SLICES` slices of `ttlMs / SLICES` each, so every deposit and
 * withdrawal expires after the TTL. A constant reserve (`minRetriesPerSecond * ttl * 1000`)
 * is always added, so a total outage still gets that floor and never more.
 *
 * Who writes, who reads, and why reads are consistent:
 * - The header is written once by the creating thread before the buffer is posted; read-only
 *   afterwards (`postMessage` orders the writes before every read in a worker).
 * - Slice `i` is two words, `SLICE_EPOCH` (the slice number it counts, or -1) and
 *   `SLICE_BALANCE`. Any thread that finds the current slice holding an old epoch reads the
 *   balance, CASes the epoch to the current slice number and, only if it won, subtracts what
 *   it read, so the old slice's tokens vanish while additions that raced in stay.
 * - A withdrawal subtracts first (`Atomics.sub` returns the exact previous value, so racing
 *   withdrawals on one slice are totally ordered) and then sums the window; when the sum is
 *   negative it adds the tokens back and refuses. Racing threads can therefore only refuse
 *   too often, never admit more retries than the deposits and the reserve allow.
 */

export const HDR_MAGIC = 0;
export const HDR_VERSION = 1;
export const HDR_DEPOSIT = 2;
export const HDR_RESERVE = 3;
export const HDR_TTL_MS = 4;
export const HDR_SLICES = 5;
/** Float64 index of the time origin: bytes 32..39 (Int32 words 8..9). */
export const HDR_ORIGIN_F64 = 4;
export const HEADER_WORDS = 16;

export const SLICES = 10;
export const SLICE_WORDS = 2;
export const SLICE_EPOCH = 0;
export const SLICE_BALANCE = 1;
export const EPOCH_UNUSED = -1;

export const MAGIC = 0x45524231; // "ERB1"
export const LAYOUT_VERSION = 1;

/** A retry withdraws this many token units; a request deposits `ratio * WITHDRAWAL`. */
export const WITHDRAWAL = 1000;

export const BUDGET_BYTES = (HEADER_WORDS + SLICES * SLICE_WORDS) * 4;

/**
 * Shared-memory layout of a retry budget (Finagle's leaky token bucket over a window).
 *
 * Tokens are counted in hundredths of a retry: a request deposits `ratio * 100`, a retry
 * withdraws 100. Deposits and withdrawals land in the slice of the window that `now` falls
 * in; the window is `SLICES` slices of `ttlMs / SLICES` each, so every deposit and
 * withdrawal expires after the TTL. A constant reserve (`minRetriesPerSecond * ttl * 100`)
 * is always added, so a total outage still gets that floor and never more.
 *
 * Who writes, who reads, and why reads are consistent:
 * - The header is written once by the creating thread before the buffer is posted; read-only
 *   afterwards (`postMessage` orders the writes before every read in a worker), except
 *   `HDR_TOTAL`.
 * - Slice `i` is two words, `SLICE_EPOCH` (the slice number it counts, or -1 when retired)
 *   and `SLICE_BALANCE`. `HDR_TOTAL` is the sum of all slice balances: every deposit or
 *   withdrawal is applied to its slice and to the total, and every retirement subtracts a
 *   slice's balance from both, so the total never includes an expired slice.
 * - A slice is recycled by the first thread of a new slice period that finds the slot holding
 *   an old epoch: it reads the balance, CASes the epoch and, only if it won, subtracts what
 *   it read (additions that raced in stay, and are counted in the new slice). The winner then
 *   retires every other slot whose epoch left the window (same read / CAS / subtract), so a
 *   window that saw no traffic for a while forgets it at once.
 * - A withdrawal subtracts from the total first (`Atomics.sub` returns the exact previous
 *   value, so racing withdrawals are totally ordered) and keeps it only when the reserve plus
 *   the new total is not negative; otherwise it adds the tokens back and refuses. Racing
 *   threads can therefore only refuse too often, never admit more retries than the deposits
 *   and the reserve allow.
 */

export const HDR_MAGIC = 0;
export const HDR_VERSION = 1;
export const HDR_DEPOSIT = 2;
export const HDR_RESERVE = 3;
export const HDR_TTL_MS = 4;
export const HDR_SLICES = 5;
/** Sum of the slice balances (token units); written by every thread with Atomics. */
export const HDR_TOTAL = 12;
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

/**
 * A retry withdraws this many token units; a request deposits `round(ratio * WITHDRAWAL)`, so
 * the ratio has 1 % resolution and 2^31 units hold 107 M requests per window at 20 %.
 */
export const WITHDRAWAL = 100;

export const BUDGET_BYTES = (HEADER_WORDS + SLICES * SLICE_WORDS) * 4;

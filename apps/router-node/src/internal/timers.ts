/**
 * Timers as an input, so the control plane's cores run on fake time in tests (patching
 * globals would not reach worker threads, and tests must never sleep). Handles are opaque.
 */
export interface Timers {
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
  setInterval(fn: () => void, ms: number): unknown;
  clearInterval(handle: unknown): void;
}

/** The process's timers, unref'd: a pending control-plane timer never keeps the process up. */
export const systemTimers: Timers = Object.freeze({
  setTimeout: (fn: () => void, ms: number) => setTimeout(fn, ms).unref(),
  clearTimeout: (handle: unknown) => clearTimeout(handle as NodeJS.Timeout),
  setInterval: (fn: () => void, ms: number) => setInterval(fn, ms).unref(),
  clearInterval: (handle: unknown) => clearInterval(handle as NodeJS.Timeout),
});

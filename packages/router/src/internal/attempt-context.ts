import { Deadline } from '@engram/retry';
import type { NodeInfo } from '@engram/ring';
import type { CallContext } from './types.js';

/**
 * An object told once when the attempt it listens to is cancelled (`addCancelListener`): a
 * method on an object the caller has anyway, where `whenCancelled` costs a closure and its
 * unregistering function per attempt.
 */
export interface CancelListener {
  attemptCancelled(): void;
}

type OnCancel = (() => void) | CancelListener;

/**
 * The CallContext of one attempt. Its AbortSignal is created on first access: an
 * AbortController and an abort listener cost microseconds per call, and the router's own
 * typed calls cancel through `onCancel` instead.
 */
export class AttemptContext implements CallContext {
  readonly node: NodeInfo;
  readonly attempt: number;
  readonly fallback: boolean;
  readonly deadline: Deadline;
  readonly hedge: boolean;
  /** Where the attempt's deadline is on the clock's timeline (<= `deadline.at`). */
  readonly attemptAt: number;
  #attemptDeadline: Deadline | undefined;
  #controller: AbortController | undefined;
  #cancelled = false;
  #reason: unknown;
  /** Cancel callbacks in registration order: the first inline (the common case), then more. */
  #onCancel: OnCancel | undefined;
  #moreOnCancel: OnCancel[] | undefined;

  constructor(
    node: NodeInfo,
    attempt: number,
    fallback: boolean,
    deadline: Deadline,
    attemptAt: number,
    hedge: boolean,
  ) {
    this.node = node;
    this.attempt = attempt;
    this.fallback = fallback;
    this.deadline = deadline;
    this.attemptAt = attemptAt;
    this.hedge = hedge;
  }

  /** Created on first access: a call that never reads it costs no Deadline object. */
  get attemptDeadline(): Deadline {
    let d = this.#attemptDeadline;
    if (d === undefined) {
      const deadline = this.deadline;
      d = this.attemptAt < deadline.at ? new Deadline(this.attemptAt, deadline.clock) : deadline;
      this.#attemptDeadline = d;
    }
    return d;
  }

  get signal(): AbortSignal {
    if (this.#controller === undefined) {
      this.#controller = new AbortController();
      if (this.#cancelled) this.#controller.abort(this.#reason);
    }
    return this.#controller.signal;
  }

  get cancelled(): boolean {
    return this.#cancelled;
  }

  get reason(): unknown {
    return this.#reason;
  }

  /**
   * Adds a cancel callback or listener (cheaper than a signal listener); they run in
   * registration order.
   */
  addOnCancel(fn: OnCancel): void {
    if (this.#onCancel === undefined && this.#moreOnCancel === undefined) {
      this.#onCancel = fn;
      return;
    }
    if (this.#moreOnCancel === undefined) this.#moreOnCancel = [fn];
    else this.#moreOnCancel.push(fn);
  }

  /** Whether `fn` is registered (and not yet run). */
  hasOnCancel(fn: OnCancel): boolean {
    return this.#onCancel === fn || (this.#moreOnCancel?.includes(fn) ?? false);
  }

  /**
   * What the context says of itself when serialised: the router's attempt is its own context,
   * and the rest of it (its operation, timers) is neither data nor acyclic.
   */
  toJSON(): { node: NodeInfo; attempt: number; fallback: boolean; hedge: boolean } {
    return { node: this.node, attempt: this.attempt, fallback: this.fallback, hedge: this.hedge };
  }

  /** Removes one registration of `fn`, if still registered. */
  removeOnCancel(fn: OnCancel): void {
    if (this.#onCancel === fn) {
      this.#onCancel = this.#moreOnCancel?.shift();
      return;
    }
    const more = this.#moreOnCancel;
    if (more === undefined) return;
    const i = more.indexOf(fn);
    if (i >= 0) more.splice(i, 1);
  }

  cancel(reason: unknown): void {
    if (this.#cancelled) return;
    this.#cancelled = true;
    this.#reason = reason;
    const fn = this.#onCancel;
    const more = this.#moreOnCancel;
    this.#onCancel = undefined;
    this.#moreOnCancel = undefined;
    if (fn !== undefined) runCallback(fn);
    if (more !== undefined) for (const f of more) runCallback(f);
    this.#controller?.abort(reason);
  }
}

/**
 * Runs `fn` once when the attempt behind `ctx` is cancelled (hedge lost, timeout, deadline,
 * caller abort, operation finished); returns a function that unregisters it. Several
 * callbacks may be registered on one attempt: each runs once, in registration order (one that
 * throws is reported as an uncaught exception, as from an AbortSignal listener, and does not
 * stop the others). For the router's own contexts this avoids
 * creating an AbortSignal; for any other CallContext it listens on `ctx.signal`. If the
 * attempt is already cancelled, `fn` runs at once.
 */
export function whenCancelled(ctx: CallContext, fn: () => void): () => void {
  if (ctx instanceof AttemptContext) {
    if (ctx.cancelled) {
      fn();
      return noop;
    }
    ctx.addOnCancel(fn);
    let registered = true;
    return () => {
      if (!registered) return;
      registered = false;
      ctx.removeOnCancel(fn);
    };
  }
  const signal = ctx.signal;
  if (signal.aborted) {
    fn();
    return noop;
  }
  signal.addEventListener('abort', fn, { once: true });
  return () => signal.removeEventListener('abort', fn);
}

function noop(): void {}

/**
 * `listener.attemptCancelled()` once when the attempt behind `ctx` is cancelled, as
 * `whenCancelled` runs its callback (at once if it is already cancelled), without a closure
 * for the router's own contexts. A listener already registered on `ctx` is not added again.
 * `removeCancelListener` unregisters it.
 */
export function addCancelListener(ctx: CallContext, listener: CancelListener): void {
  if (ctx instanceof AttemptContext) {
    if (ctx.cancelled) listener.attemptCancelled();
    else if (!ctx.hasOnCancel(listener)) ctx.addOnCancel(listener);
    return;
  }
  const signal = ctx.signal;
  if (signal.aborted) {
    listener.attemptCancelled();
    return;
  }
  let listeners = foreignListeners.get(signal);
  if (listeners === undefined) {
    listeners = new Map();
    foreignListeners.set(signal, listeners);
  }
  if (listeners.has(listener)) return;
  const fn = (): void => {
    listeners.delete(listener);
    listener.attemptCancelled();
  };
  listeners.set(listener, fn);
  signal.addEventListener('abort', fn, { once: true });
}

/** Unregisters a listener `addCancelListener` registered on `ctx` (no-op when it ran or was never added). */
export function removeCancelListener(ctx: CallContext, listener: CancelListener): void {
  if (ctx instanceof AttemptContext) {
    ctx.removeOnCancel(listener);
    return;
  }
  const signal = ctx.signal;
  const fn = foreignListeners.get(signal)?.get(listener);
  if (fn === undefined) return;
  foreignListeners.get(signal)!.delete(listener);
  signal.removeEventListener('abort', fn);
}

/** Listeners on contexts other than the router's (their signals' abort listeners). */
const foreignListeners = new WeakMap<AbortSignal, Map<CancelListener, () => void>>();

/**
 * The clock time `ctx`'s attempt deadline falls at (`ctx.attemptDeadline.at`), without making
 * that Deadline object for the router's own contexts.
 */
export function attemptDeadlineAt(ctx: CallContext): number {
  return ctx instanceof AttemptContext ? ctx.attemptAt : ctx.attemptDeadline.at;
}

/** A cancel callback that throws must not stop the others (nor the attempt's bookkeeping). */
function runCallback(fn: OnCancel): void {
  try {
    if (typeof fn === 'function') fn();
    else fn.attemptCancelled();
  } catch (error) {
    queueMicrotask(() => {
      throw error;
    });
  }
}

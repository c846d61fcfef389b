import type { Random } from '@engram/common';
import { reconnectDelayMs } from './backoff.js';
import type { ConnectionKind, TimerClock } from './options.js';

/**
 * Connection states, numerically equal to grpc-js `ConnectivityState` so a channel's state
 * can be stored without translation. Kept in a `Uint8Array` per set: the hot path reads
 * one byte per candidate connection.
 */
export const CONNECTION_STATE = {
  IDLE: 0,
  CONNECTING: 1,
  READY: 2,
  TRANSIENT_FAILURE: 3,
  SHUTDOWN: 4,
} as const;

export type ConnectionStateCode = (typeof CONNECTION_STATE)[keyof typeof CONNECTION_STATE];

/** Human-readable connection state, as reported by `healthReport()`. */
export type ConnectionState = 'idle' | 'connecting' | 'ready' | 'transient_failure' | 'shutdown';

const STATE_NAMES: readonly ConnectionState[] = [
  'idle',
  'connecting',
  'ready',
  'transient_failure',
  'shutdown',
];

export function connectionStateName(code: number): ConnectionState {
  return STATE_NAMES[code] ?? 'shutdown';
}

/**
 * What a connection reports to the set that owns it. One hooks object per opened
 * connection: reports from a connection that was already replaced or closed are ignored.
 */
export interface ConnectionHooks {
  /** The connection moved to `state` (it still exists; e.g. grpc-js reconnects by itself). */
  state(state: ConnectionStateCode, cause?: Error): void;
  /** The connection can carry no more calls: the set closes it and opens a replacement after backoff. */
  broken(cause: Error): void;
}

/** How to open and close one kind of connection to one node (grpc-js channel, HTTP/2 session). */
export interface ConnectionFactory<T> {
  readonly kind: ConnectionKind;
  /** Opens connection number `index`; reports through `hooks`, never throws for I/O errors. */
  open(index: number, hooks: ConnectionHooks): T;
  /** Closes `connection`; resolves once its socket is gone. */
  close(connection: T): Promise<void>;
}

export interface ConnectionSetOptions {
  readonly reconnectBaseDelayMs: number;
  readonly reconnectMaxDelayMs: number;
  readonly clock: TimerClock;
  readonly random: Random;
  /** Called on every open and close of a connection in this set. */
  readonly onEvent?: ((type: 'open' | 'close', index: number) => void) | undefined;
  /** Called whenever a connection's state byte changes. */
  readonly onState?: ((index: number, state: ConnectionStateCode) => void) | undefined;
}

const NOOP = (): void => {};

/**
 * A fixed number of connections of one kind to one node: opened lazily and all at once,
 * handed out round robin, broken ones replaced after an equal-jitter exponential backoff.
 *
 * Hot path (`acquire` once open): an integer cursor and a byte per connection; no
 * allocation, no promise, no map lookup.
 */
export class ConnectionSet<T> {
  readonly size: number;
  readonly kind: ConnectionKind;
  /** One state byte per connection index (`CONNECTION_STATE`). */
  readonly states: Uint8Array;
  /** The most recent failure of any connection in the set, for `ConnectionFailed` causes. */
  lastError: Error | undefined;

  private readonly factory: ConnectionFactory<T>;
  private readonly options: ConnectionSetOptions;
  private readonly connections: (T | undefined)[];
  private readonly hooks: (ConnectionHooks | undefined)[];
  private readonly failures: Uint32Array;
  private readonly timers: unknown[];
  private readonly listeners = new Set<() => void>();
  private cursor = 0;
  private opened = false;
  private closed = false;
  private live = 0;

  constructor(factory: ConnectionFactory<T>, size: number, options: ConnectionSetOptions) {
    this.factory = factory;
    this.kind = factory.kind;
    this.size = size;
    this.options = options;
    this.states = new Uint8Array(size).fill(CONNECTION_STATE.IDLE);
    this.connections = new Array<T | undefined>(size).fill(undefined);
    this.hooks = new Array<ConnectionHooks | undefined>(size).fill(undefined);
    this.failures = new Uint32Array(size);
    this.timers = new Array<unknown>(size).fill(undefined);
  }

  /** Whether the set has opened its connections (it does on first `acquire`/`open`). */
  get isOpen(): boolean {
    return this.opened && !this.closed;
  }

  get isClosed(): boolean {
    return this.closed;
  }

  /** Connections that currently exist (opened and not yet closed). */
  get liveCount(): number {
    return this.live;
  }

  /** Connections in READY state. */
  readyCount(): number {
    let n = 0;
    for (let i = 0; i < this.size; i++) if (this.states[i] === CONNECTION_STATE.READY) n++;
    return n;
  }

  /** Opens every connection now (idempotent). */
  open(): void {
    if (this.opened || this.closed) return;
    this.opened = true;
    for (let i = 0; i < this.size; i++) this.openAt(i);
  }

  /**
   * Next usable connection round robin, skipping ones in TRANSIENT_FAILURE or awaiting
   * replacement; `undefined` when none is usable (the caller raises `ConnectionFailed`).
   */
  acquire(): T | undefined {
    if (!this.opened) {
      if (this.closed) return undefined;
      this.open();
    }
    const n = this.size;
    const states = this.states;
    let c = this.cursor;
    for (let tries = 0; tries < n; tries++) {
      c = c + 1 === n ? 0 : c + 1;
      const s = states[c];
      if (s !== CONNECTION_STATE.TRANSIENT_FAILURE && s !== CONNECTION_STATE.SHUTDOWN) {
        this.cursor = c;
        return this.connections[c];
      }
    }
    return undefined;
  }

  /**
   * Resolves when every connection is READY; rejects with the failure when any connection
   * fails first, or with a timeout error after `timeoutMs`.
   */
  whenReady(timeoutMs: number): Promise<void> {
    this.open();
    return new Promise<void>((resolve, reject) => {
      const { clock } = this.options;
      let timer: unknown;
      const finish = (err: Error | undefined): void => {
        this.listeners.delete(check);
        clock.clearTimeout(timer);
        if (err === undefined) resolve();
        else reject(err);
      };
      const check = (): void => {
        if (this.closed) {
          finish(new Error(`${this.kind} set closed while connecting`));
          return;
        }
        let ready = 0;
        for (let i = 0; i < this.size; i++) {
          const s = this.states[i];
          if (s === CONNECTION_STATE.READY) ready++;
          else if (s === CONNECTION_STATE.TRANSIENT_FAILURE) {
            finish(this.lastError ?? new Error(`${this.kind} ${i} failed`));
            return;
          }
        }
        if (ready === this.size) finish(undefined);
      };
      timer = clock.setTimeout(
        () => finish(new Error(`${this.kind} not ready after connect timeout of ${timeoutMs} ms`)),
        timeoutMs,
      );
      // Clock timers are unref'd so idle pools never hold a process open, but a caller
      // awaiting a connect is waiting on it: grpc-js unrefs idle sockets too, and without
      // this ref a script doing only `await pool.connect()` would exit mid-await.
      (timer as { ref?: () => void } | undefined)?.ref?.();
      this.listeners.add(check);
      check();
    });
  }

  /**
   * Opens the replacement of every broken connection now, cancelling its backoff timer, and
   * starts its backoff count over. A connection that still exists but is in TRANSIENT_FAILURE
   * (a grpc-js channel waiting out its own reconnect backoff, 1 s growing to 120 s, which no
   * public API resets) is closed and replaced too: the node is known to be back.
   */
  reconnectNow(): void {
    if (!this.opened || this.closed) return;
    for (let i = 0; i < this.size; i++) {
      if (this.timers[i] !== undefined) {
        this.options.clock.clearTimeout(this.timers[i]);
        this.timers[i] = undefined;
      } else if (this.states[i] === CONNECTION_STATE.TRANSIENT_FAILURE) {
        void this.closeAt(i);
      } else continue;
      this.failures[i] = 0;
      this.openAt(i);
    }
    this.notify();
  }

  /** Closes every connection and cancels pending replacements; resolves when sockets are gone. */
  close(): Promise<void> {
    if (this.closed) return Promise.resolve();
    this.closed = true;
    const closing: Promise<void>[] = [];
    for (let i = 0; i < this.size; i++) {
      this.options.clock.clearTimeout(this.timers[i]);
      this.timers[i] = undefined;
      closing.push(this.closeAt(i));
      this.setState(i, CONNECTION_STATE.SHUTDOWN);
    }
    this.notify();
    return Promise.all(closing).then(NOOP);
  }

  private openAt(index: number): void {
    const hooks: ConnectionHooks = {
      state: (state, cause) => {
        if (this.hooks[index] !== hooks) return;
        if (cause !== undefined) this.lastError = cause;
        this.setState(index, state);
        if (state === CONNECTION_STATE.READY) this.failures[index] = 0;
        this.notify();
      },
      broken: (cause) => {
        if (this.hooks[index] !== hooks) return;
        this.lastError = cause;
        void this.closeAt(index);
        this.setState(index, CONNECTION_STATE.TRANSIENT_FAILURE);
        this.scheduleReplacement(index);
        this.notify();
      },
    };
    this.hooks[index] = hooks;
    this.setState(index, CONNECTION_STATE.CONNECTING);
    this.connections[index] = this.factory.open(index, hooks);
    this.live++;
    this.options.onEvent?.('open', index);
  }

  private closeAt(index: number): Promise<void> {
    const connection = this.connections[index];
    this.hooks[index] = undefined;
    this.connections[index] = undefined;
    if (connection === undefined) return Promise.resolve();
    this.live--;
    this.options.onEvent?.('close', index);
    return this.factory.close(connection);
  }

  private scheduleReplacement(index: number): void {
    const { clock, random, reconnectBaseDelayMs, reconnectMaxDelayMs } = this.options;
    const attempt = this.failures[index] ?? 0;
    this.failures[index] = attempt + 1;
    const delay = reconnectDelayMs(attempt, reconnectBaseDelayMs, reconnectMaxDelayMs, random);
    this.timers[index] = clock.setTimeout(() => {
      this.timers[index] = undefined;
      if (!this.closed) this.openAt(index);
    }, delay);
  }

  private setState(index: number, state: ConnectionStateCode): void {
    if (this.states[index] === state) return;
    this.states[index] = state;
    this.options.onState?.(index, state);
  }

  private notify(): void {
    if (this.listeners.size === 0) return;
    for (const listener of [...this.listeners]) listener();
  }
}

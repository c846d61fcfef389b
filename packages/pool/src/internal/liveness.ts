import { CONNECTION_STATE, type ConnectionHooks } from './connection-set.js';
import type { PoolCredentials, TimerClock } from './options.js';

/** What a raw (non-grpc-js) connection factory needs: one node, credentials, the liveness timers. */
export interface RawConnectionOptions {
  readonly address: string;
  readonly credentials: PoolCredentials;
  readonly connectTimeoutMs: number;
  readonly keepaliveIntervalMs: number;
  readonly keepaliveTimeoutMs: number;
  readonly clock: TimerClock;
}

export interface LivenessOptions {
  readonly clock: TimerClock;
  readonly connectTimeoutMs: number;
  readonly keepaliveIntervalMs: number;
  readonly keepaliveTimeoutMs: number;
  /** `connection <index> to <address>`, the start of every failure message. */
  readonly label: string;
  readonly hooks: ConnectionHooks;
  /** Sends a PING; `done` gets its ACK (null) or a failure. Returns false if none could be sent. */
  ping(done: (err: Error | null) => void): boolean;
  /** Drops the connection at once (a peer that missed a deadline has nothing to close gracefully). */
  destroy(cause: Error): void;
  /** The connection is already gone (no keep-alive to send). */
  isGone(): boolean;
}

/** What a connection factory reports into the supervisor. */
export interface Liveness {
  /** The peer's SETTINGS arrived: READY, the connect timer stops, keep-alive starts. */
  ready(): void;
  /** The connection can carry no more calls (close, GOAWAY, error): reported once. */
  broken(cause: Error): void;
}

/**
 * The connect timeout and PING keep-alive of one HTTP/2 connection, for every connection kind
 * that is not grpc-js (which has its own): READY only on the peer's SETTINGS within
 * `connectTimeoutMs`; then a PING every `keepaliveIntervalMs`, and a PING unanswered for
 * `keepaliveTimeoutMs` destroys the connection. Every failure reaches `hooks.broken` once;
 * all timers stop with it.
 */
export function superviseLiveness(o: LivenessOptions): Liveness {
  const { clock, hooks, label } = o;
  let keepaliveTimer: unknown;
  let pingTimeoutTimer: unknown;
  let done = false;
  const broken = (cause: Error): void => {
    if (done) return;
    done = true;
    clock.clearTimeout(connectTimer);
    clock.clearTimeout(keepaliveTimer);
    clock.clearTimeout(pingTimeoutTimer);
    hooks.broken(cause);
  };
  const dead = (cause: Error): void => {
    if (done) return;
    o.destroy(cause);
    broken(cause);
  };
  const scheduleKeepalive = (): void => {
    keepaliveTimer = clock.setTimeout(() => {
      if (done || o.isGone()) return;
      pingTimeoutTimer = clock.setTimeout(
        () =>
          dead(new Error(`${label}: keep-alive PING unanswered after ${o.keepaliveTimeoutMs} ms`)),
        o.keepaliveTimeoutMs,
      );
      const sent = o.ping((err) => {
        clock.clearTimeout(pingTimeoutTimer);
        if (err) broken(err);
        else if (!done) scheduleKeepalive();
      });
      if (!sent) broken(new Error(`${label}: PING could not be sent`));
    }, o.keepaliveIntervalMs);
  };
  const connectTimer = clock.setTimeout(
    () => dead(new Error(`${label}: connect timeout after ${o.connectTimeoutMs} ms`)),
    o.connectTimeoutMs,
  );
  return {
    ready(): void {
      if (done) return;
      clock.clearTimeout(connectTimer);
      hooks.state(CONNECTION_STATE.READY);
      scheduleKeepalive();
    },
    broken,
  };
}

import {
  type Clock,
  InvalidArgumentError,
  parseAddress,
  type Random,
  systemClock,
} from '@engram/common';
import type * as grpc from '@grpc/grpc-js';

/**
 * The common monotonic `Clock` that can also schedule: the pool's time source, injected so
 * reconnect backoff, connect timeouts and keep-alives run on fake time in tests.
 */
export interface TimerClock extends Clock {
  setTimeout(callback: () => void, delayMs: number): unknown;
  clearTimeout(handle: unknown): void;
}

/**
 * `systemClock` (monotonic) with real timers, unref'd so a pool never keeps a process alive
 * on its own.
 */
export const SYSTEM_TIMER_CLOCK: TimerClock = Object.freeze({
  now: () => systemClock.now(),
  setTimeout: (callback: () => void, delayMs: number) => {
    const t = setTimeout(callback, delayMs);
    t.unref();
    return t;
  },
  clearTimeout: (handle: unknown) => clearTimeout(handle as NodeJS.Timeout),
});

export const MATH_RANDOM: Random = Math.random;

/** Plaintext (default) or TLS; with `cert` + `key`, mutual TLS. PEM strings or Buffers. */
export type PoolCredentials =
  | { readonly kind: 'insecure' }
  | {
      readonly kind: 'tls';
      /** CA bundle to verify servers with; the system roots when absent. */
      readonly ca?: string | Buffer;
      /** Client certificate chain for mutual TLS; requires `key`. */
      readonly cert?: string | Buffer;
      /** Client private key for mutual TLS; requires `cert`. */
      readonly key?: string | Buffer;
      /** Server name to verify and send as SNI/authority instead of the address host. */
      readonly serverName?: string;
    };

export type ConnectionKind = 'channel' | 'session' | 'h2';

/** Emitted when the pool opens or closes one connection (for metrics). */
export interface ConnectionEvent {
  readonly type: 'open' | 'close';
  readonly kind: ConnectionKind;
  readonly nodeId: string;
  readonly index: number;
}

/** Emitted when one connection changes state (for metrics, logs and tests). */
export interface ConnectionStateEvent {
  readonly kind: ConnectionKind;
  readonly nodeId: string;
  readonly index: number;
  readonly state: 'idle' | 'connecting' | 'ready' | 'transient_failure' | 'shutdown';
}

/** Builds the typed client cached per grpc-js channel (see `ConnectionPool.acquireClient`). */
export type MakeClient<C> = (
  channel: grpc.Channel,
  address: string,
  credentials: grpc.ChannelCredentials,
) => C;

export interface PoolOptions<C = grpc.Client> {
  /**
   * Distinct HTTP/2 connections per node, for each kind (grpc-js channels, raw sessions).
   * Default 1: the seed's 4 costs ~8.7 MB of heap per 100 nodes with grpc-js (README,
   * "Memory"), and HTTP/2 multiplexes concurrent calls over one connection anyway.
   */
  readonly channelsPerNode?: number;
  /** How long `connect()` waits for a node's connections. Default 5 000 ms (5 s). */
  readonly connectTimeoutMs?: number;
  /** HTTP/2 PING interval on every connection. Default 30 000 ms (30 s). */
  readonly keepaliveIntervalMs?: number;
  /** A PING unanswered for this long marks the connection broken. Default 10 000 ms (10 s). */
  readonly keepaliveTimeoutMs?: number;
  /** First reconnect delay after a connection breaks. Default 100 ms. */
  readonly reconnectBaseDelayMs?: number;
  /** Cap on the reconnect delay (doubling, equal jitter). Default 5 000 ms (5 s). */
  readonly reconnectMaxDelayMs?: number;
  /** Plaintext by default. */
  readonly credentials?: PoolCredentials;
  /** Extra grpc-js channel options, applied under the pool's own. Default none. */
  readonly channelOptions?: grpc.ChannelOptions;
  /** Typed client per channel. Default `new grpc.Client(address, creds, { channelOverride })`. */
  readonly makeClient?: MakeClient<C>;
  /** Called synchronously on every connection open/close. Default none. */
  readonly onConnection?: (event: ConnectionEvent) => void;
  /** Called synchronously on every connection state change. Default none. */
  readonly onStateChange?: (event: ConnectionStateEvent) => void;
  /** Default `systemClock` (monotonic) with real, unref'd timers. */
  readonly clock?: TimerClock;
  /**
   * Uniform in [0, 1), for reconnect jitter. Default `Math.random`. The common `Random`, so one
   * seeded generator drives the pool, retry and the router.
   */
  readonly random?: Random;
}

export const DEFAULTS = Object.freeze({
  channelsPerNode: 1, // the seed says 4; see PoolOptions.channelsPerNode and the README
  connectTimeoutMs: 5 * 1000, // 5 s
  keepaliveIntervalMs: 30 * 1000, // 30 s
  keepaliveTimeoutMs: 10 * 1000, // 10 s
  reconnectBaseDelayMs: 100, // 100 ms
  reconnectMaxDelayMs: 5 * 1000, // 5 s
});

/** Upper bound on connections per node; more only burns sockets and memory. */
export const MAX_CHANNELS_PER_NODE = 64;
/** setTimeout's own ceiling (2^31 - 1 ms, ~24.8 days). */
export const MAX_TIMER_MS = 2_147_483_647;

export interface ResolvedOptions {
  readonly channelsPerNode: number;
  readonly connectTimeoutMs: number;
  readonly keepaliveIntervalMs: number;
  readonly keepaliveTimeoutMs: number;
  readonly reconnectBaseDelayMs: number;
  readonly reconnectMaxDelayMs: number;
  readonly credentials: PoolCredentials;
  readonly channelOptions: grpc.ChannelOptions;
  readonly onConnection: ((event: ConnectionEvent) => void) | undefined;
  readonly onStateChange: ((event: ConnectionStateEvent) => void) | undefined;
  readonly clock: TimerClock;
  readonly random: Random;
}

function integerIn(field: string, value: number, min: number, max: number): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
    throw new InvalidArgumentError(field, value, `an integer in [${min}, ${max}]`);
  }
  return value;
}

export function resolveOptions(options: PoolOptions<unknown>): ResolvedOptions {
  const channelsPerNode = integerIn(
    'channelsPerNode',
    options.channelsPerNode ?? DEFAULTS.channelsPerNode,
    1,
    MAX_CHANNELS_PER_NODE,
  );
  const connectTimeoutMs = integerIn(
    'connectTimeoutMs',
    options.connectTimeoutMs ?? DEFAULTS.connectTimeoutMs,
    1,
    MAX_TIMER_MS,
  );
  const keepaliveIntervalMs = integerIn(
    'keepaliveIntervalMs',
    options.keepaliveIntervalMs ?? DEFAULTS.keepaliveIntervalMs,
    1,
    MAX_TIMER_MS,
  );
  const keepaliveTimeoutMs = integerIn(
    'keepaliveTimeoutMs',
    options.keepaliveTimeoutMs ?? DEFAULTS.keepaliveTimeoutMs,
    1,
    MAX_TIMER_MS,
  );
  const reconnectBaseDelayMs = integerIn(
    'reconnectBaseDelayMs',
    options.reconnectBaseDelayMs ?? DEFAULTS.reconnectBaseDelayMs,
    0,
    MAX_TIMER_MS,
  );
  const reconnectMaxDelayMs = integerIn(
    'reconnectMaxDelayMs',
    options.reconnectMaxDelayMs ?? DEFAULTS.reconnectMaxDelayMs,
    reconnectBaseDelayMs,
    MAX_TIMER_MS,
  );
  const credentials = options.credentials ?? { kind: 'insecure' as const };
  if (credentials.kind !== 'insecure' && credentials.kind !== 'tls') {
    throw new InvalidArgumentError(
      'credentials.kind',
      (credentials as { kind: unknown }).kind,
      '"insecure" or "tls"',
    );
  }
  if (
    credentials.kind === 'tls' &&
    (credentials.cert === undefined) !== (credentials.key === undefined)
  ) {
    throw new InvalidArgumentError(
      credentials.cert === undefined ? 'credentials.cert' : 'credentials.key',
      undefined,
      'given together with the other (cert and key make mutual TLS)',
    );
  }
  const random = options.random ?? MATH_RANDOM;
  if (typeof random !== 'function') {
    // Until 2026-11 `random` was `{ next(): number }`; name the new shape in the error.
    throw new InvalidArgumentError('random', random, 'a function returning [0, 1)');
  }
  return {
    channelsPerNode,
    connectTimeoutMs,
    keepaliveIntervalMs,
    keepaliveTimeoutMs,
    reconnectBaseDelayMs,
    reconnectMaxDelayMs,
    credentials,
    channelOptions: options.channelOptions ?? {},
    onConnection: options.onConnection,
    onStateChange: options.onStateChange,
    clock: options.clock ?? SYSTEM_TIMER_CLOCK,
    random,
  };
}

/** `host:port` by `@engram/common`'s rules (IPv6 hosts in brackets, port 1..65535). */
export function validateAddress(field: string, address: string): string {
  parseAddress(address, field);
  return address;
}

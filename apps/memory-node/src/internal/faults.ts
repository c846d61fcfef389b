/**
 * Fault injection settings and the per-call decision: a pure core, no timers and no I/O (the
 * gRPC interceptor in fault-interceptor.ts applies the decisions; fault-admin.ts changes the
 * settings over HTTP). Tests and benchmarks use it to make a node slow, failing or hung.
 */
import { InvalidArgumentError, type Random } from '@engram/common';

/** What the node does to the calls faults apply to. */
export interface FaultSettings {
  /** Every affected call waits this long before it is handled (a failure too), ms. */
  readonly latencyMs: number;
  /** Share of affected calls failed with UNAVAILABLE, in [0, 1]. */
  readonly errorRate: number;
  /** Affected calls are accepted and held unanswered until `hang` is turned off. */
  readonly hang: boolean;
  /** Also affect grpc.health.v1 (a node that hangs completely); else only the data services. */
  readonly health: boolean;
}

/** A partial change of the settings (the body of `PUT /faults`). */
export type FaultUpdate = Partial<FaultSettings>;

/** The settings and the number of calls held by `hang` now (the body of `GET /faults`). */
export interface FaultState extends FaultSettings {
  readonly heldCalls: number;
}

/** No fault. */
export const FAULT_DEFAULTS: FaultSettings = Object.freeze({
  latencyMs: 0,
  errorRate: 0,
  hang: false,
  health: false,
});

/** Largest accepted `latencyMs`: longer than any deadline a test sets; `hang` is the rest. */
export const MAX_FAULT_LATENCY_MS = 600_000; // 10 min

/** Details of a call failed by `errorRate`, so nobody mistakes it for a real failure. */
export const INJECTED_FAULT_MESSAGE = 'injected fault (memory-node errorRate)';

/** Whether a call goes through, fails or is held; `delayMs` comes first. */
export type FaultDecision =
  | { readonly kind: 'pass'; readonly delayMs: number }
  | { readonly kind: 'fail'; readonly delayMs: number }
  | { readonly kind: 'hang' };

/** `data`: MemoryService and ReplicaService; `health`: grpc.health.v1 (only with `health`). */
export type FaultTarget = 'data' | 'health';

const KEYS = Object.keys(FAULT_DEFAULTS) as (keyof FaultSettings)[];
const PASS: FaultDecision = Object.freeze({ kind: 'pass', delayMs: 0 });
const HANG: FaultDecision = Object.freeze({ kind: 'hang' });

/**
 * Checks a partial update (any JSON value) and returns it typed. Throws `InvalidArgumentError`
 * naming the offending key as `fieldName(key)` gives it (`--fault-latency-ms` for the CLI,
 * `faults.latencyMs` for the options, `latencyMs` over HTTP; `fieldName(undefined)` names the
 * whole when it is not an object); an unknown key is refused too.
 */
export function validateFaultUpdate(
  input: unknown,
  fieldName: (key: string | undefined) => string = (key) => key ?? 'faults',
): FaultUpdate {
  if (typeof input !== 'object' || input === null || Array.isArray(input)) {
    throw new InvalidArgumentError(
      fieldName(undefined),
      input,
      `an object with any of ${KEYS.join(', ')}`,
    );
  }
  const update: { -readonly [K in keyof FaultSettings]?: FaultSettings[K] } = {};
  for (const [key, value] of Object.entries(input)) {
    const field = fieldName(key);
    switch (key) {
      case 'latencyMs':
        if (
          typeof value !== 'number' ||
          !Number.isInteger(value) ||
          value < 0 ||
          value > MAX_FAULT_LATENCY_MS
        ) {
          throw new InvalidArgumentError(
            field,
            value,
            `an integer in [0, ${MAX_FAULT_LATENCY_MS}]`,
          );
        }
        update.latencyMs = value;
        break;
      case 'errorRate':
        if (typeof value !== 'number' || !(value >= 0 && value <= 1)) {
          throw new InvalidArgumentError(field, value, 'a number in [0, 1]');
        }
        update.errorRate = value;
        break;
      case 'hang':
      case 'health':
        if (typeof value !== 'boolean') throw new InvalidArgumentError(field, value, 'a boolean');
        update[key] = value;
        break;
      default:
        throw new InvalidArgumentError(field, value, `absent (known: ${KEYS.join(', ')})`);
    }
  }
  return update;
}

/** The runtime control of a node's faults (`MemoryNode.faults`). */
export interface FaultControl {
  /** The settings and the calls held now. */
  state(): FaultState;
  /**
   * Validates `update` (see `validateFaultUpdate`) and applies it; a bad one throws and
   * changes nothing. Turning `hang` off lets the held calls go on (they are then answered
   * normally). Returns the new state.
   */
  update(update: FaultUpdate): FaultState;
}

/**
 * The settings and the calls `hang` holds. `random` decides `errorRate` (a fake one in tests).
 */
export class FaultInjector implements FaultControl {
  #settings: FaultSettings;
  readonly #random: Random;
  readonly #held = new Set<() => void>();

  constructor(initial: FaultUpdate = {}, random: Random = Math.random) {
    this.#settings = Object.freeze({ ...FAULT_DEFAULTS, ...validateFaultUpdate(initial) });
    this.#random = random;
  }

  state(): FaultState {
    return { ...this.#settings, heldCalls: this.#held.size };
  }

  update(update: FaultUpdate): FaultState {
    this.#settings = Object.freeze({ ...this.#settings, ...validateFaultUpdate(update) });
    if (!this.#settings.hang) this.releaseHeld();
    return this.state();
  }

  /** What to do with one call to `target`. Draws from `random` only when errorRate > 0. */
  decide(target: FaultTarget): FaultDecision {
    const s = this.#settings;
    if (target === 'health' && !s.health) return PASS;
    if (s.hang) return HANG;
    const fail = s.errorRate > 0 && this.#random() < s.errorRate;
    if (!fail && s.latencyMs === 0) return PASS;
    return { kind: fail ? 'fail' : 'pass', delayMs: s.latencyMs };
  }

  /**
   * Holds a call `decide` said to hang: `release` runs once hang is turned off. Returns the
   * function to call when the call ends first (cancelled, past its deadline), which forgets it.
   */
  hold(release: () => void): () => void {
    this.#held.add(release);
    return () => {
      this.#held.delete(release);
    };
  }

  /** Lets every held call go on (hang turned off, or the node closing). */
  releaseHeld(): void {
    const held = [...this.#held];
    this.#held.clear();
    for (const release of held) release();
  }
}

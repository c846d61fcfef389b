import { InvalidArgumentError } from '@engram/common';
import { describe, expect, it } from 'vitest';
import {
  FAULT_DEFAULTS,
  FaultInjector,
  MAX_FAULT_LATENCY_MS,
  validateFaultUpdate,
} from '../src/internal/faults.js';

// The pure core of fault injection: validation, the per-call decision (random injected), and
// the calls `hang` holds. No timers here: fault-interceptor.ts applies the decisions.

/** A Random returning `values` in turn; a draw past the end fails the test. */
function scripted(...values: number[]): () => number {
  return () => {
    const v = values.shift();
    if (v === undefined) throw new Error('random drawn more often than the test expected');
    return v;
  };
}

const NEVER = scripted();

function invalid(fn: () => unknown): InvalidArgumentError {
  try {
    fn();
  } catch (err) {
    if (err instanceof InvalidArgumentError) return err;
    throw err;
  }
  throw new Error('expected an InvalidArgumentError');
}

describe('validateFaultUpdate', () => {
  it('accepts any subset of the settings, the bounds included', () => {
    expect(validateFaultUpdate({})).toEqual({});
    expect(validateFaultUpdate({ latencyMs: 0, errorRate: 1 })).toEqual({
      latencyMs: 0,
      errorRate: 1,
    });
    expect(
      validateFaultUpdate({
        latencyMs: MAX_FAULT_LATENCY_MS,
        errorRate: 0,
        hang: true,
        health: false,
      }),
    ).toEqual({ latencyMs: MAX_FAULT_LATENCY_MS, errorRate: 0, hang: true, health: false });
  });

  it.each([
    [{ latencyMs: -1 }, 'latencyMs', -1],
    [{ latencyMs: 1.5 }, 'latencyMs', 1.5],
    [{ latencyMs: MAX_FAULT_LATENCY_MS + 1 }, 'latencyMs', MAX_FAULT_LATENCY_MS + 1],
    [{ latencyMs: '100' }, 'latencyMs', '100'],
    [{ errorRate: 1.01 }, 'errorRate', 1.01],
    [{ errorRate: -0.1 }, 'errorRate', -0.1],
    [{ errorRate: Number.NaN }, 'errorRate', Number.NaN],
    [{ errorRate: '0.5' }, 'errorRate', '0.5'],
    [{ hang: 1 }, 'hang', 1],
    [{ health: 'true' }, 'health', 'true'],
    [{ latencyMs: 10, slow: true }, 'slow', true],
  ])('refuses %j, naming %s and the value', (input, field, value) => {
    const err = invalid(() => validateFaultUpdate(input));
    expect(err.code).toBe('InvalidArgument');
    expect(err.field).toBe(field);
    expect(err.value).toEqual(value);
  });

  it.each([[null], [[1]], ['hang'], [5]])('refuses %j as a whole', (input) => {
    const err = invalid(() => validateFaultUpdate(input));
    expect(err.field).toBe('faults');
    expect(err.value).toEqual(input);
  });

  it('names fields as the caller spells them', () => {
    const name = (key: string | undefined) => `--fault-${key ?? 'all'}`;
    expect(invalid(() => validateFaultUpdate({ errorRate: 2 }, name)).field).toBe(
      '--fault-errorRate',
    );
    expect(invalid(() => validateFaultUpdate([], name)).field).toBe('--fault-all');
  });
});

describe('FaultInjector.decide', () => {
  it('passes every call at once by default, without drawing a random number', () => {
    const faults = new FaultInjector({}, NEVER);
    expect(faults.state()).toEqual({ ...FAULT_DEFAULTS, heldCalls: 0 });
    expect(faults.decide('data')).toEqual({ kind: 'pass', delayMs: 0 });
    expect(faults.decide('health')).toEqual({ kind: 'pass', delayMs: 0 });
  });

  it('delays data calls by latencyMs', () => {
    const faults = new FaultInjector({ latencyMs: 250 }, NEVER);
    expect(faults.decide('data')).toEqual({ kind: 'pass', delayMs: 250 });
  });

  it('fails the share of calls errorRate says, by the injected random, after the latency', () => {
    const faults = new FaultInjector({ errorRate: 0.5, latencyMs: 20 }, scripted(0.49, 0.5, 0));
    expect(faults.decide('data')).toEqual({ kind: 'fail', delayMs: 20 });
    expect(faults.decide('data')).toEqual({ kind: 'pass', delayMs: 20 });
    expect(faults.decide('data')).toEqual({ kind: 'fail', delayMs: 20 });
  });

  it('fails every call at errorRate 1, whatever the random number', () => {
    const faults = new FaultInjector({ errorRate: 1 }, scripted(0, 0.999_999));
    expect(faults.decide('data')).toEqual({ kind: 'fail', delayMs: 0 });
    expect(faults.decide('data')).toEqual({ kind: 'fail', delayMs: 0 });
  });

  it('holds data calls on hang, before latency and errors', () => {
    const faults = new FaultInjector({ hang: true, errorRate: 1, latencyMs: 5 }, NEVER);
    expect(faults.decide('data')).toEqual({ kind: 'hang' });
  });

  it('leaves health checks alone unless health is set', () => {
    const faults = new FaultInjector({ hang: true }, NEVER);
    expect(faults.decide('health')).toEqual({ kind: 'pass', delayMs: 0 });
    faults.update({ hang: false, errorRate: 1, latencyMs: 30 });
    expect(faults.decide('health')).toEqual({ kind: 'pass', delayMs: 0 });
  });

  it('treats health checks like data calls when health is set', () => {
    const faults = new FaultInjector({ health: true, hang: true }, scripted(0.2));
    expect(faults.decide('health')).toEqual({ kind: 'hang' });
    faults.update({ hang: false, errorRate: 0.3, latencyMs: 30 });
    expect(faults.decide('health')).toEqual({ kind: 'fail', delayMs: 30 });
  });
});

describe('FaultInjector.update', () => {
  it('changes only the settings given and returns the new state', () => {
    const faults = new FaultInjector({ latencyMs: 100, errorRate: 0.1 });
    expect(faults.update({ errorRate: 0.2 })).toEqual({
      latencyMs: 100,
      errorRate: 0.2,
      hang: false,
      health: false,
      heldCalls: 0,
    });
    expect(faults.state().errorRate).toBe(0.2);
  });

  it('refuses a bad update as a whole: nothing changes', () => {
    const faults = new FaultInjector({ latencyMs: 100 });
    const before = faults.state();
    const err = invalid(() => faults.update({ latencyMs: 5, errorRate: 3 } as never));
    expect(err.field).toBe('errorRate');
    expect(faults.state()).toEqual(before);
  });

  it('refuses bad initial settings', () => {
    expect(invalid(() => new FaultInjector({ latencyMs: -5 })).field).toBe('latencyMs');
  });
});

describe('FaultInjector.hold', () => {
  it('holds calls until hang is turned off, then lets them go in arrival order', () => {
    const faults = new FaultInjector({ hang: true });
    const released: string[] = [];
    faults.hold(() => released.push('a'));
    faults.hold(() => released.push('b'));
    expect(faults.state().heldCalls).toBe(2);
    faults.update({ latencyMs: 10 }); // still hanging
    expect(released).toEqual([]);
    expect(faults.update({ hang: false }).heldCalls).toBe(0);
    expect(released).toEqual(['a', 'b']);
    faults.update({ hang: false });
    expect(released).toEqual(['a', 'b']); // once each
  });

  it('forgets a call that ended first (cancelled, past its deadline)', () => {
    const faults = new FaultInjector({ hang: true });
    const released: string[] = [];
    const drop = faults.hold(() => released.push('gone'));
    faults.hold(() => released.push('kept'));
    drop();
    expect(faults.state().heldCalls).toBe(1);
    faults.update({ hang: false });
    expect(released).toEqual(['kept']);
  });

  it('releaseHeld lets every held call go while hang stays on (the node closing)', () => {
    const faults = new FaultInjector({ hang: true });
    let released = 0;
    faults.hold(() => released++);
    faults.releaseHeld();
    expect(released).toBe(1);
    expect(faults.state()).toMatchObject({ hang: true, heldCalls: 0 });
  });
});

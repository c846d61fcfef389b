import { describe, expect, it } from 'vitest';
import { ConnectionPool, DEFAULTS, InvalidArgumentError, UnknownNodeError } from '../src/index.js';

describe('ConnectionPool options', () => {
  it('applies the defaults (1 connection per node of each kind; seed timings)', () => {
    const pool = new ConnectionPool();
    expect(pool.options.channelsPerNode).toBe(1);
    expect(pool.options.connectTimeoutMs).toBe(5000);
    expect(pool.options.keepaliveIntervalMs).toBe(30_000);
    expect(pool.options.keepaliveTimeoutMs).toBe(10_000);
    expect(pool.options.credentials).toEqual({ kind: 'insecure' });
    expect(DEFAULTS.channelsPerNode).toBe(1);
  });

  it.each([
    ['channelsPerNode', { channelsPerNode: 0 }, 0],
    ['channelsPerNode', { channelsPerNode: 1.5 }, 1.5],
    ['connectTimeoutMs', { connectTimeoutMs: -1 }, -1],
    ['keepaliveIntervalMs', { keepaliveIntervalMs: Number.NaN }, Number.NaN],
    ['reconnectMaxDelayMs', { reconnectBaseDelayMs: 500, reconnectMaxDelayMs: 100 }, 100],
  ])('rejects a bad %s with a RangeError naming it', (field, options, value) => {
    let caught: unknown;
    try {
      new ConnectionPool(options);
    } catch (err) {
      caught = err;
    }
    expect(caught).toBeInstanceOf(RangeError);
    expect(caught).toBeInstanceOf(InvalidArgumentError);
    expect((caught as InvalidArgumentError).code).toBe('InvalidArgument');
    expect((caught as InvalidArgumentError).field).toBe(field);
    expect((caught as InvalidArgumentError).value).toBe(value);
  });

  it('random is a () => number, the shape @engram/retry and @engram/router take', () => {
    // One seeded generator (mulberry32, as @engram/retry's seededRandom) for every package.
    let a = 42;
    const seeded = () => {
      a = (a + 0x6d2b79f5) | 0;
      let t = Math.imul(a ^ (a >>> 15), 1 | a);
      t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
      return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
    };
    const pool = new ConnectionPool({ random: seeded });
    expect(pool.options.random).toBe(seeded);
    expect(new ConnectionPool().options.random).toBe(Math.random);
  });

  it('rejects the old { next() } shape of random, naming the field', () => {
    const old = { next: () => 0 };
    let caught: unknown;
    try {
      new ConnectionPool({ random: old as unknown as () => number });
    } catch (err) {
      caught = err;
    }
    expect(caught).toBeInstanceOf(InvalidArgumentError);
    expect((caught as InvalidArgumentError).field).toBe('random');
    expect((caught as InvalidArgumentError).value).toBe(old);
  });

  it('requires a client certificate and key together', () => {
    expect(() => new ConnectionPool({ credentials: { kind: 'tls', cert: 'x' } })).toThrow(
      expect.objectContaining({ code: 'InvalidArgument', field: 'credentials.key' }),
    );
  });

  it('rejects an address without a valid port', () => {
    const pool = new ConnectionPool();
    expect(() => pool.addNode('n1', 'localhost')).toThrow(
      expect.objectContaining({ code: 'InvalidArgument', field: 'address' }),
    );
    expect(() => pool.addNode('n1', '127.0.0.1:70000')).toThrow(
      expect.objectContaining({ code: 'InvalidArgument' }),
    );
    expect(() => pool.addNode('', '127.0.0.1:1')).toThrow(
      expect.objectContaining({ code: 'InvalidArgument', field: 'nodeId' }),
    );
  });

  it('registers nodes without connecting, by id and by a slot that is never reused', async () => {
    const pool = new ConnectionPool();
    expect(pool.addNode('a', '127.0.0.1:1')).toBe(0);
    expect(pool.addNode('b', '127.0.0.1:2')).toBe(1);
    expect(pool.addNode('a', '127.0.0.1:1')).toBe(0);
    expect(pool.slotOf('b')).toBe(1);
    expect(pool.slotOf('zz')).toBe(-1);
    expect(pool.channelCount).toBe(0);
    expect(pool.healthReport()).toMatchObject({ totalNodes: 2, healthyNodes: 0, totalChannels: 0 });
    await pool.removeNode('a');
    expect(() => pool.acquireChannel(0)).toThrow(UnknownNodeError);
    expect(() => pool.acquireChannel('a')).toThrow(
      expect.objectContaining({ code: 'UnknownNode' }),
    );
    expect(pool.addNode('a', '127.0.0.1:1')).toBe(2);
    await pool.close();
    expect(() => pool.acquireChannel('b')).toThrow(expect.objectContaining({ code: 'PoolClosed' }));
    expect(() => pool.addNode('c', '127.0.0.1:3')).toThrow(
      expect.objectContaining({ code: 'PoolClosed' }),
    );
  });
});

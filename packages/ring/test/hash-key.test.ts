import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { hashKey, InvalidArgumentError } from '../src/index.js';
import { murmur3x86_32 } from '../src/internal/murmur3.js';

interface Vector {
  input: string;
  utf8: string;
  seed: number;
  hash: number;
}
const { vectors } = JSON.parse(
  readFileSync(new URL('./vectors/murmur3.json', import.meta.url), 'utf8'),
) as { vectors: Vector[] };

describe('hashKey', () => {
  it('matches the reference MurmurHash3 x86_32 for every seed-0 golden vector', () => {
    const seedZero = vectors.filter((v) => v.seed === 0);
    expect(seedZero.length).toBeGreaterThan(20);
    for (const v of seedZero)
      expect({ input: v.input, hash: hashKey(v.input) }).toEqual({ input: v.input, hash: v.hash });
  });

  it('encodes keys as UTF-8 exactly like the vectors (multi-byte, astral, lone surrogates)', () => {
    for (const v of vectors) {
      expect(Buffer.from(new TextEncoder().encode(v.input)).toString('hex')).toBe(v.utf8);
    }
  });

  it('the core hash matches the reference for non-zero seeds (vnode tokens use them)', () => {
    const seeded = vectors.filter((v) => v.seed !== 0);
    expect(seeded.length).toBeGreaterThan(5);
    for (const v of seeded) {
      const bytes = Buffer.from(v.utf8, 'hex');
      expect(murmur3x86_32(bytes, bytes.length, v.seed)).toBe(v.hash);
    }
  });

  it('hashes keys longer than its scratch buffer', () => {
    const key = 'é'.repeat(10_000);
    const bytes = new TextEncoder().encode(key);
    expect(hashKey(key)).toBe(murmur3x86_32(bytes, bytes.length, 0));
    expect(hashKey('short')).toBe(murmur3x86_32(Buffer.from('short'), 5, 0));
  });

  it('rejects non-string keys with a typed error naming the field', () => {
    for (const bad of [42, undefined, null, { id: 'x' }, Symbol('s')]) {
      const error = catchError(() => hashKey(bad as unknown as string));
      expect(error).toBeInstanceOf(InvalidArgumentError);
      expect(error).toMatchObject({ code: 'InvalidArgument', field: 'key' });
    }
  });
});

function catchError(fn: () => unknown): unknown {
  try {
    fn();
  } catch (error) {
    return error;
  }
  throw new Error('expected a throw');
}

import { describe, expect, it } from 'vitest';
import {
  InvalidArgumentError,
  isMemoryNodeError,
  MEMORY_NODE_ERROR_CODES,
  MemoryNodeError,
  StorageFailedError,
} from '../src/index.js';
import { validateMemory } from '../src/internal/validate.js';

const BRAND = Symbol.for('@engram/error');
const limits = {
  maxContentBytes: 10,
  maxEmbeddingDims: 4,
  maxIdBytes: 8,
  maxSpaceIdBytes: 16,
  defaultRecallLimit: 10,
  maxRecallLimit: 100,
  defaultSimilarityThreshold: 0.95,
  maxQuerySpaces: 4,
};

describe('memory-node errors', () => {
  it('lists every code once, keys equal to values, frozen', () => {
    expect(Object.isFrozen(MEMORY_NODE_ERROR_CODES)).toBe(true);
    for (const [key, value] of Object.entries(MEMORY_NODE_ERROR_CODES)) expect(value).toBe(key);
  });

  it('a bad request field is the common InvalidArgumentError with the proto path and the value', () => {
    let caught: unknown;
    try {
      validateMemory(
        {
          id: '',
          content: 'x',
          embedding: [1, Number.NaN],
          confidence: 0,
          createdAtMs: 0,
          version: 0,
        },
        limits,
        () => 'id',
        0,
      );
    } catch (error) {
      caught = error;
    }
    expect(caught).toBeInstanceOf(InvalidArgumentError);
    expect(caught).toMatchObject({ code: 'InvalidArgument', field: 'memory.embedding[1]' });
    expect((caught as InvalidArgumentError).value).toBeNaN();
    expect(isMemoryNodeError(caught)).toBe(true);
  });

  it('StorageFailedError is a MemoryNodeError with code StorageFailed', () => {
    const error = new StorageFailedError('append failed', new Error('ENOSPC'));
    expect(error).toBeInstanceOf(MemoryNodeError);
    expect(error.code).toBe('StorageFailed');
    expect(isMemoryNodeError(error)).toBe(true);
  });

  it('isMemoryNodeError goes by brand and code, so an error of another copy passes', () => {
    const foreign = Object.assign(new Error('append failed'), { code: 'StorageFailed' });
    Object.defineProperty(foreign, BRAND, { value: true });
    expect(foreign).not.toBeInstanceOf(MemoryNodeError);
    expect(isMemoryNodeError(foreign)).toBe(true);
  });

  it('isMemoryNodeError refuses unbranded look-alikes and other packages’ codes', () => {
    expect(isMemoryNodeError(Object.assign(new Error('x'), { code: 'StorageFailed' }))).toBe(false);
    expect(isMemoryNodeError({ [BRAND]: true, code: 'PoolClosed' })).toBe(false);
  });
});

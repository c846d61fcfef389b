import { describe, expect, it } from 'vitest';
import { isProtoError, PROTO_ERROR_CODES, ProtoError } from '../src/index.js';
import { service } from '../src/internal/load.js';

const BRAND = Symbol.for('@engram/error');

describe('proto errors', () => {
  it('lists every code once, keys equal to values, frozen', () => {
    expect(Object.isFrozen(PROTO_ERROR_CODES)).toBe(true);
    for (const [key, value] of Object.entries(PROTO_ERROR_CODES)) expect(value).toBe(key);
  });

  it('a service missing from the protos is a ProtoError with code ServiceNotFound', () => {
    let caught: unknown;
    try {
      service('engram.v1.NoSuchService');
    } catch (error) {
      caught = error;
    }
    expect(caught).toBeInstanceOf(ProtoError);
    expect(caught).toMatchObject({ code: 'ServiceNotFound' });
    expect(isProtoError(caught)).toBe(true);
    expect(service('engram.v1.MemoryService')).toHaveProperty('Store');
    expect(service('engram.v1.ReplicaService')).toHaveProperty('ScanSpace');
    // a message is not a service
    expect(() => service('engram.v1.Memory')).toThrow(ProtoError);
  });

  it('isProtoError goes by brand and code, so an error of another copy of proto passes', () => {
    const foreign = Object.assign(new Error('not found'), { code: 'ServiceNotFound' });
    Object.defineProperty(foreign, BRAND, { value: true });
    expect(foreign).not.toBeInstanceOf(ProtoError);
    expect(isProtoError(foreign)).toBe(true);
  });

  it('isProtoError refuses unbranded look-alikes and other packages’ codes', () => {
    expect(isProtoError(Object.assign(new Error('x'), { code: 'ServiceNotFound' }))).toBe(false);
    expect(isProtoError({ [BRAND]: true, code: 'InvalidArgument' })).toBe(false);
  });
});

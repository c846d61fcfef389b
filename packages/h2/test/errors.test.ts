import { describe, expect, it } from 'vitest';
import {
  H2_ERROR,
  H2_ERROR_CODES,
  H2Error,
  H2Server,
  HpackDecoder,
  HpackError,
  InvalidArgumentError,
  isH2Error,
} from '../src/index.js';

const BRAND = Symbol.for('@engram/error');

describe('h2 errors', () => {
  it('lists every code once, keys equal to values, frozen', () => {
    expect(Object.isFrozen(H2_ERROR_CODES)).toBe(true);
    for (const [key, value] of Object.entries(H2_ERROR_CODES)) expect(value).toBe(key);
  });

  it('HpackError is an H2Error with code CompressionError and the COMPRESSION_ERROR h2Code', () => {
    let caught: unknown;
    try {
      new HpackDecoder().decode(Buffer.from([0x80]), 0, 1, []);
    } catch (error) {
      caught = error;
    }
    expect(caught).toBeInstanceOf(HpackError);
    expect(caught).toBeInstanceOf(H2Error);
    expect(caught).toMatchObject({ code: 'CompressionError', h2Code: H2_ERROR.COMPRESSION_ERROR });
    expect(isH2Error(caught)).toBe(true);
  });

  it('bad options are the common InvalidArgumentError, which isH2Error recognises', () => {
    let caught: unknown;
    try {
      new H2Server({ idleTimeoutMs: -1, onStream() {} });
    } catch (error) {
      caught = error;
    }
    expect(caught).toBeInstanceOf(InvalidArgumentError);
    expect(caught).toMatchObject({ code: 'InvalidArgument', field: 'idleTimeoutMs', value: -1 });
    expect(isH2Error(caught)).toBe(true);
  });

  it('isH2Error goes by brand and code, so an error of another copy of h2 passes', () => {
    const foreign = Object.assign(new Error('closed'), { code: 'H2ConnectionClosed', h2Code: 0 });
    Object.defineProperty(foreign, BRAND, { value: true });
    expect(foreign).not.toBeInstanceOf(H2Error);
    expect(isH2Error(foreign)).toBe(true);
    expect(isH2Error({ [BRAND]: true, code: 'H2ProtocolError' })).toBe(true);
  });

  it('isH2Error refuses unbranded look-alikes and other packages’ codes', () => {
    expect(isH2Error(Object.assign(new Error('x'), { code: 'H2Unavailable' }))).toBe(false);
    expect(isH2Error({ [BRAND]: true, code: 'ConnectionFailed' })).toBe(false);
    expect(isH2Error('H2ProtocolError')).toBe(false);
  });
});

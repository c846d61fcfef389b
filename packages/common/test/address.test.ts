import { describe, expect, it } from 'vitest';
import { addressProblem, formatAddress, InvalidArgumentError, parseAddress } from '../src/index.js';

// Ported from @engram/ring's node address validation, where these rules were born.
const invalid: readonly unknown[] = [
  'localhost',
  'localhost:0',
  'localhost:65536',
  'localhost:123456',
  'localhost:http',
  'local host:80',
  '::1:80',
  ':80',
  '[::1:80',
  '[]:80',
  '[not-v6]:80',
  `${'a'.repeat(64)}.example:80`,
  7000,
  undefined,
  null,
];

describe('addressProblem', () => {
  it('accepts hostnames, IPv4 and bracketed IPv6 addresses', () => {
    for (const address of [
      'memory-1.engram.svc.cluster.local:7000',
      'memory_1.local.:7000',
      '10.1.2.3:65535',
      '[::1]:7000',
      '[fe80::1%eth0]:1',
    ]) {
      expect(addressProblem(address), address).toBeUndefined();
    }
  });

  it.each(invalid.map((a) => [a]))('rejects %j with a reason', (address) => {
    expect(addressProblem(address)).toEqual(expect.any(String));
  });

  it('says what is wrong in a phrase that reads after the field name', () => {
    expect(addressProblem(7000)).toBe('must be a "host:port" string');
    expect(addressProblem('localhost')).toBe('must be "host:port"');
    expect(addressProblem('localhost:0')).toBe('port must be a number from 1 to 65535');
    expect(addressProblem('::1:80')).toBe('an IPv6 host must be in brackets, as [::1]:port');
    expect(addressProblem('local host:80')).toBe('malformed host');
  });
});

describe('parseAddress', () => {
  it('splits host and port, without the IPv6 brackets', () => {
    expect(parseAddress('10.1.2.3:65535')).toEqual({ host: '10.1.2.3', port: 65_535 });
    expect(parseAddress('memory-1.engram:7000')).toEqual({ host: 'memory-1.engram', port: 7000 });
    expect(parseAddress('[::1]:7000')).toEqual({ host: '::1', port: 7000 });
    expect(parseAddress('[fe80::1%eth0]:1')).toEqual({ host: 'fe80::1%eth0', port: 1 });
  });

  it.each(invalid.map((a) => [a]))(
    'rejects %j with an InvalidArgumentError naming the field',
    (address) => {
      let caught: unknown;
      try {
        parseAddress(address, 'nodes[3].address');
      } catch (error) {
        caught = error;
      }
      expect(caught).toBeInstanceOf(InvalidArgumentError);
      expect(caught).toMatchObject({
        code: 'InvalidArgument',
        field: 'nodes[3].address',
        value: address,
      });
      expect((caught as Error).message).toContain('nodes[3].address must be a "host:port" string');
    },
  );

  it('names the field "address" by default and gives the reason', () => {
    expect(() => parseAddress('localhost:0')).toThrow(
      'address must be a "host:port" string (port must be a number from 1 to 65535), received "localhost:0"',
    );
  });
});

describe('formatAddress', () => {
  it('brackets an IPv6 host and round-trips through parseAddress', () => {
    expect(formatAddress('::1', 7000)).toBe('[::1]:7000');
    expect(formatAddress('10.0.0.1', 80)).toBe('10.0.0.1:80');
    expect(formatAddress('memory-1', 7000)).toBe('memory-1:7000');
    for (const address of ['[fe80::1%eth0]:1', '10.1.2.3:65535', 'memory-1.engram:7000']) {
      const { host, port } = parseAddress(address);
      expect(formatAddress(host, port)).toBe(address);
    }
  });

  it('does not bracket a host twice', () => {
    expect(formatAddress('[::1]', 7000)).toBe('[::1]:7000');
  });
});

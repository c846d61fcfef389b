import net from 'node:net';
import { describe, expect, it } from 'vitest';
import { systemErrorCode, systemErrorText } from '../src/index.js';

describe('systemErrorText', () => {
  it('says a real EADDRINUSE in words, with its code', async () => {
    const first = net.createServer();
    await new Promise<void>((resolve) => first.listen(0, '127.0.0.1', resolve));
    const port = (first.address() as net.AddressInfo).port;
    const second = net.createServer();
    const err = await new Promise<Error>((resolve) => {
      second.once('error', resolve);
      second.listen(port, '127.0.0.1');
    });
    await new Promise<void>((resolve) => first.close(() => resolve()));
    expect(systemErrorCode(err)).toBe('EADDRINUSE');
    expect(systemErrorText(err)).toBe('address already in use (EADDRINUSE)');
  });

  it('finds the code in a message that carries it (a library wrapping the error)', () => {
    const err = new Error('No address added errors: [Error: listen EACCES: permission denied]');
    expect(systemErrorCode(err)).toBe('EACCES');
    expect(systemErrorText(err)).toBe('permission denied (EACCES)');
  });

  it('falls back to the first line of the message', () => {
    expect(systemErrorCode(new Error('bad thing\nmore'))).toBeUndefined();
    expect(systemErrorText(new Error('bad thing\nmore'))).toBe('bad thing');
    expect(systemErrorText('plain')).toBe('plain');
  });
});

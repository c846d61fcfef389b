import { describe, expect, it } from 'vitest';
import { readU16BE, readU32BE, writeU16BE, writeU32BE } from '../src/index.js';

describe('big-endian integers', () => {
  it("read and write what Buffer's methods do, at every offset and across the value range", () => {
    const values32 = [
      0, 1, 0x7f, 0x80, 0xff, 0x100, 0x7fffffff, 0x80000000, 0xfffffffe, 0xffffffff,
    ];
    const values16 = [0, 1, 0xff, 0x100, 0x7fff, 0x8000, 0xffff];
    for (let at = 0; at < 5; at++) {
      for (const v of values32) {
        const ours = Buffer.alloc(12, 0xaa);
        const node = Buffer.alloc(12, 0xaa);
        writeU32BE(ours, at, v);
        node.writeUInt32BE(v, at);
        expect(ours).toEqual(node); // the bytes around untouched
        expect(readU32BE(ours, at)).toBe(v);
        expect(readU32BE(node, at)).toBe(node.readUInt32BE(at));
      }
      for (const v of values16) {
        const ours = Buffer.alloc(8, 0x55);
        const node = Buffer.alloc(8, 0x55);
        writeU16BE(ours, at, v);
        node.writeUInt16BE(v, at);
        expect(ours).toEqual(node);
        expect(readU16BE(ours, at)).toBe(v);
      }
    }
  });

  it('read a view at its own offset, not its buffer’s', () => {
    const whole = Buffer.from([9, 9, 0x12, 0x34, 0x56, 0x78]);
    const view = whole.subarray(2);
    expect(readU32BE(view, 0)).toBe(0x12345678);
    expect(readU16BE(view, 2)).toBe(0x5678);
  });
});

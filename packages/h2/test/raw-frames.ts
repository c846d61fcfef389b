// Raw HTTP/2 frame building shared by the tests that speak to a connection over a plain socket.
import { FRAME_TYPE } from '../src/index.js';

/** The client connection preface (RFC 9113 §3.4). */
export const PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1');

/** One frame: 9-byte header (length, type, flags, stream id) + payload. */
export function frame(
  type: number,
  flags: number,
  id: number,
  payload: Uint8Array = Buffer.alloc(0),
): Buffer {
  const b = Buffer.alloc(9 + payload.length);
  b.writeUIntBE(payload.length, 0, 3);
  b[3] = type;
  b[4] = flags;
  b.writeUInt32BE(id >>> 0, 5);
  b.set(payload, 9);
  return b;
}

/** A SETTINGS frame with the given (identifier, value) pairs. */
export function settings(...pairs: [number, number][]): Buffer {
  const p = Buffer.alloc(pairs.length * 6);
  pairs.forEach(([k, v], i) => {
    p.writeUInt16BE(k, i * 6);
    p.writeUInt32BE(v, i * 6 + 2);
  });
  return frame(FRAME_TYPE.SETTINGS, 0, 0, p);
}

/** A 32-bit big-endian value (RST_STREAM codes, WINDOW_UPDATE increments). */
export function u32(v: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(v >>> 0);
  return b;
}

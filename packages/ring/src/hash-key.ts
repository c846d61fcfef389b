import { InvalidArgumentError } from './errors.js';
import { murmur3x86_32 } from './internal/murmur3.js';

const INITIAL_SCRATCH_BYTES = 256;
let scratch = new Uint8Array(INITIAL_SCRATCH_BYTES);

/**
 * The ring token of a key: MurmurHash3 x86_32, seed 0, over the key's UTF-8 bytes, as an
 * unsigned 32-bit integer. A wire contract: other implementations must produce the same
 * tokens (golden vectors in `test/vectors/`). Lone surrogates encode as U+FFFD, as
 * `TextEncoder` does.
 */
export function hashKey(key: string): number {
  if (typeof key !== 'string') throw new InvalidArgumentError('key', key, 'a string');
  const length = encodeUtf8(key); // may replace `scratch`: read it only after
  return murmur3x86_32(scratch, length, 0);
}

/**
 * Encodes into a module-level scratch buffer and returns the byte length. A hand-written
 * loop: `TextEncoder.encodeInto` costs more than the hash itself for short ids.
 */
function encodeUtf8(key: string): number {
  const length = key.length;
  // Worst case is 3 bytes per UTF-16 unit (a surrogate pair's 4 bytes span 2 units).
  if (length * 3 > scratch.length)
    scratch = new Uint8Array(Math.max(length * 3, scratch.length * 2));
  const out = scratch;
  let n = 0;
  for (let i = 0; i < length; i++) {
    let c = key.charCodeAt(i);
    if (c < 0x80) {
      out[n++] = c;
    } else if (c < 0x800) {
      out[n++] = 0xc0 | (c >> 6);
      out[n++] = 0x80 | (c & 0x3f);
    } else if (c >= 0xd800 && c <= 0xdfff) {
      const next = i + 1 < length ? key.charCodeAt(i + 1) : 0;
      if (c <= 0xdbff && next >= 0xdc00 && next <= 0xdfff) {
        c = 0x10000 + ((c - 0xd800) << 10) + (next - 0xdc00);
        i++;
        out[n++] = 0xf0 | (c >> 18);
        out[n++] = 0x80 | ((c >> 12) & 0x3f);
        out[n++] = 0x80 | ((c >> 6) & 0x3f);
        out[n++] = 0x80 | (c & 0x3f);
      } else {
        out[n++] = 0xef; // U+FFFD for a lone surrogate
        out[n++] = 0xbf;
        out[n++] = 0xbd;
      }
    } else {
      out[n++] = 0xe0 | (c >> 12);
      out[n++] = 0x80 | ((c >> 6) & 0x3f);
      out[n++] = 0x80 | (c & 0x3f);
    }
  }
  return n;
}

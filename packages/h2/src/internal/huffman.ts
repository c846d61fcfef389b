/**
 * HPACK Huffman code (RFC 7541 Appendix B) and a table-driven decoder.
 *
 * The code table (257 symbols, EOS last) was taken from the `hpack.js` npm package
 * (lib/hpack/huffman.js, `exports.encode`, as [bits, code] pairs) and is checked against the
 * RFC 7541 Appendix C vectors in test/hpack.test.ts.
 *
 * Decoding is an nghttp2-style finite state machine that consumes 4 bits at a time: each of the
 * 256 internal nodes of the code tree is a state, and DECODE_TABLE[state * 16 + nibble] says the
 * next state, whether a symbol was completed (at most one per nibble: the shortest code is 5 bits),
 * whether the string may end there (RFC 7541 5.2: padding of at most 7 bits, all 1s), and
 * whether the EOS symbol was hit (always an error).
 */

/** Huffman code of each symbol (right-aligned), index 256 = EOS. */
export const HUFFMAN_CODES: Uint32Array = Uint32Array.from([
  0x1ff8, 0x7fffd8, 0xfffffe2, 0xfffffe3, 0xfffffe4, 0xfffffe5, 0xfffffe6, 0xfffffe7, 0xfffffe8,
  0xffffea, 0x3ffffffc, 0xfffffe9, 0xfffffea, 0x3ffffffd, 0xfffffeb, 0xfffffec, 0xfffffed,
  0xfffffee, 0xfffffef, 0xffffff0, 0xffffff1, 0xffffff2, 0x3ffffffe, 0xffffff3, 0xffffff4,
  0xffffff5, 0xffffff6, 0xffffff7, 0xffffff8, 0xffffff9, 0xffffffa, 0xffffffb, 0x14, 0x3f8, 0x3f9,
  0xffa, 0x1ff9, 0x15, 0xf8, 0x7fa, 0x3fa, 0x3fb, 0xf9, 0x7fb, 0xfa, 0x16, 0x17, 0x18, 0x0, 0x1,
  0x2, 0x19, 0x1a, 0x1b, 0x1c, 0x1d, 0x1e, 0x1f, 0x5c, 0xfb, 0x7ffc, 0x20, 0xffb, 0x3fc, 0x1ffa,
  0x21, 0x5d, 0x5e, 0x5f, 0x60, 0x61, 0x62, 0x63, 0x64, 0x65, 0x66, 0x67, 0x68, 0x69, 0x6a, 0x6b,
  0x6c, 0x6d, 0x6e, 0x6f, 0x70, 0x71, 0x72, 0xfc, 0x73, 0xfd, 0x1ffb, 0x7fff0, 0x1ffc, 0x3ffc, 0x22,
  0x7ffd, 0x3, 0x23, 0x4, 0x24, 0x5, 0x25, 0x26, 0x27, 0x6, 0x74, 0x75, 0x28, 0x29, 0x2a, 0x7, 0x2b,
  0x76, 0x2c, 0x8, 0x9, 0x2d, 0x77, 0x78, 0x79, 0x7a, 0x7b, 0x7ffe, 0x7fc, 0x3ffd, 0x1ffd,
  0xffffffc, 0xfffe6, 0x3fffd2, 0xfffe7, 0xfffe8, 0x3fffd3, 0x3fffd4, 0x3fffd5, 0x7fffd9, 0x3fffd6,
  0x7fffda, 0x7fffdb, 0x7fffdc, 0x7fffdd, 0x7fffde, 0xffffeb, 0x7fffdf, 0xffffec, 0xffffed,
  0x3fffd7, 0x7fffe0, 0xffffee, 0x7fffe1, 0x7fffe2, 0x7fffe3, 0x7fffe4, 0x1fffdc, 0x3fffd8,
  0x7fffe5, 0x3fffd9, 0x7fffe6, 0x7fffe7, 0xffffef, 0x3fffda, 0x1fffdd, 0xfffe9, 0x3fffdb, 0x3fffdc,
  0x7fffe8, 0x7fffe9, 0x1fffde, 0x7fffea, 0x3fffdd, 0x3fffde, 0xfffff0, 0x1fffdf, 0x3fffdf,
  0x7fffeb, 0x7fffec, 0x1fffe0, 0x1fffe1, 0x3fffe0, 0x1fffe2, 0x7fffed, 0x3fffe1, 0x7fffee,
  0x7fffef, 0xfffea, 0x3fffe2, 0x3fffe3, 0x3fffe4, 0x7ffff0, 0x3fffe5, 0x3fffe6, 0x7ffff1,
  0x3ffffe0, 0x3ffffe1, 0xfffeb, 0x7fff1, 0x3fffe7, 0x7ffff2, 0x3fffe8, 0x1ffffec, 0x3ffffe2,
  0x3ffffe3, 0x3ffffe4, 0x7ffffde, 0x7ffffdf, 0x3ffffe5, 0xfffff1, 0x1ffffed, 0x7fff2, 0x1fffe3,
  0x3ffffe6, 0x7ffffe0, 0x7ffffe1, 0x3ffffe7, 0x7ffffe2, 0xfffff2, 0x1fffe4, 0x1fffe5, 0x3ffffe8,
  0x3ffffe9, 0xffffffd, 0x7ffffe3, 0x7ffffe4, 0x7ffffe5, 0xfffec, 0xfffff3, 0xfffed, 0x1fffe6,
  0x3fffe9, 0x1fffe7, 0x1fffe8, 0x7ffff3, 0x3fffea, 0x3fffeb, 0x1ffffee, 0x1ffffef, 0xfffff4,
  0xfffff5, 0x3ffffea, 0x7ffff4, 0x3ffffeb, 0x7ffffe6, 0x3ffffec, 0x3ffffed, 0x7ffffe7, 0x7ffffe8,
  0x7ffffe9, 0x7ffffea, 0x7ffffeb, 0xffffffe, 0x7ffffec, 0x7ffffed, 0x7ffffee, 0x7ffffef, 0x7fffff0,
  0x3ffffee, 0x3fffffff,
]);

/** Bit length of each symbol's code, index 256 = EOS. */
export const HUFFMAN_LENGTHS: Uint8Array = Uint8Array.from([
  13, 23, 28, 28, 28, 28, 28, 28, 28, 24, 30, 28, 28, 30, 28, 28, 28, 28, 28, 28, 28, 28, 30, 28,
  28, 28, 28, 28, 28, 28, 28, 28, 6, 10, 10, 12, 13, 6, 8, 11, 10, 10, 8, 11, 8, 6, 6, 6, 5, 5, 5,
  6, 6, 6, 6, 6, 6, 6, 7, 8, 15, 6, 12, 10, 13, 6, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7,
  7, 7, 7, 7, 7, 7, 8, 7, 8, 13, 19, 13, 14, 6, 15, 5, 6, 5, 6, 5, 6, 6, 6, 5, 7, 7, 6, 6, 6, 5, 6,
  7, 6, 5, 5, 6, 7, 7, 7, 7, 7, 15, 11, 14, 13, 28, 20, 22, 20, 20, 22, 22, 22, 23, 22, 23, 23, 23,
  23, 23, 24, 23, 24, 24, 22, 23, 24, 23, 23, 23, 23, 21, 22, 23, 22, 23, 23, 24, 22, 21, 20, 22,
  22, 23, 23, 21, 23, 22, 22, 24, 21, 22, 23, 23, 21, 21, 22, 21, 23, 22, 23, 23, 20, 22, 22, 22,
  23, 22, 22, 23, 26, 26, 20, 19, 22, 23, 22, 25, 26, 26, 26, 27, 27, 26, 24, 25, 19, 21, 26, 27,
  27, 26, 27, 24, 21, 21, 26, 26, 28, 27, 27, 27, 20, 24, 20, 21, 22, 21, 21, 23, 22, 22, 25, 25,
  24, 24, 26, 23, 26, 27, 26, 26, 27, 27, 27, 27, 27, 28, 27, 27, 27, 27, 27, 26, 30,
]);

const EOS = 256;
const FLAG_EMIT = 1 << 16;
const FLAG_ACCEPT = 1 << 17;
const FLAG_FAIL = 1 << 18;

/** huffmanDecode result: the EOS symbol appeared inside the string. */
export const HUFFMAN_ERR_EOS = -1;
/** huffmanDecode result: the padding is longer than 7 bits or is not a prefix of EOS (all 1s). */
export const HUFFMAN_ERR_PADDING = -2;

function buildDecodeTable(): Uint32Array {
  // Code tree: child ids >= 0 are internal nodes, < 0 are leaves holding ~symbol.
  const zero: number[] = [0];
  const one: number[] = [0];
  const depth: number[] = [0];
  const allOnes: boolean[] = [true];
  for (let sym = 0; sym <= EOS; sym++) {
    const code = HUFFMAN_CODES[sym] as number;
    const len = HUFFMAN_LENGTHS[sym] as number;
    let node = 0;
    for (let i = len - 1; i >= 0; i--) {
      const bit = (code >>> i) & 1;
      const children = bit === 1 ? one : zero;
      if (i === 0) {
        children[node] = ~sym;
        break;
      }
      let next = children[node] as number;
      if (next === 0) {
        next = zero.length;
        zero.push(0);
        one.push(0);
        depth.push((depth[node] as number) + 1);
        allOnes.push((allOnes[node] as boolean) && bit === 1);
        children[node] = next;
      }
      node = next;
    }
  }
  const states = zero.length;
  if (states !== 256) throw new Error(`Huffman tree has ${states} internal nodes, expected 256`);
  const table = new Uint32Array(states * 16);
  for (let state = 0; state < states; state++) {
    for (let nibble = 0; nibble < 16; nibble++) {
      let node = state;
      let entry = 0;
      for (let i = 3; i >= 0; i--) {
        const child = (((nibble >>> i) & 1) === 1 ? one[node] : zero[node]) as number;
        if (child < 0) {
          const sym = ~child;
          if (sym === EOS) {
            entry |= FLAG_FAIL;
            break;
          }
          entry |= FLAG_EMIT | (sym << 8);
          node = 0;
        } else {
          node = child;
        }
      }
      if ((depth[node] as number) <= 7 && (allOnes[node] as boolean)) entry |= FLAG_ACCEPT;
      table[state * 16 + nibble] = entry | node;
    }
  }
  return table;
}

const DECODE_TABLE = buildDecodeTable();

/**
 * Decodes the Huffman string src[start, end) into dst from 0 and returns the number of octets
 * written, or HUFFMAN_ERR_EOS / HUFFMAN_ERR_PADDING. dst must hold at least
 * huffmanMaxDecodedLength(end - start) octets.
 */
export function huffmanDecode(
  src: Uint8Array,
  start: number,
  end: number,
  dst: Uint8Array,
): number {
  const table = DECODE_TABLE;
  let state = 0;
  let accept = FLAG_ACCEPT;
  let n = 0;
  for (let i = start; i < end; i++) {
    const byte = src[i] as number;
    let entry = table[(state << 4) | (byte >>> 4)] as number;
    if ((entry & FLAG_FAIL) !== 0) return HUFFMAN_ERR_EOS;
    if ((entry & FLAG_EMIT) !== 0) dst[n++] = entry >>> 8;
    state = entry & 0xff;
    entry = table[(state << 4) | (byte & 0xf)] as number;
    if ((entry & FLAG_FAIL) !== 0) return HUFFMAN_ERR_EOS;
    if ((entry & FLAG_EMIT) !== 0) dst[n++] = entry >>> 8;
    state = entry & 0xff;
    accept = entry & FLAG_ACCEPT;
  }
  return accept === 0 ? HUFFMAN_ERR_PADDING : n;
}

/** Upper bound of the decoded length of an encodedLength-octet Huffman string (codes are >= 5 bits). */
export function huffmanMaxDecodedLength(encodedLength: number): number {
  return Math.floor((encodedLength * 8) / 5);
}

/** Octets the Huffman encoding of the latin1 string s takes (padding included). */
export function huffmanEncodedLength(s: string): number {
  let bits = 0;
  for (let i = 0; i < s.length; i++) bits += HUFFMAN_LENGTHS[s.charCodeAt(i) & 0xff] as number;
  return (bits + 7) >>> 3;
}

/** Huffman-encodes the latin1 string s into out at offset, pads with 1s; returns the end offset. */
export function huffmanEncode(s: string, out: Uint8Array, offset: number): number {
  let acc = 0; // pending bits, right-aligned; never more than 7 + 30 bits so kept below 2^53 as a float
  let bits = 0;
  let p = offset;
  for (let i = 0; i < s.length; i++) {
    const sym = s.charCodeAt(i) & 0xff;
    const len = HUFFMAN_LENGTHS[sym] as number;
    acc = acc * 2 ** len + (HUFFMAN_CODES[sym] as number);
    bits += len;
    while (bits >= 8) {
      bits -= 8;
      const div = 2 ** bits;
      out[p++] = Math.floor(acc / div) & 0xff;
      acc %= div;
    }
  }
  if (bits > 0) out[p++] = ((acc << (8 - bits)) | (0xff >>> bits)) & 0xff;
  return p;
}

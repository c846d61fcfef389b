/**
 * The character rules of HTTP/2 field names and values (RFC 9113 §8.2.1), shared by the HPACK
 * decoder (which checks each literal once, as it decodes it) and `checkFields` (which checks a
 * list whose fields the decoder could not vouch for).
 */

const NUL = 0x00;
const HTAB = 0x09;
const LF = 0x0a;
const CR = 0x0d;
const SP = 0x20;
const COLON = 0x3a;

/**
 * Octets a field name may hold: RFC 9110 `tchar` without uppercase (RFC 9113 §8.2.1 bans
 * uppercase; its minimum, "no CTL, SP, uppercase, DEL or non-ASCII", is weaker than `token`,
 * and nghttp2 checks `token` too).
 */
const NAME_OCTET = (() => {
  const t = new Uint8Array(128);
  for (const c of "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyz") t[c.charCodeAt(0)] = 1;
  return t;
})();

/** A regular field name: non-empty, lowercase `token` characters. */
export function isValidName(name: string): boolean {
  const n = name.length;
  if (n === 0) return false;
  for (let k = 0; k < n; k++) {
    const c = name.charCodeAt(k);
    if (c >= 128 || NAME_OCTET[c] === 0) return false;
  }
  return true;
}

/** §8.2.1: no NUL, LF or CR anywhere, no SP or HTAB at either end. */
export function isValidValue(value: string): boolean {
  const n = value.length;
  if (n === 0) return true;
  let c = value.charCodeAt(0);
  if (c === SP || c === HTAB) return false;
  c = value.charCodeAt(n - 1);
  if (c === SP || c === HTAB) return false;
  for (let k = 0; k < n; k++) {
    c = value.charCodeAt(k);
    if (c <= CR && (c === NUL || c === LF || c === CR)) return false;
  }
  return true;
}

/**
 * A field whose characters `checkFields` would accept: a pseudo-header's name is checked by
 * its exact spelling there (only its value here), a regular name by `isValidName`.
 */
export function isValidField(name: string, value: string): boolean {
  return (name.charCodeAt(0) === COLON || isValidName(name)) && isValidValue(value);
}

/**
 * Code-point order of strings, the order ListSpaces and ScanSpace page in (it is also UTF-8
 * byte order, so a node in another language sorts the same). JavaScript's `<` compares UTF-16
 * code units instead, which puts U+E000..U+FFFF after the surrogate pairs of U+10000 and up.
 */
export function compareCodePoints(a: string, b: string): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    const x = a.charCodeAt(i);
    const y = b.charCodeAt(i);
    if (x !== y) return rank(x) - rank(y);
  }
  return a.length - b.length;
}

// Moves surrogates (D800..DFFF) above E000..FFFF, so a code unit that differs orders its code
// point: a supplementary code point (a surrogate pair) is above every BMP one, and two pairs
// that differ order by their high, then low, surrogate, which is the code-point order.
function rank(unit: number): number {
  if (unit < 0xd800) return unit;
  return unit >= 0xe000 ? unit - 0x800 : unit + 0x2000;
}

/** Index of the first string in `sorted` (code-point order) that is greater than `after`. */
export function indexAfter(sorted: readonly string[], after: string): number {
  let lo = 0;
  let hi = sorted.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (compareCodePoints(sorted[mid]!, after) <= 0) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

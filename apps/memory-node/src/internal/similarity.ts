const TERM_RE = /[\p{L}\p{N}]+/gu;

/** The lowercase Unicode words of a text. */
export function tokenize(text: string): Set<string> {
  return new Set(text.toLowerCase().match(TERM_RE) ?? []);
}

export function normOf(v: readonly number[]): number {
  let s = 0;
  for (const x of v) s += x * x;
  return Math.sqrt(s);
}

export function dot(a: readonly number[], b: readonly number[]): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i]! * b[i]!;
  return s;
}

/** Lowercase, whitespace collapsed: two memories with equal normalized content merge. */
export function normalizeContent(text: string): string {
  return text.toLowerCase().replace(/\s+/g, ' ').trim();
}

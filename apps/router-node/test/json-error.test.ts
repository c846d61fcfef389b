import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { jsonErrorOffset, jsonExcerpt, lineAndColumn } from '../src/internal/json-error.js';

// The scan that locates a JSON syntax error for the config file's messages. V8 names the
// offset for most errors and none for others (Node 20: "Unexpected token 'x', ..."); where it
// names one, the scan must find the same.

const TOKENS = [
  '{',
  '}',
  '[',
  ']',
  ',',
  ':',
  ' ',
  '\n',
  '\t',
  '"',
  '"a"',
  '"b\\n"',
  '"\\x"',
  '"\\u12"',
  '"\\u00e9"',
  '1',
  '-',
  '0',
  '01',
  '1.',
  '1.5',
  '1e',
  '2e+3',
  '-0',
  'true',
  'tru',
  'false',
  'null',
  'nul',
  'x',
];

function v8Offset(text: string): number | 'valid' | 'unnamed' {
  try {
    JSON.parse(text);
    return 'valid';
  } catch (err) {
    const m = /at position (\d+)/.exec((err as Error).message);
    return m === null ? 'unnamed' : Number(m[1]);
  }
}

describe('jsonErrorOffset', () => {
  it('accepts what JSON.parse accepts and finds the offset V8 names', () => {
    fc.assert(
      fc.property(fc.array(fc.constantFrom(...TOKENS), { maxLength: 14 }), (parts) => {
        const text = parts.join('');
        const v8 = v8Offset(text);
        const ours = jsonErrorOffset(text);
        if (v8 === 'valid') expect(ours).toBe(-1);
        else {
          expect(ours).toBeGreaterThanOrEqual(0);
          expect(ours).toBeLessThanOrEqual(text.length);
          if (v8 !== 'unnamed') expect(ours).toBe(v8);
        }
      }),
      { numRuns: 3000 },
    );
  });

  it('finds an error V8 gives no offset for', () => {
    const text = '{"nodes": [\n  {"id": "a"},\n  x\n]}';
    expect(v8Offset(text)).toBe('unnamed');
    expect(lineAndColumn(text, jsonErrorOffset(text))).toEqual({ line: 3, column: 3 });
  });

  it('is the end of the text when it ends too early', () => {
    expect(jsonErrorOffset('{"a": [1, 2')).toBe(11);
    expect(jsonErrorOffset('"open')).toBe(5);
  });
});

describe('jsonExcerpt', () => {
  it('puts the caret under the column, also past the end of the line', () => {
    expect(jsonExcerpt('{\n  "a": x\n}', 2, 8)).toBe('2 |   "a": x\n           ^');
    expect(jsonExcerpt('{"a": ', 1, 7)).toBe('1 | {"a": \n          ^');
  });
});

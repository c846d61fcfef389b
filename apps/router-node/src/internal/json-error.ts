// Where a JSON text goes wrong, for a person editing a config file: the 1-based line and
// column of the first character that cannot be JSON, and that line with a caret under it.
// V8's SyntaxError gives a character offset for some errors ("at position N") and none for
// others (Node 20: "Unexpected token 'x', ..."), so the offset is found by a scan of our own,
// run only once JSON.parse has refused the text.

/** The offset at which `text` stops being JSON (its length when it ends too early); -1 if valid. */
export function jsonErrorOffset(text: string): number {
  let i = 0;
  const fail = (): never => {
    throw new JsonStop(i);
  };
  const ws = () => {
    while (i < text.length && ' \t\n\r'.includes(text[i]!)) i++;
  };
  const string = () => {
    i++; // the opening quote
    for (;;) {
      if (i >= text.length) fail();
      const c = text.charCodeAt(i);
      if (c === 0x22) {
        i++;
        return;
      }
      if (c < 0x20) fail();
      if (c === 0x5c) {
        const e = text[i + 1];
        if (e !== undefined && '"\\/bfnrt'.includes(e)) i += 2;
        else if (e === 'u') {
          i += 2;
          for (let k = 0; k < 4; k++, i++) if (!HEX.test(text[i] ?? '')) fail();
        } else {
          i++;
          fail();
        }
      } else i++;
    }
  };
  const value = (): void => {
    ws();
    const c = text[i];
    if (c === '{' || c === '[') {
      container(c === '{' ? '}' : ']', c === '{');
      return;
    }
    if (c === '"') {
      string();
      return;
    }
    const word = c === 't' ? 'true' : c === 'f' ? 'false' : c === 'n' ? 'null' : undefined;
    if (word !== undefined) {
      // Like V8: at the first character that does not continue the word.
      for (const ch of word) {
        if (text[i] !== ch) fail();
        i++;
      }
      return;
    }
    number();
  };
  const digits = () => {
    if (!DIGIT.test(text[i] ?? '')) fail();
    while (DIGIT.test(text[i] ?? '')) i++;
  };
  const number = () => {
    if (text[i] === '-') i++;
    if (text[i] === '0') i++;
    else digits();
    if (text[i] === '.') {
      i++;
      digits();
    }
    if (text[i] === 'e' || text[i] === 'E') {
      i++;
      if (text[i] === '+' || text[i] === '-') i++;
      digits();
    }
  };
  const container = (close: string, object: boolean) => {
    i++;
    ws();
    if (text[i] === close) {
      i++;
      return;
    }
    for (;;) {
      if (object) {
        ws();
        if (text[i] !== '"') fail();
        string();
        ws();
        if (text[i] !== ':') fail();
        i++;
      }
      value();
      ws();
      if (text[i] === ',') i++;
      else if (text[i] === close) {
        i++;
        return;
      } else fail();
    }
  };
  try {
    value();
    ws();
    return i < text.length ? i : -1;
  } catch (err) {
    if (err instanceof JsonStop) return err.offset;
    throw err;
  }
}

const DIGIT = /^[0-9]$/;
const HEX = /^[0-9a-fA-F]$/;

class JsonStop {
  constructor(readonly offset: number) {}
}

/** 1-based line and column of `offset` in `text` (lines end at `\n`). */
export function lineAndColumn(text: string, offset: number): { line: number; column: number } {
  const before = text.slice(0, Math.min(offset, text.length));
  const lineStart = before.lastIndexOf('\n') + 1;
  return { line: before.split('\n').length, column: before.length - lineStart + 1 };
}

/** Longest stretch of the offending line shown in an excerpt, in characters. */
const EXCERPT_WIDTH = 72;

/**
 * The line `line` of `text` (a window of it around the column when long) with a caret under
 * `column` on the next line, as compilers show a syntax error.
 */
export function jsonExcerpt(text: string, line: number, column: number): string {
  const source = (text.split('\n')[line - 1] ?? '').replace(/\r$/, '').replaceAll('\t', ' ');
  const start = Math.max(
    0,
    Math.min(column - 1 - EXCERPT_WIDTH / 2, source.length + 1 - EXCERPT_WIDTH),
  );
  const shown = source.slice(start, start + EXCERPT_WIDTH);
  const lead = start > 0 ? '…' : '';
  const tail = start + EXCERPT_WIDTH < source.length ? '…' : '';
  const gutter = `${line} | `;
  return `${gutter}${lead}${shown}${tail}\n${' '.repeat(gutter.length + lead.length + column - 1 - start)}^`;
}

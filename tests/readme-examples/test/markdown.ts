/**
 * A small markdown scanner for README code blocks: fenced blocks (``` or ~~~, CommonMark's
 * closing rule: the same character, at least as long, nothing after it) tagged `ts`,
 * `typescript` or `js`, each with the `<!-- example: … -->` comment written just before it
 * (blank lines allowed in between). No markdown dependency: this is all the syntax READMEs use.
 */

export const EXAMPLE_MODES = ['run', 'typecheck', 'api', 'skip'] as const;
export type ExampleMode = (typeof EXAMPLE_MODES)[number];

/** An unmarked block is type-checked: every block is at least compiled against the packages. */
export const DEFAULT_MODE: ExampleMode = 'typecheck';

const LANGUAGES: ReadonlyMap<string, 'ts' | 'js'> = new Map([
  ['ts', 'ts'],
  ['typescript', 'ts'],
  ['js', 'js'],
  ['javascript', 'js'],
]);

export interface CodeBlock {
  /** 1-based line of the block's first code line (the line after the opening fence). */
  readonly line: number;
  readonly language: 'ts' | 'js';
  readonly mode: ExampleMode;
  /** Why a block is skipped (required for `skip`). */
  readonly reason: string | undefined;
  /** Hidden lines from the marker comment, prepended when compiling (rustdoc's `# ` lines). */
  readonly prelude: readonly string[];
  readonly code: readonly string[];
  /** What is wrong with the marker, if anything: reported as the block's failure. */
  readonly problem: string | undefined;
}

const FENCE = /^ {0,3}(`{3,}|~{3,})\s*([^\s`]*)/;
const MARKER = /^<!--\s*example:\s*([a-z-]+)\s*(?:\((.*)\))?\s*(-->)?\s*$/;

interface Marker {
  mode: ExampleMode;
  reason: string | undefined;
  prelude: string[];
  problem: string | undefined;
}

/** The `<!-- example: … -->` comment ending on the last non-blank line before `index`. */
function markerBefore(lines: readonly string[], index: number): Marker | undefined {
  let end = index - 1;
  while (end >= 0 && lines[end]!.trim() === '') end--;
  if (end < 0 || !lines[end]!.trim().endsWith('-->')) return undefined;
  let start = end;
  while (start >= 0 && !lines[start]!.trimStart().startsWith('<!--')) start--;
  if (start < 0) return undefined;
  const match = MARKER.exec(lines[start]!.trim());
  if (match === null) return undefined; // some other comment
  const [, word, reason] = match;
  const prelude = start === end ? [] : lines.slice(start + 1, end);
  const last = lines[end]!.trim();
  if (start !== end && last !== '-->') prelude.push(last.slice(0, -3));
  const mode = EXAMPLE_MODES.find((m) => m === word);
  let problem: string | undefined;
  if (mode === undefined) problem = `unknown example mode '${word}' (${EXAMPLE_MODES.join(', ')})`;
  else if (mode === 'skip' && (reason ?? '').trim() === '')
    problem = 'a skipped example must say why: <!-- example: skip (reason) -->';
  return { mode: mode ?? DEFAULT_MODE, reason: reason?.trim(), prelude, problem };
}

/** Every ts/typescript/js block of a markdown text, in order. */
export function scanCodeBlocks(markdown: string): CodeBlock[] {
  const lines = markdown.split(/\r?\n/);
  const blocks: CodeBlock[] = [];
  for (let i = 0; i < lines.length; i++) {
    const open = FENCE.exec(lines[i]!);
    if (open === null) continue;
    const fence = open[1]!;
    const closing = new RegExp(`^ {0,3}${fence[0]}{${fence.length},}\\s*$`);
    let j = i + 1;
    while (j < lines.length && !closing.test(lines[j]!)) j++;
    const language = LANGUAGES.get(open[2]!.toLowerCase());
    if (language !== undefined) {
      const marker = markerBefore(lines, i);
      blocks.push({
        line: i + 2,
        language,
        mode: marker?.mode ?? DEFAULT_MODE,
        reason: marker?.reason,
        prelude: marker?.prelude ?? [],
        code: lines.slice(i + 1, j),
        problem: marker?.problem,
      });
    }
    i = j; // an unclosed fence runs to the end, as in CommonMark
  }
  return blocks;
}

/** `expr; // → value`: in a run block, the value `expr` must have (see the package README). */
const SHOWN = /^(\s*)(.+?);\s*\/\/\s*→\s*(.+?)\s*$/;

/**
 * The block's lines with each `expr; // → value` line turned into a check of that value, on
 * the same line so compiler and runtime positions stay the README's.
 */
export function withChecks(code: readonly string[], where: (index: number) => string): string[] {
  return code.map((line, index) => {
    const shown = SHOWN.exec(line);
    if (shown === null) return line;
    const [, indent, expr, value] = shown;
    return `${indent}__expectShown(${expr}, ${value}, ${JSON.stringify(where(index))});`;
  });
}

/**
 * The top-level names an API summary declares (`class Router`, `function whenCancelled(`,
 * `const REJECTED`, `interface RoutingInfo`, or a bare `backoffStep(` / `retry<T>(` line), with
 * the index of their line. Indented lines are members, not names of the package.
 */
export function declaredNames(code: readonly string[]): { name: string; index: number }[] {
  const names: { name: string; index: number }[] = [];
  const seen = new Set<string>();
  code.forEach((line, index) => {
    const m =
      /^(?:export\s+)?(?:declare\s+)?(?:abstract\s+)?(?:class|interface|type|function|const|let|enum)\s+([A-Za-z_$][\w$]*)/.exec(
        line,
      ) ?? /^([A-Za-z_$][\w$]*)\s*(?:<[^>]*>)?\s*[(;]/.exec(line);
    if (m !== null && !seen.has(m[1]!)) {
      seen.add(m[1]!);
      names.push({ name: m[1]!, index });
    }
  });
  return names;
}

import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { applyInliningBudgets, INLINING_FLAGS } from '../src/internal/v8-tuning.js';

/** The built module (the CLI runs dist/main.js). */
const TUNING_JS = fileURLToPath(new URL('../dist/internal/v8-tuning.js', import.meta.url));

describe('applyInliningBudgets', () => {
  it('sets both budgets when node was given neither', () => {
    expect(applyInliningBudgets([])).toEqual([...INLINING_FLAGS]);
    expect(applyInliningBudgets(['--single-threaded-gc'])).toEqual([...INLINING_FLAGS]);
  });

  it('leaves a budget given on the command line to it, in either spelling', () => {
    expect(applyInliningBudgets(['--max-inlined-bytecode-size=100'])).toEqual([
      '--max-inlined-bytecode-size-cumulative=2760',
    ]);
    expect(applyInliningBudgets(['--max_inlined_bytecode_size_cumulative=400'])).toEqual([
      '--max-inlined-bytecode-size=920',
    ]);
    expect(
      applyInliningBudgets([
        '--max-inlined-bytecode-size-cumulative=400',
        '--max-inlined-bytecode-size=100',
      ]),
    ).toEqual([]);
  });
});

describe('the budgets in V8', () => {
  /**
   * A child node applies the budgets (the built module, as the CLI does) and optimizes a call
   * to a 603-byte function: above V8's default budget (460), within router-node's (920).
   */
  function inlinedInChild(nodeFlags: readonly string[]): boolean {
    const body = Array.from({ length: 50 }, (_, i) => `s += x * ${i + 1};`).join(' ');
    const code = `
      const { applyInliningBudgets } = await import(${JSON.stringify(TUNING_JS)});
      applyInliningBudgets();
      function big(x) { let s = 0; ${body} return s; }
      function outer(x) { return big(x) + 1; }
      let t = 0;
      for (let i = 0; i < 2e6; i++) t += outer(i & 7);
      if (t <= 0) throw new Error('unreachable');`;
    const out = spawnSync(
      process.execPath,
      [...nodeFlags, '--trace-turbo-inlining', '--input-type=module', '-e', code],
      { encoding: 'utf8', timeout: 60_000 },
    );
    expect(out.status, out.stderr).toBe(0);
    return /Inlining \S+ \{\S+ <SharedFunctionInfo big>\}/.test(out.stdout);
  }

  it('a function V8 would not inline by default is inlined once they are set', () => {
    expect(inlinedInChild([])).toBe(true);
    // The default, given on the command line, wins: not inlined.
    expect(inlinedInChild(['--max-inlined-bytecode-size=460'])).toBe(false);
  });
});

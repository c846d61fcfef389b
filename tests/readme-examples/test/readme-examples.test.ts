/**
 * README examples are tested: every ts/typescript/js block of the root README and of each
 * `packages/*` / `apps/*` README is extracted (conventions: ../README.md), written under
 * `.examples/<pid>/` (git-ignored, removed afterwards), type-checked in one `tsc` run of the
 * workspace's TypeScript against the built packages, and the `run` blocks are executed with
 * plain `node`, on 127.0.0.1, against real memory nodes started from
 * `apps/memory-node/dist/main.js` when a block asks for them. A failure names the README and
 * line.
 *
 * Time: the type-check takes ~5–10 s and the runs about a second each; TSC_TIMEOUT_MS and
 * RUN_TIMEOUT_MS are hang detectors, not speed checks. Every process it starts is stopped and
 * `.examples/` removed in afterAll, pass or fail.
 */
import { execFile } from 'node:child_process';
import { mkdirSync, readdirSync, readFileSync, rmdirSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { type SpawnedMemoryNode, spawnMemoryNode } from '@engram/memory-node/test-support';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type CodeBlock, declaredNames, scanCodeBlocks, withChecks } from './markdown.js';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const EXAMPLES = fileURLToPath(new URL('../.examples/', import.meta.url));
/** One directory per run, so two runs at once (two worktrees' watchers) do not collide. */
const WORK = join(EXAMPLES, String(process.pid));
const TSC = join(ROOT, 'node_modules', '.bin', 'tsc');
const MEMORY_NODE = join(ROOT, 'apps', 'memory-node', 'dist', 'main.js');

const TSC_TIMEOUT_MS = 2 * 60 * 1000; // 2 min for all blocks at once
const RUN_TIMEOUT_MS = 30 * 1000; // 30 s per run block
const NODE_STOP_TIMEOUT_MS = 5 * 1000; // 5 s of SIGTERM grace before SIGKILL
const MEMORY_NODES = 3;
/** The environment variable a run block's prelude reads the memory nodes' NodeInfo[] from. */
const NODES_VARIABLE = 'ENGRAM_EXAMPLE_NODES';

interface Example extends CodeBlock {
  readonly readme: string; // relative to the root, '/'-separated
  readonly id: string; // file name stem under .examples/
  /** The package whose README it is (what an `api` block's names must be exported by). */
  readonly packageName: string | undefined;
}

function packageOf(readme: string): string | undefined {
  if (readme === 'README.md') return undefined; // the root is private, not a package
  const manifest = JSON.parse(readFileSync(join(ROOT, dirname(readme), 'package.json'), 'utf8'));
  return (manifest as { name: string }).name;
}

function readmes(): string[] {
  const found = ['README.md'];
  for (const top of ['packages', 'apps']) {
    for (const name of readdirSync(join(ROOT, top)).sort()) {
      try {
        readFileSync(join(ROOT, top, name, 'README.md'));
        found.push(`${top}/${name}/README.md`);
      } catch {
        // a package without a README has no examples
      }
    }
  }
  return found;
}

const examples: Example[] = readmes().flatMap((readme) =>
  scanCodeBlocks(readFileSync(join(ROOT, readme), 'utf8')).map((block) => ({
    ...block,
    readme,
    packageName: packageOf(readme),
    id: `${readme.replace(/\/?README\.md$/, '').replace(/\//g, '-') || 'root'}-L${block.line}`,
  })),
);
const compiled = examples.filter((e) => e.mode !== 'skip');

/** README line of each line of a block's generated file (index 0 = file line 1). */
const lineMaps = new Map<Example, number[]>();

/** `README.md:line` of a line of a generated file (1-based); prelude lines point at the marker. */
function sourceOf(example: Example, fileLine: number): string {
  const readmeLine = lineMaps.get(example)?.[fileLine - 1] ?? example.line - 2;
  return `${example.readme}:${readmeLine}`;
}

/**
 * An `api` block becomes one type-only import per name it declares, on a line of its own, so
 * a name the package does not export fails at the README line that declares it.
 */
function apiSource(e: Example): { lines: string[]; map: number[] } {
  const names = declaredNames(e.code);
  if (e.packageName === undefined || names.length === 0) {
    const why = e.packageName === undefined ? 'outside a package' : 'that declares no names';
    return { lines: [`"an api block ${why}" satisfies never;`], map: [e.line] };
  }
  return {
    lines: names.map(({ name }) => `import type { ${name} } from '${e.packageName}';`),
    map: names.map(({ index }) => e.line + index),
  };
}

const sourceFile = (e: Example) => `blocks/${e.id}.${e.language}`;

function writeTsconfig(files: readonly string[]): void {
  const config = {
    extends: relative(WORK, join(ROOT, 'tsconfig.base.json')),
    compilerOptions: {
      rootDir: '.',
      outDir: 'out',
      allowJs: true,
      checkJs: true,
      composite: false,
      incremental: false,
      declaration: false,
      declarationMap: false,
      sourceMap: false,
      inlineSources: false,
    },
    files: ['expect-shown.ts', ...files],
  };
  writeFileSync(join(WORK, 'tsconfig.json'), `${JSON.stringify(config, null, 2)}\n`);
}

function writeExamples(): void {
  rmSync(WORK, { recursive: true, force: true });
  mkdirSync(join(WORK, 'blocks'), { recursive: true });
  writeFileSync(join(WORK, 'expect-shown.ts'), EXPECT_SHOWN);
  for (const e of compiled) {
    if (e.mode === 'api') {
      const { lines, map } = apiSource(e);
      lineMaps.set(e, map);
      writeFileSync(join(WORK, sourceFile(e)), [...lines, 'export {};'].join('\n'));
      continue;
    }
    const code = e.mode === 'run' ? withChecks(e.code, (i) => `${e.readme}:${e.line + i}`) : e.code;
    const checks = code.some((line, i) => line !== e.code[i]);
    const trailer = [
      // Imports are hoisted, so this last line keeps every other line where the README has it.
      checks
        ? `import { expectShown as __expectShown } from '../expect-shown.js'; export {};`
        : 'export {};',
    ];
    lineMaps.set(e, [...e.prelude.map(() => e.line - 2), ...code.map((_, i) => e.line + i)]);
    writeFileSync(join(WORK, sourceFile(e)), [...e.prelude, ...code, ...trailer].join('\n'));
  }
}

/**
 * `// → value` checks: a primitive or array must be equal; an object must have the keys shown
 * with those values (recursively), so a README can show the fields that matter.
 */
const EXPECT_SHOWN = `import { deepStrictEqual } from 'node:assert/strict';
import { inspect } from 'node:util';

function shown(actual: unknown, expected: unknown): unknown {
  if (typeof expected !== 'object' || expected === null || Array.isArray(expected)) return actual;
  if (typeof actual !== 'object' || actual === null) return actual;
  const picked: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(expected)) {
    picked[key] = shown((actual as Record<string, unknown>)[key], value);
  }
  return picked;
}

export function expectShown(actual: unknown, expected: unknown, where: string): void {
  try {
    deepStrictEqual(shown(actual, expected), expected);
  } catch {
    throw new Error(\`\${where}: the README shows → \${inspect(expected)}, the code gives \${inspect(actual, { depth: 4 })}\`);
  }
}
`;

/** tsc's diagnostics (\`--pretty false\`), by generated file. */
const diagnostics = new Map<string, string[]>();
const memoryNodes: SpawnedMemoryNode[] = [];
let nodesJson = '';

function runFile(
  file: string,
  args: string[],
  options: { cwd: string; env?: NodeJS.ProcessEnv; timeout: number },
) {
  return new Promise<{ code: number | null; signal: string | null; output: string }>((resolve) => {
    const child = execFile(
      file,
      args,
      { ...options, killSignal: 'SIGKILL' },
      (error, stdout, stderr) => {
        const code = error === null ? 0 : typeof error.code === 'number' ? error.code : null;
        resolve({ code, signal: child.signalCode, output: `${stdout}${stderr}` });
      },
    );
  });
}

async function startMemoryNode(id: string, zone: string): Promise<string> {
  const node = await spawnMemoryNode({ id, zone, main: MEMORY_NODE, cwd: WORK });
  memoryNodes.push(node);
  return node.address;
}

/**
 * tsc reports no semantic diagnostic while any file has a syntax error, so one block that does
 * not parse would hide every other block's type errors: a block with syntax errors is taken
 * out and tsc run again on the rest (a few runs at most; the native tsc takes about a second).
 */
async function typeCheck(): Promise<{ code: number | null; output: string }> {
  let files = compiled.map(sourceFile);
  for (;;) {
    writeTsconfig(files);
    const tsc = await runFile(TSC, ['-p', 'tsconfig.json', '--pretty', 'false'], {
      cwd: WORK,
      timeout: TSC_TIMEOUT_MS,
    });
    const syntax = new Set<string>();
    for (const line of tsc.output.split('\n')) {
      const m = /^(blocks\/[^(]+)\((\d+),(\d+)\): error TS(\d+): (.*)$/.exec(line.trim());
      if (m === null) continue;
      const [, file, fileLine, column, code, message] = m;
      const example = compiled.find((e) => sourceFile(e) === file);
      if (example === undefined) continue;
      // TS1xxx are the parser's errors.
      if (code!.length === 4 && code!.startsWith('1')) syntax.add(file!);
      const list = diagnostics.get(file!) ?? [];
      list.push(`${sourceOf(example, Number(fileLine))}:${column} TS${code}: ${message}`);
      diagnostics.set(file!, list);
    }
    if (syntax.size === 0) return tsc;
    files = files.filter((f) => !syntax.has(f));
    for (const f of files) diagnostics.delete(f); // reported again by the next run
  }
}

beforeAll(async () => {
  writeExamples();
  // Emits JavaScript even when a block does not type-check: each block fails on its own.
  const tsc = await typeCheck();
  // A tsc that failed without a diagnostic on any block (a bad config, a crash) fails them all.
  if (tsc.code !== 0 && diagnostics.size === 0) throw new Error(`tsc failed:\n${tsc.output}`);

  if (compiled.some((e) => e.mode === 'run' && e.prelude.join('\n').includes(NODES_VARIABLE))) {
    const zones = ['a', 'b', 'c'];
    const addresses = await Promise.all(
      zones.slice(0, MEMORY_NODES).map((zone, i) => startMemoryNode(`n${i + 1}`, zone)),
    );
    nodesJson = JSON.stringify(
      addresses.map((address, i) => ({ id: `n${i + 1}`, zone: zones[i], address })),
    );
  }
}, TSC_TIMEOUT_MS + 30_000);

afterAll(async () => {
  await Promise.all(memoryNodes.map((n) => n.stop(NODE_STOP_TIMEOUT_MS)));
  rmSync(WORK, { recursive: true, force: true });
  try {
    rmdirSync(EXAMPLES); // only when no other run is using it
  } catch {}
}, NODE_STOP_TIMEOUT_MS * 2);

describe('README code blocks', () => {
  it('are found in the READMEs (the scanner still sees them)', () => {
    expect(examples.length).toBeGreaterThan(10);
    expect(compiled.some((e) => e.mode === 'run')).toBe(true);
  });

  it.each(examples.map((e) => [`${e.readme}:${e.line} (${e.mode})`, e] as const))(
    '%s',
    async (_, example) => {
      expect(example.problem, `${example.readme}:${example.line - 2}`).toBeUndefined();
      if (example.mode === 'skip') return;
      const problems = diagnostics.get(sourceFile(example)) ?? [];
      expect(problems, 'type errors (README:line:column)').toEqual([]);
      if (example.mode !== 'run') return;

      const cwd = join(WORK, 'run', example.id);
      mkdirSync(cwd, { recursive: true });
      const out = join(WORK, 'out', sourceFile(example).replace(/\.ts$/, '.js'));
      const result = await runFile(process.execPath, [out], {
        cwd,
        env: { ...process.env, [NODES_VARIABLE]: nodesJson },
        timeout: RUN_TIMEOUT_MS,
      });
      const outcome =
        result.signal === null
          ? `exited ${result.code}`
          : `was killed (${result.signal}: over ${RUN_TIMEOUT_MS} ms?)`;
      expect(result.code, `${example.readme}:${example.line} ${outcome}:\n${result.output}`).toBe(
        0,
      );
    },
    RUN_TIMEOUT_MS + 5_000,
  );
});

/**
 * What an outside developer gets: every publishable package packed with `pnpm pack`, the
 * tarballs installed with npm into a project outside the workspace (under os.tmpdir(), so
 * nothing resolves through the workspace's node_modules), then each package's tarball
 * inspected, a smoke script per package run there with plain `node`, and a TypeScript consumer
 * type-checked with moduleResolution nodenext and bundler.
 *
 * Time: packing takes a few seconds; npm install from npm's cache takes seconds, and up to a
 * minute when the cache is cold and the registry is fetched from (NPM_INSTALL_TIMEOUT_MS is a
 * hang detector, not a speed check). Everything it starts is stopped and its temporary
 * directory removed in afterAll, pass or fail.
 */
import { execFile } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join, posix, relative, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { type SpawnedMemoryNode, spawnMemoryNode } from '@engram/memory-node/test-support';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const run = promisify(execFile);

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const FIXTURES = fileURLToPath(new URL('../fixtures/', import.meta.url));

/** Every package the workspace publishes (the rest are `private`, checked below). */
const PUBLISHED = [
  'packages/common',
  'packages/ring',
  'packages/breaker',
  'packages/retry',
  'packages/h2',
  'packages/pool',
  'packages/proto',
  'packages/router',
  'apps/memory-node',
  'apps/router-node',
] as const;

const PACK_TIMEOUT_MS = 60 * 1000; // 60 s per package
const NPM_INSTALL_TIMEOUT_MS = 3 * 60 * 1000; // 3 min: seconds from the cache, a cold one more
const SMOKE_TIMEOUT_MS = 60 * 1000; // 60 s per script
const TSC_TIMEOUT_MS = 2 * 60 * 1000; // 2 min per consumer check
const NODE_STOP_TIMEOUT_MS = 5 * 1000; // 5 s of SIGTERM grace before SIGKILL
const MEMORY_NODES = 3;

interface Manifest {
  name: string;
  private?: boolean;
  license?: string;
  repository?: { type: string; url: string; directory?: string };
  engines?: { node?: string };
  sideEffects?: boolean;
  exports?: Record<string, { types: string; default: string }>;
  bin?: Record<string, string>;
  files?: string[];
  dependencies?: Record<string, string>;
}

const readJson = <T>(path: string): T => JSON.parse(readFileSync(path, 'utf8')) as T;
const rootManifest = readJson<Manifest>(join(ROOT, 'package.json'));
const manifests = new Map(
  PUBLISHED.map((dir) => [dir, readJson<Manifest>(join(ROOT, dir, 'package.json'))]),
);

let temp = '';
let project = '';
const memoryNodes: SpawnedMemoryNode[] = [];
let nodesEnv = '';

/**
 * npm must not inherit the npm_* / pnpm_* variables pnpm sets for the script running this
 * test: they would configure npm as pnpm is configured for the workspace.
 */
function cleanEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [key, value] of Object.entries(process.env)) {
    if (!/^(npm|pnpm)_/i.test(key)) env[key] = value;
  }
  return { ...env, ...extra };
}

async function requireTool(cmd: string, why: string): Promise<void> {
  try {
    await run(cmd, ['--version'], { env: cleanEnv(), timeout: 30_000 });
  } catch (error) {
    throw new Error(`the packaging test needs \`${cmd}\` on PATH (${why}): ${String(error)}`);
  }
}

async function startMemoryNode(bin: string, id: string, zone: string): Promise<SpawnedMemoryNode> {
  const node = await spawnMemoryNode({ id, zone, main: bin, cwd: project });
  memoryNodes.push(node);
  return node;
}

beforeAll(
  async () => {
    await requireTool('npm', 'it installs the tarballs as an outside developer would');
    await requireTool('pnpm', 'it packs the workspace packages');
    temp = mkdtempSync(join(tmpdir(), 'engram-packaging-'));
    const tarballs = join(temp, 'tarballs');
    project = join(temp, 'project');
    mkdirSync(tarballs);
    mkdirSync(project);

    for (const dir of PUBLISHED) {
      await run('pnpm', ['pack', '--pack-destination', tarballs], {
        cwd: join(ROOT, dir),
        timeout: PACK_TIMEOUT_MS,
      });
    }
    const packed = readdirSync(tarballs).filter((f) => f.endsWith('.tgz'));
    expect(packed).toHaveLength(PUBLISHED.length);

    writeFileSync(
      join(project, 'package.json'),
      `${JSON.stringify({ name: 'engram-consumer', private: true, type: 'module' }, null, 2)}\n`,
    );
    for (const file of readdirSync(FIXTURES)) {
      writeFileSync(join(project, file), readFileSync(join(FIXTURES, file)));
    }
    await run(
      'npm',
      [
        'install',
        '--no-audit',
        '--no-fund',
        '--prefer-offline',
        '--loglevel=error',
        ...packed.map((f) => join(tarballs, f)),
        // What a TypeScript user adds; the consumer type-checks against it.
        '@types/node@^20',
      ],
      { cwd: project, env: cleanEnv(), timeout: NPM_INSTALL_TIMEOUT_MS },
    );

    // The memory nodes run from the installed tarball's bin, so their proto loading is the
    // installed one too.
    const bin = join(project, 'node_modules', '.bin', 'memory-node');
    const zones = ['a', 'b', 'c'];
    const started = await Promise.all(
      zones.slice(0, MEMORY_NODES).map((zone, i) => startMemoryNode(bin, `n${i + 1}`, zone)),
    );
    nodesEnv = JSON.stringify(
      started.map((node, i) => ({ id: `n${i + 1}`, zone: zones[i], address: node.address })),
    );
  },
  PACK_TIMEOUT_MS * PUBLISHED.length + NPM_INSTALL_TIMEOUT_MS + 30_000,
);

afterAll(async () => {
  await Promise.all(memoryNodes.map((n) => n.stop(NODE_STOP_TIMEOUT_MS)));
  if (temp !== '') rmSync(temp, { recursive: true, force: true });
}, NODE_STOP_TIMEOUT_MS * 2);

/** Files of an installed package, relative to its directory, '/'-separated. */
function filesOf(dir: string): string[] {
  return readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((e) => e.isFile())
    .map((e) => relative(dir, join(e.parentPath, e.name)).split(sep).join('/'))
    .sort();
}

/**
 * Files reached from the entry points through relative imports (static, dynamic, and
 * `new URL('./x.js', import.meta.url)` for workers and forked children): `.js` files, or with
 * `declarations` the `.d.ts` files their `import … from './x.js'` lines stand for.
 */
function reachable(dir: string, entries: readonly string[], declarations = false): Set<string> {
  const seen = new Set<string>();
  const pending = entries.map((e) => posix.normalize(e));
  const SPECIFIERS = [
    /\bfrom\s*['"](\.{1,2}\/[^'"]+)['"]/g,
    /\bimport\s*\(?\s*['"](\.{1,2}\/[^'"]+)['"]/g,
    /new URL\(\s*['"](\.{1,2}\/[^'"]+)['"]\s*,\s*import\.meta\.url/g,
  ];
  for (let file = pending.pop(); file !== undefined; file = pending.pop()) {
    if (seen.has(file)) continue;
    seen.add(file);
    const text = readFileSync(join(dir, file), 'utf8');
    for (const re of SPECIFIERS) {
      for (const m of text.matchAll(re)) {
        const target = posix.join(posix.dirname(file), m[1]!);
        if (target.endsWith('.js'))
          pending.push(declarations ? target.replace(/\.js$/, '.d.ts') : target);
      }
    }
  }
  return seen;
}

describe('the workspace', () => {
  it('publishes every package that is not private, and packs nothing private', () => {
    const dirs = ['packages', 'apps'].flatMap((top) =>
      readdirSync(join(ROOT, top)).map((name) => `${top}/${name}`),
    );
    const publishable = dirs.filter(
      (dir) => readJson<Manifest>(join(ROOT, dir, 'package.json')).private !== true,
    );
    expect(publishable.sort()).toEqual([...PUBLISHED].sort());
  });
});

describe.each(PUBLISHED)('the tarball of %s', (dir) => {
  const manifest = manifests.get(dir)!;
  const installed = () => join(project, 'node_modules', ...manifest.name.split('/'));

  it('declares its license, repository directory, engines and caret ranges to its siblings', () => {
    expect(manifest.license).toBe('Apache-2.0');
    expect(manifest.repository).toEqual({ ...rootManifest.repository, directory: dir });
    expect(manifest.engines).toEqual({ node: '>=20' });
    const installedManifest = readJson<Manifest>(join(installed(), 'package.json'));
    for (const [name, range] of Object.entries(installedManifest.dependencies ?? {})) {
      if (name.startsWith('@engram/')) expect(range, name).toMatch(/^\^\d+\.\d+\.\d+$/);
    }
  });

  it('ships the LICENSE, README and manifest, its reachable code and nothing else', () => {
    const files = filesOf(installed());
    expect(readFileSync(join(installed(), 'LICENSE'), 'utf8')).toBe(
      readFileSync(join(ROOT, 'LICENSE'), 'utf8'),
    );
    expect(files).toContain('README.md');
    const entries = [
      ...Object.values(manifest.exports ?? {}).map((e) => e.default),
      ...Object.values(manifest.bin ?? {}),
    ];
    const js = reachable(installed(), entries);
    const types = reachable(
      installed(),
      Object.values(manifest.exports ?? {}).map((e) => e.types),
      true,
    );
    const unexpected = files.filter((file) => {
      if (['LICENSE', 'README.md', 'package.json'].includes(file)) return false;
      if (file.startsWith('protos/') && file.endsWith('.proto')) return dir !== 'packages/proto';
      if (file.endsWith('.d.ts'))
        return !types.has(file) && !js.has(file.replace(/\.d\.ts$/, '.js'));
      return !js.has(file.replace(/\.map$/, ''));
    });
    // A file here whose source is gone is a stale output: tsc -b and turbo's cache restore
    // never delete from dist/, so remove the package's dist/ and build again.
    expect(unexpected).toEqual([]);
    for (const file of [...js, ...types]) expect(files).toContain(file);
    if (dir === 'packages/proto') {
      expect(files.filter((f) => f.startsWith('protos/'))).toEqual([
        'protos/engram/v1/memory.proto',
        'protos/engram/v1/router.proto',
        'protos/grpc/health/v1/health.proto',
      ]);
    }
  });

  it('ships source maps that carry their sources', () => {
    const maps = filesOf(installed()).filter((f) => f.endsWith('.js.map'));
    expect(maps.length).toBeGreaterThan(0);
    for (const file of maps) {
      const map = readJson<{ sources: string[]; sourcesContent?: string[] }>(
        join(installed(), file),
      );
      expect(map.sourcesContent?.length, file).toBe(map.sources.length);
    }
  });
});

describe('installed from tarballs, used with plain node', () => {
  it.each([
    ['@engram/common', 'common.mjs'],
    ['@engram/ring', 'ring.mjs'],
    ['@engram/breaker', 'breaker.mjs'],
    ['@engram/retry', 'retry.mjs'],
    ['@engram/h2', 'h2.mjs'],
    ['@engram/proto', 'proto.mjs'],
    ['@engram/pool', 'pool.mjs'],
    ['@engram/router', 'router.mjs'],
    ['@engram/memory-node', 'memory-node.mjs'],
    ['@engram/router-node', 'router-node.mjs'],
  ])('%s works (%s)', async (name, script) => {
    const { stdout } = await run(process.execPath, [script], {
      cwd: project,
      env: cleanEnv({ ENGRAM_TEST_NODES: nodesEnv }),
      timeout: SMOKE_TIMEOUT_MS,
    });
    expect(stdout).toContain(`ok ${name}`);
  });

  it('router-node runs as a CLI from its bin', async () => {
    const { stdout } = await run(
      process.execPath,
      [join(project, 'node_modules', '.bin', 'router-node'), '--help'],
      { cwd: project, env: cleanEnv(), timeout: SMOKE_TIMEOUT_MS },
    );
    expect(stdout).toContain('usage: router-node');
  });
});

describe('a TypeScript consumer of the installed packages', () => {
  const tsc = join(
    dirname(createRequire(join(ROOT, 'package.json')).resolve('typescript/package.json')),
    'bin',
    'tsc',
  );
  it.each(['nodenext', 'bundler'])('type-checks with moduleResolution %s', async (resolution) => {
    const result = await run(process.execPath, [tsc, '-p', `tsconfig.${resolution}.json`], {
      cwd: project,
      env: cleanEnv(),
      timeout: TSC_TIMEOUT_MS,
    }).catch((error: { stdout?: string; message: string }) => ({
      stdout: error.stdout ?? error.message,
    }));
    expect(result.stdout).toBe('');
  });
});

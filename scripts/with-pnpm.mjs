#!/usr/bin/env node
// Runs a pnpm command with the pnpm version pinned in package.json, on a machine that has
// only Node.js and npm: it installs the workspace from the frozen lockfile first, so the
// README's two commands work on a fresh clone.
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const pinned = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')).packageManager;
const version = /^pnpm@(\d+\.\d+\.\d+)/.exec(pinned ?? '')?.[1];
if (version === undefined) {
  console.error(`package.json "packageManager" must pin pnpm@x.y.z, got ${JSON.stringify(pinned)}`);
  process.exit(2);
}

const env = { ...process.env, TURBO_TELEMETRY_DISABLED: '1', DO_NOT_TRACK: '1' };
const onPath = spawnSync('pnpm', ['--version'], { encoding: 'utf8', env });
const pnpm =
  onPath.status === 0 && onPath.stdout.trim() === version
    ? ['pnpm']
    : ['npx', '--yes', `pnpm@${version}`];

function run(args) {
  const [cmd, ...rest] = [...pnpm, ...args];
  const result = spawnSync(cmd, rest, { cwd: root, stdio: 'inherit', env });
  if (result.error) throw result.error;
  if (result.status !== 0) process.exit(result.status ?? 1);
}

run(['install', '--frozen-lockfile', '--reporter=append-only']);
run(process.argv.slice(2));

import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { CONFIG_DEFAULTS } from '../src/index.js';
import { Cleanup, freePort, tempDir } from './helpers.js';

// The README's operator walk-through ("Operating a cluster"), run verbatim: every sh block
// marked `<!-- walkthrough -->`, in order, in one bash process from the repository root, with
// each 71xx port the README uses mapped to a free one. Then what it printed is checked step by
// step. It uses the built bins (dist/), as the README says.

const README = fileURLToPath(new URL('../README.md', import.meta.url));
const REPO_ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const STEP = '@@walkthrough-step';

const cleanup = new Cleanup();
afterEach(() => cleanup.run());

/** The sh blocks that follow a `<!-- walkthrough -->` marker, in README order. */
export function walkthroughBlocks(markdown: string): string[] {
  const blocks: string[] = [];
  const re = /<!-- walkthrough -->\n```sh\n([\s\S]*?)\n```/g;
  for (let m = re.exec(markdown); m !== null; m = re.exec(markdown)) blocks.push(m[1]!);
  return blocks;
}

/**
 * The walk-through waits on the router twice for data to stream (a node joining, a node
 * draining): each waits one `router.deadlineMs` (writes of the older table finish) and a few
 * health rounds, at the README's defaults. Generous on top, for a busy 2-core machine.
 */
const c = CONFIG_DEFAULTS;
const WALKTHROUGH_MS =
  2 * (c.router.deadlineMs + 4 * c.health.intervalMs * c.health.healthyThreshold) +
  c.shutdownDrainMs +
  c.shutdownGraceMs +
  120_000;

describe('README walk-through (apps/router-node/README.md, "Operating a cluster")', () => {
  it(
    'runs verbatim: three nodes and a router, data stored, a node added, a node drained, its spaces moved',
    async () => {
      const markdown = readFileSync(README, 'utf8');
      const blocks = walkthroughBlocks(markdown);
      expect(blocks.length).toBe(8);

      // Each distinct 71xx port gets a free one (the README's are fixed for a reader to type).
      const ports = new Map<string, number>();
      for (const m of blocks.join('\n').matchAll(/\b71\d\d\b/g)) {
        if (!ports.has(m[0])) ports.set(m[0], await freePort());
      }
      expect([...ports.keys()].sort()).toEqual(
        ['7100', '7101', '7102', '7103', '7104', '7190', '7191'].sort(),
      );
      const script = blocks
        .map((b, i) => `echo "${STEP} ${i + 1}"\n${b}`)
        .join('\n')
        .replace(/\b71\d\d\b/g, (p) => String(ports.get(p)));

      // mktemp -d lands here, so a failed run leaves nothing behind.
      const tmp = tempDir(cleanup);
      const child = spawn('bash', ['-c', script], {
        cwd: REPO_ROOT,
        detached: true, // its own process group: everything it starts is stopped with it
        stdio: ['ignore', 'pipe', 'pipe'],
        env: { ...process.env, TMPDIR: tmp, ENGRAM_ROUTER_ADMIN_TOKEN: '' },
      });
      cleanup.add(() => {
        try {
          process.kill(-child.pid!, 'SIGKILL');
        } catch {
          // already gone
        }
      });
      let stdout = '';
      let stderr = '';
      child.stdout!.on('data', (d: Buffer) => {
        stdout += d.toString();
      });
      child.stderr!.on('data', (d: Buffer) => {
        stderr += d.toString();
      });
      // Past its time the walk-through is stopped, and the failure shows the step it was in.
      const timer = setTimeout(() => process.kill(-child.pid!, 'SIGKILL'), WALKTHROUGH_MS);
      const code = await new Promise<number | null>((resolve) => child.on('exit', resolve));
      clearTimeout(timer);
      const lastStep = [...stdout.matchAll(new RegExp(`^${STEP} (\\d+)$`, 'gm'))].at(-1)?.[1];
      // `check` says on stderr that the config is valid (stdout has the config, sent to
      // /dev/null); nothing else may be there.
      const unexpected = stderr
        .split('\n')
        .filter((l) => l !== '' && !/^router-node: configuration \S+ is valid$/.test(l));
      expect({ code, lastStep, unexpected }).toEqual({ code: 0, lastStep: '8', unexpected: [] });

      const steps = new Map<number, string>();
      for (const part of stdout.split(`${STEP} `).slice(1)) {
        const nl = part.indexOf('\n');
        steps.set(Number(part.slice(0, nl)), part.slice(nl + 1));
      }
      expect([...steps.keys()]).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);

      // 4: every node up, active, breaker closed; replication factor 3.
      const status = steps.get(4)!;
      expect(status).toMatch(/^replication factor +3$/m);
      for (const n of ['n1', 'n2', 'n3']) {
        expect(status).toMatch(
          new RegExp(`^${n} +127\\.0\\.0\\.1:\\d+ +[ab] +up +active +closed `, 'm'),
        );
      }

      // 5: four stores, each on every replica; the recall has the memory; where shows it held.
      const data = steps.get(5)!;
      expect(data.match(/^stored memory \S+$/gm)).toHaveLength(4);
      // Fallback: the reply came from a replica that acknowledged before the primary did.
      expect(data.match(/acknowledged by [23] of 3(, fallback)?\) at table epoch/g)).toHaveLength(
        4,
      );
      expect(data).toMatch(/^\S+ +kickoff notes of red$/m);
      expect(data).toMatch(/^routing: served by n[123] \(PrimaryWithFallback, 1 attempt\)/m);
      expect(placementRows(data)).toHaveLength(3);

      // 6: n4 has joined and serves.
      expect(steps.get(6)!).toMatch(/^n4 +127\.0\.0\.1:\d+ +b +up +active +closed /m);

      // 7: every space on n2, n3 and n4, each holding its one memory with one digest; n1 in
      // no placement.
      const moved = steps.get(7)!;
      const spaces = moved.split(/^space +/m).slice(1);
      expect(spaces.map((s) => s.split('\n')[0])).toEqual([
        'team/red',
        'team/green',
        'team/blue',
        'team/amber',
      ]);
      for (const space of spaces) {
        const rows = placementRows(space);
        expect(rows.map((r) => r.node).sort()).toEqual(['n2', 'n3', 'n4']);
        for (const r of rows) expect(r).toMatchObject({ holds: 'yes', memories: '1' });
        expect(new Set(rows.map((r) => r.digest)).size).toBe(1);
      }
    },
    WALKTHROUGH_MS + 30_000,
  );
});

interface PlacementRow {
  role: string;
  node: string;
  holds: string;
  memories: string;
  digest: string;
}

/** The primary and replica rows of `engram-router where` output. */
function placementRows(text: string): PlacementRow[] {
  const rows: PlacementRow[] = [];
  for (const line of text.split('\n')) {
    const cols = line.trim().split(/ +/);
    if (cols[0] !== 'primary' && cols[0] !== 'replica') continue;
    // ROLE NODE ADDRESS ZONE STATE LIFECYCLE BREAKER HOLDS MEMORIES TOMBSTONES DIGEST
    rows.push({
      role: cols[0],
      node: cols[1]!,
      holds: cols[7]!,
      memories: cols[8]!,
      digest: cols[10]!,
    });
  }
  return rows;
}

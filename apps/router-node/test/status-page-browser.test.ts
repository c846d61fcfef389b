/**
 * The status page in a real headless Chromium against a live router and real memory nodes:
 * what it shows, that it follows a node's death without a reload, and that operator input
 * (a node id made of markup) is shown as text. `UPDATE_SCREENSHOT=1` also writes the
 * screenshot of the run to docs/status-page.png (the README's).
 */
import { writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { type SpawnedMemoryNode, spawnMemoryNode } from '@engram/memory-node/test-support';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { findOrInstallChromium, HeadlessChromium } from './chromium.js';
import {
  admin,
  adminClient,
  Cleanup,
  call,
  eventually,
  freePort,
  memoryClient,
  type RouterProcess,
  spawnRouter,
  TEST_DOWN_WINDOW_MS,
  Traffic,
  testConfig,
} from './helpers.js';

const SCREENSHOT = fileURLToPath(new URL('../docs/status-page.png', import.meta.url));
/** The page fetches status.json this often (status-page.ts). */
const PAGE_REFRESH_MS = 1000;
/**
 * How long the page may take to show a change the router has made: a few refreshes, each a
 * fetch and a redraw in a browser sharing two cores with the router, its nodes and vitest.
 */
const PAGE_LAG_MS = 10 * PAGE_REFRESH_MS;

const chromium = findOrInstallChromium();
if ('skip' in chromium) console.warn(`status page browser test skipped: ${chromium.skip}`);

interface PageView {
  updates: number;
  partition: string | undefined;
  rows: {
    id: string | null;
    idText: string;
    zone: string;
    state: string;
    breaker: string;
    breakerClass: string;
    hints: string;
  }[];
  arcs: { id: string | null; state: string | null; share: number; paths: number }[];
  images: number;
  injected: boolean;
}

/** What the page shows, read from its DOM. */
const READ_PAGE = `(() => {
  const text = (root, sel) => root.querySelector(sel)?.textContent ?? '';
  return {
    updates: Number(document.body.dataset.updates ?? 0),
    partition: document.getElementById('partition')?.textContent,
    rows: [...document.querySelectorAll('#nodes tr[data-node]')].map((tr) => ({
      id: tr.getAttribute('data-node'),
      idText: text(tr, 'td.id'),
      zone: text(tr, 'td.zone'),
      state: text(tr, 'td.state'),
      breaker: text(tr, 'td.breaker'),
      breakerClass: tr.querySelector('td.breaker .pill')?.className ?? '',
      hints: text(tr, 'td.hints'),
    })),
    arcs: [...document.querySelectorAll('#ring-svg g.arc')].map((g) => ({
      id: g.getAttribute('data-node'),
      state: g.getAttribute('data-state'),
      share: Number(g.getAttribute('data-share')),
      paths: g.querySelectorAll('path[d]').length,
    })),
    images: document.images.length,
    injected: window.__injected === 1,
  };
})()`;

const ZONES: Record<string, string> = { n1: 'zone-a', n2: 'zone-b', n3: 'zone-c' };

describe.skipIf('skip' in chromium)(
  `status page in headless Chromium${'skip' in chromium ? ` (skipped: ${chromium.skip})` : ''}`,
  () => {
    const cleanup = new Cleanup();
    const nodes = new Map<string, SpawnedMemoryNode>();
    let router: RouterProcess;
    let browser: HeadlessChromium;
    let url: string;
    const view = () => browser.evaluate<PageView>(READ_PAGE);
    const json = async () =>
      (await (await fetch(`http://127.0.0.1:${router.metricsPort}/status.json`)).json()) as {
        nodes: { id: string; state: string; breaker: string }[];
      };

    beforeAll(async () => {
      for (const [id, zone] of Object.entries(ZONES)) {
        const node = await spawnMemoryNode({ id, zone });
        cleanup.add(() => node.stop(5000));
        nodes.set(id, node);
      }
      router = await spawnRouter(
        cleanup,
        testConfig({
          nodes: [...nodes].map(([id, n]) => ({ id, address: n.address, zone: ZONES[id] })),
          workers: 1,
        }),
      );
      // Calls all along, so the sparklines have data and a dead node collects hints.
      const client = memoryClient(cleanup, router.address);
      let i = 0;
      const traffic = new Traffic(cleanup, async () => {
        const spaceId = `space-${i++ % 50}`;
        await call(client, 'store', { spaceId, memory: { content: `m${i}` } });
        await call(client, 'recall', { spaceId, cue: { text: 'm' }, limit: 1 });
        await new Promise((r) => setTimeout(r, 10));
      });
      cleanup.add(() => traffic.stop());
      const launched = await HeadlessChromium.launch((chromium as { path: string }).path);
      browser = launched;
      cleanup.add(() => launched.close());
      url = `http://127.0.0.1:${router.metricsPort}/`;
    });
    afterAll(() => cleanup.run());

    it('shows every node up with its zone, and the ring with one arc group per node', async () => {
      await browser.navigate(url);
      const v = await eventually(async () => {
        const page = await view();
        return page.rows.length === 3 && page.rows.every((r) => r.state === 'up') && page;
      }, TEST_DOWN_WINDOW_MS + PAGE_LAG_MS);
      expect(v.partition).toBe('not partitioned');
      expect(v.rows.map((r) => [r.id, r.idText, r.zone])).toEqual(
        Object.entries(ZONES).map(([id, zone]) => [id, id, zone]),
      );
      expect(v.rows.map((r) => r.breaker)).toEqual(['closed', 'closed', 'closed']);
      expect(v.arcs.map((a) => a.id)).toEqual(['n1', 'n2', 'n3']);
      for (const arc of v.arcs) {
        expect(arc.paths).toBe(1);
        expect(arc.share).toBeGreaterThan(0);
      }
      expect(v.arcs.reduce((sum, a) => sum + a.share, 0)).toBeCloseTo(1, 9);
    });

    // Some seconds of samples (one a second), so the lines have some length; the README's
    // screenshot waits for a minute of them.
    const points = process.env.UPDATE_SCREENSHOT === '1' ? 60 : 5;
    const historyWaitMs = points * 1000 * 4;
    it('draws the request history as sparklines', {
      timeout: historyWaitMs + PAGE_LAG_MS * 2,
    }, async () => {
      const json = async () =>
        (await (await fetch(`http://127.0.0.1:${router.metricsPort}/status.json`)).json()) as {
          history: { ratePerS: number[] };
        };
      await eventually(
        async () => (await json()).history.ratePerS.length >= points,
        historyWaitMs,
        250,
      );
      const lines = await eventually(async () => {
        const drawn = await browser.evaluate<{ points: number; stroke: string | null }[]>(
          `[...document.querySelectorAll('#history polyline')].map((l) => ({ points: l.points.length, stroke: l.getAttribute('stroke') }))`,
        );
        return drawn.length >= 3 && drawn.every((l) => l.points >= points - 1) && drawn;
      }, PAGE_LAG_MS);
      // Rate, errors, p50 and p99: four series, three sparklines.
      expect(new Set(lines.map((l) => l.stroke)).size).toBeGreaterThanOrEqual(3);
      const rate = Number(
        await browser.evaluate<string>(`document.querySelector('#history b').textContent`),
      );
      expect(rate).toBeGreaterThan(0);
    });

    it('shows a killed node down, with its breaker state, without a reload', async () => {
      const before = (await view()).updates;
      nodes.get('n3')!.child.kill('SIGKILL');
      const v = await eventually(
        async () => {
          const page = await view();
          const n3 = page.rows.find((r) => r.id === 'n3');
          return n3?.state === 'down' && page;
        },
        TEST_DOWN_WINDOW_MS + PAGE_LAG_MS,
        100,
      );
      expect(v.updates).toBeGreaterThan(before); // the same page load, refreshed
      expect(v.arcs.find((a) => a.id === 'n3')?.state).toBe('down');
      expect(v.rows.filter((r) => r.state === 'up').map((r) => r.id)).toEqual(['n1', 'n2']);
      const n3 = v.rows.find((r) => r.id === 'n3')!;
      // The breaker cell shows the router's breaker state, coloured by it.
      const reported = (await json()).nodes.find((n) => n.id === 'n3')!.breaker;
      expect(['closed', 'open', 'half-open']).toContain(n3.breaker);
      expect(n3.breakerClass).toBe(`pill b-${n3.breaker}`);
      expect(reported).toMatch(/^(closed|open|half-open)$/);

      // Stores go on while n3 is dead: its hints show on the page.
      await eventually(
        async () => /^[1-9]/.test((await view()).rows.find((r) => r.id === 'n3')?.hints ?? ''),
        PAGE_LAG_MS * 3,
      );
      const png = await browser.screenshot();
      expect(png.subarray(1, 4).toString()).toBe('PNG');
      expect([png.readUInt32BE(16), png.readUInt32BE(20)]).toEqual([1200, 800]);
      if (process.env.UPDATE_SCREENSHOT === '1') writeFileSync(SCREENSHOT, png);
    });

    it('shows a node id made of markup as text: nothing is parsed, nothing runs', async () => {
      const id = `<img src=x onerror="window.__injected=1">"&amp;'`;
      const adm = adminClient(cleanup, router.adminPort);
      await admin(adm, 'AddNode', {
        id,
        address: `127.0.0.1:${await freePort()}`,
        zone: '<b>z</b>',
      });
      const v = await eventually(async () => {
        const page = await view();
        return page.rows.some((r) => r.id === id) && page;
      }, PAGE_LAG_MS * 3);
      const row = v.rows.find((r) => r.id === id)!;
      expect(row.idText).toBe(id);
      expect(row.zone).toBe('<b>z</b>');
      expect(v.arcs.some((a) => a.id === id)).toBe(true);
      expect(v.images).toBe(0);
      expect(v.injected).toBe(false);
      expect(await browser.evaluate<number>(`document.querySelectorAll('#nodes b').length`)).toBe(
        0,
      );
    });
  },
);

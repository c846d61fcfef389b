import { readdirSync, readFileSync, statSync, truncateSync, writeFileSync } from 'node:fs';
import { type FileHandle, open } from 'node:fs/promises';
import { join } from 'node:path';
import { isEngramError } from '@engram/common';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { CHECKPOINT_SLOT_STRIDE, fileStem, hintFrameBytes } from '../src/internal/hint-format.js';
import { type Hint, HintStore, type HintStoreOptions } from '../src/internal/hint-store.js';
import { Cleanup, tempDir } from './helpers.js';

const cleanup = new Cleanup();
afterEach(async () => {
  vi.restoreAllMocks();
  await cleanup.run();
});

const STORE = '/engram.v1.MemoryService/Store';

function hint(nodeId: string, i: number, extra: Partial<Hint> = {}): Hint {
  return {
    nodeId,
    spaceId: `space-${i % 3}`,
    path: STORE,
    body: Buffer.from(`request ${i} `.repeat(1 + (i % 5))),
    createdAtMs: 1_000 + i,
    ...extra,
  };
}

async function openStore(dir: string, options: HintStoreOptions = {}): Promise<HintStore> {
  const store = await HintStore.open(dir, options);
  cleanup.add(() => store.close());
  return store;
}

async function bodies(store: HintStore, nodeId: string, max = 1_000): Promise<string[]> {
  return (await store.peek(nodeId, max)).map((h) => h.body.toString());
}

function expected(nodeId: string, from: number, to: number): string[] {
  return Array.from({ length: to - from }, (_, k) => hint(nodeId, from + k).body.toString());
}

async function appendAll(store: HintStore, nodeId: string, from: number, to: number) {
  const results = [];
  for (let i = from; i < to; i++) results.push(await store.append(hint(nodeId, i)));
  return results;
}

function logPath(dir: string, nodeId: string): string {
  return join(dir, `${fileStem(nodeId)}.log`);
}

/** The FileHandle class, whose methods the failure tests replace for one call. */
async function fileHandleProto(dir: string): Promise<FileHandle> {
  const fh = await open(join(dir, 'probe'), 'w');
  await fh.close();
  return Object.getPrototypeOf(fh) as FileHandle;
}

function eio(): NodeJS.ErrnoException {
  return Object.assign(new Error('EIO: i/o error, write'), { code: 'EIO' });
}

describe('HintStore', () => {
  it('replays hints in append order and forgets what is acknowledged', async () => {
    const dir = tempDir(cleanup);
    const store = await openStore(dir);
    expect(await appendAll(store, 'n1', 0, 5)).toEqual(Array(5).fill('stored'));
    const peeked = await store.peek('n1', 3);
    expect(peeked.map((h) => h.body.toString())).toEqual(expected('n1', 0, 3));
    expect(peeked[0]).toMatchObject({ nodeId: 'n1', spaceId: 'space-0', path: STORE, seq: 1 });
    expect(peeked[0]!.createdAtMs).toBe(1_000);
    expect(await store.peek('n1', 3)).toEqual(peeked);
    await store.ack('n1', 2);
    expect(await bodies(store, 'n1')).toEqual(expected('n1', 2, 5));
    expect(store.pending('n1').count).toBe(3);
    expect(store.nodes()).toEqual(['n1']);
    expect(await store.peek('nobody', 5)).toEqual([]);
  });

  it('keeps unacknowledged hints across a restart, in order, and not the acknowledged ones', async () => {
    const dir = tempDir(cleanup);
    const first = await openStore(dir);
    await appendAll(first, 'n1', 0, 6);
    await appendAll(first, 'n2', 0, 2);
    await first.ack('n1', 4);
    const before = first.pending('n1');
    await first.close();

    const second = await openStore(dir);
    expect(await bodies(second, 'n1')).toEqual(expected('n1', 4, 6));
    expect(await bodies(second, 'n2')).toEqual(expected('n2', 0, 2));
    expect(second.pending('n1')).toEqual(before);
    expect(second.nodes().sort()).toEqual(['n1', 'n2']);
    // appends after a restart continue the order and the seqs
    await appendAll(second, 'n1', 6, 8);
    const seqs = (await second.peek('n1', 10)).map((h) => h.seq);
    expect(seqs).toEqual([5, 6, 7, 8]);
    expect(await bodies(second, 'n1')).toEqual(expected('n1', 4, 8));
  });

  it('removes a node’s files once all its hints are acknowledged', async () => {
    const dir = tempDir(cleanup);
    const store = await openStore(dir);
    await appendAll(store, 'n1', 0, 4);
    await store.ack('n1', 1);
    expect(readdirSync(dir).sort()).toEqual(['n-6e31.ack', 'n-6e31.log']);
    await store.ack('n1', 3);
    expect(readdirSync(dir)).toEqual([]);
    expect(store.nodes()).toEqual([]);
    expect(store.pending('n1')).toEqual({ count: 0, bytes: 0 });
    // and the node starts again with a fresh file
    await appendAll(store, 'n1', 4, 5);
    await store.close();
    expect(await bodies(await openStore(dir), 'n1')).toEqual(expected('n1', 4, 5));
  });

  it('acknowledges by seq, so an expiry in between cannot acknowledge undelivered hints', async () => {
    const dir = tempDir(cleanup);
    const store = await openStore(dir, { maxAgeMs: 100 });
    await appendAll(store, 'n1', 0, 6); // created at 1000..1005
    const delivering = await store.peek('n1', 4);
    expect(await store.expire(1_102)).toEqual(new Map([['n1', 2]]));
    await store.ackThrough('n1', delivering.at(-1)!.seq);
    expect(await bodies(store, 'n1')).toEqual(expected('n1', 4, 6));
    await expect(store.ackThrough('n1', 99)).rejects.toMatchObject({
      code: 'InvalidArgument',
      field: 'seq',
    });
    await expect(store.ack('n1', 3)).rejects.toMatchObject({
      code: 'InvalidArgument',
      field: 'count',
    });
  });

  it('truncates a torn tail: earlier hints intact, later ones dropped and counted', async () => {
    const dir = tempDir(cleanup);
    const first = await openStore(dir);
    await appendAll(first, 'n1', 0, 5);
    await first.close();
    const path = logPath(dir, 'n1');
    const size = statSync(path).size;
    truncateSync(path, size - 7);

    const second = await openStore(dir);
    expect(await bodies(second, 'n1')).toEqual(expected('n1', 0, 4));
    const kept = statSync(path).size;
    expect(second.dropped('n1').corruptBytes).toBe(size - 7 - kept);
    expect(second.totals().dropped.corruptBytes).toBe(size - 7 - kept);
    // appends after the cut are readable after the next restart
    await appendAll(second, 'n1', 5, 7);
    await second.close();
    const third = await openStore(dir);
    expect(await bodies(third, 'n1')).toEqual([...expected('n1', 0, 4), ...expected('n1', 5, 7)]);
    expect(third.dropped('n1').corruptBytes).toBe(0);
  });

  it('ends a log at a corrupt record: a flipped byte in the last or a middle record', async () => {
    const dir = tempDir(cleanup);
    const first = await openStore(dir);
    await appendAll(first, 'n1', 0, 5);
    await appendAll(first, 'n2', 0, 5);
    await first.close();
    const flip = (nodeId: string, fromEnd: number) => {
      const path = logPath(dir, nodeId);
      const bytes = readFileSync(path);
      bytes[bytes.length - fromEnd]! ^= 0x01;
      writeFileSync(path, bytes);
    };
    flip('n1', 3); // inside the last record's body
    const n2Size = statSync(logPath(dir, 'n2')).size;
    const lastTwo = hintFrameBytes(hint('n2', 3)) + hintFrameBytes(hint('n2', 4));
    flip('n2', lastTwo - 10); // inside the fourth record: the fifth goes with it

    const second = await openStore(dir);
    expect(await bodies(second, 'n1')).toEqual(expected('n1', 0, 4));
    expect(await bodies(second, 'n2')).toEqual(expected('n2', 0, 3));
    expect(second.dropped('n1').corruptBytes).toBeGreaterThan(0);
    expect(statSync(logPath(dir, 'n2')).size).toBe(n2Size - second.dropped('n2').corruptBytes);
  });

  it('drops a file whose header is unreadable and counts its bytes, without throwing', async () => {
    const dir = tempDir(cleanup);
    const first = await openStore(dir);
    await appendAll(first, 'n1', 0, 3);
    await appendAll(first, 'n2', 0, 3);
    await first.close();
    const path = logPath(dir, 'n1');
    const bytes = readFileSync(path);
    bytes[9]! ^= 0xff;
    writeFileSync(path, bytes);
    writeFileSync(join(dir, 'n-6e33.log'), Buffer.alloc(0)); // empty: a crash before its header

    const second = await openStore(dir);
    expect(second.nodes()).toEqual(['n2']);
    expect(second.totals().dropped.corruptBytes).toBe(bytes.length);
    expect(readdirSync(dir).sort()).toEqual(['n-6e32.log']);
  });

  it('re-delivers acknowledged hints rather than lose any when the checkpoint is corrupt', async () => {
    const dir = tempDir(cleanup);
    const first = await openStore(dir);
    await appendAll(first, 'n1', 0, 6);
    await first.ack('n1', 1); // slot 0
    await first.ack('n1', 2); // slot 1
    await first.close();
    const ackPath = join(dir, `${fileStem('n1')}.ack`);
    const ack = readFileSync(ackPath);
    ack[CHECKPOINT_SLOT_STRIDE + 5]! ^= 0x01; // the newest slot, as a torn write would leave it
    writeFileSync(ackPath, ack);

    const second = await openStore(dir);
    expect(await bodies(second, 'n1')).toEqual(expected('n1', 1, 6));
    await second.close();
    ack[5]! ^= 0x01; // both slots bad: everything in the log comes again
    writeFileSync(ackPath, ack);
    const third = await openStore(dir);
    expect(await bodies(third, 'n1')).toEqual(expected('n1', 0, 6));
  });

  it('drops appends past maxBytesPerNode and counts them, keeping the earlier ones', async () => {
    const dir = tempDir(cleanup);
    const one = (i: number) => ({ ...hint('n1', i), spaceId: 's', body: Buffer.alloc(100, i) });
    const frame = hintFrameBytes(one(0));
    const store = await openStore(dir, { maxBytesPerNode: 3 * frame, maxRecordBytes: frame });
    const results = await Promise.all([0, 1, 2, 3, 4].map((i) => store.append(one(i))));
    expect(results).toEqual(['stored', 'stored', 'stored', 'dropped', 'dropped']);
    expect(store.dropped('n1')).toMatchObject({ full: 2, oversize: 0 });
    expect(store.pending('n1')).toEqual({ count: 3, bytes: 3 * frame });
    expect(await store.append({ ...one(5), body: Buffer.alloc(101) })).toBe('dropped');
    expect(store.dropped('n1').oversize).toBe(1);
    expect((await store.peek('n1', 10)).map((h) => h.body[0])).toEqual([0, 1, 2]);
    expect(await store.append(one(9))).toBe('dropped');
    await store.ack('n1', 1);
    expect(await store.append(one(9))).toBe('stored');
    expect(await store.append(one(10))).toBe('dropped');
    expect(store.totals().dropped).toMatchObject({ full: 4, oversize: 1 });
    // another node has its own budget
    expect(await store.append({ ...one(0), nodeId: 'n2' })).toBe('stored');
  });

  it('expires hints older than maxAgeMs on the wall clock, durably, and reports them', async () => {
    const dir = tempDir(cleanup);
    let now = 10_000;
    const options = { maxAgeMs: 1_000, wallClock: { now: () => now } };
    const store = await openStore(dir, options);
    for (const [nodeId, created] of [
      ['n1', 8_000],
      ['n1', 9_500],
      ['n2', 8_500],
      ['n1', 9_800],
      ['n2', 9_900],
    ] as const) {
      await store.append({ ...hint(nodeId, created), createdAtMs: created });
    }
    expect(await store.expire()).toEqual(
      new Map([
        ['n1', 1],
        ['n2', 1],
      ]),
    );
    now = 10_600;
    expect(await store.expire()).toEqual(new Map([['n1', 1]]));
    expect(await store.expire()).toEqual(new Map());
    expect(store.dropped('n1').expired).toBe(2);
    expect(store.totals().dropped.expired).toBe(3);
    await store.close();
    const again = await openStore(dir, options);
    expect((await again.peek('n1', 9)).map((h) => h.createdAtMs)).toEqual([9_800]);
    expect((await again.peek('n2', 9)).map((h) => h.createdAtMs)).toEqual([9_900]);
    expect(await again.expire(20_000)).toEqual(
      new Map([
        ['n1', 1],
        ['n2', 1],
      ]),
    );
    expect(readdirSync(dir)).toEqual([]);
  });

  it('expires in append order: an old hint behind a younger one waits for it', async () => {
    const store = await openStore(tempDir(cleanup), { maxAgeMs: 100 });
    await store.append({ ...hint('n1', 0), createdAtMs: 1_000 });
    await store.append({ ...hint('n1', 1), createdAtMs: 500 });
    expect(await store.expire(1_050)).toEqual(new Map());
    expect(await store.expire(1_101)).toEqual(new Map([['n1', 2]]));
  });

  it('shares one sync among concurrent appends (group commit)', async () => {
    const dir = tempDir(cleanup);
    const store = await openStore(dir);
    const datasync = vi.spyOn(await fileHandleProto(dir), 'datasync');
    const results = await Promise.all(
      Array.from({ length: 500 }, (_, i) => store.append(hint(`n${i % 2}`, i))),
    );
    expect(results.every((r) => r === 'stored')).toBe(true);
    // the first batch of each node is one sync; the rest queued behind it is one more, or few
    expect(datasync.mock.calls.length).toBeLessThan(20);
    expect(store.totals().syncs).toBeLessThan(25);
    expect(store.totals().count).toBe(500);
    await store.close();
    const again = await openStore(dir);
    const evens = Array.from({ length: 250 }, (_, k) => hint('n0', 2 * k).body.toString());
    expect(await bodies(again, 'n0')).toEqual(evens);
  });

  it('compacts a large acknowledged prefix, keeping order and content', async () => {
    const dir = tempDir(cleanup);
    const store = await openStore(dir, { compactAtBytes: 2_000 });
    await appendAll(store, 'n1', 0, 100);
    const path = logPath(dir, 'n1');
    const full = statSync(path).size;
    await store.ack('n1', 30); // prefix < live: a checkpoint
    expect(statSync(path).size).toBe(full);
    const tail = appendAll(store, 'n1', 100, 110); // in flight during the compaction
    await store.ack('n1', 40); // prefix > live and > 2 000 bytes: rewritten
    await tail;
    expect(statSync(path).size).toBeLessThan(full / 2);
    expect(readdirSync(dir).filter((n) => n.endsWith('.tmp'))).toEqual([]);
    expect(await bodies(store, 'n1')).toEqual(expected('n1', 70, 110));
    await store.ack('n1', 5);
    await appendAll(store, 'n1', 110, 112);
    await store.close();
    const again = await openStore(dir, { compactAtBytes: 2_000 });
    expect(await bodies(again, 'n1')).toEqual(expected('n1', 75, 112));
    expect(again.dropped('n1').corruptBytes).toBe(0);
  });

  it('keeps every node id, however odd, in a file of its own inside the directory', async () => {
    const root = tempDir(cleanup);
    const dir = join(root, 'data', 'hints');
    const ids = ['..', '../x', 'a/b', '/', '.', '', 'ü日本', '\u0000', 'CON', 'x'.repeat(300)];
    const store = await openStore(dir);
    await Promise.all(ids.flatMap((id) => [0, 1, 2].map((i) => store.append(hint(id, i)))));
    await store.ack('a/b', 1);
    await store.close();
    expect(readdirSync(root)).toEqual(['data']);
    expect(readdirSync(join(root, 'data'))).toEqual(['hints']);
    const names = readdirSync(dir);
    expect(names.filter((n) => n.endsWith('.log'))).toHaveLength(ids.length);
    for (const name of names) expect(name).toMatch(/^[nh]-[0-9a-f]*\.(log|ack)$/);

    const again = await openStore(dir);
    expect(again.nodes().sort()).toEqual([...ids].sort());
    for (const id of ids) {
      const from = id === 'a/b' ? 1 : 0;
      expect(await bodies(again, id)).toEqual(expected(id, from, 3));
      expect((await again.peek(id, 1))[0]!.nodeId).toBe(id);
    }
  });

  it('rejects an append with HintStoreFailed when a write fails, and goes on', async () => {
    const dir = tempDir(cleanup);
    const store = await openStore(dir);
    await appendAll(store, 'n1', 0, 2);
    vi.spyOn(await fileHandleProto(dir), 'write').mockRejectedValueOnce(eio());
    const failed = await store.append(hint('n1', 2)).catch((e: unknown) => e);
    expect(isEngramError(failed, 'HintStoreFailed')).toBe(true);
    expect(failed).toMatchObject({ name: 'HintStoreError', nodeId: 'n1' });
    expect(await store.append(hint('n1', 3))).toBe('stored');
    await store.close();
    expect(await bodies(await openStore(dir), 'n1')).toEqual([
      ...expected('n1', 0, 2),
      ...expected('n1', 3, 4),
    ]);
  });

  it('refuses a node after a failed sync, keeps the others, and recovers on reopen', async () => {
    const dir = tempDir(cleanup);
    const store = await openStore(dir);
    await appendAll(store, 'n1', 0, 2);
    await appendAll(store, 'n2', 0, 1);
    vi.spyOn(await fileHandleProto(dir), 'datasync').mockRejectedValueOnce(eio());
    await expect(store.append(hint('n1', 2))).rejects.toMatchObject({ code: 'HintStoreFailed' });
    await expect(store.append(hint('n1', 3))).rejects.toMatchObject({ code: 'HintStoreFailed' });
    await expect(store.peek('n1', 1)).rejects.toMatchObject({ code: 'HintStoreFailed' });
    expect(await store.expire(Number.MAX_SAFE_INTEGER)).toEqual(new Map([['n2', 1]]));
    expect(await store.append(hint('n2', 1))).toBe('stored');
    await store.close();
    // the write itself had landed; only its sync was in doubt
    expect(await bodies(await openStore(dir), 'n1')).toEqual(expected('n1', 0, 3));
  });

  it('rejects with HintStoreFailed when an acknowledgement cannot be written', async () => {
    const dir = tempDir(cleanup);
    const store = await openStore(dir);
    await appendAll(store, 'n1', 0, 3);
    vi.spyOn(await fileHandleProto(dir), 'write').mockRejectedValueOnce(eio());
    await expect(store.ack('n1', 1)).rejects.toMatchObject({ code: 'HintStoreFailed' });
    await expect(store.ack('n1', 1)).rejects.toMatchObject({ code: 'HintStoreFailed' });
    await store.close();
    // not acknowledged, so delivered again
    expect(await bodies(await openStore(dir), 'n1')).toEqual(expected('n1', 0, 3));
  });

  it('validates options once, naming the field', async () => {
    const dir = tempDir(cleanup);
    const bad: [HintStoreOptions, string][] = [
      [{ maxBytesPerNode: 0 }, 'maxBytesPerNode'],
      [{ maxBytesPerNode: 1.5e6 + 0.5 }, 'maxBytesPerNode'],
      [{ maxAgeMs: -1 }, 'maxAgeMs'],
      [{ maxAgeMs: Number.NaN }, 'maxAgeMs'],
      [{ maxRecordBytes: 10 }, 'maxRecordBytes'],
      [{ maxBytesPerNode: 1_000, maxRecordBytes: 2_000 }, 'maxRecordBytes'],
      [{ compactAtBytes: -5 }, 'compactAtBytes'],
      [{ wallClock: {} as never }, 'wallClock'],
    ];
    for (const [options, field] of bad) {
      await expect(HintStore.open(dir, options), field).rejects.toMatchObject({
        code: 'InvalidArgument',
        field,
      });
    }
    await expect(HintStore.open(dir, null as never)).rejects.toMatchObject({ field: 'options' });
    expect(readdirSync(dir)).toEqual([]);
  });

  it('validates hints and arguments, naming the field', async () => {
    const store = await openStore(tempDir(cleanup));
    const cases: [unknown, string][] = [
      [{ ...hint('n1', 0), nodeId: 5 }, 'hint.nodeId'],
      [{ ...hint('n1', 0), nodeId: '\uD800' }, 'hint.nodeId'],
      [{ ...hint('n1', 0), path: undefined }, 'hint.path'],
      [{ ...hint('n1', 0), body: 'text' }, 'hint.body'],
      [{ ...hint('n1', 0), createdAtMs: Number.POSITIVE_INFINITY }, 'hint.createdAtMs'],
      [null, 'hint'],
    ];
    for (const [h, field] of cases) {
      await expect(store.append(h as Hint), field).rejects.toMatchObject({ field });
    }
    await expect(store.peek('n1', -1)).rejects.toMatchObject({ field: 'max' });
    await expect(store.ack('n1', 1)).rejects.toMatchObject({ field: 'count' });
    await expect(store.expire(Number.NaN)).rejects.toMatchObject({ field: 'nowMs' });
    // a Uint8Array body, as a worker thread's message delivers it, is fine
    const body = new Uint8Array([1, 2, 3]);
    expect(await store.append({ ...hint('n1', 0), body })).toBe('stored');
    expect((await store.peek('n1', 1))[0]!.body).toEqual(Buffer.from(body));
  });

  it('rejects with HintStoreClosed after close, once queued appends are done', async () => {
    const store = await HintStore.open(tempDir(cleanup));
    const queued = store.append(hint('n1', 0));
    await store.close();
    expect(await queued).toBe('stored');
    await expect(store.append(hint('n1', 1))).rejects.toMatchObject({ code: 'HintStoreClosed' });
    await expect(store.peek('n1', 1)).rejects.toMatchObject({ code: 'HintStoreClosed' });
  });
});

import { closeSync, fsyncSync, mkdirSync, openSync, renameSync, writeSync } from 'node:fs';
import { open, readFile, rename } from 'node:fs/promises';
import { join } from 'node:path';
import type { StreamProgress } from '@engram/router';
import type { AssignmentConfig, NodeConfig } from './config.js';
import type { TransitionKind } from './streamer.js';

/** A membership change in progress, as persisted so a restarted router resumes it. */
export interface TransitionRecord {
  readonly kind: TransitionKind;
  readonly subject: string;
  /** join: the node (it may have come from AddNode, not the config file). */
  readonly node?: NodeConfig;
  /** leave: what the node becomes once its data is streamed. */
  readonly leaveTo?: 'removed' | 'drained';
  /** pin: the new pin, or null to go back to the ring's placement. */
  readonly to?: AssignmentConfig | null;
  /** Per space: how far its stream got. */
  readonly spaces: Readonly<Record<string, StreamProgress>>;
}

export const TRANSITIONS_FILE = 'transitions.json';

/**
 * Membership changes in progress and their streaming progress, in `<dataDir>/transitions.json`
 * (rewritten whole, atomically: a temp file fsynced, then renamed), or in memory only without
 * a data directory. Writes are serialised.
 */
export class TransitionStore {
  readonly #file: string | null;
  readonly #records = new Map<string, TransitionRecord>();
  #writing: Promise<void> = Promise.resolve();

  private constructor(file: string | null) {
    this.#file = file;
  }

  static async open(dataDir: string | null): Promise<TransitionStore> {
    if (dataDir === null) return new TransitionStore(null);
    mkdirSync(dataDir, { recursive: true });
    const store = new TransitionStore(join(dataDir, TRANSITIONS_FILE));
    let text: string | undefined;
    try {
      text = await readFile(store.#file!, 'utf8');
    } catch {
      return store; // none yet
    }
    const records = JSON.parse(text) as TransitionRecord[];
    for (const r of records) store.#records.set(`${r.kind}\n${r.subject}`, r);
    return store;
  }

  get records(): readonly TransitionRecord[] {
    return [...this.#records.values()];
  }

  /**
   * Records a transition as started (no progress yet), or updates its description. Durable
   * when it returns (written synchronously: a change is published right after, and a router
   * killed then must find it; changes are rare, pages of progress are not and go async).
   */
  begin(record: Omit<TransitionRecord, 'spaces'>): void {
    const key = `${record.kind}\n${record.subject}`;
    const old = this.#records.get(key);
    const next = { ...record, spaces: old?.spaces ?? {} };
    if (old !== undefined && JSON.stringify(old) === JSON.stringify(next)) return;
    this.#records.set(key, next);
    this.#persistNow();
  }

  async progress(kind: TransitionKind, subject: string): Promise<Map<string, StreamProgress>> {
    await this.#writing;
    const r = this.#records.get(`${kind}\n${subject}`);
    return new Map(Object.entries(r?.spaces ?? {}));
  }

  save(kind: TransitionKind, subject: string, spaceId: string, p: StreamProgress): Promise<void> {
    const key = `${kind}\n${subject}`;
    const r = this.#records.get(key);
    if (r === undefined) return Promise.resolve();
    this.#records.set(key, { ...r, spaces: { ...r.spaces, [spaceId]: p } });
    return this.#persist();
  }

  forget(kind: TransitionKind, subject: string): Promise<void> {
    this.#records.delete(`${kind}\n${subject}`);
    return this.#persist();
  }

  #persistNow(): void {
    const file = this.#file;
    if (file === null) return;
    const tmp = `${file}.tmp-sync`;
    const fd = openSync(tmp, 'w');
    try {
      writeSync(fd, JSON.stringify([...this.#records.values()]));
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, file);
  }

  #persist(): Promise<void> {
    const file = this.#file;
    if (file === null) return Promise.resolve();
    this.#writing = this.#writing.then(async () => {
      // The state when written, not when asked: a synchronous write in between stays included.
      const text = JSON.stringify([...this.#records.values()]);
      const tmp = `${file}.tmp-async`;
      const handle = await open(tmp, 'w');
      try {
        await handle.writeFile(text);
        await handle.sync();
      } finally {
        await handle.close();
      }
      await rename(tmp, file);
    });
    return this.#writing;
  }
}

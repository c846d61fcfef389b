import type { NodeInfo, PlacementTable } from '@engram/ring';
import { type ReplicaAccess, type StreamProgress, streamSpace } from '@engram/router';
import type { Logger } from 'pino';
import type { Timers } from './timers.js';

/** What moves data: a node joining or leaving, or a pin moving. */
export type TransitionKind = 'join' | 'leave' | 'pin';

export const StreamPhase = Object.freeze({
  /** Waiting for writes decided on older tables to finish (they do not reach new owners). */
  Waiting: 'waiting',
  Listing: 'listing',
  Streaming: 'streaming',
  Done: 'done',
} as const);
export type StreamPhase = (typeof StreamPhase)[keyof typeof StreamPhase];

export interface StreamStatus {
  readonly kind: TransitionKind;
  /** The node joining or leaving, or the space of a pin. */
  readonly subject: string;
  readonly phase: StreamPhase;
  readonly spacesTotal: number;
  readonly spacesDone: number;
  readonly entriesCopied: number;
  /** Why the last try failed (it is retried); '' while all goes well. */
  readonly lastError: string;
}

/** Totals since this process started, for /metrics. */
export interface StreamTotals {
  spaces: number;
  entries: number;
  transitions: number;
}

export interface StreamerInit {
  readonly access: ReplicaAccess;
  /** The table now: current placements (`lookup`) and future ones (`lookupFuture`). */
  readonly table: () => PlacementTable;
  readonly isUp: (nodeId: string) => boolean;
  /** The spaces the given nodes hold (ReplicaService.ListSpaces over each); rejects when one cannot list. */
  readonly listSpaces: (nodes: readonly NodeInfo[]) => Promise<string[]>;
  readonly concurrency: number;
  /** How long writes decided on an older table may still run: the operation deadline. */
  readonly fenceMs: number;
  /** Wait before a failed space is tried again. */
  readonly retryMs: number;
  /** Where each space's stream progress is kept, to resume (this router's dataDir, or etcd). */
  readonly store: StreamProgressStore;
  readonly timers: Timers;
  readonly log: Logger;
  /**
   * The transition's data is where the future placement wants it: apply the change. Rejects
   * when it could not be applied yet (etcd away, another change first): retried.
   */
  readonly complete: (kind: TransitionKind, subject: string) => void | Promise<void>;
}

/** How far each space of a transition's streams got (TransitionStore, EtcdProgressStore). */
export interface StreamProgressStore {
  progress(kind: TransitionKind, subject: string): Promise<Map<string, StreamProgress>>;
  save(kind: TransitionKind, subject: string, spaceId: string, p: StreamProgress): Promise<void>;
  forget(kind: TransitionKind, subject: string): Promise<void>;
}

interface Run {
  readonly kind: TransitionKind;
  readonly subject: string;
  phase: StreamPhase;
  spacesTotal: number;
  spacesDone: number;
  entriesCopied: number;
  lastError: string;
  cancelled: boolean;
  /** Progress writes in flight (a cancel forgets the progress only after they settle). */
  readonly saving: Set<Promise<void>>;
}

function keyOf(kind: TransitionKind, subject: string): string {
  return `${kind}\n${subject}`;
}

/**
 * Streams the data of membership changes, as Cassandra's bootstrap and decommission do. For
 * each transition: wait until writes decided on older tables are over (the new owners get
 * every write from the table that started the transition on), list the spaces involved, copy
 * each from a current replica to the nodes its future placement adds (`streamSpace`: paged,
 * idempotent, progress persisted after every page so a restarted router resumes), at most
 * `concurrency` spaces at once, a failed space retried until it lands or the transition is
 * cancelled; then `complete`, which applies the change (the joining node serves reads, the
 * leaving node goes, the pin applies).
 */
export class Streamer {
  readonly #init: StreamerInit;
  readonly #runs = new Map<string, Run>();
  readonly totals: StreamTotals = { spaces: 0, entries: 0, transitions: 0 };
  #stopped = false;

  constructor(init: StreamerInit) {
    this.#init = init;
  }

  /**
   * Stops every run and keeps its progress: another router drives data movement now (etcd
   * mode) and resumes from it.
   */
  release(): void {
    for (const run of this.#runs.values()) run.cancelled = true;
    this.#runs.clear();
  }

  /**
   * Starts a run for every transition in `wanted` not running yet, and cancels runs no longer
   * wanted (a joining node removed, a drain undone), forgetting their progress.
   */
  sync(wanted: readonly { kind: TransitionKind; subject: string }[]): void {
    if (this.#stopped) return;
    const keys = new Set(wanted.map((w) => keyOf(w.kind, w.subject)));
    for (const [key, run] of this.#runs) {
      if (keys.has(key)) continue;
      // Streamed and completing: its own change is what made it unwanted (or will fail as
      // no longer applicable); it leaves by itself.
      if (run.phase === StreamPhase.Done) continue;
      run.cancelled = true;
      this.#runs.delete(key);
      // After the progress writes still in flight: none may land after the forget.
      void Promise.allSettled(run.saving).then(() =>
        this.#init.store.forget(run.kind, run.subject).catch((err: unknown) => {
          this.#init.log.warn(
            { err, kind: run.kind, subject: run.subject },
            'progress not cleared',
          );
        }),
      );
    }
    for (const w of wanted) {
      const key = keyOf(w.kind, w.subject);
      if (this.#runs.has(key)) continue;
      const run: Run = {
        kind: w.kind,
        subject: w.subject,
        phase: StreamPhase.Waiting,
        spacesTotal: 0,
        spacesDone: 0,
        entriesCopied: 0,
        lastError: '',
        cancelled: false,
        saving: new Set(),
      };
      this.#runs.set(key, run);
      void this.#run(run).catch((err: unknown) => {
        // Not left in #runs: the next sync (a health verdict, a change) starts it again.
        if (this.#runs.get(key) === run) this.#runs.delete(key);
        this.#init.log.error({ err, kind: run.kind, subject: run.subject }, 'stream failed');
      });
    }
  }

  status(): StreamStatus[] {
    return [...this.#runs.values()].map((r) => ({
      kind: r.kind,
      subject: r.subject,
      phase: r.phase,
      spacesTotal: r.spacesTotal,
      spacesDone: r.spacesDone,
      entriesCopied: r.entriesCopied,
      lastError: r.lastError,
    }));
  }

  stop(): void {
    this.#stopped = true;
    for (const run of this.#runs.values()) run.cancelled = true;
  }

  async #run(run: Run): Promise<void> {
    const { log, store } = this.#init;
    log.info(
      { event: 'stream-start', kind: run.kind, subject: run.subject },
      `streaming for ${run.kind} ${run.subject}`,
    );
    await this.#sleep(this.#init.fenceMs);
    if (run.cancelled) return;
    run.phase = StreamPhase.Listing;
    const spaces = await this.#spaces(run);
    if (run.cancelled) return;
    run.phase = StreamPhase.Streaming;
    run.spacesTotal = spaces.length;
    const saved = await this.#until(run, () => store.progress(run.kind, run.subject), 'reading');
    if (saved === undefined) return;
    let next = 0;
    const worker = async (): Promise<void> => {
      while (!run.cancelled && next < spaces.length) {
        const spaceId = spaces[next++]!;
        const progress = await this.#streamOne(run, spaceId, saved.get(spaceId));
        if (progress === undefined) return;
        run.spacesDone++;
        this.totals.spaces++;
      }
    };
    await Promise.all(Array.from({ length: this.#init.concurrency }, worker));
    if (run.cancelled) return;
    run.phase = StreamPhase.Done;
    log.info(
      {
        event: 'stream-done',
        kind: run.kind,
        subject: run.subject,
        spaces: run.spacesDone,
        entries: run.entriesCopied,
      },
      `streamed ${run.spacesDone} spaces (${run.entriesCopied} entries) for ${run.kind} ${run.subject}`,
    );
    // The change applies first (retried: etcd may be away, or another change came first), and
    // only then is the progress forgotten: a run that cannot complete keeps what it streamed.
    const completed = await this.#until(
      run,
      async () => {
        await this.#init.complete(run.kind, run.subject);
        return true;
      },
      'completing',
    );
    if (completed === undefined) return;
    this.#runs.delete(keyOf(run.kind, run.subject));
    this.totals.transitions++;
    await store.forget(run.kind, run.subject).catch((err: unknown) => {
      log.warn({ err, kind: run.kind, subject: run.subject }, 'stream progress not cleared');
    });
  }

  /** `fn`, retried every retryMs until it succeeds; undefined when the run is cancelled. */
  async #until<T>(run: Run, fn: () => Promise<T>, doing: string): Promise<T | undefined> {
    for (;;) {
      if (run.cancelled) return undefined;
      try {
        const v = await fn();
        return run.cancelled ? undefined : v;
      } catch (err) {
        this.#failed(run, err, `${doing} ${run.kind} ${run.subject} failed; retrying`);
        await this.#sleep(this.#init.retryMs);
      }
    }
  }

  /** Spaces whose placement the transition changes. */
  async #spaces(run: Run): Promise<string[]> {
    if (run.kind === 'pin') return [run.subject];
    for (;;) {
      const table = this.#init.table();
      const holders = table.nodes.filter((n) => this.#init.isUp(n.id));
      try {
        const all = await this.#init.listSpaces(holders);
        run.lastError = '';
        return all.filter((spaceId) => this.#targets(spaceId).length > 0);
      } catch (err) {
        this.#failed(run, err, 'listing spaces failed; retrying');
        await this.#sleep(this.#init.retryMs);
        if (run.cancelled) return [];
      }
    }
  }

  /** Nodes the space's future placement adds (they get its data). */
  #targets(spaceId: string): NodeInfo[] {
    const table = this.#init.table();
    const current = table.lookup(spaceId);
    const future = table.lookupFuture(spaceId);
    const have = new Set([current.primary.id, ...current.replicas.map((n) => n.id)]);
    return [future.primary, ...future.replicas].filter((n) => !have.has(n.id));
  }

  /** Copies one space to its new owners, retrying until done; undefined when cancelled. */
  async #streamOne(
    run: Run,
    spaceId: string,
    from: StreamProgress | undefined,
  ): Promise<StreamProgress | undefined> {
    const { access, store, isUp } = this.#init;
    let progress = from ?? { after: '', copied: 0, done: false };
    while (!run.cancelled) {
      if (progress.done) return progress;
      const table = this.#init.table();
      const current = table.lookup(spaceId);
      const targets = this.#targets(spaceId);
      const source = [current.primary, ...current.replicas].find((n) => isUp(n.id));
      if (targets.length === 0) return progress;
      if (source === undefined || !targets.every((t) => isUp(t.id))) {
        run.lastError =
          source === undefined
            ? `no replica of ${spaceId} is up to stream from`
            : `a new owner of ${spaceId} is down: ${targets.filter((t) => !isUp(t.id)).map((t) => t.id)}`;
        await this.#sleep(this.#init.retryMs);
        continue;
      }
      let counted = progress.copied;
      try {
        progress = await streamSpace(access, spaceId, source, targets, progress, async (p) => {
          run.entriesCopied += p.copied - counted;
          this.totals.entries += p.copied - counted;
          counted = p.copied;
          // A cancelled run's late pages must not leave progress a later run would trust.
          if (run.cancelled) return;
          const saving = store.save(run.kind, run.subject, spaceId, p);
          run.saving.add(saving);
          try {
            await saving;
          } finally {
            run.saving.delete(saving);
          }
        });
        run.lastError = '';
        return progress;
      } catch (err) {
        this.#failed(run, err, `streaming ${spaceId} failed; retrying`);
        progress =
          (await store.progress(run.kind, run.subject).catch(() => undefined))?.get(spaceId) ??
          progress;
        await this.#sleep(this.#init.retryMs);
      }
    }
    return undefined;
  }

  /**
   * Notes a failed try (retried later). A node without ReplicaService is an error, not a
   * blip: streaming through it cannot work until it is upgraded (or removed).
   */
  #failed(run: Run, err: unknown, message: string): void {
    run.lastError = err instanceof Error ? err.message : String(err);
    const missing = (err as { code?: unknown }).code === 'ReplicaServiceMissing';
    const fields = { err, kind: run.kind, subject: run.subject };
    if (missing) this.#init.log.error(fields, `${message}: ${run.lastError}`);
    else this.#init.log.warn(fields, message);
  }

  #sleep(ms: number): Promise<void> {
    return new Promise((resolve) => this.#init.timers.setTimeout(resolve, ms));
  }
}

import { singleNodeDecision } from './decider.js';
import { LagTable } from './lag.js';
import type { Router } from './router.js';
import { type CallContext, Operation } from './types.js';

/** A hint of library use: the replica's call itself (it carries the stamped request). */
export type ReplayCall = (ctx: CallContext) => Promise<unknown>;

/** How often pending hints are tried again while any are pending. */
export const HINT_REPLAY_INTERVAL_MS = 5 * 1000; // 5 s
/** Hints replayed per node per round. */
export const HINT_REPLAY_BATCH = 100;

/**
 * Replays the hints a Router kept in its own hint store (library use), oldest first per node,
 * one single-node write each without retries: a node's replay stops at its first failure and is
 * tried again next round. Runs on an unref'd timer only while hints are pending.
 */
export class HintReplay {
  readonly #router: Router;
  #timer: ReturnType<typeof setInterval> | undefined;
  #running: Promise<number> | undefined;
  #stopped = false;

  constructor(router: Router) {
    this.#router = router;
  }

  /** Starts the periodic replay if it is not running. */
  schedule(): void {
    if (this.#timer !== undefined || this.#stopped) return;
    this.#timer = setInterval(() => {
      void this.replay();
    }, HINT_REPLAY_INTERVAL_MS);
    this.#timer.unref();
  }

  stop(): void {
    this.#stopped = true;
    if (this.#timer !== undefined) clearInterval(this.#timer);
    this.#timer = undefined;
  }

  /** One round over every node with pending hints; resolves with the hints applied. */
  replay(): Promise<number> {
    this.#running ??= this.#round().finally(() => {
      this.#running = undefined;
    });
    return this.#running;
  }

  async #round(): Promise<number> {
    const router = this.#router;
    const hints = router.hints;
    let applied = 0;
    for (const [nodeId, count] of hints.pending()) {
      if (count === 0 || this.#stopped) continue;
      for (const hint of hints.peek(nodeId, HINT_REPLAY_BATCH)) {
        const node = hint.node;
        const slot = router.slotOf(node);
        if (slot >= 0 && router.breakers.state(slot) === 'open') break;
        const decision = singleNodeDecision(
          node,
          hint.spaceId,
          router.table.epoch,
          Operation.Store,
        );
        try {
          await router.execute(decision, hint.request, {
            operation: 'hint',
            isRetryable: () => false,
          });
        } catch (error) {
          const code = (error as { code?: unknown } | null)?.code;
          // The node answered and refuses the write (a bad request): replaying cannot help.
          if (typeof code !== 'number' || code === 14 /* UNAVAILABLE */) break;
          router.logger.warn({ err: error, node: nodeId }, 'hint refused by its node: dropped');
        }
        await hints.ack(nodeId, 1);
        router.lag.add(slot, LagTable.bucketOf(hint.spaceId), -1);
        applied++;
      }
    }
    let left = 0;
    for (const n of hints.pending().values()) left += n;
    if (left === 0 && this.#timer !== undefined) {
      clearInterval(this.#timer);
      this.#timer = undefined;
    }
    return applied;
  }
}

import { Worker } from 'node:worker_threads';
import { backoffDelay, type Clock } from '@engram/retry';
import type { Logger } from 'pino';
import { type ChannelRequest, type ConfigUpdate, serveChannelRequest } from './control-channel.js';
import type { ControlChannel } from './data-plane.js';
import { SocketDuplicator } from './socket-dup.js';
import type { Timers } from './timers.js';
import type { WorkerInit, WorkerMessage } from './worker.js';

/** A crashed data-plane worker is restarted after this, doubling per recent restart… */
export const WORKER_RESTART_BASE_DELAY_MS = 100;
/** …up to this. */
export const WORKER_RESTART_MAX_DELAY_MS = 5000;
/** At most this many restarts in any `WORKER_RESTART_WINDOW_MS`; beyond, a crash is final. */
export const MAX_WORKER_RESTARTS_PER_MINUTE = 10;
export const WORKER_RESTART_WINDOW_MS = 60 * 1000;

export interface RestartPolicyOptions {
  readonly baseDelayMs: number;
  readonly maxDelayMs: number;
  readonly maxRestarts: number;
  readonly windowMs: number;
}

export const RESTART_POLICY_DEFAULTS: RestartPolicyOptions = Object.freeze({
  baseDelayMs: WORKER_RESTART_BASE_DELAY_MS,
  maxDelayMs: WORKER_RESTART_MAX_DELAY_MS,
  maxRestarts: MAX_WORKER_RESTARTS_PER_MINUTE,
  windowMs: WORKER_RESTART_WINDOW_MS,
});

/** What to do about a worker that exited: restart after `delayMs`, or give up. */
export type RestartVerdict =
  | { readonly restart: true; readonly delayMs: number; readonly recent: number }
  | { readonly restart: false; readonly recent: number };

/**
 * When to restart a crashed worker: capped exponential backoff over the restarts in the last
 * window (no jitter: one process, nothing to de-synchronise), and no restart once the window
 * holds `maxRestarts` (a thread that crashes in a loop is a bug to surface, not to hide).
 */
export class RestartPolicy {
  readonly #options: RestartPolicyOptions;
  readonly #times: number[] = [];

  constructor(options: RestartPolicyOptions = RESTART_POLICY_DEFAULTS) {
    this.#options = options;
  }

  onExit(now: number): RestartVerdict {
    const o = this.#options;
    const times = this.#times;
    while (times.length > 0 && times[0]! <= now - o.windowMs) times.shift();
    const recent = times.length;
    if (recent >= o.maxRestarts) return { restart: false, recent };
    times.push(now);
    const delayMs = backoffDelay(
      recent,
      0,
      { baseMs: o.baseDelayMs, maxMs: o.maxDelayMs, jitter: 'none' },
      Math.random,
    );
    return { restart: true, delayMs, recent };
  }
}

/** Posted by a worker once it listens. */
interface Listening {
  readonly worker: Worker;
  readonly port: number;
  readonly fd: number;
}

export interface WorkerSupervisorInit {
  readonly count: number;
  /** Everything a worker needs but its listening target. */
  readonly initFor: (thread: number) => Omit<WorkerInit, 'listen'>;
  readonly listen: { host: string; port: number };
  readonly youngGenerationMb: number;
  readonly clock: Clock;
  readonly timers: Timers;
  readonly log: Logger;
  readonly policy?: RestartPolicy;
  /** A worker exited unexpectedly (before any restart): its gauges must be zeroed. */
  readonly onExit?: (thread: number) => void;
  /** Serves a worker's request to the control plane (hints, repairs). */
  readonly channel: ControlChannel;
}

const WORKER_URL = new URL('./worker.js', import.meta.url);

/**
 * The data-plane threads: starts `count` workers (the first binds the port, the others accept
 * on their own duplicate of its socket, see SocketDuplicator), restarts one that exits
 * unexpectedly per the RestartPolicy, drains and stops them.
 */
export class WorkerSupervisor {
  readonly #init: WorkerSupervisorInit;
  readonly #policy: RestartPolicy;
  /** Live workers by thread index (null while one is being restarted). */
  readonly #workers: (Worker | null)[] = [];
  #dup: SocketDuplicator | null = null;
  #closing = false;
  #restarts = 0;
  /** The last reload's settings, and how many reloads so far (see `reconfigure`). */
  #update: ConfigUpdate | null = null;
  #updates = 0;

  constructor(init: WorkerSupervisorInit) {
    this.#init = init;
    this.#policy = init.policy ?? new RestartPolicy();
  }

  /** Workers restarted after an unexpected exit. */
  get restarts(): number {
    return this.#restarts;
  }

  get live(): Worker[] {
    return this.#workers.filter((w): w is Worker => w !== null);
  }

  /** Starts every worker; resolves with the bound port. */
  async start(): Promise<number> {
    try {
      const first = await this.#spawn(0, this.#init.listen);
      this.#watch(0, first.worker);
      if (first.fd < 0) throw new Error('cannot share the listening socket');
      // Each thread gets its own fd for the socket, so one exiting closes only its own.
      this.#dup = await SocketDuplicator.start(first.fd);
      for (let t = 1; t < this.#init.count; t++) {
        const w = await this.#spawn(t, { fd: await this.#dup.duplicate() });
        this.#watch(t, w.worker);
      }
      return first.port;
    } catch (err) {
      await this.close();
      throw err;
    }
  }

  /**
   * Sends a reload's settings to every worker. `initFor` gives a worker spawned from now on the
   * new config; one being spawned from the old gets this once it is up.
   */
  reconfigure(update: ConfigUpdate): void {
    this.#update = update;
    this.#updates++;
    for (const w of this.live) w.postMessage(update);
  }

  /** Posts to the first live worker (test hooks). */
  postToFirst(message: unknown): void {
    this.live[0]?.postMessage(message);
  }

  /** Drains every worker (see DataPlane.drain); resolves with the calls abandoned. */
  async drain(graceMs: number): Promise<number> {
    this.#closing = true;
    // The master fd would keep the socket listening once every worker closed its own: new
    // connections would wait in the backlog, never accepted, instead of being refused.
    this.#dup?.close();
    this.#dup = null;
    const left = await Promise.all(
      this.live.map(
        (w) =>
          new Promise<number>((resolve) => {
            const onMessage = (msg: WorkerMessage) => {
              if (msg.type === 'drained') resolve(msg.left);
            };
            w.on('message', onMessage);
            w.once('exit', () => resolve(0));
            w.postMessage({ type: 'drain', graceMs });
          }),
      ),
    );
    return left.reduce((a, b) => a + Math.max(0, b), 0);
  }

  async close(): Promise<void> {
    this.#closing = true;
    await Promise.all(this.live.map((w) => w.terminate()));
    this.#dup?.close();
    this.#dup = null;
  }

  #spawn(thread: number, listen: WorkerInit['listen']): Promise<Listening> {
    const mb = this.#init.youngGenerationMb;
    const updates = this.#updates;
    const worker = new Worker(WORKER_URL, {
      workerData: { ...this.#init.initFor(thread), listen } satisfies WorkerInit,
      ...(mb > 0 ? { resourceLimits: { maxYoungGenerationSizeMb: mb } } : {}),
    });
    const log = this.#init.log;
    return new Promise((resolve, reject) => {
      const onExit = (code: number) => reject(new Error(`data-plane worker exited with ${code}`));
      worker.once('error', reject);
      worker.once('exit', onExit);
      worker.once('message', (msg: WorkerMessage) => {
        worker.off('error', reject);
        worker.off('exit', onExit);
        worker.on('error', (err) => log.error({ err }, 'data-plane worker error'));
        if (msg.type === 'listening') {
          // Spawned from a config a reload replaced meanwhile: the new one, as soon as it is up.
          if (this.#updates !== updates && this.#update !== null) worker.postMessage(this.#update);
          resolve({ worker, port: msg.port, fd: msg.fd });
        } else {
          void worker.terminate();
          if (msg.type !== 'error') reject(new Error('unexpected worker message'));
          // The thread's listen() failed: the error as Node raised it there (code, syscall),
          // so the caller can tell the operator which listener and why.
          else reject(Object.assign(new Error(msg.message), { code: msg.code, syscall: 'listen' }));
        }
      });
    });
  }

  #watch(thread: number, worker: Worker): void {
    this.#workers[thread] = worker;
    worker.once('exit', (code) => this.#onExit(thread, worker, code));
    worker.on('message', (msg: WorkerMessage) => {
      if (msg.type === 'hint' || msg.type === 'repair') {
        serveChannelRequest(this.#init.channel, msg as ChannelRequest, (reply) => {
          if (this.#workers[thread] === worker) worker.postMessage(reply);
        });
      }
    });
  }

  /** A worker exited while the router runs: restart it on a fresh socket duplicate, or give up. */
  #onExit(thread: number, worker: Worker, code: number): void {
    if (this.#workers[thread] !== worker) return;
    this.#workers[thread] = null;
    if (this.#closing) return;
    this.#init.onExit?.(thread);
    const log = this.#init.log;
    const verdict = this.#policy.onExit(this.#init.clock.now());
    const dup = this.#dup;
    if (!verdict.restart || dup === null) {
      log.error(
        { event: 'worker-exit', thread, code, restarts: verdict.recent },
        `data-plane worker ${thread} exited with ${code}; not restarted (${verdict.recent} restarts in the last minute)`,
      );
      return;
    }
    log.error(
      { event: 'worker-exit', thread, code, restartInMs: verdict.delayMs },
      `data-plane worker ${thread} exited with ${code}; restarting in ${verdict.delayMs} ms`,
    );
    this.#init.timers.setTimeout(() => {
      if (this.#closing) return;
      dup
        .duplicate()
        .then((fd) => this.#spawn(thread, { fd }))
        .then(
          (w) => {
            if (this.#closing) {
              void w.worker.terminate();
              return;
            }
            this.#restarts++;
            this.#watch(thread, w.worker);
            log.warn(
              { event: 'worker-restart', thread, restarts: this.#restarts },
              `data-plane worker ${thread} restarted`,
            );
          },
          (err: unknown) => {
            log.error({ event: 'worker-restart-failed', thread, err }, 'worker restart failed');
            // Counts as another exit: retried with a longer delay, within the cap.
            this.#workers[thread] = worker;
            this.#onExit(thread, worker, -1);
          },
        );
    }, verdict.delayMs);
  }
}

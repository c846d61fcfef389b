import type { MessagePort } from 'node:worker_threads';
import type { RouterNodeConfig } from './config.js';
import type { ControlChannel } from './data-plane.js';
import type { HintRequest } from './replicated.js';

/**
 * A reload's settings for the data plane (the control plane posts it to every worker, and
 * keeps it for a worker started later): the config in force, and the retry budget's buffer
 * (a new one when `retryBudget.*` changed: its shape is fixed at creation).
 */
export interface ConfigUpdate {
  readonly type: 'config-update';
  readonly config: RouterNodeConfig;
  readonly budget: SharedArrayBuffer;
}

/** What a data-plane worker asks the control plane, and the answer it waits for. */
export type ChannelRequest =
  | { readonly type: 'hint'; readonly id: number; readonly hint: HintRequest }
  | { readonly type: 'repair'; readonly id: number; readonly spaceId: string };
export type ChannelReply = {
  readonly type: 'done';
  readonly id: number;
  readonly error?: string;
  /** A repair's answer: every replica took part. */
  readonly complete?: boolean;
};

/**
 * The data plane's ControlChannel in a worker thread: each request posted to the main thread
 * with an id, its promise settled by the matching `done`. A request the control plane could not
 * carry out rejects (the worker logs it; a lost hint is repaired later).
 */
export class PortChannel implements ControlChannel {
  readonly #port: MessagePort;
  readonly #pending = new Map<
    number,
    { resolve(complete: boolean): void; reject(e: Error): void }
  >();
  #next = 1;

  constructor(port: MessagePort) {
    this.#port = port;
  }

  /** Settles a request from the control plane's reply (the worker's message handler calls it). */
  onReply(reply: ChannelReply): void {
    const p = this.#pending.get(reply.id);
    if (p === undefined) return;
    this.#pending.delete(reply.id);
    if (reply.error === undefined) p.resolve(reply.complete ?? true);
    else p.reject(new Error(reply.error));
  }

  async add(hint: HintRequest): Promise<void> {
    await this.#request((id) => ({ type: 'hint', id, hint }));
  }

  repairSpace(spaceId: string): Promise<boolean> {
    return this.#request((id) => ({ type: 'repair', id, spaceId }));
  }

  #request(make: (id: number) => ChannelRequest): Promise<boolean> {
    const id = this.#next++;
    return new Promise<boolean>((resolve, reject) => {
      this.#pending.set(id, { resolve, reject });
      this.#port.postMessage(make(id));
    });
  }
}

/** Serves a worker's request on the main thread; posts `done` when it is carried out. */
export function serveChannelRequest(
  channel: ControlChannel,
  request: ChannelRequest,
  reply: (r: ChannelReply) => void,
): void {
  const work: Promise<boolean | undefined> =
    request.type === 'hint'
      ? channel.add(toBuffers(request.hint)).then(() => undefined)
      : channel.repairSpace(request.spaceId);
  work.then(
    (complete) =>
      reply(
        complete === undefined
          ? { type: 'done', id: request.id }
          : { type: 'done', id: request.id, complete },
      ),
    (err: unknown) =>
      reply({ type: 'done', id: request.id, error: String((err as Error)?.message ?? err) }),
  );
}

/** A Buffer posted between threads arrives as a plain Uint8Array. */
function toBuffers(hint: HintRequest): HintRequest {
  const b = hint.body as Uint8Array;
  return Buffer.isBuffer(b)
    ? hint
    : { ...hint, body: Buffer.from(b.buffer, b.byteOffset, b.byteLength) };
}

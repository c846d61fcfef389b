/**
 * The router's live heap per thread, through its inspector (the router runs with
 * `--inspect=127.0.0.1:0`): a full GC on the thread (`HeapProfiler.collectGarbage`), then
 * `Runtime.getHeapUsage`. Worker threads are reached with the NodeWorker domain (each worker
 * attaches as a session; its messages go through `NodeWorker.sendMessageToWorker`).
 *
 * Heap used read from /metrics is a point on V8's sawtooth (garbage since the last scavenge and
 * mark-compact included), tens of MB of noise; after a full GC it is what is still reachable,
 * which is what a leak grows. Needs a global WebSocket (Node ≥ 22, or Node 20 with
 * `--experimental-websocket`, as the `soak` script runs).
 */

interface Message {
  id?: number;
  method?: string;
  params?: Record<string, unknown>;
  result?: Record<string, unknown>;
  error?: { message: string };
}

/** A thread's heap after a full GC, bytes. */
export interface LiveHeap {
  readonly used: number;
  readonly total: number;
}

export class RouterInspector {
  readonly #ws: WebSocket;
  #id = 0;
  readonly #pending = new Map<number, (m: Message) => void>();
  /** Attached workers: inspector session id → thread name (worker-<workerId>). */
  readonly #workers = new Map<string, string>();
  /** Where a heap snapshot being taken writes its chunks, by session ('' = main). */
  readonly #chunks = new Map<string, (chunk: string) => void>();

  private constructor(ws: WebSocket) {
    this.#ws = ws;
    ws.addEventListener('message', (e) => this.#onMessage(JSON.parse(String(e.data)) as Message));
  }

  /** Connects to `url` (the `ws://` line the router prints on stderr) and attaches to workers. */
  static async connect(url: string): Promise<RouterInspector> {
    const ws = new WebSocket(url);
    await new Promise<void>((resolve, reject) => {
      ws.addEventListener('open', () => resolve());
      ws.addEventListener('error', () => reject(new Error(`inspector: cannot connect to ${url}`)));
    });
    const inspector = new RouterInspector(ws);
    await inspector.#send(null, 'NodeWorker.enable', { waitForDebuggerOnStart: false });
    return inspector;
  }

  #onMessage(m: Message, session = ''): void {
    if (m.id !== undefined) {
      this.#pending.get(m.id)?.(m);
      this.#pending.delete(m.id);
      return;
    }
    const p = m.params ?? {};
    if (m.method === 'NodeWorker.attachedToWorker') {
      const info = p.workerInfo as { workerId: number };
      this.#workers.set(String(p.sessionId), `worker-${info.workerId}`);
    } else if (m.method === 'NodeWorker.detachedFromWorker') {
      this.#workers.delete(String(p.sessionId));
    } else if (m.method === 'NodeWorker.receivedMessageFromWorker') {
      this.#onMessage(JSON.parse(String(p.message)) as Message, String(p.sessionId));
    } else if (m.method === 'HeapProfiler.addHeapSnapshotChunk') {
      this.#chunks.get(session)?.(String(p.chunk));
    }
  }

  /** One command on the main thread (`session` null) or on a worker's session. */
  #send(
    session: string | null,
    method: string,
    params: object = {},
  ): Promise<Record<string, unknown>> {
    const id = ++this.#id;
    const body = JSON.stringify({ id, method, params });
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#pending.delete(id);
        reject(new Error(`inspector: ${method} timed out`));
      }, 120_000); // a heap snapshot of a loaded thread on a busy machine takes a while
      this.#pending.set(id, (m) => {
        clearTimeout(timer);
        if (m.error !== undefined) reject(new Error(`inspector: ${method}: ${m.error.message}`));
        else resolve(m.result ?? {});
      });
      if (session === null) {
        this.#ws.send(body);
      } else {
        this.#ws.send(
          JSON.stringify({
            id: ++this.#id, // the wrapper's own reply is not waited for: the worker's is
            method: 'NodeWorker.sendMessageToWorker',
            params: { sessionId: session, message: body },
          }),
        );
      }
    });
  }

  /** Every thread's heap after a full GC on it (main, then each worker). */
  async liveHeaps(): Promise<Map<string, LiveHeap>> {
    const out = new Map<string, LiveHeap>();
    const threads: [string, string | null][] = [
      ['main', null],
      ...[...this.#workers].map(([session, name]) => [name, session] as [string, string]),
    ];
    for (const [name, session] of threads) {
      await this.#send(session, 'HeapProfiler.collectGarbage');
      const h = await this.#send(session, 'Runtime.getHeapUsage');
      out.set(name, { used: Number(h.usedSize), total: Number(h.totalSize) });
    }
    return out;
  }

  /**
   * A heap snapshot of each thread (it collects garbage first) written to
   * `<prefix>-<thread>.heapsnapshot`; resolves with the files. Chrome DevTools opens them, and
   * soak-heapdiff.ts compares two.
   */
  async heapSnapshots(prefix: string): Promise<string[]> {
    const { createWriteStream } = await import('node:fs');
    const files: string[] = [];
    const threads: [string, string | null][] = [
      ['main', null],
      ...[...this.#workers].map(([session, name]) => [name, session] as [string, string]),
    ];
    for (const [name, session] of threads) {
      const file = `${prefix}-${name}.heapsnapshot`;
      const out = createWriteStream(file);
      this.#chunks.set(session ?? '', (chunk) => out.write(chunk));
      try {
        await this.#send(session, 'HeapProfiler.takeHeapSnapshot', { reportProgress: false });
      } finally {
        this.#chunks.delete(session ?? '');
        await new Promise((r) => out.end(r));
      }
      files.push(file);
    }
    return files;
  }

  close(): void {
    this.#ws.close();
  }
}

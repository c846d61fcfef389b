/**
 * The soak's load generator, in its own process (soak.ts spawns it with an IPC channel, so
 * the load never runs in the router's process nor in the sampler's).
 *
 * Open loop at fixed rates, on `node:http2` with gRPC framing by hand (one serialized request
 * per space, built once), and every call's outcome read from its grpc-status:
 * - Recall at `recallPerS` and Store at `storePerS`, spread over `sessions` long-lived
 *   connections;
 * - `churnPerS` short-lived connections, each opened for one Recall and closed.
 * Calls still in flight past `maxInFlight` are not sent (counted as `shed`), so a stalled
 * router cannot make the generator pile up requests without bound.
 *
 * Before the load, `seedPerSpace` memories are stored in every Recall space through the
 * router, so a Recall answers memories rather than an empty list.
 *
 * IPC: the parent sends 'snapshot' and gets a LoadSnapshot (counters since start, latency
 * quantiles since the previous snapshot); 'stop' ends the load, closes every connection and
 * exits. If the parent goes away (IPC disconnect), the generator exits too.
 */
import * as http2 from 'node:http2';
import { MemoryServiceDefinition } from '@engram/proto';

export interface LoadConfig {
  /** host:port of the router. */
  readonly target: string;
  readonly recallPerS: number;
  readonly storePerS: number;
  readonly churnPerS: number;
  readonly sessions: number;
  readonly recallSpaces: number;
  readonly storeSpaces: number;
  readonly seedPerSpace: number;
  /** Sent as grpc-timeout; a call not closed 5 s after it is cancelled and counted. */
  readonly deadlineMs: number;
  readonly maxInFlight: number;
}

export interface LoadSnapshot {
  readonly type: 'snapshot';
  /** Calls answered with grpc-status 0, since the load started. */
  readonly ok: number;
  /** Calls that failed, by grpc-status code (or `rst`, `no-status`, `http-NNN`, `timeout`). */
  readonly errors: Record<string, number>;
  readonly shed: number;
  readonly churnConnections: number;
  /** Long-lived sessions that closed or failed and were reopened. */
  readonly sessionReopens: number;
  readonly inFlight: number;
  /** Latency of the calls finished since the previous snapshot, ms (NaN when none). */
  readonly p50Ms: number;
  readonly p99Ms: number;
  readonly maxMs: number;
}

const RECALL = '/engram.v1.MemoryService/Recall';
const STORE = '/engram.v1.MemoryService/Store';
const TICK_MS = 10;

function frame(message: Uint8Array): Buffer {
  const out = Buffer.alloc(5 + message.length);
  out.writeUInt32BE(message.length, 1);
  out.set(message, 5);
  return out;
}

function recallFrame(space: number): Buffer {
  return frame(
    MemoryServiceDefinition.Recall.requestSerialize({
      spaceId: `soak/r${space}`,
      cue: { text: 'memory', embedding: [] },
      limit: 10,
    }),
  );
}

function storeFrame(spaceId: string, i: number): Buffer {
  return frame(
    MemoryServiceDefinition.Store.requestSerialize({
      spaceId,
      memory: { content: `soak memory ${i}, about forty bytes of text`, confidence: 0.5 },
    }),
  );
}

class Load {
  readonly #c: LoadConfig;
  readonly #url: string;
  readonly #recalls: Buffer[];
  readonly #stores: Buffer[];
  readonly #sessions: (http2.ClientHttp2Session | null)[];
  #ok = 0;
  readonly #errors: Record<string, number> = {};
  #shed = 0;
  #churn = 0;
  #reopens = 0;
  #inFlight = 0;
  #latencies: number[] = [];
  #next = 0;
  #timer: ReturnType<typeof setInterval> | null = null;
  readonly #churnSessions = new Set<http2.ClientHttp2Session>();

  constructor(c: LoadConfig) {
    this.#c = c;
    this.#url = `http://${c.target}`;
    this.#recalls = Array.from({ length: c.recallSpaces }, (_, i) => recallFrame(i));
    this.#stores = Array.from({ length: c.storeSpaces }, (_, i) => storeFrame(`soak/w${i}`, i));
    this.#sessions = Array.from({ length: c.sessions }, () => null);
  }

  #session(i: number): http2.ClientHttp2Session {
    const s = this.#sessions[i];
    if (s !== null && s !== undefined && !s.closed && !s.destroyed) return s;
    if (s !== null && s !== undefined) this.#reopens++;
    const fresh = http2.connect(this.#url);
    fresh.on('error', () => {}); // its streams report; the next call reopens
    fresh.on('close', () => {
      if (this.#sessions[i] === fresh) this.#sessions[i] = null;
    });
    this.#sessions[i] = fresh;
    return fresh;
  }

  #fail(code: string): void {
    this.#errors[code] = (this.#errors[code] ?? 0) + 1;
  }

  /** One unary call; `done` runs once with the grpc-status (or why there was none). */
  #call(
    session: http2.ClientHttp2Session,
    path: string,
    body: Buffer,
    done?: (status: string) => void,
  ): void {
    const started = performance.now();
    this.#inFlight++;
    let status: string | undefined;
    let finished = false;
    const finish = (why: string) => {
      if (finished) return;
      finished = true;
      this.#inFlight--;
      const s = status ?? why;
      if (s === '0') {
        this.#ok++;
        this.#latencies.push(performance.now() - started);
      } else {
        this.#fail(s);
      }
      done?.(s);
    };
    let req: http2.ClientHttp2Stream;
    try {
      req = session.request({
        ':method': 'POST',
        ':path': path,
        'content-type': 'application/grpc',
        te: 'trailers',
        'grpc-timeout': `${this.#c.deadlineMs}m`,
      });
    } catch {
      finish('session-closed');
      return;
    }
    req.on('response', (h) => {
      const code = h[':status'];
      if (code !== 200) status = `http-${code}`;
      else if (h['grpc-status'] !== undefined) status = String(h['grpc-status']); // trailers-only
    });
    req.on('trailers', (t) => {
      if (t['grpc-status'] !== undefined) status = String(t['grpc-status']);
    });
    req.on('data', () => {});
    req.on('error', () => {});
    req.on('close', () => finish(req.rstCode ? `rst-${req.rstCode}` : 'no-status'));
    req.setTimeout(this.#c.deadlineMs + 5000, () => {
      status ??= 'timeout';
      req.close(http2.constants.NGHTTP2_CANCEL);
    });
    req.end(body);
  }

  /** A short-lived connection: one Recall, then closed. */
  #churnOne(): void {
    const s = http2.connect(this.#url);
    this.#churn++;
    this.#churnSessions.add(s);
    s.on('error', () => {});
    s.on('close', () => this.#churnSessions.delete(s));
    this.#call(s, RECALL, this.#recalls[this.#next++ % this.#recalls.length]!, () => s.close());
  }

  async seed(): Promise<void> {
    const session = this.#session(0);
    const todo: Buffer[] = [];
    for (let i = 0; i < this.#c.recallSpaces; i++) {
      for (let k = 0; k < this.#c.seedPerSpace; k++) todo.push(storeFrame(`soak/r${i}`, k));
    }
    let failed = 0;
    const worker = async () => {
      for (let f = todo.pop(); f !== undefined; f = todo.pop()) {
        const status = await new Promise<string>((r) => this.#call(session, STORE, f, r));
        if (status !== '0') failed++;
      }
    };
    await Promise.all(Array.from({ length: 16 }, worker));
    // Seeding is not the soak: its calls are not counted.
    this.#ok = 0;
    this.#latencies = [];
    for (const k of Object.keys(this.#errors)) delete this.#errors[k];
    if (failed > 0) throw new Error(`seeding: ${failed} stores failed`);
  }

  start(): void {
    const begun = performance.now();
    let recalls = 0;
    let stores = 0;
    let churns = 0;
    let rr = 0;
    this.#timer = setInterval(() => {
      const s = (performance.now() - begun) / 1000;
      const send = (due: number, sent: number, one: () => void): number => {
        let n = sent;
        for (; n < due; n++) {
          if (this.#inFlight >= this.#c.maxInFlight) this.#shed++;
          else one();
        }
        return n;
      };
      recalls = send(Math.floor(s * this.#c.recallPerS), recalls, () =>
        this.#call(
          this.#session(rr++ % this.#c.sessions),
          RECALL,
          this.#recalls[this.#next++ % this.#recalls.length]!,
        ),
      );
      stores = send(Math.floor(s * this.#c.storePerS), stores, () =>
        this.#call(
          this.#session(rr++ % this.#c.sessions),
          STORE,
          this.#stores[stores % this.#stores.length]!,
        ),
      );
      churns = send(Math.floor(s * this.#c.churnPerS), churns, () => this.#churnOne());
    }, TICK_MS);
  }

  snapshot(): LoadSnapshot {
    const l = this.#latencies.sort((a, b) => a - b);
    this.#latencies = [];
    const q = (p: number) =>
      l.length === 0 ? Number.NaN : l[Math.min(l.length - 1, Math.floor(p * l.length))]!;
    return {
      type: 'snapshot',
      ok: this.#ok,
      errors: { ...this.#errors },
      shed: this.#shed,
      churnConnections: this.#churn,
      sessionReopens: this.#reopens,
      inFlight: this.#inFlight,
      p50Ms: q(0.5),
      p99Ms: q(0.99),
      maxMs: l.length === 0 ? Number.NaN : l[l.length - 1]!,
    };
  }

  stop(): void {
    if (this.#timer !== null) clearInterval(this.#timer);
    for (const s of this.#sessions) s?.destroy();
    for (const s of this.#churnSessions) s.destroy();
  }
}

function main(): void {
  const config = JSON.parse(process.argv[2] ?? '') as LoadConfig;
  const load = new Load(config);
  const send = (m: object) => process.send?.(m);
  process.on('disconnect', () => {
    load.stop();
    process.exit(0);
  });
  process.on('message', (m: unknown) => {
    if (m === 'snapshot') send(load.snapshot());
    if (m === 'stop') {
      load.stop();
      process.send?.(load.snapshot(), () => process.exit(0));
    }
  });
  load.seed().then(
    () => {
      load.start();
      send({ type: 'started' });
    },
    (err: unknown) => {
      send({ type: 'failed', message: String(err) });
      process.exit(1);
    },
  );
}

main();

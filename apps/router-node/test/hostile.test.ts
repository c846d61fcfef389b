import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { readFileSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import {
  encodeHeaderBlock,
  FLAG,
  FRAME_TYPE,
  H2_ERROR,
  H2ClientConnection,
  SETTING,
} from '@engram/h2';
import { MemoryServiceDefinition } from '@engram/proto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { frame, PREFACE, settings, u32 } from '../../../packages/h2/test/raw-frames.js';
import { LocalCluster } from '../src/index.js';
import {
  Cleanup,
  call,
  eventually,
  memoryClient,
  metricValue,
  type RouterProcess,
  scrape,
  spawnRouter,
  testConfig,
} from './helpers.js';

// The hostile-client suite: each attack runs against one router-node (one data-plane worker,
// as deployed) in front of a real memory node, bounded in time and size, while a well-behaved
// gRPC client keeps calling. For each: the router stays up, the good client's calls all
// succeed, and the router's memory stays within a bound stated from what the attack can make
// it hold. Figures are printed at the end (RSS is the whole process: every thread's heap).

const LIMITS = Object.freeze({
  headerTimeoutMs: 500,
  bodyTimeoutMs: 1000,
  sendTimeoutMs: 1000,
  maxConcurrentStreams: 1000,
  maxConnectionsPerWorker: 11_000,
});
const MIB = 1024 * 1024;
/** Memory a router may gain in any attack beyond what the attack itself is bounded to. */
const BASE_SLACK_BYTES = 48 * MIB;
const SPACE = 'hostile-space';
const REPLY_CONTENT_BYTES = 4096;
/** A space whose Recall reply is large: what a client that never reads would pile up. */
const BIG_SPACE = 'hostile-big';
const BIG_REPLY_CONTENT_BYTES = 60 * 1024; // under memory-node's 64 KiB content limit

const cleanup = new Cleanup();
let cluster: LocalCluster;
let router: RouterProcess;
const figures: Record<string, string>[] = [];

beforeAll(async () => {
  cluster = await LocalCluster.start(1, 1);
  cleanup.add(() => cluster.stop());
  router = await spawnRouter(
    cleanup,
    testConfig({
      nodes: cluster.configs,
      workers: 1,
      listen: { host: '127.0.0.1', port: 0, ...LIMITS },
    }),
  );
  // One memory large enough that a Recall's reply is worth parking in a zero window.
  const client = memoryClient(cleanup, router.address);
  await call(client, 'store', {
    spaceId: SPACE,
    memory: { content: 'x'.repeat(REPLY_CONTENT_BYTES) },
  });
  await call(client, 'store', {
    spaceId: BIG_SPACE,
    memory: { content: 'x '.repeat(BIG_REPLY_CONTENT_BYTES / 2) },
  });
}, 60_000);

afterAll(async () => {
  if (figures.length > 0) console.table(figures);
  await cleanup.run();
}, 60_000);

function status(pid: number, field: 'VmRSS' | 'VmHWM'): number {
  const text = readFileSync(`/proc/${pid}/status`, 'utf8');
  const m = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(text);
  return Number(m![1]) * 1024;
}

/**
 * Runs `attack` while a good client calls Recall in a loop; returns the router's RSS before,
 * its peak during (the kernel's high-water mark, reset first) and the good client's tally.
 */
async function underAttack(
  name: string,
  target: RouterProcess,
  attack: () => Promise<string>,
): Promise<{ peakGrowth: number; failures: number; calls: number }> {
  const pid = target.child.pid!;
  writeFileSync(`/proc/${pid}/clear_refs`, '5'); // resets VmHWM
  const before = status(pid, 'VmRSS');
  const client = memoryClient(cleanup, target.address, true);
  let stop = false;
  let calls = 0;
  const errors: string[] = [];
  const good = (async () => {
    while (!stop) {
      try {
        await call(client, 'recall', { spaceId: SPACE, cue: { text: 'x' }, limit: 1 }, 10_000);
        calls++;
      } catch (err) {
        errors.push((err as Error).message);
      }
    }
  })();
  const started = performance.now();
  let detail: string;
  try {
    detail = await attack();
  } finally {
    stop = true;
    await good;
  }
  const peak = status(pid, 'VmHWM');
  figures.push({
    attack: name,
    'RSS before MiB': (before / MIB).toFixed(1),
    'peak MiB': (peak / MIB).toFixed(1),
    'peak growth MiB': ((peak - before) / MIB).toFixed(1),
    s: ((performance.now() - started) / 1000).toFixed(2),
    'good calls ok/failed': `${calls}/${errors.length}`,
    detail,
  });
  expect(target.child.exitCode).toBeNull();
  expect(errors).toEqual([]);
  expect(calls).toBeGreaterThan(0);
  return { peakGrowth: peak - before, failures: errors.length, calls };
}

async function connect(port = router.port): Promise<net.Socket> {
  const socket = net.connect(port, '127.0.0.1');
  socket.on('error', () => {});
  cleanup.add(() => socket.destroy());
  await once(socket, 'connect');
  return socket;
}

/** Frames a socket received, by type, and whether the router closed it. */
function watch(socket: net.Socket): {
  types: number[];
  goaway: number[];
  rst: [number, number][];
  closed: () => boolean;
} {
  let buf = Buffer.alloc(0);
  const types: number[] = [];
  const goaway: number[] = [];
  const rst: [number, number][] = [];
  let closed = false;
  socket.on('close', () => {
    closed = true;
  });
  socket.on('data', (d: Buffer) => {
    buf = Buffer.concat([buf, d]);
    while (buf.length >= 9) {
      const len = buf.readUIntBE(0, 3);
      if (buf.length < 9 + len) break;
      types.push(buf[3]!);
      if (buf[3] === FRAME_TYPE.GOAWAY) goaway.push(buf.readUInt32BE(13));
      if (buf[3] === FRAME_TYPE.RST_STREAM)
        rst.push([buf.readUInt32BE(5) & 0x7fffffff, buf.readUInt32BE(9)]);
      buf = buf.subarray(9 + len);
    }
  });
  return { types, goaway, rst, closed: () => closed };
}

/** A gRPC Recall's request headers (`te` added where a test sends a whole request). */
const GRPC_RECALL = [
  ':method',
  'POST',
  ':scheme',
  'http',
  ':path',
  '/engram.v1.MemoryService/Recall',
  ':authority',
  'router',
  'content-type',
  'application/grpc',
];
const RECALL_HEADERS = encodeHeaderBlock([...GRPC_RECALL, 'te', 'trailers']);

function recallBody(spaceId = SPACE): Buffer {
  const msg = MemoryServiceDefinition.Recall.requestSerialize({
    spaceId,
    cue: { text: 'x' },
    limit: 1,
  });
  const body = Buffer.alloc(5 + msg.length);
  body.writeUInt32BE(msg.length, 1);
  msg.copy(body, 5);
  return body;
}

const HANDSHAKE = Buffer.concat([PREFACE, settings()]);
/** The stall sweep's period at most (@engram/h2: a quarter of the shortest limit, ≤ 1 s). */
const MAX_SWEEP_PERIOD_MS = 1000;
/** What a busy shared machine may add to any deadline here: scheduling, not the rule tested. */
const SCHEDULING_ALLOWANCE_MS = 5_000;
/** The longest a stall timeout may take to act: its limit plus two sweep periods. */
const stallWindow = (limitMs: number) =>
  limitMs + 2 * MAX_SWEEP_PERIOD_MS + SCHEDULING_ALLOWANCE_MS;

/** Request headers of a plain HTTP request (not gRPC). */
function plainRequest(method: string, contentType: string | null): string[] {
  const list = [':method', method, ':scheme', 'http', ':path', '/', ':authority', 'router'];
  if (contentType !== null) list.push('content-type', contentType);
  return list;
}

/** Sends one request, collects the reply's status, body and how the stream ended. */
async function plainExchange(
  list: string[],
): Promise<{ status: string; body: string; headers: readonly string[] }> {
  const h2 = H2ClientConnection.connect({ host: '127.0.0.1', port: router.port });
  cleanup.add(() => h2.destroy());
  return new Promise((resolve) => {
    let headers: readonly string[] = [];
    const chunks: Buffer[] = [];
    h2.request(list, null, {
      onHeaders(_s, h) {
        headers = h;
      },
      onData(_s, chunk) {
        chunks.push(Buffer.from(chunk));
      },
      onClose() {
        const status = headers[headers.indexOf(':status') + 1] ?? '';
        resolve({ status, body: Buffer.concat(chunks).toString(), headers });
      },
    });
  });
}

describe('requests that are not gRPC', () => {
  it('get HTTP 405 (another method) or 415 (another content type) with a text body', async () => {
    const get = await plainExchange(plainRequest('GET', null));
    expect(get.status).toBe('405');
    expect(get.headers).toContain('allow');
    expect(get.body).toMatch(/gRPC/);
    const json = await plainExchange(plainRequest('POST', 'application/json'));
    expect(json.status).toBe('415');
    expect(json.body).toMatch(/content type/);
    const prefixed = await plainExchange(plainRequest('POST', 'application/grpcx'));
    expect(prefixed.status).toBe('415');
  });

  it('hold their stream open behind a zero window, so maxConcurrentStreams holds (REFUSED_STREAM)', async () => {
    const socket = await connect();
    const w = watch(socket);
    const refused: number[] = [];
    socket.on('data', () => {});
    const parts: Buffer[] = [PREFACE, settings([SETTING.INITIAL_WINDOW_SIZE, 0])];
    const block = encodeHeaderBlock(plainRequest('GET', null));
    for (let i = 0; i <= LIMITS.maxConcurrentStreams; i++) {
      parts.push(frame(FRAME_TYPE.HEADERS, FLAG.END_HEADERS | FLAG.END_STREAM, 1 + 2 * i, block));
    }
    socket.write(Buffer.concat(parts));
    await eventually(() => w.rst.some(([id]) => id === 1 + 2 * LIMITS.maxConcurrentStreams));
    for (const [id, code] of w.rst)
      if (id === 1 + 2 * LIMITS.maxConcurrentStreams) refused.push(code);
    expect(refused).toEqual([H2_ERROR.REFUSED_STREAM]);
  });
});

describe('HTTP/2 conformance through the router (RFC 9113)', () => {
  const GRPC = GRPC_RECALL;
  const malformed: [string, string[]][] = [
    ['an uppercase field name (§8.2)', [...GRPC, 'X-Upper', 'v']],
    ['a pseudo-header after a regular field (§8.3)', ['te', 'trailers', ...GRPC]],
    ['an unknown pseudo-header (§8.3)', [...GRPC, ':bogus', 'v']],
    ['a response pseudo-header in a request (§8.3)', [...GRPC, ':status', '200']],
    ['no :path (§8.3.1)', GRPC.filter((_, i) => i !== 4 && i !== 5)],
    ['a second :method (§8.3.1)', [...GRPC.slice(0, 2), ':method', 'POST', ...GRPC.slice(2)]],
    ['a connection-specific field (§8.2.2)', [...GRPC, 'connection', 'keep-alive']],
    ['te other than trailers (§8.2.2)', [...GRPC, 'te', 'gzip']],
  ];

  it.each(malformed)(
    'resets a request with %s (PROTOCOL_ERROR), and the connection serves on',
    async (_n, list) => {
      const socket = await connect();
      const w = watch(socket);
      const body = recallBody();
      socket.write(
        Buffer.concat([
          HANDSHAKE,
          frame(FRAME_TYPE.HEADERS, FLAG.END_HEADERS, 1, encodeHeaderBlock(list)),
          frame(FRAME_TYPE.DATA, FLAG.END_STREAM, 1, body),
          frame(FRAME_TYPE.HEADERS, FLAG.END_HEADERS, 3, RECALL_HEADERS),
          frame(FRAME_TYPE.DATA, FLAG.END_STREAM, 3, body),
        ]),
      );
      // Stream 3 is answered in full (HEADERS, DATA, trailers): the connection lived on.
      await eventually(() => w.types.filter((t) => t === FRAME_TYPE.HEADERS).length === 2);
      expect(w.rst.filter(([id]) => id === 1)).toEqual([[1, H2_ERROR.PROTOCOL_ERROR]]);
      expect(w.goaway).toEqual([]);
    },
  );

  it('resets a request whose DATA disagrees with its content-length (§8.1.1)', async () => {
    const socket = await connect();
    const w = watch(socket);
    const body = recallBody();
    const list = [...GRPC, 'content-length', String(body.length + 10)];
    socket.write(
      Buffer.concat([
        HANDSHAKE,
        frame(FRAME_TYPE.HEADERS, FLAG.END_HEADERS, 1, encodeHeaderBlock(list)),
        frame(FRAME_TYPE.DATA, FLAG.END_STREAM, 1, body),
      ]),
    );
    await eventually(() => w.rst.length > 0);
    expect(w.rst).toEqual([[1, H2_ERROR.PROTOCOL_ERROR]]);
  });

  it('closes the connection on a stream id lower than one used (§5.1.1), and on HEADERS for a stream both sides ended (§5.1)', async () => {
    const lower = await connect();
    const a = watch(lower);
    lower.write(
      Buffer.concat([
        HANDSHAKE,
        frame(
          FRAME_TYPE.HEADERS,
          FLAG.END_HEADERS | FLAG.END_STREAM,
          5,
          encodeHeaderBlock(plainRequest('GET', null)),
        ),
        frame(
          FRAME_TYPE.HEADERS,
          FLAG.END_HEADERS | FLAG.END_STREAM,
          3,
          encodeHeaderBlock(plainRequest('GET', null)),
        ),
      ]),
    );
    await eventually(() => a.goaway.length > 0);
    expect(a.goaway).toEqual([H2_ERROR.PROTOCOL_ERROR]);

    const ended = await connect();
    const b = watch(ended);
    const body = recallBody();
    ended.write(
      Buffer.concat([
        HANDSHAKE,
        frame(FRAME_TYPE.HEADERS, FLAG.END_HEADERS, 1, RECALL_HEADERS),
        frame(FRAME_TYPE.DATA, FLAG.END_STREAM, 1, body),
      ]),
    );
    await eventually(() => b.types.filter((t) => t === FRAME_TYPE.HEADERS).length === 2);
    ended.write(frame(FRAME_TYPE.HEADERS, FLAG.END_HEADERS | FLAG.END_STREAM, 1, RECALL_HEADERS));
    await eventually(() => b.goaway.length > 0);
    expect(b.goaway).toEqual([H2_ERROR.STREAM_CLOSED]);
  });

  it('resets a stream that depends on itself (RFC 7540 §5.3.1)', async () => {
    const socket = await connect();
    const w = watch(socket);
    const priority = Buffer.alloc(5);
    priority.writeUInt32BE(1);
    socket.write(
      Buffer.concat([
        HANDSHAKE,
        frame(FRAME_TYPE.HEADERS, FLAG.END_HEADERS, 1, RECALL_HEADERS),
        frame(FRAME_TYPE.PRIORITY, 0, 1, priority),
      ]),
    );
    await eventually(() => w.rst.length > 0);
    expect(w.rst).toEqual([[1, H2_ERROR.PROTOCOL_ERROR]]);
  });
});

describe('hostile clients', () => {
  it('slowloris on headers: connections trickling a frame a byte at a time are closed', async () => {
    const COUNT = 200;
    const { peakGrowth } = await underAttack('slowloris headers', router, async () => {
      const headers = frame(FRAME_TYPE.HEADERS, FLAG.END_HEADERS, 1, RECALL_HEADERS);
      const sockets = await Promise.all(Array.from({ length: COUNT }, () => connect()));
      const watched = sockets.map(watch);
      const started = performance.now();
      for (const s of sockets) s.write(Buffer.concat([HANDSHAKE, headers.subarray(0, 3)]));
      let sent = 3;
      const trickle = setInterval(() => {
        if (sent >= headers.length - 1) return;
        for (const s of sockets) if (!s.destroyed) s.write(headers.subarray(sent, sent + 1));
        sent++;
      }, LIMITS.headerTimeoutMs / 5);
      try {
        await eventually(
          () => watched.every((w) => w.closed()),
          stallWindow(LIMITS.headerTimeoutMs),
        );
      } finally {
        clearInterval(trickle);
      }
      const took = performance.now() - started;
      expect(took).toBeGreaterThanOrEqual(LIMITS.headerTimeoutMs);
      return `${COUNT} conns closed after ${took.toFixed(0)} ms (limit ${LIMITS.headerTimeoutMs})`;
    });
    expect(peakGrowth).toBeLessThan(BASE_SLACK_BYTES);
  });

  it('slowloris on bodies: requests trickling their body get 408 and a reset', async () => {
    const COUNT = 200;
    const { peakGrowth } = await underAttack('slowloris bodies', router, async () => {
      const sockets = await Promise.all(Array.from({ length: COUNT }, () => connect()));
      const watched = sockets.map(watch);
      const body = recallBody();
      for (const s of sockets) {
        s.write(
          Buffer.concat([
            HANDSHAKE,
            frame(FRAME_TYPE.HEADERS, FLAG.END_HEADERS, 1, RECALL_HEADERS),
            frame(FRAME_TYPE.DATA, 0, 1, body.subarray(0, 1)),
          ]),
        );
      }
      let sent = 1;
      const trickle = setInterval(() => {
        if (sent >= body.length - 1) return;
        for (const s of sockets)
          s.write(frame(FRAME_TYPE.DATA, 0, 1, body.subarray(sent, sent + 1)));
        sent++;
      }, LIMITS.bodyTimeoutMs / 10);
      try {
        await eventually(
          () => watched.every((w) => w.types.includes(FRAME_TYPE.RST_STREAM)),
          stallWindow(LIMITS.bodyTimeoutMs),
        );
      } finally {
        clearInterval(trickle);
      }
      expect(watched.every((w) => !w.closed())).toBe(true); // only the stream was ended
      return `${COUNT} requests answered 408 + RST_STREAM`;
    });
    expect(peakGrowth).toBeLessThan(BASE_SLACK_BYTES);
  });

  it('10k idle connections cost a bounded amount each, and calls go on', async () => {
    const COUNT = 10_000;
    /** What one idle connection may cost the router: socket, HTTP/2 state, HPACK tables. */
    const PER_CONNECTION_BOUND_BYTES = 32 * 1024;
    let perConnection = 0;
    // A router with the default stall limits: this router's 500 ms header timeout is for the
    // slowloris tests, and a machine busy with 10k connects could stall a read that long.
    const own = await spawnRouter(
      cleanup,
      testConfig({
        nodes: cluster.configs,
        workers: 1,
        listen: { host: '127.0.0.1', port: 0, maxConnectionsPerWorker: COUNT + 100 },
      }),
    );
    const { peakGrowth } = await underAttack('10k idle connections', own, async () => {
      const before = status(own.child.pid!, 'VmRSS');
      const sockets: net.Socket[] = [];
      const ping = frame(FRAME_TYPE.PING, 0, 0, Buffer.alloc(8));
      // In batches, each answered before the next: the attack is holding 10k connections, not
      // a connect flood.
      for (let i = 0; i < COUNT; i += 500) {
        const batch = await Promise.all(
          Array.from({ length: Math.min(500, COUNT - i) }, () => connect(own.port)),
        );
        const acked = batch.map((s) => {
          const w = watch(s);
          s.write(Buffer.concat([HANDSHAKE, ping]));
          return () => w.types.includes(FRAME_TYPE.PING);
        });
        await eventually(() => acked.every((a) => a()), 30_000);
        sockets.push(...batch);
      }
      expect(sockets.filter((s) => s.destroyed)).toHaveLength(0);
      const held = status(own.child.pid!, 'VmRSS');
      perConnection = (held - before) / COUNT;
      for (const s of sockets) s.destroy();
      return `${COUNT} conns held: ${((held - before) / MIB).toFixed(1)} MiB, ${(perConnection / 1024).toFixed(1)} KiB each`;
    });
    expect(perConnection).toBeLessThan(PER_CONNECTION_BOUND_BYTES);
    expect(peakGrowth).toBeLessThan(BASE_SLACK_BYTES + COUNT * PER_CONNECTION_BOUND_BYTES);
  }, 120_000);

  it('a peer that never reads (zero window) cannot park replies: they are reset', async () => {
    const STREAMS = 500;
    const { peakGrowth } = await underAttack('zero window', router, async () => {
      const socket = await connect();
      const w = watch(socket);
      const body = recallBody();
      const parts: Buffer[] = [PREFACE, settings([SETTING.INITIAL_WINDOW_SIZE, 0])];
      for (let i = 0; i < STREAMS; i++) {
        parts.push(frame(FRAME_TYPE.HEADERS, FLAG.END_HEADERS, 1 + 2 * i, RECALL_HEADERS));
        parts.push(frame(FRAME_TYPE.DATA, FLAG.END_STREAM, 1 + 2 * i, body));
      }
      socket.write(Buffer.concat(parts));
      await eventually(
        () => w.types.filter((t) => t === FRAME_TYPE.RST_STREAM).length === STREAMS,
        stallWindow(LIMITS.sendTimeoutMs),
      );
      return `${STREAMS} parked replies reset`;
    });
    // Bounded by what it asked for: every reply held once, until the send timeout.
    expect(peakGrowth).toBeLessThan(BASE_SLACK_BYTES + 2 * STREAMS * REPLY_CONTENT_BYTES);
  }, 60_000);

  it('a peer that grants every window but never reads its socket is closed', async () => {
    // ~24 MiB of replies: more than loopback's socket buffers hold, within one connection's
    // stream limit.
    const REQUESTS = 400;
    const limited = async () =>
      metricValue(
        await scrape(router.metricsPort),
        'engram_router_ingress_limited_total',
        'kind="unread"',
      );
    const before = await limited();
    const { peakGrowth } = await underAttack('never reads TCP', router, async () => {
      const socket = await connect();
      socket.pause();
      const body = recallBody(BIG_SPACE);
      const parts: Buffer[] = [
        PREFACE,
        settings([SETTING.INITIAL_WINDOW_SIZE, 2 ** 31 - 1]),
        frame(FRAME_TYPE.WINDOW_UPDATE, 0, 0, u32(2 ** 31 - 1 - 65_535)),
      ];
      for (let i = 0; i < REQUESTS; i++) {
        parts.push(frame(FRAME_TYPE.HEADERS, FLAG.END_HEADERS, 1 + 2 * i, RECALL_HEADERS));
        parts.push(frame(FRAME_TYPE.DATA, FLAG.END_STREAM, 1 + 2 * i, body));
      }
      socket.write(Buffer.concat(parts));
      await eventually(async () => (await limited()) > before, stallWindow(LIMITS.sendTimeoutMs));
      return `${REQUESTS} requests, replies never read: connection closed`;
    });
    // What it asked for, held until the send timeout: each reply at most three times over (the
    // upstream's chunks, the framed reply with field 15, the socket's queue) before GC.
    expect(peakGrowth).toBeLessThan(BASE_SLACK_BYTES + 3 * REQUESTS * BIG_REPLY_CONTENT_BYTES);
  }, 60_000);

  it('HPACK bomb: a small header block that decodes huge is refused', async () => {
    const { peakGrowth } = await underAttack('HPACK bomb', router, async () => {
      // One 4 KiB literal added to the dynamic table, then indexed 4000 times: ~16 MiB decoded.
      const name = Buffer.from('x-bomb');
      const value = Buffer.alloc(4000, 0x61);
      // Value length 4000 with a 7-bit prefix: 127, then 3873 in 7-bit groups (0xa1 0x1e).
      const len = Buffer.from([0x7f, 0xa1, 0x1e]);
      const insert = Buffer.concat([Buffer.from([0x40, name.length]), name, len, value]);
      const block = Buffer.concat([
        RECALL_HEADERS,
        insert,
        Buffer.alloc(4000, 0xbe), // indexed field 62: the entry just inserted
      ]);
      const socket = await connect();
      const w = watch(socket);
      socket.write(HANDSHAKE);
      // HEADERS then CONTINUATIONs of at most 16 000 bytes; the last one ends the block.
      for (let at = 0; at < block.length; at += 16_000) {
        const end = Math.min(block.length, at + 16_000);
        socket.write(
          frame(
            at === 0 ? FRAME_TYPE.HEADERS : FRAME_TYPE.CONTINUATION,
            end === block.length ? FLAG.END_HEADERS : 0,
            1,
            block.subarray(at, end),
          ),
        );
      }
      await eventually(() => w.closed(), 10_000);
      // Refused as it decodes (the decoder's own cap), not left to the header timeout.
      expect(w.goaway).toEqual([H2_ERROR.COMPRESSION_ERROR]);
      return `${block.length}-byte block decoding to ~16 MiB: GOAWAY COMPRESSION_ERROR`;
    });
    expect(peakGrowth).toBeLessThan(BASE_SLACK_BYTES);
  });

  it('CONTINUATION bomb: an endless header block is cut off', async () => {
    const { peakGrowth } = await underAttack('CONTINUATION bomb', router, async () => {
      const socket = await connect();
      const w = watch(socket);
      socket.write(HANDSHAKE);
      // Just past the router's cap on a header block (4 × maxHeaderListBytes + one frame),
      // in one write and nothing after it: the router has read all of it when it gives up, so
      // its GOAWAY is not lost to a reset.
      const cap = 4 * 64 * 1024 + 16_384;
      const junk = frame(FRAME_TYPE.CONTINUATION, 0, 1, Buffer.alloc(16_000, 0x61));
      const frames = Math.ceil(cap / 16_000) + 1;
      socket.write(
        Buffer.concat([
          frame(FRAME_TYPE.HEADERS, 0, 1, RECALL_HEADERS),
          ...Array.from({ length: frames }, () => junk),
        ]),
      );
      await eventually(() => w.closed(), 10_000);
      expect(w.goaway).toContain(H2_ERROR.ENHANCE_YOUR_CALM);
      return `closed: GOAWAY ENHANCE_YOUR_CALM after ${frames} × 16 000-byte CONTINUATIONs`;
    });
    expect(peakGrowth).toBeLessThan(BASE_SLACK_BYTES);
  });

  it('RST flood: streams opened and reset without end get ENHANCE_YOUR_CALM', async () => {
    const { peakGrowth } = await underAttack('RST flood', router, async () => {
      const socket = await connect();
      const w = watch(socket);
      const parts: Buffer[] = [HANDSHAKE];
      for (let i = 0; i < 5000; i++) {
        parts.push(frame(FRAME_TYPE.HEADERS, FLAG.END_HEADERS, 1 + 2 * i, RECALL_HEADERS));
        parts.push(frame(FRAME_TYPE.RST_STREAM, 0, 1 + 2 * i, u32(H2_ERROR.CANCEL)));
      }
      socket.write(Buffer.concat(parts));
      await eventually(() => w.goaway.length > 0, 10_000);
      expect(w.goaway[0]).toBe(H2_ERROR.ENHANCE_YOUR_CALM);
      return '5000 open+reset pairs: GOAWAY ENHANCE_YOUR_CALM';
    });
    expect(peakGrowth).toBeLessThan(BASE_SLACK_BYTES);
  });

  it('oversize messages are refused without being held', async () => {
    const COUNT = 8;
    const MESSAGE_BYTES = 8 * MIB; // twice router.maxMessageBytes' default
    const { peakGrowth } = await underAttack('oversize messages', router, async () => {
      const socket = await connect();
      const w = watch(socket);
      socket.write(Buffer.concat([PREFACE, settings()]));
      // Windows big enough to send it all: the router must drop it, not keep it.
      socket.write(frame(FRAME_TYPE.WINDOW_UPDATE, 0, 0, u32(2 ** 30)));
      const head = Buffer.alloc(5);
      head.writeUInt32BE(MESSAGE_BYTES, 1);
      const chunk = Buffer.alloc(16_000, 0x61);
      for (let i = 0; i < COUNT; i++) {
        const id = 1 + 2 * i;
        socket.write(frame(FRAME_TYPE.HEADERS, FLAG.END_HEADERS, id, RECALL_HEADERS));
        socket.write(frame(FRAME_TYPE.DATA, 0, id, head));
        for (let sent = 0; sent < MESSAGE_BYTES; sent += chunk.length) {
          const last = sent + chunk.length >= MESSAGE_BYTES;
          if (!socket.write(frame(FRAME_TYPE.DATA, last ? FLAG.END_STREAM : 0, id, chunk))) {
            await once(socket, 'drain');
          }
        }
      }
      await eventually(
        () => w.types.filter((t) => t === FRAME_TYPE.HEADERS).length >= COUNT,
        30_000,
      );
      return `${COUNT} × ${MESSAGE_BYTES / MIB} MiB requests: RESOURCE_EXHAUSTED`;
    });
    // One message at most is held at a time, and only up to the limit.
    expect(peakGrowth).toBeLessThan(BASE_SLACK_BYTES + 4 * MIB);
  }, 120_000);

  it('random bytes after the preface close that connection only', async () => {
    const COUNT = 100;
    const { peakGrowth } = await underAttack('random bytes', router, async () => {
      const sockets = await Promise.all(Array.from({ length: COUNT }, () => connect()));
      const watched = sockets.map(watch);
      for (const s of sockets) s.write(Buffer.concat([PREFACE, randomBytes(64 * 1024)]));
      await eventually(() => watched.every((w) => w.closed()), 10_000);
      return `${COUNT} connections closed`;
    });
    expect(peakGrowth).toBeLessThan(BASE_SLACK_BYTES);
  });
});

// HPACK micro-benchmarks on real nghttp2 output: the first and second request blocks a Node
// http2 (nghttp2) client sends for a typical gRPC call on one session, plus our encoder on a
// response-headers and a trailers block. Run: pnpm --filter @engram/h2 exec tsx bench/hpack.ts
// No baseline HPACK implementation is a dependency of this package, so only ours is measured.
import http2 from 'node:http2';
import net from 'node:net';
import { BenchReport, benchTime, tinybenchRows } from '@engram/bench-kit';
import { Bench } from 'tinybench';
import { HpackDecoder, HpackEncoder } from '../src/internal/hpack.js';

const BATCH = 100; // ops per task call, so timer overhead stays out of the figures
const report = new BenchReport('h2-hpack');
const TIME_MS = Number(process.env.HPACK_BENCH_TIME_MS ?? benchTime(1000, 200));

const GRPC_REQUEST = {
  ':method': 'POST',
  ':path': '/engram.v1.Router/Route',
  'content-type': 'application/grpc',
  te: 'trailers',
  'user-agent': 'grpc-node-js/1.12.6',
  'grpc-accept-encoding': 'identity,deflate,gzip',
  'accept-encoding': 'identity',
  'grpc-timeout': '999990u',
};

/** The header blocks of the first two requests a Node http2 client sends on a fresh session. */
async function captureRequestBlocks(): Promise<[Buffer, Buffer]> {
  const blocks: Buffer[] = [];
  let done: () => void = () => {};
  const twoBlocks = new Promise<void>((resolve) => {
    done = resolve;
  });
  const server = net.createServer((socket) => {
    let data = Buffer.alloc(0);
    socket.write(Buffer.from([0, 0, 0, 4, 0, 0, 0, 0, 0])); // empty SETTINGS
    socket.on('data', (chunk: Buffer) => {
      data = Buffer.concat([data, chunk]);
      let p = 24; // client preface
      const parsed: Buffer[] = [];
      while (p + 9 <= data.length) {
        const length = data.readUIntBE(p, 3);
        if (p + 9 + length > data.length) break;
        if (data[p + 3] === 1) {
          // HEADERS; Node sends neither padding nor priority here, and these fit one frame
          parsed.push(Buffer.from(data.subarray(p + 9, p + 9 + length)));
        }
        p += 9 + length;
      }
      if (parsed.length >= 2) {
        blocks.push(...parsed.slice(0, 2));
        done();
      }
    });
    socket.on('error', () => {});
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  const session = http2.connect(`http://127.0.0.1:${port}`);
  session.on('error', () => {});
  for (let i = 0; i < 2; i++)
    session.request(GRPC_REQUEST, { endStream: true }).on('error', () => {});
  await twoBlocks;
  session.destroy();
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return [blocks[0] as Buffer, blocks[1] as Buffer];
}

const [first, second] = await captureRequestBlocks();
// Size updates to 0 then back to 4096 empty the dynamic table, so every decode of this block
// re-inserts its entries as on a fresh session; the decoder's Huffman-literal cache stays warm,
// so the "new decoder" row below shows the fully cold cost (construction included).
const freshFirst = Buffer.concat([Buffer.from([0x20, 0x3f, 0xe1, 0x1f]), first]);

const steady = new HpackDecoder();
const out: string[] = [];
steady.decode(first, 0, first.length, out);
out.length = 0;
steady.decode(second, 0, second.length, out);
const fields = out.length / 2;
const fresh = new HpackDecoder();

const encoder = new HpackEncoder();
const RESPONSE = [
  ':status',
  '200',
  'content-type',
  'application/grpc',
  'grpc-encoding',
  'identity',
];
const TRAILERS = ['grpc-status', '0', 'grpc-message', ''];
const encodeOut = new Uint8Array(256);
// What router-node sends a memory node for each forwarded Recall: the same fields every time
// but the deadline. A connection's encoder indexes them (one or two octets each after the
// first call); the stateless one writes every literal again.
const upstreamRequest = (timeout: string) => [
  ':method',
  'POST',
  ':scheme',
  'http',
  ':path',
  '/engram.v1.MemoryService/Recall',
  ':authority',
  '127.0.0.1:7001',
  'grpc-timeout',
  timeout,
  'te',
  'trailers',
  'content-type',
  'application/grpc',
  'user-agent',
  'h2load nghttp2/1.52.0',
];
const TIMEOUTS = ['1999m', '1998m', '1997m', '1996m'].map(upstreamRequest);
const indexing = new HpackEncoder({ tableSize: 4096 });
const octets = (e: HpackEncoder, headers: readonly string[]) => e.encode(headers, encodeOut, 0);
octets(indexing, TIMEOUTS[0]!); // the first call of the connection put the fields in
const statelessOctets = octets(encoder, TIMEOUTS[1]!);
const indexedOctets = octets(indexing, TIMEOUTS[1]!);

let sink = 0;
const bench = new Bench({ time: TIME_MS, warmupTime: benchTime(200, 50) });
bench
  .add(`decode 2nd nghttp2 request block (${second.length} B, ${fields} fields, indexed)`, () => {
    for (let i = 0; i < BATCH; i++) {
      out.length = 0;
      steady.decode(second, 0, second.length, out);
    }
    sink += out.length;
  })
  .add(`decodeList, the same 2nd block again (connections: a repeated block's list reused)`, () => {
    for (let i = 0; i < BATCH; i++) sink += steady.decodeList(second, 0, second.length).length;
  })
  .add(
    `decode 1st nghttp2 request block (${first.length} B, Huffman + inserts, table emptied each time)`,
    () => {
      for (let i = 0; i < BATCH; i++) {
        out.length = 0;
        fresh.decode(freshFirst, 0, freshFirst.length, out);
      }
      sink += out.length;
    },
  )
  .add(
    `decode 1st nghttp2 request block on a new HpackDecoder (cold, construction included)`,
    () => {
      for (let i = 0; i < BATCH; i++) {
        out.length = 0;
        new HpackDecoder().decode(first, 0, first.length, out);
      }
      sink += out.length;
    },
  )
  .add('encode response headers (:status 200, content-type, grpc-encoding)', () => {
    for (let i = 0; i < BATCH; i++) sink += encoder.encode(RESPONSE, encodeOut, 0);
  })
  .add('encode trailers (grpc-status 0, grpc-message "")', () => {
    for (let i = 0; i < BATCH; i++) sink += encoder.encode(TRAILERS, encodeOut, 0);
  })
  .add(`encode router upstream request, stateless (9 fields, ${statelessOctets} B)`, () => {
    for (let i = 0; i < BATCH; i++) sink += encoder.encode(TIMEOUTS[i & 3]!, encodeOut, 0);
  })
  .add(`encode router upstream request, indexing, steady (9 fields, ${indexedOctets} B)`, () => {
    for (let i = 0; i < BATCH; i++) sink += indexing.encode(TIMEOUTS[i & 3]!, encodeOut, 0);
  })
  .add(`encode router upstream request, indexing, the same fields again (copied)`, () => {
    // A deadline that rounds to the same grpc-timeout each call: the block of the call before.
    for (let i = 0; i < BATCH; i++) sink += indexing.encode(TIMEOUTS[0]!, encodeOut, 0);
  });
await bench.run();

if (sink === 0) report.note('sink empty: the work may have been optimised away');
// No JavaScript HPACK codec is in this run to compare with (node:http2's is nghttp2, in C,
// not callable alone); the reference row is the steady-state decode, an indexed block.
const rows = tinybenchRows(bench, BATCH);
report.table({
  title: `HPACK, ours, per block (batches of ${BATCH}; p99 = of per-batch means)`,
  unit: 'ns/op',
  baseline: rows[0]!.name,
  rows,
});
report.write();

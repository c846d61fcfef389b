// What a real memory node (grpc-js + protobufjs) answers for crafted request bodies.
import http2 from 'node:http2';
import zlib from 'node:zlib';
import { LocalCluster } from '../dist/internal/local-cluster.js';

const c = await LocalCluster.start(1, 1);
const addr = `127.0.0.1:${c.nodes[0].port}`;
const s = http2.connect(`http://${addr}`);
function frame(bytes, flag = 0) {
  const b = Buffer.alloc(5 + bytes.length);
  b[0] = flag;
  b.writeUInt32BE(bytes.length, 1);
  Buffer.from(bytes).copy(b, 5);
  return b;
}
function call(method, body, extra = {}) {
  return new Promise((resolve) => {
    const st = s.request({
      ':method': 'POST',
      ':path': `/engram.v1.MemoryService/${method}`,
      'content-type': 'application/grpc',
      te: 'trailers',
      ...extra,
    });
    let out = {};
    const chunks = [];
    st.on('response', (h) => {
      out = { ...h };
    });
    st.on('data', (d) => chunks.push(d));
    st.on('trailers', (t) => {
      out = { ...out, ...t };
    });
    st.on('close', () =>
      resolve({
        status: out['grpc-status'],
        message: out['grpc-message'],
        enc: out['grpc-encoding'],
        acc: out['grpc-accept-encoding'],
        bodyFlag: chunks.length ? Buffer.concat(chunks)[0] : undefined,
      }),
    );
    st.end(body);
  });
}
const S = (s) => [...Buffer.from(s)];
const cases = {
  'field 1 wire type 0 (08 05 then 5 bytes)': ['Recall', frame([0x08, 0x05, ...S('abcde')])],
  'field 1 wire type 0 alone (08 05)': ['Recall', frame([0x08, 0x05])],
  'truncated field 1 at top level (0a 05 61)': ['Recall', frame([0x0a, 0x05, 0x61])],
  'truncated memory (12 05 0a)': ['Store', frame([0x0a, 0x01, 0x61, 0x12, 0x05, 0x0a])],
  'wire type 7': ['Recall', frame([0x0f])],
  'wire type 4 (end group)': ['Recall', frame([0x0c])],
  'group field 9 (4b 08 01 4c)': ['Recall', frame([0x0a, 0x01, 0x61, 0x4b, 0x08, 0x01, 0x4c])],
  'tag 0 varint (00 00)': ['Recall', frame([0x0a, 0x01, 0x61, 0x00, 0x00])],
  'space_id twice (a then b)': ['Recall', frame([0x0a, 0x01, 0x61, 0x0a, 0x01, 0x62])],
  'limit 6-byte varint': [
    'Recall',
    frame([0x0a, 0x01, 0x61, 0x18, 0x81, 0x80, 0x80, 0x80, 0x80, 0x00]),
  ],
  'packed embedding len 3': ['Recall', frame([0x0a, 0x01, 0x61, 0x12, 0x05, 0x12, 0x03, 1, 2, 3])],
  'gzip flag 1 ok': [
    'Recall',
    frame(zlib.gzipSync(Buffer.from([0x0a, 0x01, 0x61])), 1),
    { 'grpc-encoding': 'gzip' },
  ],
  'gzip flag 1 corrupt': ['Recall', frame([1, 2, 3, 4], 1), { 'grpc-encoding': 'gzip' }],
  'flag 1 without grpc-encoding': ['Recall', frame([0x0a, 0x01, 0x61], 1)],
  'snappy flag 1': ['Recall', frame([0x0a, 0x01, 0x61], 1), { 'grpc-encoding': 'snappy' }],
  'plain, client accepts gzip only (reply compressed?)': [
    'Recall',
    frame([0x0a, 0x01, 0x61]),
    { 'grpc-accept-encoding': 'gzip' },
  ],
  'gzip bomb (64 MiB of zeros)': [
    'Recall',
    frame(zlib.gzipSync(Buffer.alloc(64 << 20)), 1),
    { 'grpc-encoding': 'gzip' },
  ],
};
for (const [name, [m, b, h]] of Object.entries(cases))
  console.log(name.padEnd(52), JSON.stringify(await call(m, b, h)));
s.close();
await c.stop();
process.exit(0);

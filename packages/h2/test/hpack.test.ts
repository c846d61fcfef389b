import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  encodeHeaderBlock,
  HpackDecoder,
  HpackEncoder,
  HpackError,
} from '../src/internal/hpack.js';
import { STATIC_NAMES, STATIC_VALUES } from '../src/internal/hpack-static.js';
import { huffmanDecode, huffmanEncode, huffmanEncodedLength } from '../src/internal/huffman.js';

function hex(s: string): Buffer {
  return Buffer.from(s.replace(/\s+/g, ''), 'hex');
}

function decodeAll(decoder: HpackDecoder, block: Uint8Array): string[] {
  const out: string[] = [];
  decoder.decode(block, 0, block.length, out);
  return out;
}

function pairs(flat: readonly string[]): [string, string][] {
  const result: [string, string][] = [];
  for (let i = 0; i < flat.length; i += 2) result.push([flat[i] as string, flat[i + 1] as string]);
  return result;
}

function expectHpackError(block: Uint8Array, message: RegExp, decoder = new HpackDecoder()): void {
  let caught: unknown;
  try {
    decodeAll(decoder, block);
  } catch (err) {
    caught = err;
  }
  expect(caught).toBeInstanceOf(HpackError);
  expect((caught as HpackError).code).toBe('CompressionError');
  expect((caught as HpackError).message).toMatch(message);
}

/** Test-only encoder for representations our encoder never emits. */
function integer(pattern: number, prefixBits: number, value: number): number[] {
  const max = (1 << prefixBits) - 1;
  if (value < max) return [pattern | value];
  const bytes = [pattern | max];
  let rest = value - max;
  while (rest >= 128) {
    bytes.push((rest % 128) | 0x80);
    rest = Math.floor(rest / 128);
  }
  bytes.push(rest);
  return bytes;
}

function str(s: string, huffman: boolean): number[] {
  const raw = Buffer.from(s, 'latin1');
  if (!huffman) return [...integer(0, 7, raw.length), ...raw];
  const enc = new Uint8Array(huffmanEncodedLength(s));
  huffmanEncode(s, enc, 0);
  return [...integer(0x80, 7, enc.length), ...enc];
}

function literalWithIndexing(name: string, value: string, huffman = false): number[] {
  return [0x40, ...str(name, huffman), ...str(value, huffman)];
}

const AUTH = 'www.example.com';
const DATE1 = 'Mon, 21 Oct 2013 20:13:21 GMT';
const DATE2 = 'Mon, 21 Oct 2013 20:13:22 GMT';
const LOC = 'https://www.example.com';
const COOKIE = 'foo=ASDJKHQKBZXOQWEOPIUAXQWEOIU; max-age=3600; version=1';

interface Step {
  block: string;
  headers: [string, string][];
  table: [string, string][];
  size: number;
}

const C3_HEADERS: [string, string][][] = [
  [
    [':method', 'GET'],
    [':scheme', 'http'],
    [':path', '/'],
    [':authority', AUTH],
  ],
  [
    [':method', 'GET'],
    [':scheme', 'http'],
    [':path', '/'],
    [':authority', AUTH],
    ['cache-control', 'no-cache'],
  ],
  [
    [':method', 'GET'],
    [':scheme', 'https'],
    [':path', '/index.html'],
    [':authority', AUTH],
    ['custom-key', 'custom-value'],
  ],
];
const C3_TABLES: [string, string][][] = [
  [[':authority', AUTH]],
  [
    ['cache-control', 'no-cache'],
    [':authority', AUTH],
  ],
  [
    ['custom-key', 'custom-value'],
    ['cache-control', 'no-cache'],
    [':authority', AUTH],
  ],
];
const C3_SIZES = [57, 110, 164];

const C5_HEADERS: [string, string][][] = [
  [
    [':status', '302'],
    ['cache-control', 'private'],
    ['date', DATE1],
    ['location', LOC],
  ],
  [
    [':status', '307'],
    ['cache-control', 'private'],
    ['date', DATE1],
    ['location', LOC],
  ],
  [
    [':status', '200'],
    ['cache-control', 'private'],
    ['date', DATE2],
    ['location', LOC],
    ['content-encoding', 'gzip'],
    ['set-cookie', COOKIE],
  ],
];
const C5_TABLES: [string, string][][] = [
  [
    ['location', LOC],
    ['date', DATE1],
    ['cache-control', 'private'],
    [':status', '302'],
  ],
  [
    [':status', '307'],
    ['location', LOC],
    ['date', DATE1],
    ['cache-control', 'private'],
  ],
  [
    ['set-cookie', COOKIE],
    ['content-encoding', 'gzip'],
    ['date', DATE2],
  ],
];
const C5_SIZES = [222, 222, 215];

function series(
  blocks: string[],
  headers: [string, string][][],
  tables: [string, string][][],
  sizes: number[],
): Step[] {
  return blocks.map((block, i) => ({
    block,
    headers: headers[i] as [string, string][],
    table: tables[i] as [string, string][],
    size: sizes[i] as number,
  }));
}

const SERIES: { name: string; tableSize: number; steps: Step[] }[] = [
  {
    name: 'C.3 requests without Huffman',
    tableSize: 4096,
    steps: series(
      [
        '8286 8441 0f77 7777 2e65 7861 6d70 6c65 2e63 6f6d',
        '8286 84be 5808 6e6f 2d63 6163 6865',
        '8287 85bf 400a 6375 7374 6f6d 2d6b 6579 0c63 7573 746f 6d2d 7661 6c75 65',
      ],
      C3_HEADERS,
      C3_TABLES,
      C3_SIZES,
    ),
  },
  {
    name: 'C.4 requests with Huffman',
    tableSize: 4096,
    steps: series(
      [
        '8286 8441 8cf1 e3c2 e5f2 3a6b a0ab 90f4 ff',
        '8286 84be 5886 a8eb 1064 9cbf',
        '8287 85bf 4088 25a8 49e9 5ba9 7d7f 8925 a849 e95b b8e8 b4bf',
      ],
      C3_HEADERS,
      C3_TABLES,
      C3_SIZES,
    ),
  },
  {
    name: 'C.5 responses without Huffman, 256-octet table',
    tableSize: 256,
    steps: series(
      [
        `4803 3330 3258 0770 7269 7661 7465 611d 4d6f 6e2c 2032 3120 4f63 7420 3230 3133
         2032 303a 3133 3a32 3120 474d 546e 1768 7474 7073 3a2f 2f77 7777 2e65 7861 6d70
         6c65 2e63 6f6d`,
        '4803 3330 37c1 c0bf',
        `88c1 611d 4d6f 6e2c 2032 3120 4f63 7420 3230 3133 2032 303a 3133 3a32 3220 474d
         54c0 5a04 677a 6970 7738 666f 6f3d 4153 444a 4b48 514b 425a 584f 5157 454f 5049
         5541 5851 5745 4f49 553b 206d 6178 2d61 6765 3d33 3630 303b 2076 6572 7369 6f6e
         3d31`,
      ],
      C5_HEADERS,
      C5_TABLES,
      C5_SIZES,
    ),
  },
  {
    name: 'C.6 responses with Huffman, 256-octet table',
    tableSize: 256,
    steps: series(
      [
        `4882 6402 5885 aec3 771a 4b61 96d0 7abe 9410 54d4 44a8 2005 9504 0b81 66e0 82a6
         2d1b ff6e 919d 29ad 1718 63c7 8f0b 97c8 e9ae 82ae 43d3`,
        '4883 640e ffc1 c0bf',
        `88c1 6196 d07a be94 1054 d444 a820 0595 040b 8166 e084 a62d 1bff c05a 839b d9ab
         77ad 94e7 821d d7f2 e6c7 b335 dfdf cd5b 3960 d5af 2708 7f36 72c1 ab27 0fb5 291f
         9587 3160 65c0 03ed 4ee5 b106 3d50 07`,
      ],
      C5_HEADERS,
      C5_TABLES,
      C5_SIZES,
    ),
  },
];

describe('HpackDecoder: RFC 7541 Appendix C', () => {
  it.each([
    [
      'C.2.1 literal with indexing',
      '400a 6375 7374 6f6d 2d6b 6579 0d63 7573 746f 6d2d 6865 6164 6572',
      [['custom-key', 'custom-header']],
      [['custom-key', 'custom-header']],
      55,
    ],
    [
      'C.2.2 literal without indexing',
      '040c 2f73 616d 706c 652f 7061 7468',
      [[':path', '/sample/path']],
      [],
      0,
    ],
    [
      'C.2.3 literal never indexed',
      '1008 7061 7373 776f 7264 0673 6563 7265 74',
      [['password', 'secret']],
      [],
      0,
    ],
    ['C.2.4 indexed field', '82', [[':method', 'GET']], [], 0],
  ])('%s', (_name, block, headers, table, size) => {
    const decoder = new HpackDecoder();
    expect(pairs(decodeAll(decoder, hex(block)))).toEqual(headers);
    expect(decoder.dynamicTableEntries()).toEqual(table);
    expect(decoder.dynamicTableSize).toBe(size);
  });

  for (const { name, tableSize, steps } of SERIES) {
    it(`${name}: consecutive blocks on one decoder, table contents and size after each`, () => {
      const decoder = new HpackDecoder({ maxTableSize: tableSize });
      for (const step of steps) {
        expect(pairs(decodeAll(decoder, hex(step.block)))).toEqual(step.headers);
        expect(decoder.dynamicTableEntries()).toEqual(step.table);
        expect(decoder.dynamicTableSize).toBe(step.size);
      }
    });
  }

  it('decodes a block in the middle of a larger buffer (start/end honoured)', () => {
    const block = hex('8286 8441 8cf1 e3c2 e5f2 3a6b a0ab 90f4 ff');
    const framed = Buffer.concat([Buffer.from([0xff, 0xff, 0xff]), block, Buffer.from([0xff])]);
    const out: string[] = [];
    new HpackDecoder().decode(framed, 3, 3 + block.length, out);
    expect(pairs(out)).toEqual(C3_HEADERS[0]);
  });

  it('accepts a plain Uint8Array as well as a Buffer', () => {
    const block = new Uint8Array(hex('8286 8441 0f77 7777 2e65 7861 6d70 6c65 2e63 6f6d'));
    expect(pairs(decodeAll(new HpackDecoder(), block))).toEqual(C3_HEADERS[0]);
  });

  it('decodes an empty block to no fields', () => {
    expect(decodeAll(new HpackDecoder(), new Uint8Array(0))).toEqual([]);
  });
});

describe('Huffman code (RFC 7541 Appendix B)', () => {
  // Pairs from RFC 7541 Appendix C.4 and C.6.
  it.each([
    ['www.example.com', 'f1e3 c2e5 f23a 6ba0 ab90 f4ff'],
    ['no-cache', 'a8eb 1064 9cbf'],
    ['custom-key', '25a8 49e9 5ba9 7d7f'],
    ['custom-value', '25a8 49e9 5bb8 e8b4 bf'],
    ['302', '6402'],
    ['private', 'aec3 771a 4b'],
    [DATE1, 'd07a be94 1054 d444 a820 0595 040b 8166 e082 a62d 1bff'],
    [LOC, '9d29 ad17 1863 c78f 0b97 c8e9 ae82 ae43 d3'],
    ['gzip', '9bd9 ab'],
    [
      COOKIE,
      '94e7 821d d7f2 e6c7 b335 dfdf cd5b 3960 d5af 2708 7f36 72c1 ab27 0fb5 291f 9587 3160 65c0 03ed 4ee5 b106 3d50 07',
    ],
  ])('%s encodes to the RFC bytes and decodes back', (text, encoded) => {
    const expected = hex(encoded);
    const enc = new Uint8Array(huffmanEncodedLength(text));
    expect(huffmanEncode(text, enc, 0)).toBe(expected.length);
    expect(Buffer.from(enc)).toEqual(expected);
    const dst = new Uint8Array(expected.length * 2);
    const n = huffmanDecode(expected, 0, expected.length, dst);
    expect(Buffer.from(dst.subarray(0, n)).toString('latin1')).toBe(text);
  });

  it('round-trips every octet value 0x00-0xff, alone and in random strings', () => {
    const dst = new Uint8Array(4096);
    for (let b = 0; b < 256; b++) {
      const s = String.fromCharCode(b);
      const enc = new Uint8Array(huffmanEncodedLength(s));
      huffmanEncode(s, enc, 0);
      const n = huffmanDecode(enc, 0, enc.length, dst);
      expect(n).toBe(1);
      expect(dst[0]).toBe(b);
    }
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), (bytes) => {
        const s = Buffer.from(bytes).toString('latin1');
        const enc = new Uint8Array(huffmanEncodedLength(s));
        huffmanEncode(s, enc, 0);
        const n = huffmanDecode(enc, 0, enc.length, dst);
        expect(Buffer.from(dst.subarray(0, n))).toEqual(Buffer.from(bytes));
      }),
    );
  });
});

describe('HpackEncoder', () => {
  function encode(headers: string[]): Buffer {
    const out = Buffer.alloc(HpackEncoder.maxEncodedLength(headers));
    const end = new HpackEncoder().encode(headers, out, 0);
    return out.subarray(0, end);
  }

  it.each([
    [':method', 'POST', 0x83],
    [':method', 'GET', 0x82],
    [':status', '200', 0x88],
    [':status', '404', 0x8d],
    [':scheme', 'http', 0x86],
    [':scheme', 'https', 0x87],
    [':path', '/', 0x84],
    ['accept-encoding', 'gzip, deflate', 0x90],
  ])('an exact static match %s: %s is one indexed octet', (name, value, octet) => {
    expect([...encode([name, value])]).toEqual([octet]);
  });

  it('a static name with another value is a literal without indexing with the indexed name', () => {
    // content-type is static index 31: 4-bit prefix 15 then 16.
    expect([...encode(['content-type', 'application/grpc'])]).toEqual([
      0x0f,
      0x10,
      16,
      ...Buffer.from('application/grpc'),
    ]);
    expect([...encode([':status', '503'])]).toEqual([0x08, 3, ...Buffer.from('503')]);
    expect([...encode([':authority', 'a'])]).toEqual([0x01, 1, 0x61]);
  });

  it('an unknown name is a literal without indexing with a literal name', () => {
    expect([...encode(['grpc-status', '0'])]).toEqual([
      0x00,
      11,
      ...Buffer.from('grpc-status'),
      1,
      0x30,
    ]);
  });

  it('never touches the decoder dynamic table', () => {
    const decoder = new HpackDecoder();
    const block = encode([
      ':status',
      '200',
      'grpc-status',
      '0',
      'content-type',
      'application/grpc',
    ]);
    decodeAll(decoder, block);
    expect(decoder.dynamicTableSize).toBe(0);
  });

  it('round-trips latin1 values 0x00-0xff, long values and multi-octet length prefixes', () => {
    let all = '';
    for (let b = 0; b < 256; b++) all += String.fromCharCode(b);
    const headers = [
      'x-all',
      all,
      'x-126',
      'a'.repeat(126),
      'x-127',
      'b'.repeat(127),
      'x-big',
      'c'.repeat(20000),
      'x-empty',
      '',
      'b'.repeat(200),
      'v',
    ];
    const decoder = new HpackDecoder({ maxHeaderListSize: 1 << 20 });
    expect(decodeAll(decoder, encode(headers))).toEqual(headers);
  });

  it('round-trips random header lists through our decoder, within maxEncodedLength', () => {
    const text = fc.uint8Array({ maxLength: 80 }).map((b) => Buffer.from(b).toString('latin1'));
    const staticName = fc.integer({ min: 1, max: 61 }).map((i) => STATIC_NAMES[i] as string);
    const staticPair = fc
      .integer({ min: 1, max: 61 })
      .map((i) => [STATIC_NAMES[i] as string, STATIC_VALUES[i] as string] as const);
    const field = fc.oneof(
      fc.tuple(
        text.filter((s) => s.length > 0),
        text,
      ),
      fc.tuple(staticName, text),
      staticPair,
    );
    const decoder = new HpackDecoder({ maxHeaderListSize: 1 << 20 });
    const encoder = new HpackEncoder();
    fc.assert(
      fc.property(fc.array(field, { maxLength: 30 }), (fields) => {
        const headers = fields.flat();
        const max = HpackEncoder.maxEncodedLength(headers);
        const out = new Uint8Array(max + 8);
        const end = encoder.encode(headers, out, 8);
        expect(end - 8).toBeLessThanOrEqual(max);
        const decoded: string[] = [];
        decoder.decode(out, 8, end, decoded);
        expect(decoded).toEqual(headers);
      }),
    );
  });

  it('encodeHeaderBlock returns exactly the encoder output', () => {
    const headers = [':status', '200', 'content-type', 'application/grpc', 'grpc-status', '0'];
    const block = encodeHeaderBlock(headers);
    expect(block).toEqual(encode(headers));
    expect(pairs(decodeAll(new HpackDecoder(), block))).toEqual(pairs(headers));
  });

  it('starts the next block with a size update after the peer shrinks its table, once', () => {
    const encoder = new HpackEncoder();
    encoder.setPeerMaxTableSize(100);
    const out = new Uint8Array(64);
    const end = encoder.encode([':status', '200'], out, 0);
    expect([...out.subarray(0, end)]).toEqual([0x3f, 100 - 31, 0x88]);
    const decoder = new HpackDecoder();
    expect(decodeAll(decoder, out.subarray(0, end))).toEqual([':status', '200']);
    expect([...out.subarray(0, encoder.encode([':status', '200'], out, 0))]).toEqual([0x88]);
    encoder.setPeerMaxTableSize(4096); // growing needs no update
    expect([...out.subarray(0, encoder.encode([':status', '200'], out, 0))]).toEqual([0x88]);
  });
});

describe('HpackEncoder with a dynamic table (one per connection)', () => {
  function encodeWith(encoder: HpackEncoder, headers: readonly string[]): Buffer {
    const out = Buffer.alloc(HpackEncoder.maxEncodedLength(headers));
    return out.subarray(0, encoder.encode(headers, out, 0));
  }
  const REQUEST = [
    ':method',
    'POST',
    ':path',
    '/engram.v1.MemoryService/Recall',
    ':authority',
    '127.0.0.1:7001',
    'content-type',
    'application/grpc',
    'x-engram-epoch',
    '7',
  ];

  it('sends a field once as a literal with incremental indexing, then as one indexed octet', () => {
    const encoder = new HpackEncoder({ tableSize: 4096 });
    const decoder = new HpackDecoder();
    const first = encodeWith(encoder, REQUEST);
    expect(decodeAll(decoder, first)).toEqual(REQUEST);
    // :method POST is static; the other four went into the table, newest first at 62.
    expect(first[0]).toBe(0x83);
    expect(first[1]).toBe(0x40 | 4); // literal with indexing, static name :path
    const again = encodeWith(encoder, REQUEST);
    expect([...again]).toEqual([0x83, 0x80 | 65, 0x80 | 64, 0x80 | 63, 0x80 | 62]);
    expect(decodeAll(decoder, again)).toEqual(REQUEST);
    expect(decoder.dynamicTableSize).toBe(encoder.dynamicTableSize);
    // A new value of a name the table holds reuses its name index (x-engram-epoch at 62).
    const next = encodeWith(encoder, ['x-engram-epoch', '8']);
    expect([...next.subarray(0, 1)]).toEqual([0x40 | 62]);
    expect(decodeAll(decoder, next)).toEqual(['x-engram-epoch', '8']);
  });

  it('never indexes secrets (never-indexed literals); a volatile name goes in once, then only by name', () => {
    const encoder = new HpackEncoder({ tableSize: 4096 });
    const decoder = new HpackDecoder();
    const timeoutEntry = 'grpc-timeout'.length + '1999m'.length + 32;
    for (const timeout of ['1999m', '1998m', '1997m']) {
      const headers = [
        'authorization',
        'Bearer s3cret',
        'grpc-timeout',
        timeout,
        'cookie',
        'a=b',
        'x-api-key',
        'k3y',
      ];
      const block = encodeWith(encoder, headers);
      expect(decodeAll(decoder, block)).toEqual(headers);
      // authorization is static name 23: never indexed, 4-bit prefix 15 then 8.
      expect([...block.subarray(0, 2)]).toEqual([0x10 | 0x0f, 23 - 15]);
      // Only the first grpc-timeout went in; the later ones name it by index (62).
      expect(encoder.dynamicTableSize).toBe(timeoutEntry);
      expect(decoder.dynamicTableSize).toBe(timeoutEntry);
      if (timeout !== '1999m') expect(block.indexOf(Buffer.from('grpc-timeout'))).toBe(-1);
      // x-api-key, a new name, goes as a never-indexed literal with its name (0x10).
      expect(block[block.indexOf(Buffer.from('x-api-key')) - 2]).toBe(0x10);
    }
  });

  it('does not index an entry over a quarter of the table', () => {
    const encoder = new HpackEncoder({ tableSize: 4096 });
    const big = ['x-big', 'v'.repeat(1024 - 32 - 5 + 1)];
    encodeWith(encoder, big);
    expect(encoder.dynamicTableSize).toBe(0);
    const fits = ['x-big', 'v'.repeat(1024 - 32 - 5)];
    encodeWith(encoder, fits);
    expect(encoder.dynamicTableSize).toBe(1024);
  });

  it('evicts oldest first as the decoder does, and cuts its table to a smaller peer setting', () => {
    const encoder = new HpackEncoder({ tableSize: 4096 });
    let decoder = new HpackDecoder();
    // ~100 distinct 64-octet entries: the 4096-octet table turns over.
    for (let i = 0; i < 100; i++) {
      const headers = ['x-n', `${i}`.padStart(29, '0'), 'x-same', 'same'];
      expect(decodeAll(decoder, encodeWith(encoder, headers))).toEqual(headers);
      expect(decoder.dynamicTableSize).toBe(encoder.dynamicTableSize);
    }
    expect(encoder.dynamicTableSize).toBeLessThanOrEqual(4096);
    encoder.setPeerMaxTableSize(100);
    expect(encoder.dynamicTableSize).toBeLessThanOrEqual(100);
    const block = encodeWith(encoder, REQUEST);
    expect([...block.subarray(0, 2)]).toEqual([0x3f, 100 - 31]); // the size update leads
    expect(decodeAll(decoder, block)).toEqual(REQUEST);
    expect(decoder.dynamicTableSize).toBe(encoder.dynamicTableSize);
    // To 0: nothing indexed any more, a fresh decoder of that size reads every later block.
    encoder.setPeerMaxTableSize(0);
    expect(decodeAll(decoder, encodeWith(encoder, REQUEST))).toEqual(REQUEST);
    decoder = new HpackDecoder({ maxTableSize: 0 });
    expect(decodeAll(decoder, encodeWith(encoder, REQUEST))).toEqual(REQUEST);
  });

  it('keeps the decoder in step over random block sequences, within maxEncodedLength', () => {
    const value = fc.oneof(
      fc.constantFrom('', '0', '1', 'application/grpc', 'n1', 'PrimaryWithFallback'),
      fc.uint8Array({ maxLength: 60 }).map((b) => Buffer.from(b).toString('latin1')),
    );
    const name = fc.oneof(
      fc.constantFrom(
        ':path',
        'content-type',
        'grpc-status',
        'grpc-timeout',
        'authorization',
        'x-engram-epoch',
        'x-a',
        'x-b',
      ),
      fc.integer({ min: 1, max: 61 }).map((i) => STATIC_NAMES[i] as string),
    );
    const block = fc.array(fc.tuple(name, value), { maxLength: 12 }).map((f) => f.flat());
    fc.assert(
      fc.property(
        fc.array(block, { minLength: 1, maxLength: 40 }),
        fc.constantFrom(4096, 512, 64),
        (blocks, tableSize) => {
          const encoder = new HpackEncoder({ tableSize });
          const decoder = new HpackDecoder();
          for (const headers of blocks) {
            const max = HpackEncoder.maxEncodedLength(headers);
            const out = new Uint8Array(max + 4);
            const end = encoder.encode(headers, out, 4);
            expect(end - 4).toBeLessThanOrEqual(max);
            const decoded: string[] = [];
            decoder.decode(out, 4, end, decoded);
            expect(decoded).toEqual(headers);
            expect(decoder.dynamicTableSize).toBe(encoder.dynamicTableSize);
          }
        },
      ),
    );
  });
});

/** A literal field with incremental indexing and a new name (RFC 7541 §6.2.1), raw octets. */
function indexedLiteral(name: string, value: string): Buffer {
  return Buffer.concat([
    Buffer.from([0x40, name.length]),
    Buffer.from(name, 'latin1'),
    Buffer.from([value.length]),
    Buffer.from(value, 'latin1'),
  ]);
}

describe('HpackEncoder: a repeated block copied, not encoded again', () => {
  it('sends the same octets for the same fields while its table is unchanged', () => {
    const encoder = new HpackEncoder({ tableSize: 4096 });
    const fields = [':method', 'POST', ':path', '/engram.v1.MemoryService/Recall', 'x-a', '1'];
    const out = Buffer.alloc(256);
    const first = Buffer.from(out.subarray(0, encoder.encode(fields, out, 0))); // inserts
    const second = Buffer.from(out.subarray(0, encoder.encode(fields, out, 0))); // indexed
    const third = Buffer.from(out.subarray(0, encoder.encode([...fields], out, 0))); // copied
    expect(second.length).toBeLessThan(first.length);
    expect(third).toEqual(second);
    // A field inserted since changes every dynamic index: the next block is encoded afresh.
    encoder.encode(['x-b', '2'], out, 0);
    const fourth = Buffer.from(out.subarray(0, encoder.encode(fields, out, 0)));
    expect(fourth).not.toEqual(second);
  });

  it('keeps its own copy of the block: the output buffer reused for other bytes changes nothing', () => {
    // A connection encodes into its output slab, which later frames overwrite (a Buffer's
    // slice() would be a view of it).
    const encoder = new HpackEncoder({ tableSize: 4096 });
    const decoder = new HpackDecoder();
    const slab = Buffer.alloc(256);
    const store = [':method', 'POST', ':path', '/engram.v1.MemoryService/Store', 'x-a', '1'];
    const recall = [':method', 'POST', ':path', '/engram.v1.MemoryService/Recall', 'x-a', '1'];
    for (const fields of [store, store, recall, store, store]) {
      const end = encoder.encode(fields, slab, 0);
      expect(decoder.decodeList(Buffer.from(slab.subarray(0, end)), 0, end)).toEqual(fields);
      slab.fill(0x41); // the slab's next use
    }
  });

  it('agrees with the decoder over repeated blocks, inserts and peer table changes', () => {
    const value = fc.constantFrom('', '0', '1', 'application/grpc', 'n1', '1999m', '2000m');
    const name = fc.constantFrom(':path', 'content-type', 'grpc-timeout', 'authorization', 'x-a');
    const block = fc.array(fc.tuple(name, value), { maxLength: 6 }).map((f) => f.flat());
    const step = fc.oneof(
      { weight: 8, arbitrary: fc.nat(5).map((i) => ({ block: i })) },
      { weight: 1, arbitrary: fc.constantFrom(4096, 256, 64, 0).map((size) => ({ size })) },
    );
    fc.assert(
      fc.property(
        fc.array(block, { minLength: 1, maxLength: 6 }),
        fc.array(step, { minLength: 1, maxLength: 60 }),
        (pool, steps) => {
          const encoder = new HpackEncoder({ tableSize: 4096 });
          const decoder = new HpackDecoder();
          for (const s of steps) {
            if ('size' in s) {
              encoder.setPeerMaxTableSize(s.size);
              continue;
            }
            const headers = pool[s.block % pool.length]!;
            const out = Buffer.alloc(HpackEncoder.maxEncodedLength(headers));
            const end = encoder.encode([...headers], out, 0);
            expect(decoder.decodeList(out, 0, end)).toEqual(headers);
            expect(decoder.dynamicTableSize).toBe(encoder.dynamicTableSize);
          }
        },
      ),
    );
  });
});

describe('HpackDecoder.decodeList: repeated blocks decoded once', () => {
  /** Indexed dynamic entry k (1 = newest) as one octet: 0x80 | (61 + k). */
  const dynamic = (k: number) => Buffer.from([0x80 | (61 + k)]);

  it('hands back the same list for the same octets against an unchanged table', () => {
    const decoder = new HpackDecoder();
    const block = Buffer.from([0x88, 0x83]); // :status 200, :method POST (static)
    const first = decoder.decodeList(block, 0, block.length);
    expect(first).toEqual([':status', '200', ':method', 'POST']);
    const again = decoder.decodeList(Buffer.from(block), 0, block.length);
    expect(again).toBe(first);
    // Shared, read-only by contract, and not frozen: V8 reads a frozen array's elements
    // through a generic stub (the hot path reads every call's headers by index).
    expect(Object.isFrozen(again)).toBe(false);
    expect(decoder.charsValid).toBe(true);
  });

  it('decodes again once the table changed: an index means what the table says now', () => {
    const decoder = new HpackDecoder();
    const first = indexedLiteral('x-a', '1');
    decoder.decodeList(first, 0, first.length);
    const ref = dynamic(1);
    expect(decoder.decodeList(ref, 0, 1)).toEqual(['x-a', '1']);
    const insert = indexedLiteral('x-b', '2');
    decoder.decodeList(insert, 0, insert.length); // now entry 1 is x-b
    expect(decoder.decodeList(ref, 0, 1)).toEqual(['x-b', '2']);
    // A size update empties the table: the same index is now out of range.
    decoder.decodeList(Buffer.from([0x20]), 0, 1);
    expect(() => decoder.decodeList(ref, 0, 1)).toThrow(HpackError);
  });

  it('never serves a block that changes the table from the cache (it inserts every time)', () => {
    const decoder = new HpackDecoder();
    const insert = indexedLiteral('x-a', '1');
    const a = decoder.decodeList(insert, 0, insert.length);
    const b = decoder.decodeList(insert, 0, insert.length);
    expect(b).not.toBe(a);
    expect(decoder.dynamicTableEntries()).toEqual([
      ['x-a', '1'],
      ['x-a', '1'],
    ]);
  });

  it('keeps charsValid per block: a cached block with invalid characters still says so', () => {
    const decoder = new HpackDecoder();
    // Literal without indexing, new name "x-a", value "a\nb" (a line feed is not valid).
    const bad = Buffer.concat([
      Buffer.from([0x00, 3]),
      Buffer.from('x-a'),
      Buffer.from([3]),
      Buffer.from('a\nb'),
    ]);
    const good = Buffer.from([0x88]);
    decoder.decodeList(bad, 0, bad.length);
    expect(decoder.charsValid).toBe(false);
    decoder.decodeList(good, 0, 1);
    expect(decoder.charsValid).toBe(true);
    decoder.decodeList(bad, 0, bad.length);
    expect(decoder.charsValid).toBe(false);
  });

  it('agrees with decode over random sequences of repeated, indexed and inserting blocks', () => {
    const value = fc.constantFrom('', '0', '1', 'application/grpc', 'n1', 'Mon, 01 Jan 2024');
    const name = fc.constantFrom(':path', 'content-type', 'grpc-status', 'date', 'x-a', 'x-b');
    const block = fc.array(fc.tuple(name, value), { maxLength: 6 }).map((f) => f.flat());
    fc.assert(
      fc.property(
        // Block indexes into a small pool: blocks repeat, as on a real connection.
        fc.array(block, { minLength: 1, maxLength: 6 }),
        fc.array(fc.nat(5), { minLength: 1, maxLength: 60 }),
        fc.constantFrom(4096, 128, 64),
        (pool, order, tableSize) => {
          const encoder = new HpackEncoder({ tableSize });
          const cached = new HpackDecoder();
          const plain = new HpackDecoder();
          for (const i of order) {
            const headers = pool[i % pool.length]!;
            const out = Buffer.alloc(HpackEncoder.maxEncodedLength(headers));
            const end = encoder.encode(headers, out, 0);
            const want: string[] = [];
            plain.decode(out, 0, end, want);
            expect(cached.decodeList(out, 0, end)).toEqual(want);
            expect(cached.charsValid).toBe(plain.charsValid);
            expect(cached.dynamicTableEntries()).toEqual(plain.dynamicTableEntries());
          }
        },
      ),
    );
  });
});

describe('HpackDecoder.charsValid: fields vouched for as they decode (RFC 9113 §8.2.1)', () => {
  const decode = (d: HpackDecoder, block: Buffer) => {
    const out: string[] = [];
    d.decode(block, 0, block.length, out);
    return out;
  };

  it('vouches for static fields and valid literals, and for dynamic entries that were valid', () => {
    const d = new HpackDecoder();
    expect(decode(d, Buffer.from([0x83, 0x86]))).toEqual([':method', 'POST', ':scheme', 'http']);
    expect(d.charsValid).toBe(true);
    decode(d, indexedLiteral('x-good', 'v 1'));
    expect(d.charsValid).toBe(true);
    expect(decode(d, Buffer.from([0xbe]))).toEqual(['x-good', 'v 1']);
    expect(d.charsValid).toBe(true);
  });

  it.each([
    ['an uppercase name', 'X-Bad', 'v'],
    ['a name with a space', 'x bad', 'v'],
    ['a value with LF', 'x-bad', 'a\nb'],
    ['a value with NUL', 'x-bad', 'a\u0000b'],
    ['a value with a leading space', 'x-bad', ' v'],
    ['a value with a trailing tab', 'x-bad', 'v\t'],
  ])('does not vouch for %s, as a literal or when indexed in a later block', (_n, name, value) => {
    const d = new HpackDecoder();
    decode(d, indexedLiteral(name, value));
    expect(d.charsValid).toBe(false);
    expect(decode(d, Buffer.from([0x82, 0xbe]))).toEqual([':method', 'GET', name, value]);
    expect(d.charsValid).toBe(false);
    // The entry keeps its verdict after the table grows and moves its entries.
    for (let i = 0; i < 40; i++) decode(d, indexedLiteral(`x-${i}`, 'v'));
    // Now the 41st dynamic entry: index 61 + 41 = 102.
    expect(decode(d, Buffer.from([0x80 | 102]))).toEqual([name, value]);
    expect(d.charsValid).toBe(false);
  });
});

describe('HpackDecoder: dynamic table', () => {
  it('matches a reference model across random inserts, lookups and size updates', () => {
    const op = fc.oneof(
      fc.record({
        kind: fc.constant('insert' as const),
        name: fc.string({ minLength: 1, maxLength: 20 }),
        value: fc.string({ maxLength: 200 }),
        huffman: fc.boolean(),
      }),
      fc.record({ kind: fc.constant('lookup' as const), k: fc.nat(300) }),
      fc.record({ kind: fc.constant('resize' as const), size: fc.nat(2048) }),
    );
    fc.assert(
      fc.property(fc.array(op, { maxLength: 200 }), (ops) => {
        const decoder = new HpackDecoder({ maxTableSize: 2048 });
        const model: [string, string][] = []; // newest first
        let capacity = 2048;
        const sizeOf = ([n, v]: [string, string]) => n.length + v.length + 32;
        const evict = (limit: number) => {
          let size = model.reduce((s, e) => s + sizeOf(e), 0);
          while (size > limit) size -= sizeOf(model.pop() as [string, string]);
        };
        for (const o of ops) {
          if (o.kind === 'insert') {
            const name = Buffer.from(o.name).toString('latin1');
            const value = Buffer.from(o.value).toString('latin1');
            const got = decodeAll(
              decoder,
              Buffer.from(literalWithIndexing(name, value, o.huffman)),
            );
            expect(got).toEqual([name, value]);
            const entry: [string, string] = [name, value];
            if (sizeOf(entry) > capacity) {
              model.length = 0;
            } else {
              evict(capacity - sizeOf(entry));
              model.unshift(entry);
            }
          } else if (o.kind === 'lookup') {
            const block = Buffer.from(integer(0x80, 7, 62 + o.k));
            const entry = model[o.k];
            if (entry === undefined) {
              expect(() => decodeAll(decoder, block)).toThrow(HpackError);
            } else {
              expect(decodeAll(decoder, block)).toEqual(entry);
              // The same entry as an indexed name with a new literal value.
              const withName = Buffer.from([...integer(0x00, 4, 62 + o.k), ...str('v', false)]);
              expect(decodeAll(decoder, withName)).toEqual([entry[0], 'v']);
            }
          } else {
            decodeAll(decoder, Buffer.from(integer(0x20, 5, o.size)));
            capacity = o.size;
            evict(capacity);
          }
          expect(decoder.dynamicTableEntries()).toEqual(model);
          expect(decoder.dynamicTableSize).toBe(model.reduce((s, e) => s + sizeOf(e), 0));
        }
      }),
      { numRuns: 200 },
    );
  });

  it('repeated Huffman literals decode right despite the decoded-string cache colliding', () => {
    const decoder = new HpackDecoder();
    // 500 distinct same-length paths over 64 cache slots: every slot sees many collisions.
    const paths = Array.from({ length: 500 }, (_, i) => `/svc.V1/M${String(i).padStart(4, '0')}`);
    const blocks = paths.map((path) => Buffer.from([0x04, ...str(path, true)]));
    for (let round = 0; round < 3; round++) {
      for (let i = 0; i < paths.length; i += round + 1) {
        expect(decodeAll(decoder, blocks[i] as Buffer)).toEqual([':path', paths[i]]);
      }
    }
    // The same encoded octets in another position of the block still decode as themselves.
    const twice = Buffer.concat([blocks[7] as Buffer, blocks[7] as Buffer]);
    expect(decodeAll(decoder, twice)).toEqual([':path', paths[7], ':path', paths[7]]);
  });

  it('an entry larger than the table empties the table without error', () => {
    const decoder = new HpackDecoder({ maxTableSize: 100 });
    decodeAll(decoder, Buffer.from(literalWithIndexing('a', 'b')));
    expect(decoder.dynamicTableSize).toBe(34);
    expect(decodeAll(decoder, Buffer.from(literalWithIndexing('big', 'x'.repeat(80))))).toEqual([
      'big',
      'x'.repeat(80),
    ]);
    expect(decoder.dynamicTableEntries()).toEqual([]);
    expect(decoder.dynamicTableSize).toBe(0);
  });

  it('allows two size updates at the start of a block', () => {
    const decoder = new HpackDecoder();
    decodeAll(decoder, Buffer.from(literalWithIndexing('a', 'b')));
    expect(decodeAll(decoder, hex('20 3fe11f 82'))).toEqual([':method', 'GET']);
    expect(decoder.dynamicTableSize).toBe(0);
  });

  it('rejects invalid options with a RangeError naming the field', () => {
    expect(() => new HpackDecoder({ maxTableSize: -1 })).toThrow(/maxTableSize/);
    expect(() => new HpackDecoder({ maxHeaderListSize: 1.5 })).toThrow(/maxHeaderListSize/);
    expect(() => new HpackDecoder({ maxTableSize: 2 ** 32 })).toThrow(RangeError);
  });
});

describe('HpackDecoder: malformed input throws HpackError', () => {
  it.each([
    ['index 0', '80', /index 0/],
    [
      'indexed field past the static table with an empty dynamic table',
      'be',
      /index 62 out of range/,
    ],
    ['large out-of-range index', 'ff 80 01', /out of range/],
    ['literal with an out-of-range name index', '7e 01 61', /index 62 out of range/],
    ['size update above SETTINGS_HEADER_TABLE_SIZE', '3f e2 1f', /4097 exceeds/],
    ['size update after a field', '82 20', /after a header field/],
    ['truncated integer', 'ff', /truncated integer/],
    ['truncated multi-octet integer', 'ff 80', /truncated integer/],
    ['integer longer than 5 continuation octets', 'ff 80 80 80 80 80 01', /longer than 5/],
    ['integer above 2^31-1', 'ff ff ff ff ff 0f', /exceeds/],
    ['missing string literal', '04', /truncated string/],
    ['truncated string literal', '04 05 61 62', /truncated/],
    ['truncated literal name', '40 05 61 62', /truncated/],
    ['Huffman padding longer than 7 bits', '04 82 1f ff', /padding/],
    ['Huffman padding not all 1s', '04 81 18', /padding/],
    ['Huffman padding of a whole zero octet', '04 82 1f 00', /padding|EOS/],
    ['EOS symbol inside a Huffman string', '04 84 ff ff ff ff', /EOS/],
  ])('%s', (_name, block, message) => {
    expectHpackError(hex(block), message);
  });

  it('a header list larger than maxHeaderListSize', () => {
    // Each :method GET counts 7 + 3 + 32 = 42 octets.
    const decoder = new HpackDecoder({ maxHeaderListSize: 100 });
    expect(decodeAll(decoder, hex('82 82'))).toHaveLength(4);
    expectHpackError(hex('82 82 82'), /header list larger than 100 bytes/, decoder);
  });

  it('a single literal longer than maxHeaderListSize, before building the string', () => {
    const decoder = new HpackDecoder({ maxHeaderListSize: 100 });
    expectHpackError(
      Buffer.from([0x04, ...str('x'.repeat(101), false)]),
      /larger than 100/,
      decoder,
    );
    expectHpackError(
      Buffer.from([0x04, ...str('x'.repeat(101), true)]),
      /larger than 100/,
      decoder,
    );
  });

  it('random input either decodes or throws HpackError, never anything else', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 64 }), (bytes) => {
        const decoder = new HpackDecoder();
        try {
          decodeAll(decoder, bytes);
        } catch (err) {
          expect(err).toBeInstanceOf(HpackError);
        }
      }),
      { numRuns: 2000 },
    );
  });

  it('a decode range outside the buffer is a RangeError (caller bug, not peer input)', () => {
    expect(() => new HpackDecoder().decode(new Uint8Array(2), 0, 3, [])).toThrow(RangeError);
  });
});

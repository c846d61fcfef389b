import { MemoryServiceDefinition } from '@engram/proto';
import fc from 'fast-check';
import protobuf from 'protobufjs';
import { describe, expect, it } from 'vitest';
import {
  MalformedMessageError,
  REQUEST,
  readQuerySpaceIds,
  readSpaceId,
  stampConsolidate,
  stampStore,
  WIRE_ERROR,
} from '../src/internal/proto-reader.js';

// The oracle is the node's decoder: @engram/proto's deserializers are protobufjs 7 through
// @grpc/proto-loader, exactly what a memory node runs. protobufjs's Writer encodes the floats.
const { Store, Recall, Consolidate, Query } = MemoryServiceDefinition;

function frame(bytes: readonly number[] | Uint8Array): Buffer {
  const out = Buffer.alloc(5 + bytes.length);
  out.writeUInt32BE(bytes.length, 1);
  out.set(bytes, 5);
  return out;
}

/** `v` as a varint, made `pad` bytes longer than minimal (a non-minimal encoding of the same value). */
function varint(v: bigint, pad = 0): number[] {
  const out: number[] = [];
  do {
    out.push(Number(v & 0x7fn));
    v >>= 7n;
  } while (v > 0n);
  for (let i = 0; i < out.length - 1; i++) out[i]! |= 0x80;
  if (pad > 0) {
    out[out.length - 1]! |= 0x80;
    for (let i = 1; i < pad; i++) out.push(0x80);
    out.push(0);
  }
  return out;
}

/** `arb` one time in `oneIn`, else null. */
function rarely<T>(arb: fc.Arbitrary<T>, oneIn: number): fc.Arbitrary<T | null> {
  return fc.oneof(
    { weight: oneIn - 1, arbitrary: fc.constant(null) },
    { weight: 1, arbitrary: arb },
  );
}

/** A generated field: its bytes, and whether it is something the router may refuse. */
interface Part {
  bytes: number[];
  defect: boolean;
}
const part = (bytes: number[], defect = false): Part => ({ bytes, defect });
const join = (parts: readonly Part[]): Part => ({
  bytes: parts.flatMap((p) => p.bytes),
  defect: parts.some((p) => p.defect),
});

/** Padding of a tag or length: up to 5 bytes in all is what protobufjs reads alike. */
const pad32 = fc.oneof(
  { weight: 12, arbitrary: fc.constant(0) },
  { weight: 2, arbitrary: fc.integer({ min: 1, max: 3 }) },
  { weight: 1, arbitrary: fc.integer({ min: 4, max: 6 }) },
);
function tagOf(n: number, wire: number, pad: number): Part {
  const bytes = varint(BigInt((n << 3) | wire), pad);
  return part(bytes, bytes.length > 5);
}
function delimited(n: number, payload: Part, tagPad: number, lenPad: number): Part {
  const len = varint(BigInt(payload.bytes.length), lenPad);
  return join([tagOf(n, 2, tagPad), part(len, len.length > 5), payload]);
}

const text = fc.oneof(
  fc.constantFrom('', 'a', 'b', 'alice/episodic', 'é', '\u{1f600}'),
  fc.string({ maxLength: 8 }),
);
const stringField = (n: number) =>
  fc
    .tuple(text, pad32, pad32)
    .map(([s, tp, lp]) => delimited(n, part([...Buffer.from(s)]), tp, lp));

function floatsBytes(values: readonly number[]): number[] {
  const w = protobuf.Writer.create();
  for (const v of values) w.float(v);
  return [...w.finish()];
}
const float32 = fc.float({ noDefaultInfinity: true, noNaN: true });
const floatField = (n: number) =>
  fc.tuple(float32, pad32).map(([v, tp]) => join([tagOf(n, 5, tp), part(floatsBytes([v]))]));
/** A repeated float: packed (wire 2), or one unpacked element (wire 5). */
const floatsField = (n: number) =>
  fc.oneof(
    fc
      .tuple(fc.array(float32, { maxLength: 6 }), pad32, pad32)
      .map(([vs, tp, lp]) => delimited(n, part(floatsBytes(vs)), tp, lp)),
    floatField(n),
    // A packed length that is not whole floats: protobufjs throws.
    fc
      .tuple(fc.integer({ min: 1, max: 3 }), pad32)
      .map(([k, tp]) => join([tagOf(n, 2, tp), part([k, ...Array(k).fill(1)], true)])),
  );

const UINT64 = 2n ** 64n;
/** An int64/uint64: zero, small, huge, with padding up to 10 bytes (or past: refused). */
const varint64Field = (n: number) =>
  fc.oneof(
    fc
      .tuple(
        fc.oneof(
          fc.constant(0n),
          fc.bigInt({ min: 1n, max: 2n ** 20n }),
          fc.bigInt({ min: 0n, max: UINT64 - 1n }),
          fc.constantFrom(2n ** 63n, UINT64 - 1n),
        ),
        fc.oneof({ weight: 6, arbitrary: fc.constant(0) }, fc.integer({ min: 1, max: 10 })),
        pad32,
      )
      .map(([v, p, tp]) => {
        const bytes = varint(v, p);
        return join([tagOf(n, 0, tp), part(bytes, bytes.length > 10)]);
      }),
    // 10 bytes whose only set bit is above bit 63: protobufjs reads 0.
    fc.constant(
      join([tagOf(n, 0, 0), part([0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x02])]),
    ),
  );
/** A uint32 (protobufjs reads at most 5 bytes; the value's high bits are dropped, not refused). */
const uint32Field = (n: number) =>
  fc
    .tuple(fc.bigInt({ min: 0n, max: 2n ** 35n - 1n }), fc.integer({ min: 0, max: 5 }), pad32)
    .map(([v, p, tp]) => {
      const bytes = varint(v, p);
      return join([tagOf(n, 0, tp), part(bytes, bytes.length > 5)]);
    });

/** An unknown field (a number the message does not define), skipped as protobufjs skips it. */
const unknownField = (known: number) =>
  fc
    .tuple(
      fc.integer({ min: known + 1, max: 40 }),
      fc.constantFrom(0, 1, 2, 5),
      fc.nat({ max: 12 }),
      pad32,
    )
    .map(([n, wire, k, tp]): Part => {
      const tag = tagOf(n, wire, tp);
      if (wire === 0) return join([tag, part(varint(BigInt(k) * 1_000_003n, k))]); // any length
      if (wire === 1) return join([tag, part(Array(8).fill(k))]);
      if (wire === 5) return join([tag, part(Array(4).fill(k))]);
      return join([tag, part(varint(BigInt(k)).concat(Array(k).fill(0x41)))]);
    });

/** A known field sent with another wire type, well formed otherwise: refused. */
const wrongWire = (fields: readonly (readonly [number, readonly number[]])[]) =>
  fc
    .tuple(fc.constantFrom(...fields), fc.constantFrom(0, 1, 2, 5), fc.nat({ max: 5 }))
    .filter(([[, ok], wire]) => !ok.includes(wire))
    .map(([[n], wire, k]): Part => {
      const tag = varint(BigInt((n << 3) | wire));
      const body =
        wire === 0
          ? varint(BigInt(k))
          : wire === 1
            ? Array(8).fill(k)
            : wire === 5
              ? Array(4).fill(k)
              : [k, ...Array(k).fill(0x61)];
      return part([...tag, ...body], true);
    });

/** Other malformations: a group, field number 0, wire type 4/6/7, a uint32 longer than 5 bytes. */
const oddField = fc.oneof(
  fc.constant(part([0x4b, 0x08, 0x01, 0x4c], true)), // group 9
  fc.constant(part([0x00, 0x00], true)), // field 0
  fc.constantFrom(part([0x0c], true), part([0x0e, 0x00], true), part([0x0f], true)),
);

const memoryFields = [
  stringField(1),
  stringField(2),
  floatsField(3),
  floatField(4),
  varint64Field(5),
  varint64Field(6),
];
const memoryPayload = fc
  .tuple(
    fc.array(fc.oneof(...memoryFields, unknownField(6)), { maxLength: 7 }),
    rarely(
      fc.oneof(
        wrongWire([
          [1, [2]],
          [2, [2]],
          [3, [2, 5]],
          [4, [5]],
          [5, [0]],
          [6, [0]],
        ]),
        oddField,
      ),
      12,
    ),
  )
  .map(([fields, bad]) => join(bad === null ? fields : [...fields, bad]));

const cuePayload = fc
  .tuple(
    fc.array(fc.oneof(stringField(1), floatsField(2), unknownField(2)), { maxLength: 4 }),
    rarely(
      wrongWire([
        [1, [2]],
        [2, [2, 5]],
      ]),
      12,
    ),
  )
  .map(([fields, bad]) => join(bad === null ? fields : [...fields, bad]));
const messageField = (n: number, payload: fc.Arbitrary<Part>) =>
  fc
    .tuple(payload, pad32, pad32)
    .map(([p, tp, lp]) => ({ ...delimited(n, p, tp, lp), payload: p }));

/** A request: its fields in random order, repeated, with rare malformations; maybe truncated. */
function request(
  fields: fc.Arbitrary<Part>[],
  known: number,
  wrong: readonly (readonly [number, readonly number[]])[],
) {
  return fc
    .tuple(
      fc.array(fc.oneof(...fields, unknownField(known)), { maxLength: 7 }),
      rarely(fc.oneof(wrongWire(wrong), oddField), 10),
      rarely(fc.nat(), 10),
    )
    .map(([parts, bad, cut]) => {
      const all = bad === null ? parts : [...parts, bad];
      const whole = join(all);
      if (cut === null || whole.bytes.length === 0) return { ...whole, parts: all };
      // Cut short: a truncation the router may refuse (or that happens to end on a field).
      // Its fields are no longer known: `parts` null.
      return { bytes: whole.bytes.slice(0, cut % whole.bytes.length), defect: true, parts: null };
    });
}

/** Runs `read` and the oracle; true when the router refused. Checks refusal is allowed. */
function routerRefused(read: () => unknown, defect: boolean): boolean {
  try {
    read();
    return false;
  } catch (err) {
    if (!(err instanceof MalformedMessageError)) throw err;
    if (!defect) throw new Error(`refused a well-formed message: ${err.message}`);
    return true;
  }
}

function decodeOrNull<T>(decode: () => T, defect: boolean): T | null {
  try {
    return decode();
  } catch (err) {
    if (!defect) throw err;
    return null;
  }
}

const RUNS = 4000;
const UUID = '123e4567-e89b-12d3-a456-426614174000';
const VERSION = 1_764_000_000_123_456;

describe('proto-reader against protobufjs (the node decoder)', () => {
  it('routes a StoreRequest by the space_id the node decodes, and stamps exactly what the merged memory lacks, or refuses', () => {
    const memory = messageField(2, memoryPayload);
    const stats = { refused: 0, accepted: 0, multi: 0 };
    fc.assert(
      fc.property(
        request([stringField(1), memory], 2, [
          [1, [2]],
          [2, [2]],
        ]),
        (req) => {
          const f = frame(req.bytes);
          const node = decodeOrNull(() => Store.requestDeserialize(f.subarray(5)), req.defect);
          let spaceId = '';
          if (routerRefused(() => (spaceId = readSpaceId(f, REQUEST.store)), req.defect)) {
            stats.refused++;
            return;
          }
          // Accepted: the node decodes it, to the same space.
          expect(node).not.toBeNull();
          expect(spaceId).toBe(node!.spaceId);
          stats.accepted++;
          const out = stampStore(f, () => UUID, VERSION);
          expect(out.readUInt32BE(1)).toBe(out.length - 5);
          const after = Store.requestDeserialize(out.subarray(5));
          expect(after.spaceId).toBe(node!.spaceId);
          if (req.parts === null) {
            // Cut short but still well formed: stamped all the same.
            if (after.memory !== null) expect(after.memory.version).not.toBe(0);
            return;
          }
          const memories = req.parts.filter((p): p is Part & { payload: Part } => 'payload' in p);
          if (memories.length === 0) {
            expect(out).toBe(f);
            expect(after).toEqual(node);
            return;
          }
          if (memories.length > 1) stats.multi++;
          // The merged memory: what parsing the occurrences' concatenation gives (the spec).
          const merged = Store.requestDeserialize(
            Buffer.from([
              0x12,
              ...varint(BigInt(memories.reduce((n, m) => n + m.payload.bytes.length, 0))),
              ...memories.flatMap((m) => m.payload.bytes),
            ]),
          ).memory!;
          expect(after.memory).toEqual({
            ...merged,
            id: merged.id === '' ? UUID : merged.id,
            version: merged.version === 0 ? VERSION : merged.version,
            createdAtMs: merged.createdAtMs === 0 ? Math.floor(VERSION / 1000) : merged.createdAtMs,
          });
          // Stamped once: a second pass leaves it byte-identical.
          expect(stampStore(out, () => 'x'.repeat(36), VERSION + 1)).toBe(out);
        },
      ),
      { numRuns: RUNS },
    );
    // The generator reaches both sides, and repeated memories.
    expect(stats.refused).toBeGreaterThan(RUNS / 20);
    expect(stats.accepted).toBeGreaterThan(RUNS / 4);
    expect(stats.multi).toBeGreaterThan(RUNS / 50);
  });

  /** RecallRequest and QueryRequest share a shape: 1 string(s), 2 Cue, 3 uint32. */
  const cueRequest = () =>
    request([stringField(1), messageField(2, cuePayload), uint32Field(3)], 3, [
      [1, [2]],
      [2, [2]],
      [3, [0]],
    ]);

  it('routes a RecallRequest by the space_id the node decodes, or refuses', () => {
    fc.assert(
      fc.property(cueRequest(), (req) => {
        const f = frame(req.bytes);
        const node = decodeOrNull(() => Recall.requestDeserialize(f.subarray(5)), req.defect);
        let spaceId = '';
        if (routerRefused(() => (spaceId = readSpaceId(f, REQUEST.recall)), req.defect)) return;
        expect(node).not.toBeNull();
        expect(spaceId).toBe(node!.spaceId);
      }),
      { numRuns: RUNS },
    );
  });

  it('stamps a ConsolidateRequest version only when the node would read 0, or refuses', () => {
    fc.assert(
      fc.property(
        request([stringField(1), floatField(2), varint64Field(3)], 3, [
          [1, [2]],
          [2, [5]],
          [3, [0]],
        ]),
        (req) => {
          const f = frame(req.bytes);
          const node = decodeOrNull(
            () => Consolidate.requestDeserialize(f.subarray(5)),
            req.defect,
          );
          let spaceId = '';
          if (routerRefused(() => (spaceId = readSpaceId(f, REQUEST.consolidate)), req.defect))
            return;
          expect(node).not.toBeNull();
          expect(spaceId).toBe(node!.spaceId);
          const out = stampConsolidate(f, VERSION);
          if (node!.version !== 0) expect(out).toBe(f);
          expect(Consolidate.requestDeserialize(out.subarray(5))).toEqual({
            ...node,
            version: node!.version === 0 ? VERSION : node!.version,
          });
        },
      ),
      { numRuns: RUNS },
    );
  });

  it('reads exactly the space_ids the node decodes from a QueryRequest, or refuses', () => {
    fc.assert(
      fc.property(cueRequest(), (req) => {
        const f = frame(req.bytes);
        const node = decodeOrNull(() => Query.requestDeserialize(f.subarray(5)), req.defect);
        let ids: string[] = [];
        if (routerRefused(() => (ids = readQuerySpaceIds(f)), req.defect)) return;
        expect(node).not.toBeNull();
        expect(ids).toEqual(node!.spaceIds);
      }),
      { numRuns: RUNS },
    );
  });
});

describe('proto-reader refusals and rules', () => {
  const refusal = (f: () => unknown) => {
    try {
      f();
    } catch (err) {
      return err as MalformedMessageError;
    }
    throw new Error('not refused');
  };

  it('routes a repeated space_id by the last one, as the node does (no smuggling)', () => {
    const f = frame([0x0a, 0x01, 0x61, 0x12, 0x00, 0x0a, 0x01, 0x62]);
    expect(Store.requestDeserialize(f.subarray(5)).spaceId).toBe('b');
    expect(readSpaceId(f, REQUEST.store)).toBe('b');
  });

  it('reads every space_id as its bytes decode, however ids recur, collide or evict each other in the id cache', () => {
    // A RecallRequest carrying `id` as space_id (field 1).
    const recall = (id: Uint8Array) => frame([0x0a, ...varint(BigInt(id.length)), ...id]);
    const ids: Uint8Array[] = [];
    // Thousands of ids of few lengths (more than the cache's slots, so ids share slots and
    // evict one another), ids one byte apart, invalid UTF-8, and ids past the cached length.
    for (let i = 0; i < 3000; i++) ids.push(Buffer.from(`space-${i % 1500}`));
    for (let i = 0; i < 256; i++) ids.push(Uint8Array.of(0x61, i, 0x62));
    ids.push(Uint8Array.of(0xff, 0xfe), Uint8Array.of(0xc3), Uint8Array.of(0xc3, 0xa9));
    ids.push(Buffer.from('x'.repeat(64)), Buffer.from('x'.repeat(65)), Buffer.from('é'.repeat(40)));
    for (let round = 0; round < 2; round++) {
      for (const id of ids) {
        const f = recall(id);
        const expected = Recall.requestDeserialize(f.subarray(5)).spaceId;
        expect(readSpaceId(f, REQUEST.recall)).toBe(expected);
        expect(expected).toBe(Buffer.from(id).toString('utf8'));
      }
    }
  });

  it('names the field and the wire type it refuses', () => {
    const err = refusal(() => readSpaceId(frame([0x08, 0x05, 0x61, 0x62]), REQUEST.store));
    expect(err).toBeInstanceOf(MalformedMessageError);
    expect(err.code).toBe('InvalidArgument');
    expect(err.grpcStatus).toBe(3);
    expect(err.reason).toBe(WIRE_ERROR.wireType);
    expect(err.field).toBe('StoreRequest.space_id');
    expect(err.value).toBe(0);
    expect(err.message).toBe(
      'malformed request message: StoreRequest.space_id: wire type 0, expected 2',
    );
    const nested = refusal(() =>
      stampStore(frame([0x0a, 0x01, 0x61, 0x12, 0x02, 0x32, 0x00]), () => UUID, VERSION),
    );
    expect([nested.reason, nested.field, nested.value]).toEqual([
      WIRE_ERROR.wireType,
      'StoreRequest.memory.version',
      2,
    ]);
  });

  it('refuses groups, field 0, over-long uint32 varints, ragged packed floats and trailing bytes', () => {
    const reasons = [
      [frame([0x0a, 0x01, 0x61, 0x4b, 0x08, 0x01, 0x4c]), WIRE_ERROR.group],
      [frame([0x00, 0x00]), WIRE_ERROR.fieldNumber],
      [frame([0x18, 0x81, 0x80, 0x80, 0x80, 0x80, 0x00]), WIRE_ERROR.varint],
      [frame([0x12, 0x05, 0x12, 0x03, 1, 2, 3]), WIRE_ERROR.packedLength],
      [Buffer.concat([frame([0x0a, 0x01, 0x61]), Buffer.from([0])]), WIRE_ERROR.frame],
      [frame([0x0a, 0x05, 0x61]), WIRE_ERROR.truncated],
    ] as const;
    for (const [f, reason] of reasons) {
      expect(refusal(() => readSpaceId(f, REQUEST.recall)).reason).toBe(reason);
    }
    // Over-long but within what protobufjs reads alike: accepted, same value.
    const long = frame([0x8a, 0x80, 0x00, 0x81, 0x80, 0x80, 0x00, 0x61]);
    expect(readSpaceId(long, REQUEST.recall)).toBe(
      Recall.requestDeserialize(long.subarray(5)).spaceId,
    );
  });

  it('merges memories sent twice into one, deciding the stamps on the merged view', () => {
    // memory { id: "a", version: 5 } then memory { content: "x" }: merged, it has an id and a
    // version (protobufjs alone would keep only the second and stamp a fresh id on each node).
    const first = [0x0a, 0x01, 0x61, 0x30, 0x05];
    const second = [0x12, 0x01, 0x78];
    const f = frame([
      0x12,
      first.length,
      ...first,
      0x0a,
      0x01,
      0x73,
      0x12,
      second.length,
      ...second,
    ]);
    const out = stampStore(f, () => UUID, VERSION);
    const decoded = Store.requestDeserialize(out.subarray(5));
    expect(decoded.spaceId).toBe('s');
    expect(decoded.memory).toMatchObject({
      id: 'a',
      content: 'x',
      version: 5,
      createdAtMs: Math.floor(VERSION / 1000),
    });
  });
});

import { MemoryServiceDefinition, type MemoryServiceHandlers } from '@engram/proto';
import * as grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Router } from '../src/index.js';
import { ringOf } from './helpers.js';

/** A MemoryService whose Recall answers with the deadline it received (ms left, as content). */
let server: grpc.Server;
let address = '';
let cancelledCalls = 0;

beforeAll(async () => {
  server = new grpc.Server();
  const unimplemented = (_call: unknown, callback: grpc.sendUnaryData<never>) =>
    callback({ code: grpc.status.UNIMPLEMENTED } as grpc.ServiceError);
  const handlers: MemoryServiceHandlers = {
    Store: unimplemented,
    Consolidate: unimplemented,
    Query: unimplemented,
    Recall: (call, callback) => {
      const deadline = call.getDeadline();
      const at = deadline instanceof Date ? deadline.getTime() : Number(deadline);
      const left = at - Date.now();
      if (call.request.spaceId === 'slow') {
        // Never answers: the router must cancel it (RST_STREAM) when the attempt times out.
        call.on('cancelled', () => {
          cancelledCalls++;
        });
        return;
      }
      callback(null, { memories: [{ memory: { content: String(left) }, score: 1 }] });
    },
  };
  server.addService(MemoryServiceDefinition, handlers);
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (e, p) =>
      e ? reject(e) : resolve(p),
    ),
  );
  address = `127.0.0.1:${port}`;
});
afterAll(() => {
  server.forceShutdown();
});

describe('deadline propagation', () => {
  it('sends the remaining operation deadline as the gRPC deadline of each call', async () => {
    const r = new Router({
      table: ringOf([{ id: 'd', address }]),
      options: { attemptTimeoutMs: Number.POSITIVE_INFINITY },
    });
    try {
      const response = await r.recall(
        { spaceId: 'fast', cue: { text: 'x' } },
        { deadlineMs: 3_000 },
      );
      const left = Number(response.memories[0]!.memory!.content);
      expect(left).toBeGreaterThan(2_000);
      expect(left).toBeLessThanOrEqual(3_000);
      // With an attempt timeout shorter than the deadline, that is what the node sees.
      const short = await r.recall(
        { spaceId: 'fast', cue: { text: 'x' } },
        { deadlineMs: 3_000, attemptTimeoutMs: 700 },
      );
      const shortLeft = Number(short.memories[0]!.memory!.content);
      expect(shortLeft).toBeGreaterThan(0);
      expect(shortLeft).toBeLessThanOrEqual(700);
    } finally {
      await r.close();
    }
  });

  it('cancels the call on the node when the attempt times out', async () => {
    const r = new Router({ table: ringOf([{ id: 'd', address }]), options: { maxRetries: 0 } });
    try {
      await expect(
        r.recall({ spaceId: 'slow', cue: { text: 'x' } }, { attemptTimeoutMs: 200 }),
      ).rejects.toMatchObject({ code: 'ConnectionFailed' });
      await expect.poll(() => cancelledCalls).toBe(1);
    } finally {
      await r.close();
    }
  });
});

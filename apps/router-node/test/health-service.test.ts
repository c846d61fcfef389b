import type { H2Stream } from '@engram/h2';
import { describe, expect, it } from 'vitest';
import { HealthService } from '../src/internal/health-service.js';
import { Replies } from '../src/internal/reply.js';
import { frameMessage } from '../src/internal/wire.js';

/** What a fake stream was sent: statuses (1 SERVING, 2 NOT_SERVING, 3 SERVICE_UNKNOWN), end. */
interface Sent {
  statuses: number[];
  ended: boolean;
}

/** A Watch/Check stream that records what it is sent (the calls HealthService makes). */
function fakeStream(): { stream: H2Stream; sent: Sent } {
  const sent: Sent = { statuses: [], ended: false };
  const stream = {
    closed: false,
    sentHeaders: false,
    sendHeaders(_headers: string[], endStream: boolean) {
      this.sentHeaders = true;
      if (endStream) sent.ended = true;
    },
    sendData(data: Buffer) {
      // One gRPC frame of HealthCheckResponse { status = 1 }: header, 0x08, value.
      sent.statuses.push(data[6]!);
    },
    sendTrailers() {
      sent.ended = true;
    },
  };
  return { stream: stream as unknown as H2Stream, sent };
}

/** HealthCheckRequest { service } as one gRPC frame. */
function request(service: string): Buffer {
  const name = Buffer.from(service);
  return frameMessage(
    service === '' ? new Uint8Array() : Buffer.from([0x0a, name.length, ...name]),
  );
}

const SERVING = 1;
const NOT_SERVING = 2;
const SERVICE_UNKNOWN = 3;

function healthService() {
  const state = { draining: false };
  const health = new HealthService(
    new Replies(),
    () => true,
    () => state.draining,
  );
  return { health, state };
}

describe('HealthService: the drain window, then GOAWAY', () => {
  it('Check answers NOT_SERVING as soon as draining starts', () => {
    const { health, state } = healthService();
    const before = fakeStream();
    health.check(before.stream, request(''));
    expect(before.sent).toEqual({ statuses: [SERVING], ended: true });
    state.draining = true;
    const during = fakeStream();
    health.check(during.stream, request('engram.v1.MemoryService'));
    expect(during.sent).toEqual({ statuses: [NOT_SERVING], ended: true });
  });

  it('update() tells open watches NOT_SERVING once and keeps them open; drain() ends them', () => {
    const { health, state } = healthService();
    const all = fakeStream();
    const unknown = fakeStream();
    health.watch(all.stream, request(''));
    health.watch(unknown.stream, request('no.such.Service'));
    health.update(); // nothing changed: nothing sent
    expect(all.sent).toEqual({ statuses: [SERVING], ended: false });

    state.draining = true;
    health.update();
    health.update();
    expect(all.sent).toEqual({ statuses: [SERVING, NOT_SERVING], ended: false });
    // A watch opened inside the window gets NOT_SERVING and stays open too.
    const late = fakeStream();
    health.watch(late.stream, request(''));
    expect(late.sent).toEqual({ statuses: [NOT_SERVING], ended: false });
    expect(unknown.sent).toEqual({ statuses: [SERVICE_UNKNOWN], ended: false });

    health.drain();
    expect(all.sent).toEqual({ statuses: [SERVING, NOT_SERVING], ended: true });
    expect(late.sent).toEqual({ statuses: [NOT_SERVING], ended: true });
    expect(unknown.sent).toEqual({ statuses: [SERVICE_UNKNOWN], ended: true });
  });

  it('drain() without a window tells watches NOT_SERVING before their end; later watches end at once', () => {
    const { health } = healthService();
    const w = fakeStream();
    health.watch(w.stream, request(''));
    health.drain();
    expect(w.sent).toEqual({ statuses: [SERVING, NOT_SERVING], ended: true });
    const after = fakeStream();
    health.watch(after.stream, request(''));
    expect(after.sent).toEqual({ statuses: [NOT_SERVING], ended: true });
  });

  it('skips watches whose client left', () => {
    const { health, state } = healthService();
    const gone = fakeStream();
    health.watch(gone.stream, request(''));
    (gone.stream as unknown as { closed: boolean }).closed = true;
    state.draining = true;
    health.update();
    health.drain();
    expect(gone.sent).toEqual({ statuses: [SERVING], ended: false });
  });
});

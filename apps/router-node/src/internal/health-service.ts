import type { H2Stream } from '@engram/h2';
import { GRPC_STATUS } from './errors.js';
import { OK_TRAILERS, REPLY_HEADERS, type Replies } from './reply.js';
import { frameMessage, REQUEST, readSpaceId } from './wire.js';

export const HEALTH_CHECK_PATH = '/grpc.health.v1.Health/Check';
export const HEALTH_WATCH_PATH = '/grpc.health.v1.Health/Watch';
const HEALTH_SERVICE = 'engram.v1.MemoryService';
/** HealthCheckResponse { status = 1 } frames: SERVING = 1, NOT_SERVING = 2, SERVICE_UNKNOWN = 3. */
const HEALTH_SERVING = frameMessage(Uint8Array.of(0x08, 1));
const HEALTH_NOT_SERVING = frameMessage(Uint8Array.of(0x08, 2));
const HEALTH_SERVICE_UNKNOWN = frameMessage(Uint8Array.of(0x08, 3));

/** HealthCheckRequest's `service`; null for a malformed request. */
function serviceOf(body: Buffer): string | null {
  try {
    return readSpaceId(body, REQUEST.health);
  } catch {
    return null;
  }
}

/**
 * `grpc.health.v1` on the ingress, for load balancers: SERVING while the table is usable and
 * the router is not draining. Watch streams get the status now, and NOT_SERVING then the end
 * of the stream when draining starts, so watchers see the router go and do not hold the drain.
 */
export class HealthService {
  readonly #replies: Replies;
  readonly #serving: () => boolean;
  readonly #draining: () => boolean;
  /** Open Watch streams, and whether their service is known. */
  readonly #watchers = new Map<H2Stream, boolean>();

  constructor(replies: Replies, serving: () => boolean, draining: () => boolean) {
    this.#replies = replies;
    this.#serving = serving;
    this.#draining = draining;
  }

  #status(): Buffer {
    return this.#draining() || !this.#serving() ? HEALTH_NOT_SERVING : HEALTH_SERVING;
  }

  /** Health/Check; an unknown service is NOT_FOUND, as the health protocol asks. */
  check(stream: H2Stream, body: Buffer): void {
    // HealthCheckRequest { string service = 1 }: the same field-1 reader works.
    const service = serviceOf(body);
    if (service !== '' && service !== HEALTH_SERVICE) {
      this.#replies.fail(stream, GRPC_STATUS.NOT_FOUND, 'unknown service');
      return;
    }
    const reply = this.#status();
    if (stream.closed) return;
    stream.sendHeaders(REPLY_HEADERS, false);
    stream.sendData(reply, false);
    stream.sendTrailers(OK_TRAILERS);
  }

  /** Health/Watch: an unknown service gets SERVICE_UNKNOWN and the stream stays open. */
  watch(stream: H2Stream, body: Buffer): void {
    const service = serviceOf(body);
    if (service === null) {
      this.#replies.fail(stream, GRPC_STATUS.INVALID_ARGUMENT, 'malformed HealthCheckRequest');
      return;
    }
    if (stream.closed) return;
    stream.sendHeaders(REPLY_HEADERS, false);
    const known = service === '' || service === HEALTH_SERVICE;
    const status = known ? this.#status() : HEALTH_SERVICE_UNKNOWN;
    stream.sendData(status, false);
    if (status === HEALTH_NOT_SERVING && this.#draining()) {
      stream.sendTrailers(OK_TRAILERS);
      return;
    }
    this.#watchers.set(stream, known);
  }

  /** A Watch stream ended (client left). */
  ended(stream: H2Stream): void {
    this.#watchers.delete(stream);
  }

  /** Draining started: watchers learn NOT_SERVING, then their streams end. */
  drain(): void {
    for (const [w, known] of this.#watchers) {
      if (w.closed) continue;
      if (known) w.sendData(HEALTH_NOT_SERVING, false);
      w.sendTrailers(OK_TRAILERS);
    }
    this.#watchers.clear();
  }
}

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
 * the router is not draining. Watch streams get the status now and every change `update()`
 * finds (SIGTERM's drain window: NOT_SERVING while calls are still served, so a balancer
 * watching takes the router out of rotation); `drain()` (GOAWAY) ends them, so open watches
 * do not hold the connection up to the grace period.
 */
export class HealthService {
  readonly #replies: Replies;
  readonly #serving: () => boolean;
  readonly #draining: () => boolean;
  /** Open Watch streams, and the status each was last sent (SERVICE_UNKNOWN: never changes). */
  readonly #watchers = new Map<H2Stream, Buffer>();
  /** drain() ran: a Watch that still arrives gets its status and its end at once. */
  #closed = false;

  constructor(replies: Replies, serving: () => boolean, draining: () => boolean) {
    this.#replies = replies;
    this.#serving = serving;
    this.#draining = draining;
  }

  #status(): Buffer {
    return this.#closed || this.#draining() || !this.#serving()
      ? HEALTH_NOT_SERVING
      : HEALTH_SERVING;
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
    if (this.#closed) {
      stream.sendTrailers(OK_TRAILERS);
      return;
    }
    this.#watchers.set(stream, status);
  }

  /** A Watch stream ended (client left). */
  ended(stream: H2Stream): void {
    this.#watchers.delete(stream);
  }

  /** The status may have changed (the drain window started): watchers get the new one. */
  update(): void {
    const status = this.#status();
    for (const [w, sent] of this.#watchers) {
      if (sent === status || sent === HEALTH_SERVICE_UNKNOWN) continue;
      if (w.closed) {
        this.#watchers.delete(w);
        continue;
      }
      w.sendData(status, false);
      this.#watchers.set(w, status);
    }
  }

  /** GOAWAY: watchers learn NOT_SERVING (if not told yet), then their streams end. */
  drain(): void {
    this.#closed = true;
    this.update();
    for (const w of this.#watchers.keys()) {
      if (!w.closed) w.sendTrailers(OK_TRAILERS);
    }
    this.#watchers.clear();
  }
}

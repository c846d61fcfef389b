import { Buffer } from 'node:buffer';
import net from 'node:net';

/**
 * Socket reads into one buffer per thread instead of a fresh one per read.
 *
 * A `net.Socket` read through 'data' events costs, per read, a 64 KiB allocation shrunk to
 * what was read, a Buffer around it, and Node's Readable machinery (push, addChunk, emit).
 * With a caller's buffer (Node's `onread`) a read lands in that buffer and a callback gets its
 * length, nothing else. One buffer serves every socket of the thread: libuv fills it and the
 * callback runs to completion before the next read into it, so whatever is kept past the
 * callback must be copied out: the connection copies each read once, exactly sized, and
 * parses the copy (DATA payloads, a partial frame, a header block cut between reads are kept
 * as views of it). An idle connection holds no read buffer at all.
 *
 * `net.connect` takes `onread`; a server's accepted sockets cannot be given one. For those
 * `adoptSharedReads` sets the same two fields `onread` sets, found by their values on probe
 * sockets, and tells the handle to use the buffer, as Node does for `onread`. Where this
 * Node's sockets do not look as expected it declines and the caller reads through 'data'.
 */

/** Bytes `buf[0, end)` were read; `buf` is the shared buffer, reused by the next read. */
export type ReadSink = (buf: Buffer, end: number) => void;

/** One socket's reads: the callback Node calls, and the connection it hands the bytes to. */
class SharedReads {
  sink: ReadSink | null = null;
  socket: net.Socket | null = null;
  /** Returns true: reading goes on (false would pause the socket). */
  readonly callback = (length: number): boolean => {
    const sink = this.sink;
    if (sink === null) {
      // Read before a connection took the socket's reads (its setup failed): the bytes have
      // nowhere to go, so neither has the socket. Never a throw into Node's read path, nor an
      // 'error' event nobody may be listening for.
      this.socket?.destroy();
      return false;
    }
    sink(shared(), length);
    return true;
  };
}

/** Bytes per read at most; a bigger read arrives as several. */
export const SHARED_READ_BYTES = 64 * 1024;

let sharedBuffer: Buffer | null = null;

/** This thread's read buffer (module state is per isolate: each worker thread has its own). */
function shared(): Buffer {
  if (sharedBuffer === null) sharedBuffer = Buffer.allocUnsafe(SHARED_READ_BYTES);
  return sharedBuffer;
}

const readsOf = new WeakMap<net.Socket, SharedReads>();

/** A TCP connection whose reads go to the shared buffer (`take` attaches the connection). */
export function connectSharedReads(host: string, port: number): net.Socket {
  const reads = new SharedReads();
  const socket = net.connect({
    host,
    port,
    onread: { buffer: shared(), callback: reads.callback },
  });
  reads.socket = socket;
  readsOf.set(socket, reads);
  return socket;
}

/**
 * Attaches `sink` to a socket set up by `connectSharedReads` or `adoptSharedReads`; false for
 * any other socket (read it through 'data' events).
 */
export function takeSharedReads(socket: net.Socket, sink: ReadSink): boolean {
  const reads = readsOf.get(socket);
  if (reads === undefined) return false;
  reads.sink = sink;
  return true;
}

interface UserBufferKeys {
  readonly buffer: symbol;
  readonly callback: symbol;
  readonly generator: symbol;
}

/** undefined: not looked for yet; null: this Node's sockets do not have them. */
let keys: UserBufferKeys | null | undefined;

/** The symbols `net.Socket` keeps `onread`'s buffer, callback and generator under. */
function userBufferKeys(): UserBufferKeys | null {
  if (keys !== undefined) return keys;
  keys = null;
  try {
    const probeBuffer = Buffer.alloc(1);
    const probeCallback = () => true;
    const probeGenerator = () => probeBuffer;
    // The constructor takes `onread` as `net.connect` does (its types list it for connect only).
    const probe = (onread: net.OnReadOpts) =>
      new net.Socket({ onread } as net.SocketConstructorOpts);
    const withBuffer = probe({ buffer: probeBuffer, callback: probeCallback });
    const withGenerator = probe({ buffer: probeGenerator, callback: probeCallback });
    const holding = (socket: net.Socket, value: unknown): symbol[] =>
      Object.getOwnPropertySymbols(socket).filter(
        (k) => (socket as unknown as Record<symbol, unknown>)[k] === value,
      );
    const buffer = holding(withBuffer, probeBuffer);
    const callback = holding(withBuffer, probeCallback);
    const generator = holding(withGenerator, probeGenerator);
    withBuffer.destroy();
    withGenerator.destroy();
    if (buffer.length === 1 && callback.length === 1 && generator.length === 1) {
      keys = { buffer: buffer[0]!, callback: callback[0]!, generator: generator[0]! };
    }
  } catch {
    keys = null;
  }
  return keys;
}

interface StreamHandle {
  reading?: boolean;
  useUserBuffer?: (buffer: Uint8Array) => void;
}

/**
 * Makes a socket a server accepted (paused: the server's `pauseOnConnect`) read into the shared
 * buffer, as `onread` would have. Returns false, changing nothing, when the socket is not a
 * fresh paused TCP socket with the fields expected; it is read through 'data' events then.
 * The caller resumes the socket once its connection took the reads.
 */
export function adoptSharedReads(socket: net.Socket): boolean {
  const k = userBufferKeys();
  if (k === null) return false;
  const handle = (socket as unknown as { _handle?: StreamHandle | null })._handle;
  if (handle == null || typeof handle.useUserBuffer !== 'function' || handle.reading === true) {
    return false;
  }
  const fields = socket as unknown as Record<symbol, unknown>;
  if (fields[k.buffer] !== null || fields[k.callback] !== null || fields[k.generator] !== null) {
    return false;
  }
  const reads = new SharedReads();
  reads.socket = socket;
  const buffer = shared();
  handle.useUserBuffer(buffer);
  fields[k.buffer] = buffer;
  fields[k.callback] = reads.callback;
  readsOf.set(socket, reads);
  return true;
}

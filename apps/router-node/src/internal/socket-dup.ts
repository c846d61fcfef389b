import { type ChildProcess, fork } from 'node:child_process';
import { Socket } from 'node:net';

/** A raw libuv TCP handle received over IPC: owns an fd, reads nothing. */
interface RawHandle {
  readonly fd: number;
  close?(): void;
}

/** How long one duplication may take before it fails. */
const DUP_TIMEOUT_MS = 5000;

/**
 * Gives each data-plane thread its own fd for the one listening socket. Threads that listened
 * on the same fd number all close that number when any of them exits, which would take the
 * listener away from the others (a crashed worker then stopped the whole ingress). With one fd
 * per thread the socket lives while any fd is open, so a crashed worker can be replaced on a
 * fresh duplicate with no gap in accepting. Node has no `dup()`: a helper process echoes the
 * handle back over the IPC channel (SCM_RIGHTS), which yields a new fd. The control plane
 * keeps one duplicate (`master`) that never reads, the source of later duplicates.
 */
export class SocketDuplicator {
  readonly #child: ChildProcess;
  #master: RawHandle | null = null;
  /** Received handles: kept referenced, never closed here (the thread given the fd owns it). */
  readonly #given: RawHandle[] = [];
  #queue: Promise<unknown> = Promise.resolve();
  #closed = false;

  private constructor(child: ChildProcess) {
    this.#child = child;
  }

  /** Starts the helper and takes a master duplicate of `fd` (a listening socket's fd). */
  static async start(fd: number): Promise<SocketDuplicator> {
    const child = fork(new URL('./dup-child.js', import.meta.url), [], {
      stdio: ['ignore', 'ignore', 'inherit', 'ipc'],
      execArgv: [],
    });
    child.on('error', () => {});
    const d = new SocketDuplicator(child);
    // A non-reading wrapper of the thread's fd, only to send it; dropped without closing
    // (closing would close the thread's fd).
    const wrapper = new Socket({ fd, readable: false, writable: false });
    const handle = (wrapper as unknown as { _handle: RawHandle })._handle;
    try {
      d.#master = await d.#echo(handle);
    } catch (err) {
      d.close();
      throw err;
    }
    child.unref();
    (child.channel as { unref?: () => void } | undefined)?.unref?.();
    return d;
  }

  /** A new fd for the listening socket, to give to one thread (which then owns it). */
  duplicate(): Promise<number> {
    const next = this.#queue.then(async () => {
      if (this.#closed || this.#master === null) throw new Error('socket duplicator is closed');
      const h = await this.#echo(this.#master);
      this.#given.push(h);
      return h.fd;
    });
    this.#queue = next.catch(() => {});
    return next;
  }

  #echo(handle: RawHandle): Promise<RawHandle> {
    return new Promise((resolve, reject) => {
      const child = this.#child;
      const cleanup = () => {
        clearTimeout(timer);
        child.off('message', onMessage);
        child.off('exit', onExit);
      };
      const onMessage = (_msg: unknown, h: unknown) => {
        if (h === undefined) return;
        cleanup();
        resolve(h as RawHandle);
      };
      const onExit = () => {
        cleanup();
        reject(new Error('socket duplicator helper exited'));
      };
      const timer = setTimeout(() => {
        cleanup();
        reject(new Error(`socket duplication timed out after ${DUP_TIMEOUT_MS} ms`));
      }, DUP_TIMEOUT_MS);
      child.on('message', onMessage);
      child.once('exit', onExit);
      child.send({ dup: true }, handle as never, { keepOpen: true }, (err) => {
        if (err) {
          cleanup();
          reject(err);
        }
      });
    });
  }

  /** Stops the helper; the master fd is closed (threads keep their own fds). */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#master?.close?.();
    this.#master = null;
    if (this.#child.connected) this.#child.disconnect();
    if (this.#child.exitCode === null) this.#child.kill();
  }
}

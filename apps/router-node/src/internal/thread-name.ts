import { writeFileSync } from 'node:fs';

/** Linux keeps at most 15 bytes of a thread's name. */
const MAX_NAME_BYTES = 15;

/**
 * Names the calling thread where the OS allows (Linux: `/proc/thread-self/comm`), so `top -H`,
 * `ps -L` and `/proc/<pid>/task/<tid>/comm` tell the data-plane threads from V8's and libuv's
 * (Node names every thread after the process). Best effort: false where the name could not be
 * set; nothing depends on it.
 */
export function nameThisThread(name: string): boolean {
  try {
    writeFileSync('/proc/thread-self/comm', Buffer.from(name).subarray(0, MAX_NAME_BYTES));
    return true;
  } catch {
    return false;
  }
}

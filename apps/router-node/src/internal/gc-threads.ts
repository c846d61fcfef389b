import { setFlagsFromString } from 'node:v8';

/**
 * Runs V8's garbage collector on the thread that allocates (`--single-threaded-gc`: no
 * parallel scavenging, no concurrent marking or sweeping on V8's helper threads), for this
 * whole process: every isolate created after the call, so the data-plane workers, and the
 * main thread's collections from then on. Call it before the workers start. It cannot be
 * undone in a running process.
 *
 * Why it is router-node's default (`singleThreadedGc`), measured in one run of the proxy bench
 * (bench/README.md; 2 cores shared with h2load and the node): V8's helper threads spent
 * 6.0 µs per forwarded call on collections, a third of the process's 18.3 µs; with them off
 * the process spent 15.7 µs per call (0.86×), forwarded 17.6k against 16.0k calls/s (1.10×,
 * ranges apart) and its fixed-rate p99/p999 were 16.2/25.8 against 18.2/28.5 ms. The helpers
 * shorten each pause by working beside the thread; on a machine whose cores are all busy they
 * only add work. Turn it off (`singleThreadedGc: false`) where spare cores make shorter pauses
 * worth the extra CPU.
 */
export function useSingleThreadedGc(): void {
  setFlagsFromString('--single-threaded-gc');
}

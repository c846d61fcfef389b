import { slowStartShare } from '@engram/router';
import { C_TIME_BASE_S, N_UP_SINCE, nodeWord, passiveNow, slotCount } from './layout.js';

/**
 * Slow start over the state buffer's slow-start words (layout.ts): the control plane marks a
 * node that came back; every data-plane thread reads how far into its ramp the node is, which
 * the Router's decider uses as the node's read share (NodeStates.warmth).
 */

/** Control plane: node `slot` came back now (its ramp starts). */
export function markReturned(control: Int32Array, slot: number): void {
  if (slot < 0 || slot >= slotCount(control)) return;
  // Stored plus one: 0 means "not returning".
  Atomics.store(control, nodeWord(slot, N_UP_SINCE), passiveNow(control) + 1);
}

/**
 * Data plane: the share of reads node `slot` may take, in [0, 1], over a ramp of `windowMs`
 * (0 = no slow start). One `Atomics.load` while the node is not returning; the first reader
 * that finds its ramp over clears the word.
 */
export function nodeWarmth(control: Int32Array, slot: number, windowMs: number): number {
  if (slot < 0 || slot >= slotCount(control)) return 1;
  const at = nodeWord(slot, N_UP_SINCE);
  const since = Atomics.load(control, at);
  if (since === 0) return 1;
  const elapsedMs = Date.now() - (Atomics.load(control, C_TIME_BASE_S) * 10 + since - 1) * 100;
  const share = slowStartShare(elapsedMs, windowMs);
  if (share >= 1) Atomics.compareExchange(control, at, since, 0);
  return share;
}

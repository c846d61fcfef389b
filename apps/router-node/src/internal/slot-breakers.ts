import { ADMITTED, BreakerTable, type BreakerTableOptions } from '@engram/breaker';
import { slotCount, slotGeneration } from './layout.js';

/**
 * The shared breakers as a data-plane thread's Router uses them: a verdict is counted only on
 * the node it was admitted for.
 *
 * Why: a breaker slot is a node slot, and slots are reused (membership.ts). An attempt admitted
 * by a closed breaker (`ADMITTED`) carries nothing of the node it went to, so a failure ending
 * after its node was removed and the slot handed to another (the control plane resets the
 * breaker then) would count on the newcomer: with a few such attempts in flight, the newcomer's
 * breaker opens before it served a call. Probe admissions are safe already (a reset frees the
 * permits; the breaker refuses a permit of another half-open period).
 *
 * How: a closed admission is returned as `CLOSED_BASE - generation` (the slot's N_GEN when it
 * was admitted, layout.ts), an integer ≤ -2 that no caller reads (the Router passes an
 * admission back untouched; it only compares it with REJECTED, 0, and its own BYPASS, -1). A
 * verdict whose generation is no longer the slot's is dropped. Ordering: the control plane
 * raises the generation (TablePublisher.handOut) before it resets the breaker, so a thread that
 * read the old generation and counts a failure either lands before the reset (which wipes it)
 * or in the few instructions between its check and its count: at most one stale failure per
 * thread, the breaker's own tolerance for a verdict racing a transition (breaker layout.ts).
 */
export class SlotBreakers extends BreakerTable {
  readonly #control: Int32Array;
  readonly #slots: number;

  /** `options.buffer`: the control plane's table; `control`: the state buffer's control words. */
  constructor(options: BreakerTableOptions & { buffer: SharedArrayBuffer }, control: Int32Array) {
    super(options);
    this.#control = control;
    this.#slots = slotCount(control);
  }

  override tryAcquire(slot: number): number {
    const admission = super.tryAcquire(slot);
    if (admission !== ADMITTED || slot >= this.#slots) return admission;
    return CLOSED_BASE - slotGeneration(this.#control, slot);
  }

  override onSuccess(slot: number, admission: number): void {
    const a = this.#current(slot, admission);
    if (a !== undefined) super.onSuccess(slot, a);
  }

  override onFailure(slot: number, admission: number): void {
    const a = this.#current(slot, admission);
    if (a !== undefined) super.onFailure(slot, a);
  }

  override release(slot: number, admission: number): void {
    const a = this.#current(slot, admission);
    if (a !== undefined) super.release(slot, a);
  }

  /** The breaker's own admission back; undefined for a closed one of an older generation. */
  #current(slot: number, admission: number): number | undefined {
    if (admission > CLOSED_BASE) return admission;
    return CLOSED_BASE - admission === slotGeneration(this.#control, slot) ? ADMITTED : undefined;
  }
}

/** Closed admissions are CLOSED_BASE - generation: below the Router's BYPASS (-1). */
const CLOSED_BASE = -2;

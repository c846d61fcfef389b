import { createHash } from 'node:crypto';

/** The kind letter hashed into a digest entry. */
export const ENTRY_KINDS = Object.freeze({ Memory: 'm', Tombstone: 't' } as const);
export type EntryKind = (typeof ENTRY_KINDS)[keyof typeof ENTRY_KINDS];

const DIGEST_HEX_DIGITS = 16; // 8 bytes

/**
 * An entry's share of a space digest: the first 8 bytes of SHA-256(id NUL version NUL kind)
 * as a big-endian integer, the version in decimal. The string parses back from its end (kind,
 * then digits), so no two entries hash the same input even when an id contains NUL.
 */
export function entryHash(id: string, version: number, kind: EntryKind): bigint {
  return createHash('sha256').update(`${id}\0${version}\0${kind}`).digest().readBigUInt64BE(0);
}

/**
 * The digest of one space, kept up to date on every change instead of recomputed per
 * ListSpaces. XOR is commutative and its own inverse: the value depends only on which entries
 * are held, never on the order they arrived in, and removing an entry is XORing it again.
 */
export class SpaceDigestState {
  memories = 0;
  tombstones = 0;
  #xor = 0n;

  add(kind: EntryKind, id: string, version: number): void {
    this.#xor ^= entryHash(id, version, kind);
    if (kind === ENTRY_KINDS.Memory) this.memories++;
    else this.tombstones++;
  }

  remove(kind: EntryKind, id: string, version: number): void {
    this.#xor ^= entryHash(id, version, kind);
    if (kind === ENTRY_KINDS.Memory) this.memories--;
    else this.tombstones--;
  }

  /** 16 lowercase hex digits. */
  get hex(): string {
    return this.#xor.toString(16).padStart(DIGEST_HEX_DIGITS, '0');
  }
}

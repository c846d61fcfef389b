const ALPHABET = 'abcdefghijklmnopqrstuvwxyz0123456789-_';

/** `count` pseudo-random space ids of 16–36 bytes, the same for the same seed. */
export function randomSpaceIds(count: number, seed = 0x5eed): string[] {
  let state = seed >>> 0;
  const next = (): number => {
    // xorshift32: fast, deterministic, good enough to spread ids
    state ^= state << 13;
    state >>>= 0;
    state ^= state >>> 17;
    state ^= state << 5;
    state >>>= 0;
    return state;
  };
  const ids: string[] = new Array(count);
  for (let i = 0; i < count; i++) {
    const length = 16 + (next() % 21);
    let id = '';
    for (let j = 0; j < length; j++) id += ALPHABET[next() % ALPHABET.length];
    ids[i] = id;
  }
  return ids;
}

// Random clusters and keys shared by the property tests.
import fc from 'fast-check';
import type { NodeInfo } from '../src/index.js';

export const nodeArb = fc.record({
  id: fc.string({ minLength: 1, maxLength: 12, unit: 'grapheme' }),
  zone: fc.option(fc.constantFrom('a', 'b', 'c', 'd'), { nil: undefined }),
});
export const clusterArb = fc
  .uniqueArray(nodeArb, { minLength: 1, maxLength: 12, selector: (n) => n.id })
  .map((list) =>
    list.map(
      (n, i): NodeInfo => ({
        id: n.id,
        address: `127.0.0.1:${7000 + i}`,
        ...(n.zone === undefined ? {} : { zone: n.zone }),
      }),
    ),
  );
export const keysArb = fc.array(fc.string({ maxLength: 24, unit: 'binary' }), {
  minLength: 1,
  maxLength: 40,
});

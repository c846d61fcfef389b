/**
 * HPACK static table (RFC 7541 Appendix A). Index 1 is the first entry; index 0 is never valid.
 * Entries are module-level constant strings so decoded static fields share them (no allocation).
 */
const ENTRIES: readonly (readonly [string, string])[] = [
  [':authority', ''],
  [':method', 'GET'],
  [':method', 'POST'],
  [':path', '/'],
  [':path', '/index.html'],
  [':scheme', 'http'],
  [':scheme', 'https'],
  [':status', '200'],
  [':status', '204'],
  [':status', '206'],
  [':status', '304'],
  [':status', '400'],
  [':status', '404'],
  [':status', '500'],
  ['accept-charset', ''],
  ['accept-encoding', 'gzip, deflate'],
  ['accept-language', ''],
  ['accept-ranges', ''],
  ['accept', ''],
  ['access-control-allow-origin', ''],
  ['age', ''],
  ['allow', ''],
  ['authorization', ''],
  ['cache-control', ''],
  ['content-disposition', ''],
  ['content-encoding', ''],
  ['content-language', ''],
  ['content-length', ''],
  ['content-location', ''],
  ['content-range', ''],
  ['content-type', ''],
  ['cookie', ''],
  ['date', ''],
  ['etag', ''],
  ['expect', ''],
  ['expires', ''],
  ['from', ''],
  ['host', ''],
  ['if-match', ''],
  ['if-modified-since', ''],
  ['if-none-match', ''],
  ['if-range', ''],
  ['if-unmodified-since', ''],
  ['last-modified', ''],
  ['link', ''],
  ['location', ''],
  ['max-forwards', ''],
  ['proxy-authenticate', ''],
  ['proxy-authorization', ''],
  ['range', ''],
  ['referer', ''],
  ['refresh', ''],
  ['retry-after', ''],
  ['server', ''],
  ['set-cookie', ''],
  ['strict-transport-security', ''],
  ['transfer-encoding', ''],
  ['user-agent', ''],
  ['vary', ''],
  ['via', ''],
  ['www-authenticate', ''],
];

/** Number of static entries (61); dynamic indexes start at STATIC_TABLE_LENGTH + 1. */
export const STATIC_TABLE_LENGTH = 61;

/** STATIC_NAMES[i] / STATIC_VALUES[i] for 1 <= i <= 61; slot 0 is unused. */
export const STATIC_NAMES: readonly string[] = ['', ...ENTRIES.map((e) => e[0])];
export const STATIC_VALUES: readonly string[] = ['', ...ENTRIES.map((e) => e[1])];

/** Encoder lookup for one static name: its lowest index and the indexes of its exact pairs. */
export interface StaticNameEntry {
  readonly nameIndex: number;
  readonly values: ReadonlyMap<string, number>;
}

/** name -> static entry; one Map lookup per encoded field, no key concatenation. */
export const STATIC_LOOKUP: ReadonlyMap<string, StaticNameEntry> = (() => {
  const lookup = new Map<string, { nameIndex: number; values: Map<string, number> }>();
  for (let i = 1; i <= STATIC_TABLE_LENGTH; i++) {
    const name = STATIC_NAMES[i] as string;
    const value = STATIC_VALUES[i] as string;
    let entry = lookup.get(name);
    if (entry === undefined) {
      entry = { nameIndex: i, values: new Map() };
      lookup.set(name, entry);
    }
    if (!entry.values.has(value)) entry.values.set(value, i);
  }
  return lookup;
})();

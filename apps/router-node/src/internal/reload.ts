import type { RouterNodeConfig } from './config.js';
import { CONFIG_SCHEMA } from './config-schema.js';
import { CONFIG_KEYS, type ConfigKey, type ConfigSchema } from './config-spec.js';

// What a SIGHUP does, decided without I/O: the keys whose value differs between the config in
// force and the file read again, each applied live (its schema entry is `reloadable`) or left
// as it is until a restart; and the config in force afterwards.

/** What a reload did with one changed key. */
export type ReloadResult = 'applied' | 'needs-restart';

export interface KeyChange {
  readonly key: ConfigKey;
  readonly result: ReloadResult;
  /** The value in force before (secrets redacted). */
  readonly from: unknown;
  /** The value in the file (secrets redacted). */
  readonly to: unknown;
}

/** The outcome of one successful reload: one entry per changed key, in schema order. */
export interface ReloadReport {
  readonly changes: readonly KeyChange[];
  /** The table epoch after the reload (a new one when `nodes` or `assignments` applied). */
  readonly epoch: number;
}

/** Keys whose values are never logged. */
export const SECRET_KEYS: ReadonlySet<ConfigKey> = new Set<ConfigKey>(['admin.token']);

export const REDACTED = '<redacted>';

/** The value of a dotted key; null under a nullable section that is null (`tls` off). */
export function valueAt(cfg: RouterNodeConfig, key: ConfigKey): unknown {
  let v: unknown = cfg;
  for (const part of key.split('.')) {
    if (v === null || typeof v !== 'object') return null;
    v = (v as Record<string, unknown>)[part];
  }
  return v === undefined ? null : v;
}

/** A value as a log line may show it. */
export function redact(key: ConfigKey, value: unknown): unknown {
  return SECRET_KEYS.has(key) && value !== null ? REDACTED : value;
}

/** Deep equality of JSON-like config values (objects compared key by key, arrays in order). */
export function sameValue(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (a === null || b === null || typeof a !== 'object' || typeof b !== 'object') return false;
  if (Array.isArray(a) !== Array.isArray(b)) return false;
  const ka = Object.keys(a);
  const kb = Object.keys(b);
  if (ka.length !== kb.length) return false;
  return ka.every((k) =>
    sameValue((a as Record<string, unknown>)[k], (b as Record<string, unknown>)[k]),
  );
}

/** The keys that differ between `prev` (in force) and `next` (the file), each with its fate. */
export function diffConfig(
  prev: RouterNodeConfig,
  next: RouterNodeConfig,
  schema: ConfigSchema = CONFIG_SCHEMA,
): KeyChange[] {
  const out: KeyChange[] = [];
  for (const key of CONFIG_KEYS) {
    const from = valueAt(prev, key);
    const to = valueAt(next, key);
    if (sameValue(from, to)) continue;
    out.push({
      key,
      result: schema[key].reloadable ? 'applied' : 'needs-restart',
      from: redact(key, from),
      to: redact(key, to),
    });
  }
  return out;
}

/** True when `key` or any key under it (`router` covers `router.deadlineMs`) is in `keys`. */
export function touches(keys: Iterable<ConfigKey>, prefix: string): boolean {
  for (const k of keys) if (k === prefix || k.startsWith(`${prefix}.`)) return true;
  return false;
}

/**
 * The config in force after a reload: `next`'s value for every applied key, `prev`'s for the
 * others (a key that needs a restart keeps running with its old value, and is reported again
 * by the next reload while the file still differs).
 */
export function configAfter(
  prev: RouterNodeConfig,
  next: RouterNodeConfig,
  changes: readonly KeyChange[],
): RouterNodeConfig {
  const out = structuredClone(prev) as unknown as Record<string, unknown>;
  for (const c of changes) {
    if (c.result !== 'applied') continue;
    const parts = c.key.split('.');
    let node = out;
    for (const part of parts.slice(0, -1)) {
      // A reloadable key never lives under a nullable section (schema test), so this exists.
      node = node[part] as Record<string, unknown>;
    }
    node[parts[parts.length - 1]!] = structuredClone(valueAt(next, c.key));
  }
  return out as unknown as RouterNodeConfig;
}

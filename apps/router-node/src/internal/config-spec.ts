import type { RouterNodeConfig } from './config.js';
import { CONFIG_SCHEMA } from './config-schema.js';

// The types of the schema table (config-schema.ts), the key list and lookups over it, and the
// env var and flag names derived from a key.

interface Common {
  /** True when SIGHUP applies a changed value; false: a restart is needed. */
  readonly reloadable: boolean;
  /** One line for `--help` and the README. */
  readonly description: string;
}
/** An integer (`int`) or any finite number (`number`) in `[min, max]`. */
export interface NumberSpec extends Common {
  readonly type: 'int' | 'number';
  readonly min: number;
  readonly max: number;
  readonly default: number;
}
export interface BoolSpec extends Common {
  readonly type: 'bool';
  readonly default: boolean;
}
/** A non-empty string; no default = required once its (nullable) section is given. */
export interface StringSpec extends Common {
  readonly type: 'string';
  readonly default?: string;
}
/** A non-empty string or `null` (from an env var or flag: `""` or `null`). */
export interface NullableStringSpec extends Common {
  readonly type: 'string-or-null';
  readonly default: string | null;
}
export interface EnumSpec extends Common {
  readonly type: 'enum';
  readonly values: readonly string[];
  readonly default: string;
}
/** A list of `host:port` addresses (from an env var or flag: comma-separated). */
export interface AddressListSpec extends Common {
  readonly type: 'addresses';
  /** None: required once its (nullable) section is given. */
  readonly default?: undefined;
}
/** An array validated entry by entry (`validateNode`, `validateAssignment`); file only. */
export interface ListSpec extends Common {
  readonly type: 'nodes' | 'assignments';
  /** The entry shape, for the docs. */
  readonly shape: string;
  readonly default: readonly [];
}
/** One key's type, range, default, reloadability and description. */
export type KeySpec =
  | NumberSpec
  | BoolSpec
  | StringSpec
  | NullableStringSpec
  | EnumSpec
  | AddressListSpec
  | ListSpec;
/** Types that have an env var and a flag (everything but the lists). */
export type ScalarSpec = Exclude<KeySpec, ListSpec>;

type Walk<V, Path extends string> = V extends readonly unknown[]
  ? Path
  : NonNullable<V> extends object
    ? Leaves<NonNullable<V>, `${Path}.`>
    : Path;
type Leaves<T, Prefix extends string = ''> = {
  [K in keyof T & string]-?: Walk<T[K], `${Prefix}${K}`>;
}[keyof T & string];
type ValueAt<T, P extends string> = P extends `${infer Head}.${infer Rest}`
  ? Head extends keyof T
    ? ValueAt<NonNullable<T[Head]>, Rest>
    : never
  : P extends keyof T
    ? T[P]
    : never;
type SpecFor<V> = [V] extends [readonly string[]]
  ? AddressListSpec
  : [V] extends [readonly unknown[]]
    ? ListSpec
    : [V] extends [boolean]
      ? BoolSpec
      : [V] extends [number]
        ? NumberSpec
        : [V] extends [string]
          ? StringSpec | EnumSpec
          : NullableStringSpec;

/** Every key of `RouterNodeConfig`, dotted (`health.intervalMs`, `pool.tls.ca`, `nodes`). */
export type ConfigKey = Leaves<RouterNodeConfig>;
export type ConfigSchema = {
  readonly [K in ConfigKey]: SpecFor<ValueAt<RouterNodeConfig, K>>;
};

/** Sections that are `null` unless given; their keys without a default are then required. */
export const NULLABLE_SECTIONS = Object.freeze(['tls', 'admin.tls', 'pool.tls', 'etcd'] as const);

/** Every key, in table order. */
export const CONFIG_KEYS: readonly ConfigKey[] = Object.freeze(
  Object.keys(CONFIG_SCHEMA) as ConfigKey[],
);

/** The spec of `key`, or undefined for anything that is not a key (`toString` included). */
export function specOf(key: string): KeySpec | undefined {
  return Object.hasOwn(CONFIG_SCHEMA, key) ? CONFIG_SCHEMA[key as ConfigKey] : undefined;
}

/** Keys settable from env vars and flags: all but the lists. */
export function isScalar(spec: KeySpec): spec is ScalarSpec {
  return spec.type !== 'nodes' && spec.type !== 'assignments';
}

/** `health.intervalMs` → `ENGRAM_ROUTER_HEALTH_INTERVAL_MS`. */
export function envName(key: string): string {
  return `ENGRAM_ROUTER_${key
    .replace(/([a-z0-9])([A-Z])/g, '$1_$2')
    .replace(/\./g, '_')
    .toUpperCase()}`;
}

/** `health.intervalMs` → `--health.interval-ms`. */
export function flagName(key: string): string {
  return `--${key.replace(/([a-z0-9])([A-Z])/g, '$1-$2').toLowerCase()}`;
}

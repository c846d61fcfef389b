import { CONFIG_SCHEMA } from './config-schema.js';
import { CONFIG_KEYS, type ConfigKey, envName, isScalar, type KeySpec } from './config-spec.js';

// Text generated from CONFIG_SCHEMA for people: the README's configuration table and the
// per-key part of `--help`. Nothing here is hand-kept per key.

/** Marker lines around the generated table in README.md. */
export const CONFIG_TABLE_START = '<!-- config-table:start -->';
export const CONFIG_TABLE_END = '<!-- config-table:end -->';

const MS_PER = [
  [60 * 60 * 1000, 'h'],
  [60 * 1000, 'min'],
  [1000, 's'],
] as const;

// Units are in the key names (`…Ms`, `…Bytes`, `…Mb`), so they need no field of their own.
function withUnit(key: ConfigKey, n: number): string {
  if (key.endsWith('Ms')) {
    const [per, unit] = MS_PER.find(([p]) => n >= p && (n % p === 0 || p === 1000)) ?? [];
    return per === undefined ? `${n} ms` : `${n} ms (${n / per} ${unit})`;
  }
  if (key.endsWith('Bytes')) {
    if (n >= 1024 * 1024 && n % (1024 * 1024) === 0) return `${n} bytes (${n / 1024 / 1024} MiB)`;
    if (n >= 1024 && n % 1024 === 0) return `${n} bytes (${n / 1024} KiB)`;
    return `${n} bytes`;
  }
  if (key.endsWith('Mb')) return `${n} MiB`;
  return String(n);
}

/** The default as a person reads it: `300000 ms (5 min)`, `null`, `none (required with tls)`. */
export function formatDefault(key: ConfigKey, spec: KeySpec = CONFIG_SCHEMA[key]): string {
  if (!isScalar(spec)) return '[]';
  if (spec.default === undefined)
    return `none (required with ${key.slice(0, key.lastIndexOf('.'))})`;
  if (typeof spec.default === 'number') return withUnit(key, spec.default);
  return String(spec.default);
}

/** The type and range: `int 0..65535`, `bool`, `string or null`, `one of fatal, …`. */
export function formatType(spec: KeySpec): string {
  switch (spec.type) {
    case 'int':
    case 'number':
      return `${spec.type} ${spec.min}..${spec.max}`;
    case 'string-or-null':
      return 'string or null';
    case 'addresses':
      return '["host:port", …] (env, flag: comma-separated)';
    case 'enum':
      return `one of ${spec.values.join(', ')}`;
    case 'nodes':
    case 'assignments':
      return spec.shape;
    default:
      return spec.type;
  }
}

/** Keys SIGHUP applies; every other key needs a restart. */
export function reloadableKeys(): ConfigKey[] {
  return CONFIG_KEYS.filter((k) => CONFIG_SCHEMA[k].reloadable);
}

/** The README's configuration table (Markdown), one row per key in schema order. */
export function renderConfigTable(): string {
  const rows = CONFIG_KEYS.map((key) => {
    const spec = CONFIG_SCHEMA[key];
    const env = isScalar(spec) ? `\`${envName(key)}\`` : 'file only';
    const type = isScalar(spec) ? formatType(spec) : `\`${formatType(spec)}\``;
    const shown =
      isScalar(spec) && spec.default === undefined
        ? `none (required with \`${key.slice(0, key.lastIndexOf('.'))}\`)`
        : `\`${formatDefault(key, spec)}\``;
    const sighup = spec.reloadable ? 'applied' : 'restart';
    return `| \`${key}\` | ${env} | ${type} | ${shown} | ${sighup} | ${spec.description} |`;
  });
  return [
    '| key | env var | type | default | on SIGHUP | meaning |',
    '|---|---|---|---|---|---|',
    ...rows,
  ].join('\n');
}

/** `readme` with the text between the config-table markers replaced by `renderConfigTable()`. */
export function withConfigTable(readme: string): string {
  const start = readme.indexOf(CONFIG_TABLE_START);
  const end = readme.indexOf(CONFIG_TABLE_END);
  if (start < 0 || end < start) {
    throw new Error(`README has no ${CONFIG_TABLE_START} … ${CONFIG_TABLE_END} markers`);
  }
  const head = readme.slice(0, start + CONFIG_TABLE_START.length);
  return `${head}\n${renderConfigTable()}\n${readme.slice(end)}`;
}

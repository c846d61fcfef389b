/**
 * A strict reader of the Prometheus text format (0.0.4) for tests: every sample belongs to a
 * family declared with HELP and TYPE before it, counters end in _total, label syntax and values
 * are valid, no series appears twice, and every histogram series has cumulative buckets in
 * increasing `le` order ending at +Inf, equal to its _count. Returns the problems found.
 */
export interface Family {
  readonly name: string;
  readonly type: string;
  readonly samples: {
    readonly name: string;
    readonly labels: Map<string, string>;
    readonly value: number;
  }[];
}

const NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL = /^[a-zA-Z_][a-zA-Z0-9_]*$/;
const TYPES = new Set(['counter', 'gauge', 'histogram', 'summary', 'untyped']);

function parseLabels(text: string): Map<string, string> | string {
  const out = new Map<string, string>();
  let i = 0;
  while (i < text.length) {
    const eq = text.indexOf('=', i);
    if (eq < 0) return `label without "=" in {${text}}`;
    const name = text.slice(i, eq);
    if (!LABEL.test(name)) return `bad label name ${JSON.stringify(name)}`;
    if (text[eq + 1] !== '"') return `label ${name} value not quoted`;
    let j = eq + 2;
    let value = '';
    for (; j < text.length && text[j] !== '"'; j++) {
      if (text[j] === '\\') {
        const c = text[++j];
        if (c === 'n') value += '\n';
        else if (c === '\\' || c === '"') value += c;
        else return `bad escape \\${c} in label ${name}`;
      } else value += text[j];
    }
    if (j >= text.length) return `unterminated value of label ${name}`;
    if (out.has(name)) return `label ${name} twice`;
    out.set(name, value);
    i = j + 1;
    if (text[i] === ',') i++;
    else if (i < text.length) return `garbage after label ${name}`;
  }
  return out;
}

function familyOf(sample: string, families: Map<string, Family>): Family | undefined {
  const own = families.get(sample);
  if (own !== undefined) return own;
  for (const suffix of ['_bucket', '_sum', '_count']) {
    if (!sample.endsWith(suffix)) continue;
    const f = families.get(sample.slice(0, -suffix.length));
    if (
      f !== undefined &&
      (f.type === 'histogram' || (f.type === 'summary' && suffix !== '_bucket'))
    ) {
      return f;
    }
  }
  return undefined;
}

export function checkExposition(text: string): {
  problems: string[];
  families: Map<string, Family>;
} {
  const problems: string[] = [];
  const families = new Map<string, Family>();
  const helps = new Set<string>();
  const series = new Set<string>();
  if (!text.endsWith('\n')) problems.push('does not end with a newline');
  for (const line of text.split('\n')) {
    if (line === '') continue;
    if (line.startsWith('#')) {
      const m = /^# (HELP|TYPE) (\S+) ?(.*)$/.exec(line);
      if (m === null) continue; // a plain comment
      const [, kind, name, rest] = m as unknown as [string, string, string, string];
      if (!NAME.test(name)) problems.push(`bad family name ${name}`);
      if (kind === 'HELP') {
        if (helps.has(name)) problems.push(`HELP ${name} twice`);
        helps.add(name);
      } else {
        if (families.has(name)) problems.push(`TYPE ${name} twice`);
        if (!TYPES.has(rest)) problems.push(`TYPE ${name} ${rest}: unknown type`);
        if (rest === 'counter' && !name.endsWith('_total'))
          problems.push(`counter ${name} without _total`);
        if (!helps.has(name)) problems.push(`TYPE ${name} without a HELP before it`);
        families.set(name, { name, type: rest, samples: [] });
      }
      continue;
    }
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)(?: \d+)?$/.exec(line);
    if (m === null) {
      problems.push(`unparseable line: ${line}`);
      continue;
    }
    const [, name, labelText, raw] = m as unknown as [string, string, string | undefined, string];
    const labels = parseLabels(labelText ?? '');
    if (typeof labels === 'string') {
      problems.push(`${name}: ${labels}`);
      continue;
    }
    const value =
      raw === '+Inf'
        ? Number.POSITIVE_INFINITY
        : raw === '-Inf'
          ? Number.NEGATIVE_INFINITY
          : Number(raw);
    if (raw !== 'NaN' && Number.isNaN(value))
      problems.push(`${name}: value ${raw} is not a number`);
    const family = familyOf(name, families);
    if (family === undefined) {
      problems.push(`sample ${name} of no declared family`);
      continue;
    }
    const key = `${name}{${[...labels]
      .sort()
      .map(([k, v]) => `${k}=${v}`)
      .join(',')}}`;
    if (series.has(key)) problems.push(`series ${key} twice`);
    series.add(key);
    if (family.type === 'counter' && value < 0) problems.push(`counter ${key} negative`);
    family.samples.push({ name, labels, value });
  }
  for (const f of families.values()) {
    if (f.type !== 'histogram') continue;
    const bySeries = new Map<string, { le: number; v: number }[]>();
    const counts = new Map<string, number>();
    for (const s of f.samples) {
      const rest = [...s.labels]
        .filter(([k]) => k !== 'le')
        .sort()
        .map(([k, v]) => `${k}=${v}`)
        .join(',');
      if (s.name === `${f.name}_bucket`) {
        const le = s.labels.get('le');
        if (le === undefined) {
          problems.push(`${f.name}_bucket{${rest}} without le`);
          continue;
        }
        const list = bySeries.get(rest) ?? [];
        list.push({ le: le === '+Inf' ? Number.POSITIVE_INFINITY : Number(le), v: s.value });
        bySeries.set(rest, list);
      } else if (s.name === `${f.name}_count`) counts.set(rest, s.value);
    }
    for (const [rest, buckets] of bySeries) {
      for (let i = 1; i < buckets.length; i++) {
        if (!(buckets[i]!.le > buckets[i - 1]!.le))
          problems.push(`${f.name}{${rest}}: le not increasing`);
        if (buckets[i]!.v < buckets[i - 1]!.v)
          problems.push(`${f.name}{${rest}}: buckets not cumulative`);
      }
      const last = buckets.at(-1)!;
      if (last.le !== Number.POSITIVE_INFINITY)
        problems.push(`${f.name}{${rest}}: no +Inf bucket last`);
      if (counts.get(rest) !== last.v) problems.push(`${f.name}{${rest}}: _count ≠ +Inf bucket`);
    }
  }
  return { problems, families };
}

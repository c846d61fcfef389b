/** Prometheus text exposition (format 0.0.4) helpers shared by the /metrics renderers. */

/** A label value escaped (backslash, newline, double quote). */
export function esc(v: string): string {
  return v.replace(/\\/g, '\\\\').replace(/\n/g, '\\n').replace(/"/g, '\\"');
}

/** A metric family: its HELP and TYPE lines, then one sample per `[labels, value]`. */
export function family(
  out: string[],
  name: string,
  type: 'counter' | 'gauge',
  help: string,
  samples: Iterable<readonly [labels: string, value: number]>,
): void {
  out.push(`# HELP ${name} ${help}`);
  out.push(`# TYPE ${name} ${type}`);
  for (const [labels, value] of samples) {
    out.push(labels === '' ? `${name} ${value}` : `${name}{${labels}} ${value}`);
  }
}

/**
 * The soak's pure parts: reading Prometheus text, and the least-squares slope of a series.
 * No I/O here (soak.ts samples, this computes).
 */

/** One sample of a series: `x` in minutes, `y` in the series' unit. */
export interface Point {
  readonly x: number;
  readonly y: number;
}

/**
 * Ordinary least-squares slope of y over x (y's unit per minute when x is in minutes).
 * NaN with fewer than two distinct x values (no line to fit).
 */
export function leastSquaresSlope(points: readonly Point[]): number {
  const n = points.length;
  if (n < 2) return Number.NaN;
  let sx = 0;
  let sy = 0;
  for (const p of points) {
    sx += p.x;
    sy += p.y;
  }
  const mx = sx / n;
  const my = sy / n;
  let sxy = 0;
  let sxx = 0;
  for (const p of points) {
    sxy += (p.x - mx) * (p.y - my);
    sxx += (p.x - mx) ** 2;
  }
  return sxx === 0 ? Number.NaN : sxy / sxx;
}

/** The points whose x lies in the last `minutes` before `end` (inclusive bounds). */
export function lastWindow(points: readonly Point[], end: number, minutes: number): Point[] {
  return points.filter((p) => p.x >= end - minutes && p.x <= end);
}

/** The slope window: the last 20 minutes, or all of the run after the warm-up when shorter. */
export function slopeWindowMinutes(durationMinutes: number, warmupMinutes: number): number {
  return Math.max(0, Math.min(20, durationMinutes - warmupMinutes));
}

/** A family's samples: the label text between the braces (`''` when none) → value. */
export function samples(text: string, name: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (!line.startsWith(name)) continue;
    const rest = line.slice(name.length);
    let labels = '';
    let value: string;
    if (rest.startsWith('{')) {
      const close = rest.lastIndexOf('}');
      if (close < 0) continue;
      labels = rest.slice(1, close);
      value = rest.slice(close + 1).trim();
    } else if (rest.startsWith(' ')) {
      value = rest.trim();
    } else {
      continue; // another family sharing the prefix (name_sum, name_count, ...)
    }
    out.set(labels, Number(value.split(' ')[0]));
  }
  return out;
}

/** The sum of a family's samples (0 when the family is absent). */
export function sum(text: string, name: string): number {
  let total = 0;
  for (const v of samples(text, name).values()) total += v;
  return total;
}

/**
 * Quantile `q` of a histogram (per-bucket counts, `+Inf` last), interpolated linearly inside
 * the bucket it falls in (as Prometheus' `histogram_quantile`); the first bucket starts at 0
 * and a quantile in the `+Inf` bucket answers the largest finite bound. NaN when empty.
 */
export function histogramQuantile(
  bounds: readonly number[],
  counts: ArrayLike<number>,
  q: number,
): number {
  let total = 0;
  for (let i = 0; i < counts.length; i++) total += counts[i]!;
  if (total <= 0) return Number.NaN;
  const rank = q * total;
  let below = 0;
  for (let i = 0; i < bounds.length; i++) {
    const c = counts[i]!;
    if (c > 0 && below + c >= rank) {
      const lower = i === 0 ? 0 : bounds[i - 1]!;
      return lower + (bounds[i]! - lower) * ((rank - below) / c);
    }
    below += c;
  }
  return bounds[bounds.length - 1]!;
}

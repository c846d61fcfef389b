/** Set by the root `npm run bench -- --quick` (through turbo's passThroughEnv). */
export const QUICK = process.env.BENCH_QUICK === '1';

/** tinybench `time` in ms: `fullMs` for a full run, `quickMs` under `--quick`. */
export function benchTime(fullMs: number, quickMs = Math.max(100, Math.round(fullMs / 5))): number {
  return QUICK ? quickMs : fullMs;
}

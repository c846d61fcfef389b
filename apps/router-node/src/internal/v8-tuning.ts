import { setFlagsFromString } from 'node:v8';

/**
 * V8's inlining budgets for router-node's process, twice and three times V8's defaults (460 and
 * 920 bytes of bytecode). A routed call crosses small layers (h2 frames, the ingress call, the
 * Router's execution, the attempt, the reply) whose hot functions, inlined into their callers
 * at the defaults only in part, are inlined whole with these: two runs of 30 alternating rounds
 * of the A/B bench (`bench:ab`, Recall, 64 in flight) spent 0.92× and 0.96× the CPU per call
 * (geometric means of the rounds' ratios; lower in 26 and 21 of 30 rounds). Bigger still
 * (5,520 cumulative) read no better in 14 rounds.
 */
export const INLINING_FLAGS: readonly string[] = [
  '--max-inlined-bytecode-size=920',
  '--max-inlined-bytecode-size-cumulative=2760',
];

/**
 * Sets `INLINING_FLAGS` (router-node's CLI, before any code is optimized; flags are the
 * process's, so the data-plane threads started after have them too), except those given on
 * node's command line (`execArgv`), which win. Returns the flags set. Not called by
 * `startRouterNode`: a library must not change its host process's V8.
 */
export function applyInliningBudgets(execArgv: readonly string[] = process.execArgv): string[] {
  const set: string[] = [];
  for (const flag of INLINING_FLAGS) {
    const name = flag.slice(0, flag.indexOf('='));
    // V8 reads `_` and `-` alike in flag names.
    const given = execArgv.some((a) => {
      const n = a.split('=')[0]!.replace(/_/g, '-');
      return n === name;
    });
    if (given) continue;
    setFlagsFromString(flag);
    set.push(flag);
  }
  return set;
}

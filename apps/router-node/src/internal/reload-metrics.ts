import { family } from './exposition.js';

/** SIGHUP reloads since start, for /metrics. */
export class ReloadMetrics {
  successes = 0;
  failures = 0;
  /** Whether the last reload succeeded (true before any: the config read at start is in force). */
  lastSuccessful = true;
  /** Unix time (s) of the last successful reload; the start time before any. */
  lastSuccessAt: number;

  constructor(startedAtMs: number) {
    this.lastSuccessAt = startedAtMs / 1000;
  }

  success(nowMs: number): void {
    this.successes++;
    this.lastSuccessful = true;
    this.lastSuccessAt = nowMs / 1000;
  }

  failure(): void {
    this.failures++;
    this.lastSuccessful = false;
  }
}

/** The config-reload families (names agreed for issue 13). */
export function renderReloadMetrics(out: string[], m: ReloadMetrics): void {
  family(
    out,
    'engram_router_config_reloads_total',
    'counter',
    'SIGHUP config reloads by result: success (the file was valid and applied), failure (nothing changed).',
    [
      ['result="success"', m.successes],
      ['result="failure"', m.failures],
    ],
  );
  family(
    out,
    'engram_router_config_last_reload_successful',
    'gauge',
    '1 when the last config reload succeeded (or none happened yet), 0 when it failed.',
    [['', m.lastSuccessful ? 1 : 0]],
  );
  family(
    out,
    'engram_router_config_last_reload_success_timestamp_seconds',
    'gauge',
    'Unix time of the last successful config reload (the start time before any).',
    [['', m.lastSuccessAt]],
  );
}

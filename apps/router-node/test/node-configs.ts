import { CONFIG_DEFAULTS, type NodeConfig, type RouterNodeConfig } from '../src/internal/config.js';

/** `n` node configs for control-plane unit tests: ids n1…, fake addresses, zones a/b in turn. */
export function nodeConfigs(n: number): NodeConfig[] {
  return Array.from({ length: n }, (_, i) => ({
    id: `n${i + 1}`,
    address: `127.0.0.1:${7001 + i}`,
    zone: i % 2 === 0 ? 'a' : 'b',
  }));
}

/**
 * Health settings of the control-plane unit tests: probe rounds every 1 s (timeout 0.5 s), two
 * results to flip a verdict, no panic, and no probes between rounds (these tests count rounds).
 */
export const ROUND_HEALTH: RouterNodeConfig['health'] = Object.freeze({
  ...CONFIG_DEFAULTS.health,
  intervalMs: 1000,
  timeoutMs: 500,
  unhealthyIntervalMs: 1000,
  healthyEdgeIntervalMs: 1000,
  unhealthyThreshold: 2,
  healthyThreshold: 2,
  panicThreshold: 0,
});

import type { NodeConfig } from '../src/internal/config.js';

/** `n` node configs for control-plane unit tests: ids n1…, fake addresses, zones a/b in turn. */
export function nodeConfigs(n: number): NodeConfig[] {
  return Array.from({ length: n }, (_, i) => ({
    id: `n${i + 1}`,
    address: `127.0.0.1:${7001 + i}`,
    zone: i % 2 === 0 ? 'a' : 'b',
  }));
}

import { describe, expect, it } from 'vitest';
import { resolveConfig } from '../src/internal/config.js';
import { TABLE_MAX_TOKENS } from '../src/internal/config-caps.js';
import { ConfigError } from '../src/internal/errors.js';

const NODE = { id: 'a', address: '127.0.0.1:7001' };

function refusal(file: unknown): ConfigError {
  try {
    resolveConfig({ file });
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as ConfigError).code).toBe('InvalidConfig');
    return err as ConfigError;
  }
  return expect.unreachable('accepted');
}

describe('maxNodes', () => {
  it('takes 1000 nodes at 256 vnodes, and 64 by default', () => {
    expect(resolveConfig({ file: { nodes: [NODE] } }).maxNodes).toBe(64);
    const cfg = resolveConfig({ file: { nodes: [NODE], maxNodes: 1000, vnodesPerNode: 256 } });
    expect(cfg.maxNodes * cfg.vnodesPerNode).toBeLessThanOrEqual(TABLE_MAX_TOKENS);
  });

  it('refuses maxNodes × vnodesPerNode over the table, naming both ways out', () => {
    // 1000 nodes at the default 8192 vnodes: 8,192,000 tokens.
    const err = refusal({ nodes: [NODE], maxNodes: 1000 });
    expect(err.field).toBe('maxNodes');
    expect(err.value).toBe(1000);
    expect(err.message).toContain('8192000 ring tokens');
    expect(err.message).toContain(
      `vnodesPerNode to at most ${Math.floor(TABLE_MAX_TOKENS / 1000)}`,
    );
    expect(err.message).toContain(`maxNodes to at most ${TABLE_MAX_TOKENS / 8192}`);
    // The cap itself is accepted.
    expect(resolveConfig({ file: { nodes: [NODE], maxNodes: 512 } }).maxNodes).toBe(512);
  });

  it('refuses more configured nodes than maxNodes', () => {
    const nodes = [
      NODE,
      { id: 'b', address: '127.0.0.1:7002' },
      { id: 'c', address: '127.0.0.1:7003' },
    ];
    const err = refusal({ nodes, maxNodes: 2 });
    expect(err.field).toBe('nodes');
    expect(err.value).toBe(3);
    expect(err.message).toContain('maxNodes (2)');
  });
});

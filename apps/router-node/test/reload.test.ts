import { describe, expect, it } from 'vitest';
import { CONFIG_DEFAULTS, type RouterNodeConfig } from '../src/internal/config.js';
import { reloadableKeys } from '../src/internal/config-doc.js';
import { CONFIG_SCHEMA } from '../src/internal/config-schema.js';
import { NULLABLE_SECTIONS } from '../src/internal/config-spec.js';
import {
  configAfter,
  diffConfig,
  REDACTED,
  sameValue,
  touches,
  valueAt,
} from '../src/internal/reload.js';
import { ReloadMetrics, renderReloadMetrics } from '../src/internal/reload-metrics.js';

const BASE: RouterNodeConfig = {
  ...CONFIG_DEFAULTS,
  nodes: [
    { id: 'n1', address: '127.0.0.1:7001', zone: 'a' },
    { id: 'n2', address: '127.0.0.1:7002', zone: 'b' },
  ],
};

type Mutable<T> = { -readonly [K in keyof T]: Mutable<T[K]> };

function withChanges(patch: (c: Mutable<RouterNodeConfig>) => void): RouterNodeConfig {
  const c = structuredClone(BASE) as Mutable<RouterNodeConfig>;
  patch(c);
  return c;
}

describe('diffConfig', () => {
  it('reports nothing for the same config', () => {
    expect(diffConfig(BASE, structuredClone(BASE))).toEqual([]);
  });

  it('reports each changed key once, applied or needs-restart by its schema flag', () => {
    const next = withChanges((c) => {
      c.router.deadlineMs = 2000;
      c.listen.port = 50061;
      c.logLevel = 'debug';
      c.health.intervalMs = 250;
    });
    expect(diffConfig(BASE, next)).toEqual([
      { key: 'listen.port', result: 'needs-restart', from: 50051, to: 50061 },
      { key: 'router.deadlineMs', result: 'applied', from: 10000, to: 2000 },
      { key: 'health.intervalMs', result: 'applied', from: 1000, to: 250 },
      { key: 'logLevel', result: 'applied', from: 'info', to: 'debug' },
    ]);
  });

  it('compares lists by value: the same nodes in new objects are no change, a new zone is', () => {
    const same = withChanges((c) => {
      c.nodes = c.nodes.map((n) => ({ ...n }));
    });
    expect(diffConfig(BASE, same)).toEqual([]);
    const moved = withChanges((c) => {
      c.nodes[1]!.zone = 'c';
    });
    const [change] = diffConfig(BASE, moved);
    expect(change).toMatchObject({ key: 'nodes', result: 'applied' });
  });

  it('never shows the inline admin token, from or to', () => {
    const prev = withChanges((c) => {
      c.admin.token = 'old-secret';
    });
    const next = withChanges((c) => {
      c.admin.token = 'new-secret';
    });
    const changes = diffConfig(prev, next);
    expect(changes).toEqual([
      { key: 'admin.token', result: 'applied', from: REDACTED, to: REDACTED },
    ]);
    expect(JSON.stringify(changes)).not.toMatch(/secret/);
    // Clearing it shows null (no secret there).
    expect(diffConfig(prev, BASE)).toEqual([
      { key: 'admin.token', result: 'applied', from: REDACTED, to: null },
    ]);
  });

  it('reads keys under a section that is null as null (turning TLS on needs a restart)', () => {
    const next = withChanges((c) => {
      c.tls = { cert: '/c.pem', key: '/k.pem', clientCa: null };
    });
    expect(valueAt(BASE, 'tls.cert')).toBeNull();
    expect(diffConfig(BASE, next)).toEqual([
      { key: 'tls.cert', result: 'needs-restart', from: null, to: '/c.pem' },
      { key: 'tls.key', result: 'needs-restart', from: null, to: '/k.pem' },
    ]);
  });
});

describe('configAfter', () => {
  it('takes the applied keys from the file and keeps the others as they run', () => {
    const next = withChanges((c) => {
      c.router.maxRetries = 0;
      c.listen.port = 1234;
      c.retryBudget.ratio = 0.5;
      c.nodes = [c.nodes[0]!];
    });
    const changes = diffConfig(BASE, next);
    const after = configAfter(BASE, next, changes);
    expect(after.router.maxRetries).toBe(0);
    expect(after.retryBudget.ratio).toBe(0.5);
    expect(after.nodes).toEqual([BASE.nodes[0]]);
    expect(after.listen.port).toBe(BASE.listen.port);
    // The next reload of the same file reports only the key still waiting for a restart.
    expect(diffConfig(after, next)).toEqual([
      { key: 'listen.port', result: 'needs-restart', from: 50051, to: 1234 },
    ]);
    // Neither input is changed.
    expect(BASE.router.maxRetries).toBe(CONFIG_DEFAULTS.router.maxRetries);
    expect(next.listen.port).toBe(1234);
  });
});

describe('the reloadable keys', () => {
  it('cover what a running router can apply live, and not what it cannot', () => {
    const keys = reloadableKeys();
    for (const k of [
      'router.maxRetries',
      'router.deadlineMs',
      'router.attemptTimeoutMs',
      'router.readConsistency',
      'retryBudget.ratio',
      'health.intervalMs',
      'health.panicThreshold',
      'logLevel',
      'nodes',
      'assignments',
      'admin.token',
      'admin.tokenFile',
    ] as const) {
      expect(keys).toContain(k);
    }
    for (const k of [
      'listen.port',
      'listen.idleTimeoutMs',
      'workers',
      'router.breakerThreshold',
      'router.replicateWrites',
      'dataDir',
    ] as const) {
      expect(keys).not.toContain(k);
    }
  });

  it('none lives under a nullable section (configAfter writes into the running section)', () => {
    for (const key of reloadableKeys()) {
      for (const section of NULLABLE_SECTIONS) expect(key.startsWith(`${section}.`)).toBe(false);
      expect(CONFIG_SCHEMA[key].reloadable).toBe(true);
    }
  });

  it('touches() finds a key under a prefix', () => {
    expect(touches(['retryBudget.ttlMs'], 'retryBudget')).toBe(true);
    expect(touches(['router.deadlineMs'], 'retryBudget')).toBe(false);
    expect(touches(['nodes'], 'nodes')).toBe(true);
  });

  it('sameValue compares objects by keys, arrays in order', () => {
    expect(sameValue({ a: 1, b: [1, 2] }, { b: [1, 2], a: 1 })).toBe(true);
    expect(sameValue([1, 2], [2, 1])).toBe(false);
    expect(sameValue({ a: 1 }, { a: 1, b: undefined })).toBe(false);
    expect(sameValue(null, {})).toBe(false);
  });
});

describe('reload metrics', () => {
  it('count successes and failures, the last result and the last success time', () => {
    const m = new ReloadMetrics(1_000_000);
    const text = () => {
      const out: string[] = [];
      renderReloadMetrics(out, m);
      return out.join('\n');
    };
    expect(text()).toContain('engram_router_config_last_reload_successful 1');
    expect(text()).toContain('engram_router_config_last_reload_success_timestamp_seconds 1000');
    m.failure();
    expect(text()).toContain('engram_router_config_reloads_total{result="failure"} 1');
    expect(text()).toContain('engram_router_config_last_reload_successful 0');
    m.success(2_500_000);
    expect(text()).toContain('engram_router_config_reloads_total{result="success"} 1');
    expect(text()).toContain('engram_router_config_last_reload_successful 1');
    expect(text()).toContain('engram_router_config_last_reload_success_timestamp_seconds 2500');
    expect(text()).toMatch(/# TYPE engram_router_config_reloads_total counter/);
  });
});

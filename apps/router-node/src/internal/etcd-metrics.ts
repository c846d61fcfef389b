import type { EtcdView } from './admin.js';
import { family } from './exposition.js';

// The etcd-mode families of /metrics (their own module: the data plane imports metrics.ts,
// and must not load the etcd client).

/** What /metrics says of etcd mode. */
export interface EtcdMetrics {
  readonly view: EtcdView;
  /** The placement revision in force. */
  readonly revision: number;
}

/** The etcd-mode families. */
export function renderEtcdMetrics(out: string[], m: EtcdMetrics): void {
  const gauge = (name: string, help: string, value: number) =>
    family(out, name, 'gauge', help, [['', value]]);
  gauge(
    'engram_router_etcd_connected',
    '1 while etcd answers this router (its watch is connected); 0: routing on the last table, admin changes refused.',
    m.view.connected ? 1 : 0,
  );
  gauge(
    'engram_router_etcd_placement_revision',
    'etcd revision of the placement in force (the same on every router once they converged).',
    m.revision,
  );
  gauge(
    'engram_router_etcd_state_refused',
    '1 while the latest placement in etcd cannot be followed (see the log and status); the last good one is in force.',
    m.view.lastError === null ? 0 : 1,
  );
  gauge(
    'engram_router_etcd_routers',
    'Routers registered under the prefix (live leases), this one included.',
    m.view.routers.length,
  );
  gauge(
    'engram_router_etcd_driving',
    '1 while this router is the elected driver of data movement (streaming, background repair).',
    m.view.driving ? 1 : 0,
  );
}

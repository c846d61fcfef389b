import { RouterNodeError } from './errors.js';
import type { PlacementIntent } from './etcd-keys.js';

// Where the control plane writes placement changes in etcd mode, and how a write fails: apart
// from the etcd client (etcd-store.ts), so the control plane loads no client without etcd.

/** An admin change lost a race: the placement changed since the one it was based on. */
export class AbortedError extends RouterNodeError {
  readonly baseRevision: number;
  readonly revision: number;
  /** `ifRevision` when the caller's own revision was stale; `revision` when this router's was. */
  readonly field: 'ifRevision' | 'revision';
  /** The revision the change was checked against. */
  readonly value: number;
  constructor(
    baseRevision: number,
    revision: number,
    field: 'ifRevision' | 'revision' = 'revision',
  ) {
    super(
      'Aborted',
      `${field} ${baseRevision}: the placement changed in etcd since (now revision ${revision}), and this change was checked against it: nothing applied; read the table and retry`,
    );
    this.name = 'AbortedError';
    this.baseRevision = baseRevision;
    this.revision = revision;
    this.field = field;
    this.value = baseRevision;
  }
}

/** etcd did not answer in time, or refused the connection: nothing applied. */
export class StoreUnavailableError extends RouterNodeError {
  /** The request may have applied (etcd did not answer in time, or the reply was lost). */
  readonly maybeApplied: boolean;
  constructor(what: string, cause: unknown, maybeApplied = false) {
    super(
      'Unavailable',
      maybeApplied
        ? `etcd did not confirm the ${what} (${(cause as Error | null)?.message ?? String(cause)}): it may or may not have applied; GetTable tells once etcd answers. Routing goes on from the last table`
        : `etcd is unreachable (${what}: ${(cause as Error | null)?.message ?? String(cause)}): admin changes are refused until it is back; routing goes on from the last table`,
      { cause },
    );
    this.name = 'StoreUnavailableError';
    this.maybeApplied = maybeApplied;
  }
}

/**
 * etcd answered, and refused the request (permissions, a limit such as --max-txn-ops or
 * --max-request-bytes): retrying the same request will not help. Nothing applied.
 */
export class StoreRefusedError extends RouterNodeError {
  constructor(what: string, cause: unknown) {
    super(
      'StoreRefused',
      `etcd refused the ${what}: ${(cause as Error | null)?.message ?? String(cause)}`,
      { cause },
    );
    this.name = 'StoreRefusedError';
  }
}

/** Where a placement change goes: written in etcd only if nothing changed since `base`. */
export interface PlacementStore {
  /**
   * Writes `after` (the keys that differ from `before`, and the marker) if the placement is
   * still at `baseRevision`; resolves with the change's revision. Rejects with AbortedError
   * (lost a race) or StoreUnavailableError (etcd unreachable), nothing written.
   */
  commit(
    before: PlacementIntent,
    after: PlacementIntent,
    baseRevision: number,
    reason: string,
  ): Promise<number>;
}

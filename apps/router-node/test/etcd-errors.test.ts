import {
  EtcdAuthenticationFailedError,
  EtcdPermissionDeniedError,
  GRPCInvalidArgumentError,
  GRPCUnavailableError,
  GRPCUnknownError,
} from 'etcd3';
import { describe, expect, it } from 'vitest';
import { storeError } from '../src/internal/etcd-store.js';
import { StoreRefusedError, StoreUnavailableError } from '../src/internal/placement-store.js';

describe('what a failed etcd call means', () => {
  it('etcd out of its own time (UNKNOWN: context deadline exceeded) is transient, not a refusal', () => {
    // What a just-restarted etcd answered a router waiting for it, on a busy machine.
    const late = new GRPCUnknownError('2 UNKNOWN: context deadline exceeded');
    const read = storeError('read', late);
    expect(read).toBeInstanceOf(StoreUnavailableError);
    expect((read as StoreUnavailableError).maybeApplied).toBe(false);
    // A write that timed out inside etcd may have applied.
    const write = storeError('write', late, true);
    expect(write).toBeInstanceOf(StoreUnavailableError);
    expect((write as StoreUnavailableError).maybeApplied).toBe(true);
  });

  it('unreachable stays unavailable; a write never sent did not apply', () => {
    const down = new GRPCUnavailableError('14 UNAVAILABLE: No connection established');
    expect(storeError('read', down)).toBeInstanceOf(StoreUnavailableError);
    expect((storeError('write', down, true) as StoreUnavailableError).maybeApplied).toBe(false);
  });

  it('a refusal is a refusal: limits, and permissions as etcd3 casts them (no code)', () => {
    for (const err of [
      new GRPCUnknownError('2 UNKNOWN: etcdserver: too many operations in txn request'),
      new GRPCInvalidArgumentError('3 INVALID_ARGUMENT: etcdserver: request is too large'),
      new EtcdPermissionDeniedError('etcdserver: permission denied'),
      new EtcdAuthenticationFailedError(
        'etcdserver: authentication failed, invalid user ID or password',
      ),
    ]) {
      const e = storeError('write', err, true);
      expect(e, err.message).toBeInstanceOf(StoreRefusedError);
      expect((e as StoreRefusedError).code).toBe('StoreRefused');
    }
  });
});

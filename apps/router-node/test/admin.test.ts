import * as grpc from '@grpc/grpc-js';
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { type AdminTarget, startAdminServer, type TableView } from '../src/internal/admin.js';
import { MembershipError } from '../src/internal/membership.js';
import { admin, adminClient, Cleanup } from './helpers.js';

const cleanup = new Cleanup();
afterEach(() => cleanup.run());

const EMPTY_TABLE: TableView = Object.freeze({
  epoch: 7,
  partitioned: false,
  replicationFactor: 3,
  vnodesPerNode: 16,
  localNodeId: null,
  nodes: [],
  assignments: [],
  pendingAssignments: [],
  streams: [],
});

/** An AdminTarget that records RemoveNode calls and refuses them below three nodes unforced. */
function fakeTarget(calls: unknown[][]): AdminTarget {
  const refuse = () => {
    throw new Error('not in this test');
  };
  return {
    table: () => EMPTY_TABLE,
    addNode: refuse,
    removeNode: (id, force) => {
      calls.push([id, force]);
      if (!force) {
        throw new MembershipError('BelowReplicationFactor', 'id', id, 'set force', {
          remaining: 2,
          replicationFactor: 3,
        });
      }
      return 8;
    },
    drainNode: refuse,
    assignSpace: refuse,
    unassignSpace: refuse,
    repairSpace: async () => refuse(),
    repairNode: refuse,
  };
}

async function startAdmin(target: AdminTarget) {
  const server = await startAdminServer(
    target,
    { host: '127.0.0.1', port: 0, tls: null },
    pino({ level: 'silent' }),
  );
  cleanup.add(() => server.close());
  return server;
}

describe('RouterAdmin over grpc-js', () => {
  it('passes RemoveNode force through; unforced below the replication factor is FAILED_PRECONDITION', async () => {
    const calls: unknown[][] = [];
    const server = await startAdmin(fakeTarget(calls));
    const client = adminClient(cleanup, server.port);
    const err = await admin(client, 'RemoveNode', { id: 'n2' }).catch((e) => e);
    expect(err.code).toBe(grpc.status.FAILED_PRECONDITION);
    expect(err.details).toContain('force');
    expect(await admin(client, 'RemoveNode', { id: 'n2', force: true })).toEqual({ epoch: 8 });
    expect(calls).toEqual([
      ['n2', false],
      ['n2', true],
    ]);
  });
});

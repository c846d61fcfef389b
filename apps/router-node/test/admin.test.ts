import * as grpc from '@grpc/grpc-js';
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import {
  AdminAuth,
  type AdminTarget,
  startAdminServer,
  type TableView,
} from '../src/internal/admin.js';
import { MembershipError } from '../src/internal/membership.js';
import { admin, adminClient, Cleanup } from './helpers.js';

const cleanup = new Cleanup();
afterEach(() => cleanup.run());

const EMPTY_TABLE: TableView = Object.freeze({
  epoch: 7,
  revision: 0,
  etcd: null,
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
    revision: 0,
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
    locate: async () => refuse(),
  };
}

/** A pino logger writing into `lines` (parsed JSON), to check what is logged. */
function capture(lines: Record<string, unknown>[]) {
  return pino(
    { level: 'info' },
    { write: (line: string) => lines.push(JSON.parse(line) as Record<string, unknown>) },
  );
}

async function startAdmin(target: AdminTarget, auth?: AdminAuth, log = pino({ level: 'silent' })) {
  const server = await startAdminServer(
    target,
    { host: '127.0.0.1', port: 0, tls: null, ...(auth !== undefined ? { auth } : {}) },
    log,
  );
  cleanup.add(() => server.close());
  return server;
}

const TOKEN = 's3cret-admin-token-0123456789';

describe('AdminAuth (bearer token)', () => {
  it('accepts only the configured token, in one Bearer value; the scheme in any case', () => {
    const auth = new AdminAuth(TOKEN);
    expect(auth.check([`Bearer ${TOKEN}`])).toBeUndefined();
    expect(auth.check([`bearer ${TOKEN}`])).toBeUndefined();
    expect(auth.check([])).toBe('missing');
    expect(auth.check([`Bearer ${TOKEN}x`])).toBe('wrong');
    expect(auth.check([`Bearer ${TOKEN.slice(0, -1)}`])).toBe('wrong');
    expect(auth.check(['Bearer '])).toBe('malformed');
    expect(auth.check([TOKEN])).toBe('malformed');
    expect(auth.check([`Basic ${TOKEN}`])).toBe('malformed');
    expect(auth.check([`Bearer ${TOKEN}`, `Bearer ${TOKEN}`])).toBe('malformed');
  });

  it('lets everything through when no token is configured; a new token replaces the old', () => {
    const auth = new AdminAuth(null);
    expect(auth.check([])).toBeUndefined();
    auth.set('next-token');
    expect(auth.check(['Bearer next-token'])).toBeUndefined();
    expect(auth.check([`Bearer ${TOKEN}`])).toBe('wrong');
  });
});

describe('RouterAdmin over grpc-js', () => {
  it('passes RemoveNode force through; unforced below the replication factor is FAILED_PRECONDITION', async () => {
    const calls: unknown[][] = [];
    const server = await startAdmin(fakeTarget(calls));
    const client = adminClient(cleanup, server.port);
    const err = await admin(client, 'RemoveNode', { id: 'n2' }).catch((e) => e);
    expect(err.code).toBe(grpc.status.FAILED_PRECONDITION);
    expect(err.details).toContain('force');
    expect(await admin(client, 'RemoveNode', { id: 'n2', force: true })).toEqual({
      epoch: 8,
      revision: 0,
    });
    expect(calls).toEqual([
      ['n2', false],
      ['n2', true],
    ]);
  });
});

describe('RouterAdmin with a bearer token', () => {
  it('answers UNAUTHENTICATED to a call without the token or with a wrong one, and serves the right one', async () => {
    const lines: Record<string, unknown>[] = [];
    const calls: unknown[][] = [];
    const auth = new AdminAuth(TOKEN);
    const server = await startAdmin(fakeTarget(calls), auth, capture(lines));
    const none = await admin(adminClient(cleanup, server.port), 'GetTable').catch((e) => e);
    expect(none.code).toBe(grpc.status.UNAUTHENTICATED);
    expect(none.details).toMatch(/authorization: Bearer/);
    const wrong = await admin(adminClient(cleanup, server.port, 'guess'), 'RemoveNode', {
      id: 'n2',
      force: true,
    }).catch((e) => e);
    expect(wrong.code).toBe(grpc.status.UNAUTHENTICATED);
    expect(calls).toEqual([]); // refused before the target saw it
    const good = adminClient(cleanup, server.port, TOKEN);
    expect(await admin(good, 'GetTable')).toMatchObject({ epoch: 7 });
    expect(await admin(good, 'RemoveNode', { id: 'n2', force: true })).toEqual({
      epoch: 8,
      revision: 0,
    });
    // Counted and logged, the token never.
    expect(auth.rejected).toBe(2);
    const refused = lines.filter((l) => l.event === 'admin-unauthenticated');
    expect(refused.map((l) => [l.method, l.reason, l.rejected])).toEqual([
      ['GetTable', 'missing', 1],
      ['RemoveNode', 'wrong', 2],
    ]);
    const logged = JSON.stringify(lines);
    expect(logged).not.toContain(TOKEN);
    expect(logged).not.toContain('guess');
  });

  it('without a token configured, serves calls with or without one, as before', async () => {
    const server = await startAdmin(fakeTarget([]), new AdminAuth(null));
    expect(await admin(adminClient(cleanup, server.port), 'GetTable')).toMatchObject({ epoch: 7 });
    expect(await admin(adminClient(cleanup, server.port, 'x'), 'GetTable')).toMatchObject({
      epoch: 7,
    });
  });
});

import { createHash, timingSafeEqual } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { LOADER_OPTIONS } from '@engram/proto';
import * as grpc from '@grpc/grpc-js';
import { loadSync } from '@grpc/proto-loader';
import type { Logger } from 'pino';
import type { AssignmentConfig, ListenerTlsConfig, RouterNodeConfig } from './config.js';
import { ConfigError } from './errors.js';
import type { Location } from './locate.js';
import type { StreamStatus } from './streamer.js';

export const ROUTER_PROTO_FILE = 'engram/v1/router.proto';
export const ADMIN_SERVICE_NAME = 'engram.v1.RouterAdmin';

/** grpc-js definition of `engram.v1.RouterAdmin` (loaded once). */
export const routerAdminDefinition: grpc.ServiceDefinition = (() => {
  const def = loadSync(ROUTER_PROTO_FILE, { ...LOADER_OPTIONS });
  return def[ADMIN_SERVICE_NAME] as grpc.ServiceDefinition;
})();

/** Client constructor for `RouterAdmin` (tests, demo, tooling). */
export const RouterAdminClient = grpc.makeGenericClientConstructor(
  routerAdminDefinition,
  'RouterAdmin',
);

/** A view of the routing table for the admin API, /metrics and the demo. */
export interface TableView {
  readonly epoch: number;
  /** etcd mode: the placement revision in force, the same on every router; 0 without etcd. */
  readonly revision: number;
  /** etcd mode: the store's state as this router sees it; null without etcd. */
  readonly etcd: EtcdView | null;
  readonly partitioned: boolean;
  readonly replicationFactor: number;
  readonly vnodesPerNode: number;
  readonly localNodeId: string | null;
  readonly nodes: ReadonlyArray<{
    id: string;
    address: string;
    zone: string;
    state: string;
    lifecycle: string;
    breaker: string;
    slot: number;
    hintsPending: number;
    hintBytesPending: number;
    repairNeeded: boolean;
    /** Round trip of its last health probe, milliseconds; 0 before the first settled. */
    healthLatencyMs: number;
    /** Ejected by outlier detection (tried after the other up nodes; not a health verdict). */
    ejected?: boolean;
  }>;
  readonly assignments: readonly AssignmentConfig[];
  /** Pins being moved (primary '' = back to the ring's placement). */
  readonly pendingAssignments: readonly AssignmentConfig[];
  readonly streams: readonly StreamStatus[];
}

/** What a router in etcd mode reports of etcd (GetTable, /status.json, `status`). */
export interface EtcdView {
  readonly connected: boolean;
  /** Why the last placement seen in etcd is not followed; null when it is. */
  readonly lastError: string | null;
  /** This router's id among the routers. */
  readonly routerId: string;
  /** The live routers (registered on their leases), this one included. */
  readonly routers: ReadonlyArray<{ id: string; listen: string; admin: string | null }>;
  /** Whether this router drives data movement (streaming, repair) now. */
  readonly driving: boolean;
}

/**
 * What the admin API needs from the router: a table view and validated, atomic changes that
 * return the epoch carrying them. Raw request fields are passed as received; the implementation
 * validates them and throws coded errors (`code` below), changing nothing on error.
 */
export interface AdminTarget {
  table(): TableView;
  /** etcd mode: the placement revision in force; 0 without etcd. */
  readonly revision: number;
  // `ifRevision` (etcd mode): apply only at this placement revision, else Aborted; 0 = any.
  addNode(node: unknown, ifRevision?: number): Epoch;
  /** `force`: even when fewer placed nodes than the replication factor would remain. */
  removeNode(id: string, force: boolean, ifRevision?: number): Epoch;
  /** `force`: even when fewer placed nodes than the replication factor would remain. */
  drainNode(id: string, undrain: boolean, force: boolean, ifRevision?: number): Epoch;
  assignSpace(assignment: unknown, ifRevision?: number): Epoch;
  unassignSpace(spaceId: unknown, ifRevision?: number): Epoch;
  /** Anti-entropy of one space; resolves with what it did. */
  repairSpace(spaceId: unknown): Promise<RepairResult>;
  /** Starts a whole-node repair in the background. */
  repairNode(id: unknown): RepairResult;
  /** Where a space lives and which of its nodes hold data (asked of each node). */
  locate(spaceId: unknown): Promise<Location>;
}

/** The epoch carrying a change: at once, or (etcd mode) once written to etcd. */
export type Epoch = number | Promise<number>;

export interface RepairResult {
  readonly spaces: number;
  readonly differed: number;
  readonly applied: number;
  readonly unreachable: readonly string[];
}

/**
 * The gRPC status of each error code a change can fail with. A code not listed is a bug in
 * the router, not in the request: INTERNAL.
 */
export const ADMIN_STATUS_BY_CODE: Readonly<Record<string, grpc.status>> = Object.freeze({
  InvalidConfig: grpc.status.INVALID_ARGUMENT,
  InvalidArgument: grpc.status.INVALID_ARGUMENT,
  NotAMember: grpc.status.NOT_FOUND,
  NoSuchAssignment: grpc.status.NOT_FOUND,
  AlreadyAMember: grpc.status.ALREADY_EXISTS,
  // The address is taken: the entity the request would create (a member there) exists, and
  // the request is well-formed on its own, which INVALID_ARGUMENT would deny.
  AddressInUse: grpc.status.ALREADY_EXISTS,
  InUse: grpc.status.FAILED_PRECONDITION,
  // Allowed once enough nodes are added (or with `force`): the cluster's state, not the request.
  BelowReplicationFactor: grpc.status.FAILED_PRECONDITION,
  WrongLifecycle: grpc.status.FAILED_PRECONDITION,
  CapacityExceeded: grpc.status.RESOURCE_EXHAUSTED,
  // A node without engram.v1.ReplicaService: repair cannot work until it is upgraded.
  ReplicaServiceMissing: grpc.status.FAILED_PRECONDITION,
  // etcd mode: another router changed the placement since this one's view (read, retry) ...
  Aborted: grpc.status.ABORTED,
  // ... or etcd is unreachable (routing goes on from the last table) ...
  Unavailable: grpc.status.UNAVAILABLE,
  // ... or etcd refused the request itself (its permissions or limits).
  StoreRefused: grpc.status.FAILED_PRECONDITION,
});

/** The status an admin change answers for `err`. */
export function adminStatus(err: unknown): grpc.status {
  const code = (err as { code?: unknown } | null)?.code;
  return (
    (typeof code === 'string' ? ADMIN_STATUS_BY_CODE[code] : undefined) ?? grpc.status.INTERNAL
  );
}

type Unary = (
  call: grpc.ServerUnaryCall<Record<string, unknown>, unknown>,
  callback: grpc.sendUnaryData<unknown>,
) => void;

function change(
  log: Logger,
  name: string,
  revision: () => number,
  fn: (req: Record<string, unknown>) => Epoch,
): Unary {
  return (call, callback) => {
    // A promise: a synchronous refusal and a failed etcd write answer alike.
    Promise.resolve()
      .then(() => fn(call.request))
      .then(
        (epoch) => {
          const rev = revision();
          log.info(
            { event: 'admin', method: name, request: call.request, epoch, revision: rev },
            `admin ${name}`,
          );
          callback(null, { epoch, revision: rev });
        },
        (err: unknown) => {
          const message = err instanceof Error ? err.message : String(err);
          const code = adminStatus(err);
          log.warn(
            { event: 'admin-rejected', method: name, request: call.request, message, code },
            `admin ${name} rejected`,
          );
          callback({ code, details: message });
        },
      );
  };
}

/** Why a call's credentials were refused. */
export type AuthRefusal = 'missing' | 'malformed' | 'wrong';

const UNAUTHENTICATED_DETAILS: Readonly<Record<AuthRefusal, string>> = Object.freeze({
  missing:
    'RouterAdmin needs "authorization: Bearer <token>" metadata (admin.token or admin.tokenFile is set)',
  malformed: 'the authorization metadata must be one "Bearer <token>" value',
  wrong: 'the bearer token is not the one this router accepts',
});

function sha256(text: string): Buffer {
  return createHash('sha256').update(text, 'utf8').digest();
}

/**
 * The admin API's bearer token: `authorization: Bearer <token>` on every call, or nothing
 * when no token is configured. Only the token's SHA-256 is kept, and a presented token is
 * compared by its SHA-256 with `timingSafeEqual`: equal lengths always, so neither the
 * token's bytes nor its length leak through the time a refusal takes.
 */
export class AdminAuth {
  #digest: Buffer | null = null;
  /** Calls refused since start. */
  rejected = 0;

  constructor(token: string | null) {
    this.set(token);
  }

  /** Replaces the token (SIGHUP); null: calls need none. */
  set(token: string | null): void {
    this.#digest = token === null ? null : sha256(token);
  }

  get enabled(): boolean {
    return this.#digest !== null;
  }

  /** The refusal for a call's `authorization` metadata values, or undefined to let it in. */
  check(values: readonly (string | Buffer)[]): AuthRefusal | undefined {
    const digest = this.#digest;
    if (digest === null) return undefined;
    if (values.length === 0) return 'missing';
    const value = values[0];
    if (values.length > 1 || typeof value !== 'string') return 'malformed';
    const match = /^bearer +(\S+) *$/i.exec(value);
    if (match === null) return 'malformed';
    return timingSafeEqual(sha256(match[1]!), digest) ? undefined : 'wrong';
  }
}

/**
 * The admin token `admin` configures: `admin.token`, or the trimmed contents of
 * `admin.tokenFile` (read now: at start and on SIGHUP), or null. Throws a ConfigError naming
 * the file when it cannot be read or holds no token; the message never holds the token.
 */
export function readAdminToken(admin: RouterNodeConfig['admin']): string | null {
  if (admin.tokenFile === null) return admin.token;
  let text: string;
  try {
    text = readFileSync(admin.tokenFile, 'utf8');
  } catch (err) {
    throw new ConfigError(
      'admin.tokenFile',
      admin.tokenFile,
      `cannot read: ${(err as Error).message}`,
    );
  }
  const token = text.trim();
  if (token === '' || /\s/.test(token)) {
    throw new ConfigError('admin.tokenFile', admin.tokenFile, 'must hold one token (no spaces)');
  }
  return token;
}

export interface AdminServerOptions {
  readonly host: string;
  readonly port: number;
  readonly tls: ListenerTlsConfig | null;
  /** Bearer-token check of every call; default none (as with no token configured). */
  readonly auth?: AdminAuth;
}

/** Starts the RouterAdmin gRPC server on its own listener. */
export async function startAdminServer(
  target: AdminTarget,
  options: AdminServerOptions,
  log: Logger,
): Promise<{ port: number; close(): Promise<void> }> {
  const server = new grpc.Server();
  const str = (v: unknown) => (typeof v === 'string' ? v : '');
  const rev = () => target.revision;
  const ifRev = (r: Record<string, unknown>) =>
    typeof r.ifRevision === 'number' ? r.ifRevision : 0;
  const auth = options.auth;
  // Every method passes the token check first; a refusal is counted and logged with the
  // method, the reason and the peer, never the metadata.
  const guarded = (handlers: Record<string, Unary>): grpc.UntypedServiceImplementation => {
    if (auth === undefined) return handlers;
    const out: Record<string, Unary> = {};
    for (const [method, handler] of Object.entries(handlers)) {
      out[method] = (call, callback) => {
        const reason = auth.check(call.metadata.get('authorization'));
        if (reason === undefined) {
          handler(call, callback);
          return;
        }
        auth.rejected++;
        log.warn(
          {
            event: 'admin-unauthenticated',
            method,
            reason,
            peer: call.getPeer(),
            rejected: auth.rejected,
          },
          `admin ${method} refused: ${reason} bearer token`,
        );
        callback({ code: grpc.status.UNAUTHENTICATED, details: UNAUTHENTICATED_DETAILS[reason] });
      };
    }
    return out;
  };
  server.addService(
    routerAdminDefinition,
    guarded({
      GetTable: ((_call, callback) => {
        const t = target.table();
        callback(null, {
          epoch: t.epoch,
          nodes: t.nodes.map((n) => ({
            id: n.id,
            address: n.address,
            zone: n.zone,
            state: n.state,
            breaker: n.breaker,
            lifecycle: n.lifecycle,
            hintsPending: n.hintsPending,
            hintBytesPending: n.hintBytesPending,
            repairNeeded: n.repairNeeded,
            healthLatencyMs: n.healthLatencyMs,
            ejected: n.ejected === true,
          })),
          assignments: t.assignments.map((a) => ({
            spaceId: a.spaceId,
            primary: a.primary,
            replicas: [...a.replicas],
          })),
          pendingAssignments: t.pendingAssignments.map((a) => ({
            spaceId: a.spaceId,
            primary: a.primary,
            replicas: [...a.replicas],
          })),
          streams: t.streams,
          replicationFactor: t.replicationFactor,
          vnodesPerNode: t.vnodesPerNode,
          partitioned: t.partitioned,
          localNodeId: t.localNodeId ?? '',
          revision: t.revision,
          etcd:
            t.etcd === null
              ? null
              : {
                  connected: t.etcd.connected,
                  lastError: t.etcd.lastError ?? '',
                  routerId: t.etcd.routerId,
                  routers: t.etcd.routers.map((r) => ({
                    id: r.id,
                    listen: r.listen,
                    admin: r.admin ?? '',
                  })),
                  driving: t.etcd.driving,
                },
        });
      }) as Unary,
      AssignSpace: change(log, 'AssignSpace', rev, (r) =>
        r.clear === true
          ? target.unassignSpace(r.spaceId, ifRev(r))
          : target.assignSpace(
              { spaceId: r.spaceId, primary: r.primary, replicas: r.replicas },
              ifRev(r),
            ),
      ),
      AddNode: change(log, 'AddNode', rev, (r) =>
        target.addNode({ id: r.id, address: r.address, zone: str(r.zone) }, ifRev(r)),
      ),
      RemoveNode: change(log, 'RemoveNode', rev, (r) =>
        target.removeNode(str(r.id), r.force === true, ifRev(r)),
      ),
      DrainNode: change(log, 'DrainNode', rev, (r) =>
        target.drainNode(str(r.id), r.undrain === true, r.force === true, ifRev(r)),
      ),
      RepairSpace: ((call, callback) => {
        target.repairSpace(call.request.spaceId).then(
          (res) => callback(null, res),
          (err: unknown) =>
            callback({ code: adminStatus(err), details: (err as Error)?.message ?? String(err) }),
        );
      }) as Unary,
      RepairNode: ((call, callback) => {
        try {
          callback(null, target.repairNode(call.request.id));
        } catch (err) {
          callback({ code: adminStatus(err), details: (err as Error)?.message ?? String(err) });
        }
      }) as Unary,
      Locate: ((call, callback) => {
        // A promise: even a synchronous throw (a bad space id) becomes a rejection.
        Promise.resolve()
          .then(() => target.locate(call.request.spaceId))
          .then(
            (loc) =>
              callback(null, {
                ...loc,
                nodes: [...loc.nodes],
                pendingAssignment:
                  loc.pendingAssignment === null
                    ? null
                    : { ...loc.pendingAssignment, replicas: [...loc.pendingAssignment.replicas] },
              }),
            (err: unknown) =>
              callback({ code: adminStatus(err), details: (err as Error)?.message ?? String(err) }),
          );
      }) as Unary,
    }),
  );
  const t = options.tls;
  const creds =
    t === null
      ? grpc.ServerCredentials.createInsecure()
      : grpc.ServerCredentials.createSsl(
          t.clientCa === null ? null : readFileSync(t.clientCa),
          [{ cert_chain: readFileSync(t.cert), private_key: readFileSync(t.key) }],
          t.clientCa !== null,
        );
  const host = options.host.includes(':') ? `[${options.host}]` : options.host;
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync(`${host}:${options.port}`, creds, (err, p) =>
      err ? reject(err) : resolve(p),
    ),
  );
  return {
    port,
    close: () =>
      new Promise<void>((resolve) => {
        const timer = setTimeout(() => server.forceShutdown(), 2000);
        server.tryShutdown(() => {
          clearTimeout(timer);
          resolve();
        });
      }),
  };
}

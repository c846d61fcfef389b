import { readFileSync } from 'node:fs';
import { LOADER_OPTIONS } from '@engram/proto';
import * as grpc from '@grpc/grpc-js';
import { loadSync } from '@grpc/proto-loader';
import type { Logger } from 'pino';
import type { RouterNodeConfig } from './config.js';
import type { RouterNode } from './control-plane.js';
import { ConfigError } from './errors.js';

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

type Unary = (
  call: grpc.ServerUnaryCall<Record<string, unknown>, unknown>,
  callback: grpc.sendUnaryData<unknown>,
) => void;

function change(log: Logger, name: string, fn: (req: Record<string, unknown>) => number): Unary {
  return (call, callback) => {
    try {
      const epoch = fn(call.request);
      log.info({ event: 'admin', method: name, request: call.request, epoch }, `admin ${name}`);
      callback(null, { epoch });
    } catch (err) {
      const message = err instanceof Error ? err.message : String(err);
      log.warn(
        { event: 'admin-rejected', method: name, request: call.request, message },
        `admin ${name} rejected`,
      );
      const code =
        err instanceof ConfigError
          ? /not a member|no assignment/.test(message)
            ? grpc.status.NOT_FOUND
            : /already a member/.test(message)
              ? grpc.status.ALREADY_EXISTS
              : /is used by|is the localNodeId|last node|draining/.test(message)
                ? grpc.status.FAILED_PRECONDITION
                : grpc.status.INVALID_ARGUMENT
          : grpc.status.INVALID_ARGUMENT;
      callback({ code, details: message });
    }
  };
}

/** Starts the RouterAdmin gRPC server on its own listener. */
export async function startAdminServer(
  router: RouterNode,
  cfg: RouterNodeConfig,
  log: Logger,
): Promise<{ port: number; close(): Promise<void> }> {
  const server = new grpc.Server();
  const str = (v: unknown) => (typeof v === 'string' ? v : '');
  server.addService(routerAdminDefinition, {
    GetTable: ((_call, callback) => {
      const t = router.table();
      callback(null, {
        epoch: t.epoch,
        nodes: t.nodes.map((n) => ({
          id: n.id,
          address: n.address,
          zone: n.zone,
          state: n.state,
          breaker: n.breaker,
        })),
        assignments: t.assignments.map((a) => ({
          spaceId: a.spaceId,
          primary: a.primary,
          replicas: [...a.replicas],
        })),
        replicationFactor: t.replicationFactor,
        vnodesPerNode: t.vnodesPerNode,
        partitioned: t.partitioned,
        localNodeId: t.localNodeId ?? '',
      });
    }) as Unary,
    AssignSpace: change(log, 'AssignSpace', (r) =>
      r.clear === true
        ? router.assignSpace({ spaceId: r.spaceId }, true)
        : router.assignSpace({ spaceId: r.spaceId, primary: r.primary, replicas: r.replicas }),
    ),
    AddNode: change(log, 'AddNode', (r) =>
      router.addNode({ id: r.id, address: r.address, zone: str(r.zone) }),
    ),
    RemoveNode: change(log, 'RemoveNode', (r) => router.removeNode(str(r.id))),
    DrainNode: change(log, 'DrainNode', (r) => router.drainNode(str(r.id), r.undrain === true)),
  });
  const t = cfg.admin.tls;
  const creds =
    t === null
      ? grpc.ServerCredentials.createInsecure()
      : grpc.ServerCredentials.createSsl(
          t.clientCa === null ? null : readFileSync(t.clientCa),
          [{ cert_chain: readFileSync(t.cert), private_key: readFileSync(t.key) }],
          t.clientCa !== null,
        );
  const host = cfg.admin.host.includes(':') ? `[${cfg.admin.host}]` : cfg.admin.host;
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync(`${host}:${cfg.admin.port}`, creds, (err, p) =>
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

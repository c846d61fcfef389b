import { MemoryServiceClient } from '@engram/proto';
import * as grpc from '@grpc/grpc-js';
import { RouterAdminClient } from '../admin.js';
import type { AdminCaller, AdminMethod, Connection } from './run.js';

const DATA_METHODS: ReadonlySet<AdminMethod> = new Set(['Store', 'Recall']);

/**
 * A RouterAdmin connection (or, for Store and Recall, a MemoryService one) over grpc-js: TLS when asked (`serverName` overrides the name the
 * certificate is checked against), `authorization: Bearer <token>` on every call, each call
 * bounded by `timeoutMs`. No wait for the connection: a refused one fails at once (UNAVAILABLE).
 */
export function grpcAdminCaller(c: Connection): AdminCaller {
  const credentials =
    c.tls === null
      ? grpc.credentials.createInsecure()
      : grpc.credentials.createSsl(c.tls.ca, c.tls.key, c.tls.cert);
  const options: grpc.ClientOptions =
    c.tls?.serverName != null
      ? {
          'grpc.ssl_target_name_override': c.tls.serverName,
          'grpc.default_authority': c.tls.serverName,
        }
      : {};
  let admin: grpc.Client | undefined;
  let memory: grpc.Client | undefined;
  return {
    call: (method: AdminMethod, request: Record<string, unknown>) =>
      new Promise((resolve, reject) => {
        const data = DATA_METHODS.has(method);
        if (data) memory ??= new MemoryServiceClient(c.address, credentials, options);
        else admin ??= new RouterAdminClient(c.address, credentials, options);
        const client = (data ? memory : admin)!;
        const metadata = new grpc.Metadata();
        if (c.token !== null && !data) metadata.set('authorization', `Bearer ${c.token}`);
        // MemoryService methods are camelCase on its typed client, RouterAdmin's as in the proto.
        const name = data ? method[0]!.toLowerCase() + method.slice(1) : method;
        const fn = (client as unknown as Record<string, (...args: unknown[]) => unknown>)[name]!;
        fn.call(
          client,
          request,
          metadata,
          { deadline: Date.now() + c.timeoutMs },
          (err: grpc.ServiceError | null, res: unknown) => (err ? reject(err) : resolve(res)),
        );
      }),
    close: () => {
      admin?.close();
      memory?.close();
    },
  };
}

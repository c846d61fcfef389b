import * as grpc from '@grpc/grpc-js';
import { RouterAdminClient } from '../admin.js';
import type { AdminCaller, AdminMethod, Connection } from './run.js';

/**
 * A RouterAdmin connection over grpc-js: TLS when asked (`serverName` overrides the name the
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
  const client = new RouterAdminClient(c.address, credentials, options);
  return {
    call: (method: AdminMethod, request: Record<string, unknown>) =>
      new Promise((resolve, reject) => {
        const metadata = new grpc.Metadata();
        if (c.token !== null) metadata.set('authorization', `Bearer ${c.token}`);
        const fn = (client as unknown as Record<string, (...args: unknown[]) => unknown>)[method]!;
        fn.call(
          client,
          request,
          metadata,
          { deadline: Date.now() + c.timeoutMs },
          (err: grpc.ServiceError | null, res: unknown) => (err ? reject(err) : resolve(res)),
        );
      }),
    close: () => client.close(),
  };
}

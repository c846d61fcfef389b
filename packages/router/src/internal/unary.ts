import type { TypedMethodDefinition } from '@engram/proto';
import * as grpc from '@grpc/grpc-js';
import type { CallContext } from './types.js';

/**
 * One unary call on a grpc-js client under the attempt's deadline (`grpc-timeout`) and signal:
 * aborting the signal cancels the call (the server sees RST_STREAM CANCEL).
 */
export function unaryCall<Req, Res>(
  client: grpc.Client,
  method: TypedMethodDefinition<Req, Res>,
  request: unknown,
  ctx: CallContext,
): Promise<Res> {
  const signal = ctx.signal;
  if (signal.aborted) return Promise.reject(signal.reason);
  const deadline = ctx.attemptDeadline.toGrpcDeadline();
  const options: grpc.CallOptions = deadline === Number.POSITIVE_INFINITY ? {} : { deadline };
  return new Promise<Res>((resolve, reject) => {
    let onAbort: (() => void) | undefined;
    const call = client.makeUnaryRequest<unknown, Res>(
      method.path,
      method.requestSerialize as (value: unknown) => Buffer,
      method.responseDeserialize,
      request,
      new grpc.Metadata(),
      options,
      (error, response) => {
        if (onAbort !== undefined) signal.removeEventListener('abort', onAbort);
        if (error !== null) reject(error);
        else resolve(response as Res);
      },
    );
    onAbort = () => call.cancel();
    signal.addEventListener('abort', onAbort, { once: true });
  });
}

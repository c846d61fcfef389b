import type { TypedMethodDefinition } from '@engram/proto';
import * as grpc from '@grpc/grpc-js';
import { AttemptContext } from './execution.js';
import type { CallContext } from './types.js';

/**
 * One unary call on a grpc-js client under the attempt's deadline (`grpc-timeout`), cancelled
 * (RST_STREAM CANCEL) when the attempt is: through the attempt's internal cancel hook when
 * the context is the router's own, else through `ctx.signal`.
 */
export function unaryCall<Req, Res>(
  client: grpc.Client,
  method: TypedMethodDefinition<Req, Res>,
  request: unknown,
  ctx: CallContext,
): Promise<Res> {
  const own = ctx instanceof AttemptContext ? ctx : undefined;
  if (own !== undefined ? own.cancelled : ctx.signal.aborted) {
    return Promise.reject(own !== undefined ? own.reason : ctx.signal.reason);
  }
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
        if (own !== undefined) own.onCancel = undefined;
        else if (onAbort !== undefined) ctx.signal.removeEventListener('abort', onAbort);
        if (error !== null) reject(error);
        else resolve(response as Res);
      },
    );
    if (own !== undefined) {
      own.onCancel = () => call.cancel();
    } else {
      onAbort = () => call.cancel();
      ctx.signal.addEventListener('abort', onAbort, { once: true });
    }
  });
}

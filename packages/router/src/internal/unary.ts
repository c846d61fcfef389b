import type { TypedMethodDefinition } from '@engram/proto';
import * as grpc from '@grpc/grpc-js';
import { whenCancelled } from './attempt-context.js';
import type { CallContext } from './types.js';

/**
 * One unary call on a grpc-js client under the attempt's deadline (`grpc-timeout`), cancelled
 * (RST_STREAM CANCEL) when the attempt is.
 */
export function unaryCall<Req, Res>(
  client: grpc.Client,
  method: TypedMethodDefinition<Req, Res>,
  request: unknown,
  ctx: CallContext,
): Promise<Res> {
  const deadline = ctx.attemptDeadline.toGrpcDeadline();
  const options: grpc.CallOptions = deadline === Number.POSITIVE_INFINITY ? {} : { deadline };
  return new Promise<Res>((resolve, reject) => {
    let dispose: (() => void) | undefined;
    let finished = false;
    const call = client.makeUnaryRequest<unknown, Res>(
      method.path,
      method.requestSerialize as (value: unknown) => Buffer,
      method.responseDeserialize,
      request,
      new grpc.Metadata(),
      options,
      (error, response) => {
        finished = true;
        dispose?.();
        if (error !== null) reject(error);
        else resolve(response as Res);
      },
    );
    // Registered after the call exists; a context cancelled already cancels it at once.
    const cancel = (): void => {
      if (!finished) call.cancel();
    };
    dispose = whenCancelled(ctx, cancel);
  });
}

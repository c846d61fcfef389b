import { HEALTH_SERVICE_NAME } from '@engram/proto';
import * as grpc from '@grpc/grpc-js';
import { type FaultInjector, type FaultTarget, INJECTED_FAULT_MESSAGE } from './faults.js';

const HEALTH_PREFIX = `/${HEALTH_SERVICE_NAME}/`;

/**
 * A server interceptor applying `faults` to every call, before its handler sees it: the call's
 * metadata is passed on after `delayMs`, or the call ends with UNAVAILABLE after it, or it is
 * held until hang is turned off. Holding the metadata holds the handler (grpc-js queues the
 * request message and half-close behind it), so a failed or held call has no effect. A call
 * that ends first (client cancel, its deadline, the server forced down) drops its timer or
 * its hold.
 */
export function faultInterceptor(faults: FaultInjector): grpc.ServerInterceptor {
  return (method, call) => {
    const target: FaultTarget = method.path.startsWith(HEALTH_PREFIX) ? 'health' : 'data';
    let timer: NodeJS.Timeout | undefined;
    let drop: (() => void) | undefined;
    let ended = false;
    return new grpc.ServerInterceptingCall(call, {
      start: (next) =>
        next({
          onReceiveMetadata: (metadata, proceed) => {
            const decision = faults.decide(target);
            if (decision.kind === 'hang') {
              drop = faults.hold(() => {
                drop = undefined;
                if (!ended) proceed(metadata);
              });
              return;
            }
            const act =
              decision.kind === 'pass'
                ? () => proceed(metadata)
                : () =>
                    call.sendStatus({
                      code: grpc.status.UNAVAILABLE,
                      details: INJECTED_FAULT_MESSAGE,
                      metadata: new grpc.Metadata(),
                    });
            if (decision.delayMs === 0) act();
            else
              timer = setTimeout(() => {
                timer = undefined;
                act();
              }, decision.delayMs);
          },
          onCancel: () => {
            ended = true;
            clearTimeout(timer);
            drop?.();
          },
        }),
    });
  };
}

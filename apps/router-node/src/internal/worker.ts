import { parentPort, workerData } from 'node:worker_threads';
import { pino } from 'pino';
import {
  type ChannelReply,
  type ChannelRequest,
  type ConfigUpdate,
  PortChannel,
} from './control-channel.js';
import { DataPlane, type DataPlaneInit } from './data-plane.js';
import { nameThisThread } from './thread-name.js';

/** What the control plane posts to a data-plane worker. */
export interface WorkerInit extends DataPlaneInit {
  /** Worker 0 binds host:port; the others accept on worker 0's listening fd. */
  readonly listen: { host: string; port: number } | { fd: number };
}

export type WorkerMessage =
  | { type: 'listening'; port: number; fd: number }
  | { type: 'drained'; left: number }
  | { type: 'error'; message: string; code?: string }
  | ChannelRequest;

const init = workerData as WorkerInit;
const port = parentPort!;
nameThisThread(`engram-data-${init.thread}`);
const log = pino(
  { level: init.config.logLevel, base: { thread: init.thread } },
  pino.destination({ dest: 2, sync: true }),
);

const channel = new PortChannel(port);
const plane = new DataPlane(init, log, channel);
plane.listen(init.listen).then(
  (boundPort) => {
    port.postMessage({
      type: 'listening',
      port: boundPort,
      fd: plane.listeningFd(),
    } satisfies WorkerMessage);
  },
  (err: unknown) => {
    const code = (err as NodeJS.ErrnoException)?.code;
    port.postMessage({
      type: 'error',
      message: String((err as Error)?.message ?? err),
      ...(typeof code === 'string' ? { code } : {}),
    } satisfies WorkerMessage);
  },
);

port.on(
  'message',
  (
    msg: { type: 'drain'; graceMs: number } | { type: 'test-crash' } | ChannelReply | ConfigUpdate,
  ) => {
    if (msg.type === 'done') {
      channel.onReply(msg);
      return;
    }
    if (msg.type === 'config-update') {
      plane.reconfigure(msg.config, msg.budget);
      return;
    }
    if (msg.type === 'test-crash') {
      // Test builds only: an uncaught exception, the way a real bug would end this thread.
      if (process.env.NODE_ENV === 'test') {
        setImmediate(() => {
          throw new Error('test-crash: data-plane worker crashing on purpose');
        });
      }
      return;
    }
    if (msg.type !== 'drain') return;
    plane.drain(msg.graceMs).then(
      (left) => {
        port.postMessage({ type: 'drained', left } satisfies WorkerMessage);
        port.close();
      },
      (err: unknown) => {
        log.error({ err }, 'drain failed');
        port.postMessage({ type: 'drained', left: -1 } satisfies WorkerMessage);
      },
    );
  },
);

import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { formatAddress, InvalidArgumentError } from '@engram/common';
import type { Logger } from 'pino';
import { type FaultControl, validateFaultUpdate } from './faults.js';

/** Largest `PUT /faults` body read; a settings object is a few dozen bytes. */
const MAX_BODY_BYTES = 16 * 1024; // 16 KiB

/** The HTTP admin endpoint of a node, listening. */
export interface FaultAdmin {
  readonly port: number;
  /** `host:port`. */
  readonly address: string;
  /** Stops listening and closes its connections. Idempotent. */
  close(): Promise<void>;
}

interface ErrorBody {
  code: string;
  field?: string;
  value?: unknown;
  message: string;
}

function send(res: http.ServerResponse, status: number, body: unknown, headers = {}): void {
  res.writeHead(status, { 'content-type': 'application/json', ...headers });
  res.end(`${JSON.stringify(body)}\n`);
}

function readBody(req: http.IncomingMessage): Promise<string | undefined> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > MAX_BODY_BYTES) {
        resolve(undefined);
        req.destroy();
      } else chunks.push(chunk);
    });
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

/**
 * `GET /faults`: the fault state as JSON. `PUT /faults`: a JSON object with any of the
 * settings, validated then applied (a bad body is 400 `{code, field, value, message}` and
 * changes nothing); replies with the new state. Anything else is 404 or 405.
 */
async function handle(
  faults: FaultControl,
  req: http.IncomingMessage,
  res: http.ServerResponse,
): Promise<void> {
  const path = (req.url ?? '').split('?')[0];
  if (path !== '/faults') {
    send(res, 404, { code: 'NotFound', message: `no ${path}; the endpoint is /faults` });
    return;
  }
  if (req.method === 'GET') {
    send(res, 200, faults.state());
    return;
  }
  if (req.method !== 'PUT') {
    send(res, 405, { code: 'MethodNotAllowed', message: 'GET or PUT' }, { allow: 'GET, PUT' });
    return;
  }
  const text = await readBody(req);
  if (text === undefined) {
    const error: ErrorBody = {
      code: 'InvalidArgument',
      field: 'body',
      message: `body must be at most ${MAX_BODY_BYTES} bytes`,
    };
    send(res, 413, error, { connection: 'close' });
    return;
  }
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch (err) {
    const error: ErrorBody = {
      code: 'InvalidArgument',
      field: 'body',
      value: text.length > 64 ? `${text.slice(0, 64)}…` : text,
      message: `body must be JSON: ${(err as Error).message}`,
    };
    send(res, 400, error);
    return;
  }
  try {
    send(res, 200, faults.update(validateFaultUpdate(body, (key) => key ?? 'body')));
  } catch (err) {
    if (!(err instanceof InvalidArgumentError)) throw err;
    const { code, field, value, message } = err;
    send(res, 400, { code, field, value, message } satisfies ErrorBody);
  }
}

/** Starts the admin endpoint on `host:port` (0 = any free port). */
export async function startFaultAdmin(
  faults: FaultControl,
  host: string,
  port: number,
  logger: Logger,
): Promise<FaultAdmin> {
  const server = http.createServer((req, res) => {
    handle(faults, req, res).catch((err: unknown) => {
      logger.error({ err }, 'admin request failed');
      if (!res.headersSent) send(res, 500, { code: 'Internal', message: String(err) });
      else res.destroy();
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const bound = (server.address() as AddressInfo).port;
  let closing: Promise<void> | undefined;
  return {
    port: bound,
    address: formatAddress(host, bound),
    close: () => {
      closing ??= new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
      return closing;
    },
  };
}

import { status as GrpcStatus } from '@grpc/grpc-js';
import { isRouterNodeError } from '../errors.js';
import {
  type CommandName,
  type ConnectOptions,
  commandHelp,
  EXIT,
  globalHelp,
  type Invocation,
  parseArgs,
} from './args.js';
import {
  type DataReply,
  dataJson,
  hintsJson,
  type LocateReply,
  type RepairReply,
  renderData,
  renderHints,
  renderRepair,
  renderStatus,
  renderTableView,
  renderWhere,
  repairJson,
  statusJson,
  type TableReply,
  tableJson,
  whereJson,
} from './render.js';

/** RouterAdmin methods the CLI calls. */
export type AdminMethod =
  | 'GetTable'
  | 'Locate'
  | 'AddNode'
  | 'RemoveNode'
  | 'DrainNode'
  | 'AssignSpace'
  | 'RepairSpace'
  | 'RepairNode'
  /** MemoryService, on the data listener (store and recall). */
  | 'Store'
  | 'Recall';

/** One RouterAdmin connection (the gRPC edge); a failed call rejects with `{ code, details }`. */
export interface AdminCaller {
  call(method: AdminMethod, request: Record<string, unknown>): Promise<unknown>;
  close(): void;
}

/** What `connect` gets: the address, the token and TLS material read, the deadline. */
export interface Connection {
  readonly address: string;
  readonly token: string | null;
  readonly tls: {
    readonly ca: Buffer | null;
    readonly cert: Buffer | null;
    readonly key: Buffer | null;
    readonly serverName: string | null;
  } | null;
  readonly timeoutMs: number;
}

/** The process around the CLI: output, environment, files, and the connection. */
export interface CliIo {
  stdout(text: string): void;
  stderr(text: string): void;
  readonly env: Readonly<Record<string, string | undefined>>;
  readFile(path: string): Buffer;
  connect(connection: Connection): AdminCaller;
}

const PROGRAM = 'engram-router';

class Usage extends Error {}

/** Reads the token file and the TLS files named by the flags; Usage errors when unreadable. */
function connection(c: ConnectOptions, io: CliIo): Connection {
  const read = (flag: string, path: string): Buffer => {
    try {
      return io.readFile(path);
    } catch (err) {
      throw new Usage(
        `${flag} ${path}: cannot read (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`,
      );
    }
  };
  let token = c.token;
  if (c.tokenFile !== null) {
    token = read('--token-file', c.tokenFile).toString('utf8').trim();
    if (token === '' || /\s/.test(token)) {
      throw new Usage(`--token-file ${c.tokenFile}: must hold one token (no spaces)`);
    }
  }
  const tls =
    c.tls === null
      ? null
      : {
          ca: c.tls.ca === null ? null : read('--tls-ca', c.tls.ca),
          cert: c.tls.cert === null ? null : read('--tls-cert', c.tls.cert),
          key: c.tls.key === null ? null : read('--tls-key', c.tls.key),
          serverName: c.tls.serverName,
        };
  return { address: c.admin, token, tls, timeoutMs: c.timeoutMs };
}

type Run = Extract<Invocation, { kind: 'run' }>;

/** The request a command sends. */
export function requestOf(inv: Run): { method: AdminMethod; request: Record<string, unknown> } {
  const [a, b, ...rest] = inv.args;
  switch (inv.command) {
    case 'status':
    case 'table':
    case 'hints':
      return { method: 'GetTable', request: {} };
    case 'where':
      return { method: 'Locate', request: { spaceId: a } };
    case 'add':
      return { method: 'AddNode', request: { id: a, address: b, zone: inv.zone } };
    case 'remove':
      return { method: 'RemoveNode', request: { id: a, force: inv.force } };
    case 'drain':
      return { method: 'DrainNode', request: { id: a, force: inv.force } };
    case 'undrain':
      return { method: 'DrainNode', request: { id: a, undrain: true } };
    case 'assign':
      return { method: 'AssignSpace', request: { spaceId: a, primary: b, replicas: rest } };
    case 'unassign':
      return { method: 'AssignSpace', request: { spaceId: a, clear: true } };
    case 'repair':
      return inv.node !== null
        ? { method: 'RepairNode', request: { id: inv.node } }
        : { method: 'RepairSpace', request: { spaceId: a } };
    case 'store':
      return { method: 'Store', request: { spaceId: a, memory: { content: b } } };
    case 'recall':
      return {
        method: 'Recall',
        request: { spaceId: a, cue: { text: b ?? '' }, limit: inv.limit },
      };
  }
}

/** What a command prints for the router's answer. */
export function outputOf(inv: Run, reply: unknown): string {
  const json = (v: unknown) => `${JSON.stringify(v, null, 2)}\n`;
  const [a, b, ...rest] = inv.args;
  const { epoch, revision = 0 } = reply as { epoch: number; revision?: number };
  // etcd mode: the revision every router reports once it has the change.
  const change = (text: string) =>
    inv.json
      ? json(revision > 0 ? { epoch, revision } : { epoch })
      : `${text} (table epoch ${epoch}${revision > 0 ? `, revision ${revision}` : ''})\n`;
  const cmd: CommandName = inv.command;
  switch (cmd) {
    case 'status':
      return inv.json ? json(statusJson(reply as TableReply)) : renderStatus(reply as TableReply);
    case 'table':
      return inv.json ? json(tableJson(reply as TableReply)) : renderTableView(reply as TableReply);
    case 'hints':
      return inv.json ? json(hintsJson(reply as TableReply)) : renderHints(reply as TableReply);
    case 'where':
      return inv.json ? json(whereJson(reply as LocateReply)) : renderWhere(reply as LocateReply);
    case 'add':
      return change(`added node ${a} at ${b}; it joins, its spaces stream to it`);
    case 'remove':
      return change(
        `removing node ${a}; it leaves once its spaces are streamed to their new owners`,
      );
    case 'drain':
      return change(`draining node ${a}; its spaces stream to their new owners`);
    case 'undrain':
      return change(`undraining node ${a}; it joins again`);
    case 'assign':
      return change(
        `assigned space ${a} to primary ${b}${rest.length > 0 ? `, replicas ${rest.join(',')}` : ''}`,
      );
    case 'unassign':
      return change(`unassigned space ${a}; it follows the ring again`);
    case 'repair':
      if (inv.node !== null) {
        return inv.json
          ? json({ node: inv.node, started: true })
          : `repair of node ${inv.node} started in the background (status shows REPAIR NEEDED until done)\n`;
      }
      return inv.json
        ? json(repairJson(reply as RepairReply))
        : renderRepair(reply as RepairReply, `space ${a}`);
    case 'store':
    case 'recall':
      return inv.json ? json(dataJson(reply as DataReply)) : renderData(reply as DataReply);
  }
}

function statusName(code: number): string {
  return GrpcStatus[code] ?? `status ${code}`;
}

/** One line, no stack: the message's first line. */
function oneLine(text: string): string {
  return text.split('\n')[0]!.trim();
}

/**
 * Runs engram-router with `argv` (after the script) and resolves with the exit code
 * (`EXIT`). Prints the result on stdout, one line on stderr on failure; never throws.
 */
export async function runCli(argv: readonly string[], io: CliIo): Promise<number> {
  let inv: Invocation;
  let conn: Connection;
  try {
    inv = parseArgs(argv, io.env);
    if (inv.kind === 'help') {
      io.stdout(inv.command === null ? globalHelp() : commandHelp(inv.command));
      return EXIT.Ok;
    }
    conn = connection(inv.connect, io);
  } catch (err) {
    if (err instanceof Usage || (isRouterNodeError(err) && err.code === 'InvalidArgument')) {
      io.stderr(`${PROGRAM}: ${oneLine((err as Error).message)} (${PROGRAM} --help for usage)\n`);
      return EXIT.Usage;
    }
    io.stderr(`${PROGRAM}: ${oneLine(String((err as Error)?.message ?? err))}\n`);
    return EXIT.Refused;
  }
  const { method, request } = requestOf(inv);
  let caller: AdminCaller | undefined;
  try {
    caller = io.connect(conn);
    const reply = await caller.call(method, request);
    io.stdout(outputOf(inv, reply));
    return EXIT.Ok;
  } catch (err) {
    const code = (err as { code?: unknown } | null)?.code;
    if (typeof code !== 'number') {
      io.stderr(`${PROGRAM}: ${oneLine(String((err as Error)?.message ?? err))}\n`);
      return EXIT.Refused;
    }
    const details = oneLine(String((err as { details?: unknown }).details ?? '')).replace(
      /\s*Resolution note:\s*$/,
      '',
    );
    if (code === GrpcStatus.UNAVAILABLE || code === GrpcStatus.DEADLINE_EXCEEDED) {
      const listener =
        inv.command === 'store' || inv.command === 'recall' ? 'router' : 'router admin';
      io.stderr(
        `${PROGRAM}: ${listener} at ${conn.address} unreachable: ${statusName(code)}: ${details}\n`,
      );
      return EXIT.Unreachable;
    }
    io.stderr(`${PROGRAM}: ${method} failed: ${statusName(code)}: ${details}\n`);
    return EXIT.Refused;
  } finally {
    caller?.close();
  }
}

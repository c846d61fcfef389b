import { parseAddress } from '@engram/common';
import { ADMIN_CLI_ENV } from '../config.js';
import { CONFIG_SCHEMA } from '../config-schema.js';
import { RouterNodeError } from '../errors.js';

// The command line of engram-router (the admin CLI): commands, their arguments and flags, and
// the help texts. Pure: the caller does the I/O (env, files, the gRPC call, the exit).

/** Env var of `--admin`. */
export const ADMIN_ENV = ADMIN_CLI_ENV.admin;
/** Env var of `--router`. */
export const ROUTER_ENV = ADMIN_CLI_ENV.router;
/** Env var of `--token`. */
export const TOKEN_ENV = 'ENGRAM_ROUTER_ADMIN_TOKEN';
/** `--admin` default: the router's own default admin listener. */
export const DEFAULT_ADMIN = `127.0.0.1:${CONFIG_SCHEMA['admin.port'].default as number}`;
/** `--router` default: the router's own default data (MemoryService) listener. */
export const DEFAULT_ROUTER = `127.0.0.1:${CONFIG_SCHEMA['listen.port'].default as number}`;
/** `--timeout-ms` default: long enough for a repair of a large space. */
export const DEFAULT_TIMEOUT_MS = 30 * 1000; // 30 s

/** Exit codes, as documented in the README and `--help`. */
export const EXIT = Object.freeze({
  Ok: 0,
  /** The router refused or failed the request (its gRPC status is printed). */
  Refused: 1,
  /** Bad usage: unknown command or flag, missing or extra arguments, unreadable token file. */
  Usage: 2,
  /** The router could not be reached, or did not answer within --timeout-ms. */
  Unreachable: 3,
} as const);

export type CommandName =
  | 'status'
  | 'where'
  | 'table'
  | 'add'
  | 'remove'
  | 'drain'
  | 'undrain'
  | 'assign'
  | 'unassign'
  | 'repair'
  | 'hints'
  | 'store'
  | 'recall';

/** Flags of a command (besides the global ones). */
type CommandFlag = 'zone' | 'force' | 'node' | 'limit';

interface CommandSpec {
  readonly synopsis: string;
  readonly summary: string;
  readonly min: number;
  readonly max: number;
  readonly flags: readonly CommandFlag[];
  /** Extra lines of its `--help`. */
  readonly details?: string;
  /** Talks to the data listener (MemoryService at `--router`), not to RouterAdmin. */
  readonly data?: true;
}

export const COMMANDS: Readonly<Record<CommandName, CommandSpec>> = Object.freeze({
  status: {
    synopsis: 'status',
    summary: 'nodes (state, breaker, health latency, hints), data movement, epoch, partition',
    min: 0,
    max: 0,
    flags: [],
  },
  where: {
    synopsis: 'where SPACE',
    summary: "a space's token, primary and replicas, and which of them hold its data",
    min: 1,
    max: 1,
    flags: [],
    details: 'Each node of the placement is asked what it holds (RouterAdmin.Locate).',
  },
  table: {
    synopsis: 'table',
    summary: 'the routing table: nodes, assignments, pending assignments',
    min: 0,
    max: 0,
    flags: [],
  },
  add: {
    synopsis: 'add ID ADDRESS [--zone ZONE]',
    summary: 'add a memory node at ADDRESS (host:port); it joins, its spaces stream to it',
    min: 2,
    max: 2,
    flags: ['zone'],
  },
  remove: {
    synopsis: 'remove ID [--force]',
    summary: 'remove a node (--force: even below the replication factor)',
    min: 1,
    max: 1,
    flags: ['force'],
  },
  drain: {
    synopsis: 'drain ID [--force]',
    summary: 'take a node out of the placement; its spaces stream away, it stays a member',
    min: 1,
    max: 1,
    flags: ['force'],
  },
  undrain: {
    synopsis: 'undrain ID',
    summary: 'bring a drained (or leaving) node back into the placement',
    min: 1,
    max: 1,
    flags: [],
  },
  assign: {
    synopsis: 'assign SPACE PRIMARY [REPLICA...]',
    summary: 'pin a space to a primary and replicas (overrides the ring)',
    min: 2,
    max: Number.POSITIVE_INFINITY,
    flags: [],
  },
  unassign: {
    synopsis: 'unassign SPACE',
    summary: "remove a space's pin (it follows the ring again)",
    min: 1,
    max: 1,
    flags: [],
  },
  repair: {
    synopsis: 'repair SPACE | repair --node ID',
    summary: "anti-entropy of one space (waits), or of a node's spaces (in the background)",
    min: 0,
    max: 1,
    flags: ['node'],
  },
  hints: {
    synopsis: 'hints',
    summary: 'per node: hints pending (count, bytes) and whether a repair is due',
    min: 0,
    max: 0,
    flags: [],
  },
  store: {
    synopsis: 'store SPACE CONTENT',
    summary: 'store a memory through the router (data listener) and show how it was routed',
    min: 2,
    max: 2,
    flags: [],
    details:
      "A smoke test of the data path: MemoryService.Store at --router, then the memory id and the reply's RoutingInfo (served by, acknowledgements, epoch).",
    data: true,
  },
  recall: {
    synopsis: 'recall SPACE [CUE] [--limit N]',
    summary: "recall a space's memories through the router (data listener), with the routing",
    min: 1,
    max: 2,
    flags: ['limit'],
    details:
      'MemoryService.Recall at --router (CUE: text to match; none = every memory up to --limit, default 10), then the memories and the RoutingInfo.',
    data: true,
  },
});

export const COMMAND_NAMES = Object.keys(COMMANDS) as CommandName[];

/** TLS of the admin connection: on when `--tls` or any file flag is given. */
export interface TlsOptions {
  readonly ca: string | null;
  readonly cert: string | null;
  readonly key: string | null;
  readonly serverName: string | null;
}

/** Where and how to reach RouterAdmin. Files are named, not read (the caller reads them). */
export interface ConnectOptions {
  /** The listener the command talks to: RouterAdmin (`--admin`) or, for data commands, MemoryService (`--router`). */
  readonly admin: string;
  readonly token: string | null;
  readonly tokenFile: string | null;
  readonly tls: TlsOptions | null;
  readonly timeoutMs: number;
}

export type Invocation =
  | { readonly kind: 'help'; readonly command: CommandName | null }
  | {
      readonly kind: 'run';
      readonly command: CommandName;
      readonly args: readonly string[];
      readonly zone: string;
      readonly force: boolean;
      readonly node: string | null;
      /** recall's --limit (0 = the server's default). */
      readonly limit: number;
      readonly json: boolean;
      readonly connect: ConnectOptions;
    };

/** A usage error (exit 2): `RouterNodeError` with code `InvalidArgument`. */
export function usageError(message: string): never {
  throw new RouterNodeError('InvalidArgument', message);
}

const GLOBAL_VALUE_FLAGS = new Set([
  'admin',
  'router',
  'token',
  'token-file',
  'tls-ca',
  'tls-cert',
  'tls-key',
  'tls-server-name',
  'timeout-ms',
]);
const GLOBAL_BOOL_FLAGS = new Set(['json', 'tls', 'help']);
const COMMAND_VALUE_FLAGS = new Set<string>(['zone', 'node', 'limit']);
const COMMAND_BOOL_FLAGS = new Set<string>(['force']);

function isCommand(name: string | undefined): name is CommandName {
  return name !== undefined && Object.hasOwn(COMMANDS, name);
}

/**
 * Parses argv (after the script). Flags may come before or after the command, as
 * `--flag VALUE` or `--flag=VALUE`; `--` ends the flags (a space id starting with `-`).
 * `env` supplies ENGRAM_ROUTER_ADMIN and ENGRAM_ROUTER_ADMIN_TOKEN (flags win).
 * Throws a usage error (`RouterNodeError` `InvalidArgument`) naming what is wrong.
 */
export function parseArgs(
  argv: readonly string[],
  env: Readonly<Record<string, string | undefined>> = {},
): Invocation {
  const positional: string[] = [];
  const values = new Map<string, string>();
  const bools = new Set<string>();
  let flagsDone = false;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (flagsDone || !arg.startsWith('-') || arg === '-') {
      positional.push(arg);
      continue;
    }
    if (arg === '--') {
      flagsDone = true;
      continue;
    }
    if (arg === '-h') {
      bools.add('help');
      continue;
    }
    if (!arg.startsWith('--')) usageError(`unknown flag ${arg}`);
    const eq = arg.indexOf('=');
    const name = arg.slice(2, eq < 0 ? undefined : eq);
    if (GLOBAL_BOOL_FLAGS.has(name) || COMMAND_BOOL_FLAGS.has(name)) {
      if (eq >= 0) usageError(`--${name} takes no value`);
      bools.add(name);
    } else if (GLOBAL_VALUE_FLAGS.has(name) || COMMAND_VALUE_FLAGS.has(name)) {
      let value: string;
      if (eq >= 0) value = arg.slice(eq + 1);
      else {
        const next = argv[i + 1];
        if (next === undefined) usageError(`--${name} needs a value`);
        value = next;
        i++;
      }
      if (values.has(name)) usageError(`--${name} given twice`);
      values.set(name, value);
    } else {
      usageError(`unknown flag --${name}`);
    }
  }

  let [name, ...args] = positional;
  if (name === 'help') {
    const topic = args[0];
    if (args.length > 1 || (topic !== undefined && !isCommand(topic))) {
      usageError(`help takes one command name (${COMMAND_NAMES.join(', ')})`);
    }
    return { kind: 'help', command: topic ?? null };
  }
  if (bools.has('help')) return { kind: 'help', command: isCommand(name) ? name : null };
  if (name === undefined) usageError('a command is needed');
  if (!isCommand(name)) usageError(`unknown command ${JSON.stringify(name)}`);
  const spec = COMMANDS[name];
  for (const flag of [...values.keys(), ...bools]) {
    const own = COMMAND_VALUE_FLAGS.has(flag) || COMMAND_BOOL_FLAGS.has(flag);
    if (own && !(spec.flags as readonly string[]).includes(flag)) {
      usageError(`${name} takes no --${flag}`);
    }
  }
  if (args.length < spec.min || args.length > spec.max) {
    usageError(`usage: engram-router ${spec.synopsis}`);
  }
  args = args.map((a, i) => {
    if (a === '') usageError(`argument ${i + 1} of ${name} is empty`);
    return a;
  });
  const node = values.get('node') ?? null;
  if (name === 'repair' && (args.length === 1) === (node !== null)) {
    usageError('usage: engram-router repair SPACE | repair --node ID (one of the two)');
  }
  if (node === '') usageError('--node needs a node id');
  const limitText = values.get('limit');
  if (limitText !== undefined && !/^[0-9]{1,6}$/.test(limitText)) {
    usageError(`--limit must be a whole number from 0 to 999999, not "${limitText}"`);
  }

  return {
    kind: 'run',
    command: name,
    args,
    zone: values.get('zone') ?? '',
    force: bools.has('force'),
    node,
    limit: limitText === undefined ? 10 : Number(limitText),
    json: bools.has('json'),
    connect: connectOptions(values, bools, env, spec.data === true),
  };
}

function connectOptions(
  values: ReadonlyMap<string, string>,
  bools: ReadonlySet<string>,
  env: Readonly<Record<string, string | undefined>>,
  data: boolean,
): ConnectOptions {
  const fromEnv = (key: string) => (env[key] === '' ? undefined : env[key]);
  const admin = data
    ? normalizeAddress(values.get('router') ?? fromEnv(ROUTER_ENV) ?? DEFAULT_ROUTER, '--router')
    : normalizeAddress(values.get('admin') ?? fromEnv(ADMIN_ENV) ?? DEFAULT_ADMIN, '--admin');

  const tokenFlag = values.get('token');
  const tokenFile = values.get('token-file') ?? null;
  if (tokenFlag !== undefined && tokenFile !== null) {
    usageError('--token and --token-file: give one of them');
  }
  if (tokenFlag === '') usageError('--token needs a value');
  if (tokenFile === '') usageError('--token-file needs a file name');
  const token = tokenFlag ?? (tokenFile === null ? (fromEnv(TOKEN_ENV) ?? null) : null);

  const file = (name: string): string | null => {
    const v = values.get(name);
    if (v === '') usageError(`--${name} needs a file name`);
    return v ?? null;
  };
  const ca = file('tls-ca');
  const cert = file('tls-cert');
  const key = file('tls-key');
  const serverName = values.get('tls-server-name') ?? null;
  if (serverName === '') usageError('--tls-server-name needs a name');
  if ((cert === null) !== (key === null)) usageError('--tls-cert and --tls-key go together');
  const anyTls =
    bools.has('tls') || ca !== null || cert !== null || key !== null || serverName !== null;

  const timeoutText = values.get('timeout-ms');
  let timeoutMs = DEFAULT_TIMEOUT_MS;
  if (timeoutText !== undefined) {
    if (!/^[0-9]{1,9}$/.test(timeoutText) || Number(timeoutText) < 1) {
      usageError(`--timeout-ms must be a whole number of milliseconds >= 1, not "${timeoutText}"`);
    }
    timeoutMs = Number(timeoutText);
  }
  return {
    admin,
    token,
    tokenFile,
    tls: anyTls ? { ca, cert, key, serverName } : null,
    timeoutMs,
  };
}

/** `HOST:PORT` as given, or a bare `PORT` on 127.0.0.1; a usage error otherwise. */
function normalizeAddress(value: string, flag: string): string {
  const address = /^[0-9]+$/.test(value) ? `127.0.0.1:${value}` : value;
  try {
    parseAddress(address, flag);
  } catch (err) {
    usageError((err as Error).message);
  }
  return address;
}

/** `engram-router --help`. */
export function globalHelp(): string {
  const width = Math.max(...COMMAND_NAMES.map((n) => COMMANDS[n].synopsis.length));
  const commands = COMMAND_NAMES.map(
    (n) => `  ${COMMANDS[n].synopsis.padEnd(width)}  ${COMMANDS[n].summary}`,
  );
  return [
    'usage: engram-router [flags] COMMAND [ARGS]',
    '',
    "Operates an Engram router over its admin API (RouterAdmin, the router's admin listener);",
    'store and recall go through its data listener (MemoryService), as a client would.',
    '',
    'commands:',
    ...commands,
    '',
    GLOBAL_FLAGS_HELP,
    '',
    EXIT_HELP,
    '',
    'engram-router help COMMAND (or COMMAND --help) shows one command.',
    '',
  ].join('\n');
}

const GLOBAL_FLAGS_HELP = [
  'flags (before or after the command):',
  `  --admin HOST:PORT        router admin listener (env ${ADMIN_ENV}; default ${DEFAULT_ADMIN})`,
  `  --router HOST:PORT       router data listener, for store and recall (env ${ROUTER_ENV}; default ${DEFAULT_ROUTER})`,
  '  --json                   machine-readable output (stable field names)',
  `  --token TOKEN            admin bearer token (env ${TOKEN_ENV}); prefer --token-file`,
  '  --token-file FILE        file holding the admin bearer token',
  '  --tls                    TLS to the listener (system CAs unless --tls-ca)',
  '  --tls-ca FILE            PEM CA that signed the router certificate (implies --tls)',
  '  --tls-cert FILE          PEM client certificate, for an admin listener requiring one',
  '  --tls-key FILE           PEM key of --tls-cert',
  '  --tls-server-name NAME   name to verify the router certificate against',
  `  --timeout-ms MS          deadline of the request (default ${DEFAULT_TIMEOUT_MS})`,
  '  -h, --help               this help; COMMAND --help for one command',
].join('\n');

const EXIT_HELP = [
  'exit codes:',
  `  ${EXIT.Ok}  ok`,
  `  ${EXIT.Refused}  the router refused or failed the request (its gRPC status and message on stderr)`,
  `  ${EXIT.Usage}  usage error`,
  `  ${EXIT.Unreachable}  the router is unreachable or did not answer within --timeout-ms`,
].join('\n');

/** `engram-router COMMAND --help`. */
export function commandHelp(name: CommandName): string {
  const spec = COMMANDS[name];
  const flags: string[] = [];
  if (spec.flags.includes('zone')) flags.push('  --zone ZONE   failure domain of the node');
  if (spec.flags.includes('force'))
    flags.push('  --force       even if fewer placed nodes than the replication factor remain');
  if (spec.flags.includes('node')) flags.push('  --node ID     repair every space the node holds');
  if (spec.flags.includes('limit')) flags.push('  --limit N     memories to return (default 10)');
  return [
    `usage: engram-router ${spec.synopsis}`,
    '',
    `${spec.summary[0]!.toUpperCase()}${spec.summary.slice(1)}.`,
    ...(spec.details !== undefined ? [spec.details] : []),
    ...(flags.length > 0 ? ['', 'flags:', ...flags] : []),
    '',
    spec.data === true
      ? 'global flags: --router --json --tls --tls-ca --tls-cert --tls-key --tls-server-name'
      : 'global flags: --admin --json --token --token-file --tls --tls-ca --tls-cert --tls-key',
    `${spec.data === true ? '' : '--tls-server-name '}--timeout-ms (engram-router --help)`,
    '',
  ].join('\n');
}

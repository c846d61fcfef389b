#!/usr/bin/env node
/**
 * memory-node CLI (`memory-node --help` lists the options, from `OPTIONS` below):
 *   node dist/main.js --id n1 [--port 0] [--zone a] [--host 127.0.0.1] [--data-dir DIR]
 *     [--max-content-bytes N] [--tls-cert F --tls-key F [--tls-client-ca F]] [--log-level info]
 *     [--admin-listen HOST:PORT] [--fault-latency-ms N] [--fault-error-rate R] [--fault-hang]
 *     [--fault-health]
 * Prints one JSON line on stdout once bound (adminAddress and adminPort with --admin-listen):
 *   {"event":"listening","id":"n1","zone":"a","address":"127.0.0.1:43567","port":43567}
 * Logs (pino JSON) go to stderr. SIGTERM/SIGINT: graceful stop, exit 0. Exit codes: 2 bad
 * arguments or an unreadable file they name, 1 a failure to start (a port in use): one line
 * on stderr, no stack.
 */
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { formatAddress, InvalidArgumentError, systemErrorText } from '@engram/common';
import * as grpc from '@grpc/grpc-js';
import { pino } from 'pino';
import {
  type FaultSettings,
  type FaultUpdate,
  MAX_FAULT_LATENCY_MS,
  MEMORY_NODE_DEFAULTS,
  type MemoryNodeOptions,
  startMemoryNode,
  validateFaultUpdate,
} from './index.js';

/**
 * One command-line option: its value's name in the usage (none: a boolean flag), its
 * default, its meaning.
 */
interface OptionSpec {
  readonly value?: string;
  readonly default?: string;
  readonly description: string;
}

/** Every option of the CLI; parsing, the usage line and `--help` are read from this table. */
const OPTIONS = Object.freeze({
  id: { value: 'ID', description: 'node id (required), as the router lists it' },
  port: {
    value: 'PORT',
    default: String(MEMORY_NODE_DEFAULTS.port),
    description: 'port of MemoryService, ReplicaService and grpc.health.v1; 0 = any free port',
  },
  zone: { value: 'ZONE', default: '""', description: 'failure domain reported in RoutingInfo' },
  host: { value: 'HOST', default: MEMORY_NODE_DEFAULTS.host, description: 'address to bind' },
  'data-dir': {
    value: 'DIR',
    description: 'directory of the append-only log (memories survive restarts); none = memory only',
  },
  'max-content-bytes': {
    value: 'N',
    default: String(MEMORY_NODE_DEFAULTS.maxContentBytes),
    description: 'largest memory content accepted, bytes',
  },
  'tls-cert': { value: 'FILE', description: 'PEM certificate: serve over TLS (with --tls-key)' },
  'tls-key': { value: 'FILE', description: 'PEM private key of --tls-cert' },
  'tls-client-ca': {
    value: 'FILE',
    description: 'PEM CA: clients must present a certificate it signed (needs --tls-cert)',
  },
  'log-level': {
    value: 'LEVEL',
    default: 'info',
    description: 'pino log level; logs are JSON on stderr',
  },
  'admin-listen': {
    value: 'HOST:PORT',
    description: 'serve the HTTP admin endpoint (GET/PUT /faults) there; port 0 = any free port',
  },
  'fault-latency-ms': {
    value: 'N',
    default: '0',
    description: `delay every MemoryService and ReplicaService call by N ms (at most ${MAX_FAULT_LATENCY_MS})`,
  },
  'fault-error-rate': {
    value: 'R',
    default: '0',
    description: 'fail this share (0..1) of those calls with UNAVAILABLE',
  },
  'fault-hang': { description: 'accept those calls and never answer them (until PUT /faults)' },
  'fault-health': { description: 'apply the faults to grpc.health.v1 too (default only data)' },
} satisfies Record<string, OptionSpec>);

/** The fault settings the `--fault-*` options set, by option. */
const FAULT_OPTIONS = Object.freeze({
  'fault-latency-ms': 'latencyMs',
  'fault-error-rate': 'errorRate',
  'fault-hang': 'hang',
  'fault-health': 'health',
} satisfies Partial<Record<keyof typeof OPTIONS, keyof FaultSettings>>);

type OptionName = keyof typeof OPTIONS;
const NAMES = Object.keys(OPTIONS) as OptionName[];

/** `--name VALUE`, or `--name` for a flag. */
function optionText(name: OptionName): string {
  const spec: OptionSpec = OPTIONS[name];
  return spec.value === undefined ? `--${name}` : `--${name} ${spec.value}`;
}

const USAGE = `usage: memory-node ${NAMES.map((name) =>
  name === 'id' ? optionText(name) : `[${optionText(name)}]`,
).join(' ')}`;

function renderHelp(): string {
  const width = Math.max(...NAMES.map((n) => optionText(n).length)) + 2;
  const lines = NAMES.map((name) => {
    const spec: OptionSpec = OPTIONS[name];
    const about =
      spec.default === undefined
        ? spec.description
        : `${spec.description} (default ${spec.default})`;
    return `  ${optionText(name).padEnd(width)}${about}`;
  });
  return [
    'memory-node: the reference Engram memory node (engram.v1.MemoryService, ReplicaService, grpc.health.v1).',
    '',
    USAGE,
    '',
    'Options:',
    ...lines,
    `  ${'-h, --help'.padEnd(width)}print this help and exit`,
    '',
    'Once bound it prints one JSON line on stdout: {"event":"listening","id",…,"address","port"}',
    '(and "adminAddress", "adminPort" with --admin-listen).',
    'Logs are JSON on stderr. SIGTERM/SIGINT: graceful stop, exit 0.',
    'Exit codes: 0 clean stop, 2 bad arguments (or a file they name cannot be read), 1 failure',
    'to start (e.g. the port is in use).',
    '',
  ].join('\n');
}

/** Bad usage: one line that points at `--help`, exit 2. */
function fail(message: string): never {
  process.stderr.write(`memory-node: ${message} (memory-node --help lists the options)\n`);
  process.exit(2);
}

function intArg(name: OptionName, v: string | undefined): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (v.trim() === '' || !Number.isInteger(n)) {
    fail(`--${name} must be an integer, got ${JSON.stringify(v)}`);
  }
  return n;
}

/** `HOST:PORT` to listen on (port 0 allowed; an IPv6 host in brackets). */
function listenArg(
  name: OptionName,
  v: string | undefined,
): { host: string; port: number } | undefined {
  if (v === undefined) return undefined;
  const colon = v.lastIndexOf(':');
  const host = v.slice(0, Math.max(colon, 0)).replace(/^\[(.*)\]$/, '$1');
  const port = v.slice(colon + 1);
  if (colon <= 0 || host === '' || !/^[0-9]{1,5}$/.test(port) || Number(port) > 65_535) {
    fail(`--${name} must be HOST:PORT with a port in [0, 65535], got ${JSON.stringify(v)}`);
  }
  return { host, port: Number(port) };
}

/**
 * The `--fault-*` options as a fault update, undefined when none is given (fault injection
 * stays off unless --admin-listen turns it on); a bad value exits 2 naming its option.
 */
function faultArgs(values: Partial<Record<string, string | boolean>>): FaultUpdate | undefined {
  const update: Record<string, unknown> = {};
  for (const [option, key] of Object.entries(FAULT_OPTIONS)) {
    const v = values[option];
    if (v === undefined) continue;
    // A number, or the text as typed when it is none (so the message quotes it).
    const n = typeof v === 'string' && v.trim() !== '' ? Number(v) : Number.NaN;
    update[key] = Number.isNaN(n) ? v : n;
  }
  if (Object.keys(update).length === 0) return undefined;
  const option = (key: string | undefined) =>
    `--${Object.entries(FAULT_OPTIONS).find(([, k]) => k === key)?.[0] ?? 'fault-*'}`;
  try {
    return validateFaultUpdate(update, option);
  } catch (err) {
    if (err instanceof InvalidArgumentError) fail(err.message);
    throw err;
  }
}

function readArgFile(name: OptionName, path: string): Buffer {
  try {
    return readFileSync(path);
  } catch (err) {
    process.stderr.write(`memory-node: cannot read --${name} ${path}: ${systemErrorText(err)}\n`);
    process.exit(2);
  }
}

async function main(): Promise<void> {
  let values: Partial<Record<OptionName | 'help', string | boolean>>;
  try {
    ({ values } = parseArgs({
      options: {
        ...Object.fromEntries(
          NAMES.map((name) => {
            const spec: OptionSpec = OPTIONS[name];
            return [
              name,
              { type: spec.value === undefined ? ('boolean' as const) : ('string' as const) },
            ];
          }),
        ),
        help: { type: 'boolean', short: 'h' },
      },
      strict: true,
      allowPositionals: false,
    }));
  } catch (err) {
    // Node's message names the option ("Unknown option '--bogus'"); its own advice (use "--"
    // for a positional) does not apply here.
    fail((err as Error).message.split(/\.\s/)[0]!.replace(/\.$/, ''));
  }
  if (values.help === true) {
    process.stdout.write(renderHelp());
    return;
  }
  const str = (name: OptionName) => values[name] as string | undefined;
  const id = str('id');
  if (id === undefined) fail('--id is required');
  const logger = pino(
    { level: str('log-level') ?? 'info', base: { node: id } },
    pino.destination({ dest: 2, sync: true }),
  );
  // grpc-js writes its errors as plain text on stderr ("E No address added …" for a port in
  // use): as JSON log lines they keep stderr parseable, and the failure is reported once, below.
  const grpcLog =
    (level: 'debug' | 'info' | 'warn') =>
    (message: unknown, ...rest: unknown[]) =>
      logger[level]({ event: 'grpc' }, [message, ...rest].map(String).join(' '));
  grpc.setLogger({ error: grpcLog('warn'), info: grpcLog('info'), debug: grpcLog('debug') });
  const options: MemoryNodeOptions = { id, logger };
  const port = intArg('port', str('port'));
  if (port !== undefined) options.port = port;
  if (str('zone') !== undefined) options.zone = str('zone')!;
  if (str('host') !== undefined) options.host = str('host')!;
  if (str('data-dir') !== undefined) options.dataDir = str('data-dir')!;
  const maxContentBytes = intArg('max-content-bytes', str('max-content-bytes'));
  if (maxContentBytes !== undefined) options.maxContentBytes = maxContentBytes;
  const cert = str('tls-cert');
  const key = str('tls-key');
  const clientCa = str('tls-client-ca');
  if ((cert === undefined) !== (key === undefined)) fail('--tls-cert and --tls-key go together');
  if (clientCa !== undefined && cert === undefined)
    fail('--tls-client-ca needs --tls-cert and --tls-key');
  if (cert !== undefined && key !== undefined) {
    options.tls = { cert: readArgFile('tls-cert', cert), key: readArgFile('tls-key', key) };
    if (clientCa !== undefined) options.tls.clientCa = readArgFile('tls-client-ca', clientCa);
  }

  const faults = faultArgs(values);
  if (faults !== undefined) options.faults = faults;
  const admin = listenArg('admin-listen', str('admin-listen'));
  if (admin !== undefined) options.admin = admin;

  let node: Awaited<ReturnType<typeof startMemoryNode>>;
  try {
    node = await startMemoryNode(options);
  } catch (err) {
    // startMemoryNode released what it had opened. A bind failure names the address and the
    // option; anything else (a data dir it cannot write, a bad value) is its message, one line.
    const host = options.host ?? MEMORY_NODE_DEFAULTS.host;
    const bind =
      err instanceof Error && /No address added|EADDRINUSE|EACCES|EADDRNOTAVAIL/.test(err.message);
    // grpc-js reports its failed bind as a plain Error; the admin endpoint's is Node's, with
    // syscall 'listen'.
    const where =
      (err as NodeJS.ErrnoException).syscall === 'listen' && options.admin !== undefined
        ? `${formatAddress(options.admin.host, options.admin.port)} (--admin-listen)`
        : `${formatAddress(host, options.port ?? MEMORY_NODE_DEFAULTS.port)} (--port)`;
    process.stderr.write(
      bind
        ? `memory-node: cannot listen on ${where}: ${systemErrorText(err)}\n`
        : `memory-node: cannot start: ${String((err as Error)?.message ?? err).split('\n')[0]}\n`,
    );
    process.exit(1);
  }
  process.stdout.write(
    `${JSON.stringify({
      event: 'listening',
      id: node.id,
      zone: node.zone,
      address: node.address,
      port: node.port,
      ...(node.admin === undefined
        ? {}
        : { adminAddress: node.admin.address, adminPort: node.admin.port }),
    })}\n`,
  );

  let stopping = false;
  const stop = (signal: NodeJS.Signals) => {
    if (stopping) {
      logger.warn({ signal }, 'second signal; exiting now');
      process.exit(1);
    }
    stopping = true;
    logger.info({ signal }, 'stopping');
    node.close().then(
      () => process.exit(0),
      (err: unknown) => {
        logger.error({ err }, 'error while stopping');
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}

main().catch((err: unknown) => {
  process.stderr.write(
    `memory-node failed to start: ${err instanceof Error ? err.stack : String(err)}\n`,
  );
  process.exit(1);
});

#!/usr/bin/env node
/**
 * memory-node CLI (`memory-node --help` lists the options, from `OPTIONS` below):
 *   node dist/main.js --id n1 [--port 0] [--zone a] [--host 127.0.0.1] [--data-dir DIR]
 *     [--max-content-bytes N] [--tls-cert F --tls-key F [--tls-client-ca F]] [--log-level info]
 * Prints one JSON line on stdout once bound:
 *   {"event":"listening","id":"n1","zone":"a","address":"127.0.0.1:43567","port":43567}
 * Logs (pino JSON) go to stderr. SIGTERM/SIGINT: graceful stop, exit 0. Exit codes: 2 bad
 * arguments or an unreadable file they name, 1 a failure to start (a port in use): one line
 * on stderr, no stack.
 */
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { formatAddress, systemErrorText } from '@engram/common';
import * as grpc from '@grpc/grpc-js';
import { pino } from 'pino';
import { MEMORY_NODE_DEFAULTS, type MemoryNodeOptions, startMemoryNode } from './index.js';

/** One command-line option: its value's name in the usage, its default, its meaning. */
interface OptionSpec {
  readonly value: string;
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
} satisfies Record<string, OptionSpec>);

type OptionName = keyof typeof OPTIONS;
const NAMES = Object.keys(OPTIONS) as OptionName[];

const USAGE = `usage: memory-node ${NAMES.map((name) => {
  const spec: OptionSpec = OPTIONS[name];
  const text = `--${name} ${spec.value}`;
  return name === 'id' ? text : `[${text}]`;
}).join(' ')}`;

function renderHelp(): string {
  const width = Math.max(...NAMES.map((n) => `--${n} ${OPTIONS[n].value}`.length)) + 2;
  const lines = NAMES.map((name) => {
    const spec: OptionSpec = OPTIONS[name];
    const about =
      spec.default === undefined
        ? spec.description
        : `${spec.description} (default ${spec.default})`;
    return `  ${`--${name} ${spec.value}`.padEnd(width)}${about}`;
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
    'Once bound it prints one JSON line on stdout: {"event":"listening","id",…,"address","port"}.',
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
        ...Object.fromEntries(NAMES.map((name) => [name, { type: 'string' as const }])),
        help: { type: 'boolean', short: 'h' },
      },
      strict: true,
      allowPositionals: false,
    }));
  } catch (err) {
    // Node's message names the option ("Unknown option '--bogus'"); its own advice (use "--"
    // for a positional) does not apply here.
    fail((err as Error).message.split('. ')[0]!.replace(/\.$/, ''));
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

  let node: Awaited<ReturnType<typeof startMemoryNode>>;
  try {
    node = await startMemoryNode(options);
  } catch (err) {
    // startMemoryNode released what it had opened. A bind failure names the address and the
    // option; anything else (a data dir it cannot write, a bad value) is its message, one line.
    const host = options.host ?? MEMORY_NODE_DEFAULTS.host;
    const bind =
      err instanceof Error && /No address added|EADDRINUSE|EACCES|EADDRNOTAVAIL/.test(err.message);
    process.stderr.write(
      bind
        ? `memory-node: cannot listen on ${formatAddress(host, options.port ?? MEMORY_NODE_DEFAULTS.port)} (--port): ${systemErrorText(err)}\n`
        : `memory-node: cannot start: ${String((err as Error)?.message ?? err).split('\n')[0]}\n`,
    );
    process.exit(1);
  }
  process.stdout.write(
    `${JSON.stringify({ event: 'listening', id: node.id, zone: node.zone, address: node.address, port: node.port })}\n`,
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

import { formatDefault, formatType, reloadableKeys } from './config-doc.js';
import { CONFIG_SCHEMA } from './config-schema.js';
import { CONFIG_KEYS, type ConfigKey, envName, flagName, isScalar } from './config-spec.js';
import { RouterNodeError } from './errors.js';

// The command line of router-node: arguments to a command, a config file path and flags
// (matched to config keys), and the `--help` text. main.ts does the I/O and the exits.

export const USAGE =
  'usage: router-node [run|check|demo] [--config FILE] [--local-cluster] [--<key> VALUE | --<key>=VALUE ...]';

/** Short flags for the keys set most often (`--workers`, `--log-level` are their own flags). */
export const ALIASES: Readonly<Record<string, ConfigKey>> = Object.freeze({
  '--port': 'listen.port',
  '--host': 'listen.host',
  '--admin-port': 'admin.port',
  '--metrics-port': 'metrics.port',
});

// Every scalar key answers to its kebab-case flag (`--health.interval-ms`) and to its name as
// written in the file (`--health.intervalMs`), which the README has always promised.
const FLAG_KEYS: ReadonlyMap<string, ConfigKey> = new Map(
  CONFIG_KEYS.filter((k) => isScalar(CONFIG_SCHEMA[k])).flatMap((k) => [
    [flagName(k), k],
    [`--${k}`, k],
  ]),
);

/** What the arguments ask for: serve, check the config, demo, or print the help. */
export interface Cli {
  command: 'run' | 'check' | 'demo' | 'help';
  configPath: string | undefined;
  /** `--local-cluster`: start local memory nodes instead of routing to `nodes`. */
  localCluster: boolean;
  /** Flag values by dotted key, as `resolveConfig` takes them. */
  flags: Record<string, string>;
}

function usageError(message: string): never {
  throw new RouterNodeError('InvalidArgument', message);
}

/** Parses argv (after the script); throws a `RouterNodeError` `InvalidArgument` on bad usage. */
export function parseCli(argv: readonly string[]): Cli {
  const cli: Cli = { command: 'run', configPath: undefined, localCluster: false, flags: {} };
  let i = 0;
  if (argv[0] === 'run' || argv[0] === 'check' || argv[0] === 'demo') {
    cli.command = argv[0];
    i = 1;
  }
  for (; i < argv.length; i++) {
    let arg = argv[i]!;
    let value: string | undefined;
    const eq = arg.indexOf('=');
    if (arg.startsWith('--') && eq > 0) {
      value = arg.slice(eq + 1);
      arg = arg.slice(0, eq);
    }
    if (arg === '--help' || arg === '-h')
      return { command: 'help', configPath: undefined, localCluster: false, flags: {} };
    if (arg === '--local-cluster') {
      if (value !== undefined) usageError('--local-cluster takes no value');
      if (cli.command === 'demo') usageError('demo always starts a local cluster');
      cli.localCluster = true;
      continue;
    }
    const key =
      arg === '--config'
        ? 'config'
        : (ALIASES[arg] ?? FLAG_KEYS.get(arg) ?? FLAG_KEYS.get(arg.toLowerCase()));
    if (key === undefined) usageError(`unknown argument ${JSON.stringify(arg)}`);
    if (value === undefined) {
      value = argv[++i];
      if (value === undefined) usageError(`${arg} needs a value`);
    }
    if (key === 'config') cli.configPath = value;
    else cli.flags[key] = value;
  }
  return cli;
}

const WIDTH = 100;
const INDENT = '      ';

function wrap(text: string, indent = INDENT): string[] {
  const lines: string[] = [];
  let line = indent;
  for (const word of text.split(' ')) {
    if (line.length + word.length + 1 > WIDTH && line.trim() !== '') {
      lines.push(line.trimEnd());
      line = indent;
    }
    line += `${word} `;
  }
  lines.push(line.trimEnd());
  return lines;
}

const plain = (text: string): string => text.replaceAll('`', '');

/** The `--help` text: usage, commands, aliases and every key, generated from the schema. */
export function renderHelp(): string {
  const reloadable = reloadableKeys();
  const aliasWidth = Math.max(...Object.keys(ALIASES).map((a) => a.length)) + 2;
  const out = [
    'router-node: the Engram router, a transparent gRPC proxy for engram.v1.MemoryService.',
    '',
    USAGE,
    '',
    'Commands:',
    '  run     serve (the default): route to the memory nodes of the nodes key',
    '  check   resolve the config as run would, check it and the files it names, print it as',
    '          JSON (secrets redacted) on stdout; exit 0 when valid, 2 with every problem',
    '  demo    start a local cluster and the router on free ports, run the routing demo, stop',
    '',
    'Options:',
    '  --config FILE     JSON config file',
    '  --local-cluster   run/check: start localCluster.nodes memory nodes (child processes,',
    '                    temp-dir data unless localCluster.dataDir) and route to them;',
    '                    the config must then have no nodes. Without it, no nodes is an error',
    '  -h, --help        print this help and exit',
    '',
    'Settings come from the config file, then ENGRAM_ROUTER_* environment variables, then flags,',
    'each overriding the one before. A flag is the dotted key in kebab-case (--health.interval-ms)',
    'or as written in the file (--health.intervalMs).',
    ...wrap(
      `SIGHUP re-reads the config file and applies: ${reloadable.join(', ')}. Other keys need a restart.`,
      '',
    ),
    'Exit codes: 0 clean stop (check: valid), 2 bad configuration or usage, 1 failure (e.g. a',
    'port that cannot be bound: one line on stderr naming the listener, its key and the cause).',
    '',
    'Aliases:',
    ...Object.entries(ALIASES).map(
      ([alias, key]) => `  ${alias.padEnd(aliasWidth)}${flagName(key)}`,
    ),
    '',
    'Keys (flag and environment variable; default and type; meaning):',
  ];
  const fileOnly: string[] = [];
  for (const key of CONFIG_KEYS) {
    const spec = CONFIG_SCHEMA[key];
    const about = [
      `${INDENT}default ${formatDefault(key, spec)}; ${formatType(spec)}`,
      ...wrap(plain(spec.description)),
    ];
    if (isScalar(spec)) out.push(`  ${flagName(key).padEnd(40)} ${envName(key)}`, ...about);
    else fileOnly.push(`  ${key}`, ...about);
  }
  out.push('', 'Keys in the config file only (JSON):', ...fileOnly);
  return `${out.join('\n')}\n`;
}

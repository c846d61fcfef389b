#!/usr/bin/env -S node --single-threaded-gc
/**
 * router-node CLI.
 *   router-node [run] [--config FILE] [--local-cluster] [--<key> VALUE …]   serve
 *   router-node check [--config FILE] [--local-cluster] [--<key> VALUE …]   check the config
 *   router-node demo  [--config FILE] [--<key> VALUE …]   start everything, run the demo, stop
 *   router-node --help                                    every key, its flag, env var and default
 * Keys are the dotted config keys (`--listen.port 0`, `--health.interval-ms 200`) plus the
 * aliases in internal/cli.ts (--port, --host, --admin-port, --metrics-port). `run` needs
 * `nodes`, or `--local-cluster` to start local memory nodes instead.
 * First stdout line once serving: {"event":"listening","address":…,"port":…,"adminPort":…,…}
 * Logs (pino JSON) go to stderr. Exit codes: 0 clean stop (check: valid), 2 bad config or
 * usage (every problem, one per line), 1 failure (a start failure is one line, no stack).
 */
import * as grpc from '@grpc/grpc-js';
import { pino } from 'pino';
import { runDemo } from './demo.js';
import {
  ConfigError,
  ConfigSyntaxError,
  checkConfig,
  type RouterNodeConfig,
  RouterNodeError,
  readConfigFile,
  redactConfig,
  resolveConfig,
  startRouterNode,
} from './index.js';
import { type Cli, parseCli, renderHelp, USAGE } from './internal/cli.js';
import { nodesProblem } from './internal/config.js';
import { checkConfigFiles } from './internal/config-files.js';
import { applyInliningBudgets } from './internal/v8-tuning.js';

function parseArgs(argv: readonly string[]): Cli {
  try {
    return parseCli(argv);
  } catch (err) {
    if (err instanceof RouterNodeError && err.code === 'InvalidArgument') {
      process.stderr.write(`${err.message}\n${USAGE}\nrouter-node --help lists every key.\n`);
      process.exit(2);
    }
    throw err;
  }
}

function loadConfig(cli: Cli): RouterNodeConfig {
  const file = cli.configPath === undefined ? {} : readConfigFile(cli.configPath);
  return resolveConfig({ file, env: process.env, flags: cli.flags });
}

/** A configuration problem as the operator reads it: key, value, reason, where it came from. */
function problemText(error: ConfigError, source: string): string {
  const from = source === '' ? '' : source === 'default' ? ' (default)' : ` (from ${source})`;
  const excerpt =
    error instanceof ConfigSyntaxError ? `\n${error.excerpt.replace(/^/gm, '    ')}` : '';
  return `router-node: invalid configuration: ${error.message}${from}${excerpt}\n`;
}

/**
 * The config `run` (and `check`) would use, with every problem found: the file (bad JSON with
 * line, column and excerpt), each key from file, env and flags, where the nodes come from, and
 * the files and directories the config names.
 */
function checkedConfig(cli: Cli): {
  config: RouterNodeConfig | null;
  problems: { error: ConfigError; source: string }[];
} {
  let file: unknown = {};
  if (cli.configPath !== undefined) {
    try {
      file = readConfigFile(cli.configPath);
    } catch (err) {
      if (!(err instanceof ConfigError)) throw err;
      return { config: null, problems: [{ error: err, source: '' }] };
    }
  }
  const checked = checkConfig({
    file,
    ...(cli.configPath !== undefined ? { filePath: cli.configPath } : {}),
    env: process.env,
    flags: cli.flags,
  });
  const problems = [...checked.problems];
  const config = checked.config;
  if (config === null) return { config, problems };
  const local = cli.command === 'demo' || cli.localCluster;
  // The demo routes to its own local cluster whatever the file lists.
  const nodes = nodesProblem(cli.command === 'demo' ? { ...config, nodes: [] } : config, local);
  for (const error of [
    ...(nodes === null ? [] : [nodes]),
    ...checkConfigFiles(config, { localCluster: local }),
  ]) {
    problems.push({ error, source: checked.sourceOf(error.field) });
  }
  return { config: problems.length === 0 ? config : null, problems };
}

async function main(): Promise<void> {
  // Before anything runs hot: V8 reads its inlining budgets as it optimizes (v8-tuning.ts).
  applyInliningBudgets();
  const cli = parseArgs(process.argv.slice(2));
  if (cli.command === 'help') {
    // Returning (exit code 0) instead of process.exit lets a piped stdout drain on every OS.
    process.stdout.write(renderHelp());
    return;
  }
  if (cli.command === 'demo') {
    // The demo needs free ports and a quiet log unless told otherwise; a short deadline,
    // because a joining node waits one deadline (writes of the old table finish) before
    // its spaces stream.
    cli.flags = {
      'listen.port': '0',
      'admin.port': '0',
      'metrics.port': '0',
      logLevel: 'warn',
      'health.intervalMs': '250',
      'health.timeoutMs': '1000',
      'router.deadlineMs': '2000',
      'router.attemptTimeoutMs': '1000',
      ...cli.flags,
    };
  }
  const { config: checked, problems } = checkedConfig(cli);
  if (checked === null) {
    for (const { error, source } of problems) process.stderr.write(problemText(error, source));
    process.exitCode = 2;
    return;
  }
  const config = checked;
  if (cli.command === 'check') {
    // stdout is the config alone (pipe it to jq); the verdict goes with the errors, on stderr.
    process.stdout.write(`${JSON.stringify(redactConfig(config), null, 2)}\n`);
    process.stderr.write(
      `router-node: configuration ${cli.configPath ?? '(defaults, env and flags)'} is valid\n`,
    );
    return;
  }
  const log = pino(
    { level: config.logLevel, base: { role: 'router-node' } },
    pino.destination({ dest: 2, sync: true }),
  );
  // grpc-js writes its own errors as plain text on stderr ("E No address added …" when the
  // admin port is taken); as JSON log lines they keep stderr parseable, and a failure to
  // start is reported once, by the line below.
  const grpcLog =
    (level: 'debug' | 'info' | 'warn') =>
    (message: unknown, ...rest: unknown[]) =>
      log[level]({ event: 'grpc' }, [message, ...rest].map(String).join(' '));
  grpc.setLogger({ error: grpcLog('warn'), info: grpcLog('info'), debug: grpcLog('debug') });
  if (cli.command === 'demo') {
    const code = await runDemo(config, log);
    process.exit(code);
  }
  let router: Awaited<ReturnType<typeof startRouterNode>>;
  try {
    router = await startRouterNode(config, log, { localCluster: cli.localCluster });
  } catch (err) {
    // startRouterNode stopped whatever it had started (workers, local memory nodes) before
    // throwing: one line, no stack, for a failure an operator can act on.
    if (err instanceof ConfigError) {
      process.stderr.write(problemText(err, ''));
      process.exit(2);
    }
    if (err instanceof RouterNodeError) {
      process.stderr.write(`router-node: ${err.message}\n`);
      process.exit(1);
    }
    throw err;
  }
  // Before the listening line: whoever reads it may signal at once (without a handler,
  // SIGHUP ends the process).
  let stopping = false;
  const stop = (signal: NodeJS.Signals) => {
    if (stopping) {
      log.warn({ signal }, 'second signal; exiting now');
      process.exit(1);
    }
    stopping = true;
    log.info({ signal }, 'stopping');
    router.close().then(
      () => process.exit(0),
      (err: unknown) => {
        log.error({ err }, 'error while stopping');
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
  process.on('SIGHUP', () => {
    if (stopping) {
      log.warn({ event: 'reload' }, 'SIGHUP while stopping: ignored');
      return;
    }
    if (cli.configPath === undefined) {
      log.warn({ event: 'reload' }, 'SIGHUP: no config file to reload');
      return;
    }
    const rejected = (err: unknown) =>
      log.error(
        { event: 'reload-failed', err: (err as Error).message },
        'SIGHUP: reload rejected, nothing changed',
      );
    let next: RouterNodeConfig;
    try {
      next = loadConfig(cli);
    } catch (err) {
      router.reloadFailed(); // a file that does not parse or validate
      rejected(err);
      return;
    }
    let report: ReturnType<typeof router.reload>;
    try {
      report = router.reload(next); // all or nothing; counts its own failure
    } catch (err) {
      rejected(err);
      return;
    }
    for (const c of report.changes) {
      // Waiting for a restart is for the operator to act on: shown at warn.
      log[c.result === 'applied' ? 'info' : 'warn'](
        { event: 'reload', key: c.key, result: c.result, from: c.from, to: c.to },
        c.result === 'applied' ? `SIGHUP: ${c.key} applied` : `SIGHUP: ${c.key} needs a restart`,
      );
    }
    const applied = report.changes.filter((c) => c.result === 'applied').length;
    const restart = report.changes.length - applied;
    log.info(
      { event: 'reload-done', applied, needsRestart: restart, epoch: report.epoch },
      `SIGHUP: config reloaded (${applied} applied, ${restart} need a restart)`,
    );
  });
  process.stdout.write(
    `${JSON.stringify({
      event: 'listening',
      address: router.address,
      port: router.port,
      adminPort: router.adminPort,
      metricsPort: router.metricsPort,
      workers: router.workers,
      nodes: router.table().nodes.map((n) => ({ id: n.id, address: n.address, zone: n.zone })),
    })}\n`,
  );
  if (router.localCluster !== null) {
    process.stdout.write(
      `router-node: --local-cluster: started ${router.localCluster.nodes.length} local memory nodes (${config.localCluster.dataDir === null ? 'data in a temp dir, deleted on stop' : `data in ${config.localCluster.dataDir}`})\n` +
        `  MemoryService (gRPC, plaintext): ${router.address}\n` +
        `  RouterAdmin: ${router.adminPort === null ? 'off' : `127.0.0.1:${router.adminPort}`}   metrics: ${router.metricsPort === null ? 'off' : `http://127.0.0.1:${router.metricsPort}/metrics`}\n`,
    );
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`router-node failed: ${err instanceof Error ? err.stack : String(err)}\n`);
  process.exit(1);
});

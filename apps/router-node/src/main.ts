#!/usr/bin/env node
/**
 * router-node CLI.
 *   router-node [run] [--config FILE] [--<key> VALUE …]   serve (no nodes configured: local cluster)
 *   router-node demo  [--config FILE] [--<key> VALUE …]   start everything, run the demo, stop
 *   router-node --help                                    every key, its flag, env var and default
 * Keys are the dotted config keys (`--listen.port 0`, `--health.interval-ms 200`) plus the
 * aliases in internal/cli.ts (--port, --host, --admin-port, --metrics-port).
 * First stdout line once serving: {"event":"listening","address":…,"port":…,"adminPort":…,…}
 * Logs (pino JSON) go to stderr. Exit codes: 0 clean stop, 2 bad config or usage, 1 failure.
 */
import { pino } from 'pino';
import { runDemo } from './demo.js';
import {
  ConfigError,
  type RouterNodeConfig,
  RouterNodeError,
  readConfigFile,
  resolveConfig,
  startRouterNode,
} from './index.js';
import { type Cli, parseCli, renderHelp, USAGE } from './internal/cli.js';

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

async function main(): Promise<void> {
  const cli = parseArgs(process.argv.slice(2));
  if (cli.command === 'help') {
    // Returning (exit code 0) instead of process.exit lets a piped stdout drain on every OS.
    process.stdout.write(renderHelp());
    return;
  }
  let config: RouterNodeConfig;
  try {
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
    config = loadConfig(cli);
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`router-node: invalid configuration: ${err.message}\n`);
      process.exit(2);
    }
    throw err;
  }
  const log = pino(
    { level: config.logLevel, base: { role: 'router-node' } },
    pino.destination({ dest: 2, sync: true }),
  );
  if (cli.command === 'demo') {
    const code = await runDemo(config, log);
    process.exit(code);
  }
  let router: Awaited<ReturnType<typeof startRouterNode>>;
  try {
    router = await startRouterNode(config, log);
  } catch (err) {
    // Files the config names (admin.tokenFile) are read at start: still a bad configuration.
    if (err instanceof ConfigError) {
      process.stderr.write(`router-node: invalid configuration: ${err.message}\n`);
      process.exit(2);
    }
    throw err;
  }
  // Before the listening line: a SIGHUP sent as soon as it is read must find the handler
  // (without one, SIGHUP ends the process).
  process.on('SIGHUP', () => {
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
      `router-node: no nodes configured, started a local cluster of ${router.localCluster.nodes.length} memory nodes\n` +
        `  MemoryService (gRPC, plaintext): ${router.address}\n` +
        `  RouterAdmin: ${router.adminPort === null ? 'off' : `127.0.0.1:${router.adminPort}`}   metrics: ${router.metricsPort === null ? 'off' : `http://127.0.0.1:${router.metricsPort}/metrics`}\n`,
    );
  }
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
}

main().catch((err: unknown) => {
  process.stderr.write(`router-node failed: ${err instanceof Error ? err.stack : String(err)}\n`);
  process.exit(1);
});

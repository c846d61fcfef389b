import { spawnSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import {
  CONFIG_KEYS,
  CONFIG_SCHEMA,
  envName,
  flagName,
  RouterNodeError,
  resolveConfig,
} from '../src/index.js';
import { ALIASES, parseCli, renderHelp } from '../src/internal/cli.js';
import { formatDefault } from '../src/internal/config-doc.js';
import { MAIN_JS } from './helpers.js';

const SCALAR_KEYS = CONFIG_KEYS.filter((k) => !['nodes', 'assignments'].includes(k));

function usageError(argv: string[]): RouterNodeError {
  try {
    parseCli(argv);
  } catch (err) {
    expect(err).toBeInstanceOf(RouterNodeError);
    expect((err as RouterNodeError).code).toBe('InvalidArgument');
    return err as RouterNodeError;
  }
  return expect.unreachable('parsed');
}

describe('command line', () => {
  it('reads the command, the config file and flags in every spelling', () => {
    expect(
      parseCli([
        'demo',
        '--config',
        'r.json',
        '--port',
        '0',
        '--health.interval-ms',
        '200',
        '--health.timeoutMs=150',
        '--Router.Max-Retries=7',
        '--workers',
        '2',
        '--log-level',
        'warn',
      ]),
    ).toEqual({
      command: 'demo',
      configPath: 'r.json',
      localCluster: false,
      flags: {
        'listen.port': '0',
        'health.intervalMs': '200',
        'health.timeoutMs': '150',
        'router.maxRetries': '7',
        workers: '2',
        logLevel: 'warn',
      },
    });
    expect(parseCli([]).command).toBe('run');
    expect(parseCli(['run', '--admin-port=9']).flags).toEqual({ 'admin.port': '9' });
    expect(parseCli(['check', '--config', 'r.json'])).toMatchObject({
      command: 'check',
      configPath: 'r.json',
      localCluster: false,
    });
    expect(parseCli(['run', '--local-cluster', '--port', '0'])).toMatchObject({
      command: 'run',
      localCluster: true,
      flags: { 'listen.port': '0' },
    });
    expect(parseCli([]).localCluster).toBe(false);
  });

  it('refuses a value for --local-cluster, and --local-cluster with demo (which has its own)', () => {
    expect(usageError(['--local-cluster=yes']).message).toContain('--local-cluster takes no value');
    expect(usageError(['demo', '--local-cluster']).message).toContain('demo always starts');
  });

  it.each(SCALAR_KEYS)('%s is settable by its flag and by its file name as a flag', (key) => {
    const text = 'v';
    expect(parseCli([flagName(key), text]).flags).toEqual({ [key]: text });
    expect(parseCli([`--${key}=${text}`]).flags).toEqual({ [key]: text });
  });

  it('applies flags the CLI parsed over env vars', () => {
    const { flags } = parseCli(['--health.timeout-ms', '300', '--metrics-port', '0']);
    const cfg = resolveConfig({ env: { [envName('health.timeoutMs')]: '100' }, flags });
    expect(cfg.health.timeoutMs).toBe(300);
    expect(cfg.metrics.port).toBe(0);
  });

  it('refuses unknown arguments, the file-only keys and a flag without its value', () => {
    expect(usageError(['--bogus', '1']).message).toContain('"--bogus"');
    expect(usageError(['--nodes', '[]']).message).toContain('"--nodes"');
    expect(usageError(['serve']).message).toContain('"serve"');
    expect(usageError(['--workers']).message).toContain('--workers needs a value');
  });

  it('asks for the help with --help or -h anywhere', () => {
    expect(parseCli(['--help']).command).toBe('help');
    expect(parseCli(['demo', '--port', '1', '-h']).command).toBe('help');
  });
});

describe('--help', () => {
  const help = renderHelp();

  it('lists the usage, the three commands, --local-cluster and the aliases', () => {
    expect(help).toMatch(
      /^usage: router-node \[run\|check\|demo\] \[--config FILE\] \[--local-cluster\]/m,
    );
    expect(help).toMatch(/^ {2}run {2,}serve/m);
    expect(help).toMatch(/^ {2}check {2,}resolve the config as run would/m);
    expect(help).toMatch(/^ {2}demo {2,}start a local cluster/m);
    expect(help).toMatch(
      /^ {2}--local-cluster {2,}run\/check: start localCluster\.nodes memory nodes/m,
    );
    for (const [alias, key] of Object.entries(ALIASES)) {
      expect(help).toMatch(new RegExp(`^ {2}${alias} +${flagName(key)}$`, 'm'));
    }
  });

  it.each(SCALAR_KEYS)('lists %s with its flag, env var, default and description', (key) => {
    const spec = CONFIG_SCHEMA[key];
    const at = help.indexOf(`\n  ${flagName(key)} `);
    expect(at).toBeGreaterThan(0);
    const entry = help.slice(at, help.indexOf('\n  --', at + 1));
    expect(entry).toContain(envName(key));
    expect(entry).toContain(`default ${formatDefault(key, spec)};`);
    expect(entry.replace(/\s+/g, ' ')).toContain(spec.description.replaceAll('`', ''));
  });

  it('lists the file-only keys and says what SIGHUP reloads', () => {
    expect(help).toMatch(/^ {2}nodes$/m);
    expect(help).toMatch(/^ {2}assignments$/m);
    // One paragraph, wrapped to the help's width; unwrapped, it says exactly this.
    // (The wrap may break anywhere in the last sentence too.)
    const sighup = /^SIGHUP re-reads[\s\S]*?need\sa\srestart\.$/m.exec(help)![0];
    expect(sighup.split('\n').every((l) => l.length <= 100)).toBe(true);
    expect(sighup.replaceAll('\n', ' ')).toBe(
      'SIGHUP re-reads the config file and applies: admin.token, admin.tokenFile, nodes, assignments, router.maxRetries, router.retryBaseDelayMs, router.retryMaxDelayMs, router.deadlineMs, router.attemptTimeoutMs, router.replicaFallback, router.storeFallback, router.writeConsistency, router.readConsistency, router.readBalancing, router.readBalancingThreshold, router.maxMessageBytes, retryBudget.ratio, retryBudget.minRetriesPerSecond, retryBudget.ttlMs, health.intervalMs, health.timeoutMs, health.unhealthyIntervalMs, health.healthyEdgeIntervalMs, health.unhealthyThreshold, health.healthyThreshold, health.panicThreshold, health.slowStartMs, outlier.enabled, outlier.intervalMs, outlier.windowMs, outlier.consecutiveFailures, outlier.failureRate, outlier.minRequests, outlier.latencyFactor, outlier.latencyFloorMs, outlier.stallMs, outlier.baseEjectionMs, outlier.maxEjectionMs, outlier.maxEjectedShare, hints.replayPerSecond, streaming.concurrency, repair.intervalMs, repair.spacesPerSecond, logLevel. Other keys need a restart.',
    );
  });

  it('is what `router-node --help` prints, exiting 0', () => {
    const run = spawnSync(process.execPath, [MAIN_JS, '--help'], { encoding: 'utf8' });
    expect(run.status).toBe(0);
    expect(run.stdout).toBe(help);
    expect(run.stderr).toBe('');
  });

  it('is pointed to by a usage error, which exits 2', () => {
    const run = spawnSync(process.execPath, [MAIN_JS, '--bogus'], { encoding: 'utf8' });
    expect(run.status).toBe(2);
    expect(run.stderr).toContain('unknown argument "--bogus"');
    expect(run.stderr).toContain('router-node --help');
  });
});

/**
 * End-to-end proxy benchmark, one run, side by side against the same memory node:
 *   direct · router-node (--workers default, 0, and variants) · nginx grpc_pass
 * Load comes from h2load (nghttp2-client), a separate process, POSTing a serialized
 * Recall gRPC frame. Per path: sequential (1 connection, 1 stream) p50/p99, and 64 in flight
 * (4 connections × 16 streams) p50/p99 + throughput; proxy CPU per call from
 * /proc/<pid>/stat (utime+stime deltas over the 64-in-flight run); GC pauses of the data-plane
 * threads from router-node's own /metrics (perf_hooks 'gc' entries).
 *
 * Every target is measured BENCH_ROUNDS times, round by round (one target under load at a
 * time, the order rotated each round), and each figure is the median over the rounds; the
 * calls/s spread (min–max) shows how noisy the machine was.
 *
 * Run: pnpm --filter @engram/bench bench   (needs h2load; nginx optional)
 * Env: BENCH_SEQ (default 3000 calls), BENCH_CONC (default 30000 calls), BENCH_ROUNDS
 * (default 3), BENCH_RATE (calls/s of the fixed-rate run, default 10000, 0 = skip), BENCH_VARIANTS=part,part (only router variants whose name has one),
 * BENCH_BASELINE_ROUTER=name=/path/to/router-node/dist/main.js (another build of
 * router-node measured side by side, e.g. an older commit).
 */
import { execFileSync, spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { BenchReport } from '@engram/bench-kit';
import { callMemory, MemoryServiceClient, MemoryServiceDefinition } from '@engram/proto';
import * as grpc from '@grpc/grpc-js';
import {
  CONC_CALLS,
  children,
  DEFAULT_PHASES,
  dir,
  frameFile,
  freePort,
  graceful,
  h2loadAvailable,
  measure,
  medianRow,
  NODE_MAIN,
  printRows,
  ROUNDS,
  ROUTER_MAIN,
  type Row,
  SEQ_CALLS,
  type Spawned,
  spawnJson,
  startRouterNode,
  type Target,
} from './harness.js';

function startRouter(
  nodeAddress: string,
  extra: Record<string, unknown>,
  execArgv: string[] = [],
  main: string = ROUTER_MAIN,
): Promise<Spawned> {
  return startRouterNode(
    { nodes: [{ id: 'n1', address: nodeAddress, zone: 'a' }], ...extra },
    execArgv,
    main,
  );
}

function nginxAvailable(): boolean {
  try {
    execFileSync('nginx', ['-v'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

async function startNginx(
  nodeAddress: string,
): Promise<{ port: number; pids: () => number[] } | null> {
  if (!nginxAvailable()) return null;
  const prefix = join(dir, 'nginx');
  execFileSync('mkdir', ['-p', prefix]);
  // A port the kernel just handed out and took back: a random one could be any connection's
  // ephemeral port (the bench failed with EADDRINUSE that way).
  const port = await freePort();
  const conf = join(prefix, 'nginx.conf');
  writeFileSync(
    conf,
    `daemon off;
master_process on;
worker_processes auto;
pid ${prefix}/nginx.pid;
error_log stderr error;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path ${prefix}/body;
  proxy_temp_path ${prefix}/proxy;
  fastcgi_temp_path ${prefix}/fastcgi;
  uwsgi_temp_path ${prefix}/uwsgi;
  scgi_temp_path ${prefix}/scgi;
  upstream memory { server ${nodeAddress}; keepalive 64; keepalive_requests 1000000; }
  server {
    listen 127.0.0.1:${port} http2;
    keepalive_requests 1000000;
    http2_max_concurrent_streams 1024;
    location / { grpc_pass grpc://memory; }
  }
}
`,
  );
  const child = spawn('nginx', ['-p', prefix, '-c', conf, '-e', 'stderr'], { stdio: 'inherit' });
  children.push(child);
  graceful.add(child);
  await new Promise((r) => setTimeout(r, 500));
  if (child.exitCode !== null) return null;
  const pids = () => {
    const list = execFileSync('pgrep', ['-P', String(child.pid)], { encoding: 'utf8' })
      .trim()
      .split('\n')
      .map(Number)
      .filter((n) => n > 0);
    return [child.pid!, ...list];
  };
  return { port, pids };
}

async function checkPath(address: string, expectRouting: boolean): Promise<void> {
  const client = new MemoryServiceClient(address, grpc.credentials.createInsecure());
  try {
    const r = await callMemory(
      client,
      'recall',
      { spaceId: 'bench', cue: { text: 'hello' }, limit: 5 },
      { deadline: Date.now() + 5000 },
    );
    if (r.memories.length === 0) throw new Error(`${address}: empty recall`);
    if (expectRouting && r.routing?.strategy !== 'PrimaryWithFallback') {
      throw new Error(`${address}: no router RoutingInfo in reply`);
    }
  } finally {
    client.close();
  }
}

async function main(): Promise<void> {
  if (!h2loadAvailable()) return;
  const node = await spawnJson([
    NODE_MAIN,
    '--id',
    'n1',
    '--port',
    '0',
    '--data-dir',
    join(dir, 'n1'),
    '--log-level',
    'warn',
  ]);
  const nodeAddress = String(node.first.address);
  const client = new MemoryServiceClient(nodeAddress, grpc.credentials.createInsecure());
  for (let i = 0; i < 10; i++) {
    await callMemory(client, 'store', {
      spaceId: 'bench',
      memory: { content: `hello world memory ${i}` },
    });
  }
  client.close();
  const msg = MemoryServiceDefinition.Recall.requestSerialize({
    spaceId: 'bench',
    cue: { text: 'hello' },
    limit: 5,
  });
  const body = frameFile('recall.bin', msg);

  const cores = availableParallelism();
  const targets: Target[] = [
    { name: 'direct', url: `http://${nodeAddress}/engram.v1.MemoryService/Recall`, pids: () => [] },
  ];
  const variants: [string, Record<string, unknown>, string[], string?][] = [
    ['router-node --workers 1 (default)', { workers: 1 }, []],
    ['router-node --workers 0', { workers: 0 }, []],
    [`router-node --workers ${cores}`, { workers: cores }, []],
    ['router-node --workers 1, young gen 48 MB', { workers: 1, youngGenerationMb: 48 }, []],
    ['router-node --workers 1, young gen 192 MB', { workers: 1, youngGenerationMb: 192 }, []],
    ['router-node --workers 0, semi-space 64 MB', { workers: 0 }, ['--max-semi-space-size=64']],
    [
      `router-node --workers ${cores}, young gen 192 MB`,
      { workers: cores, youngGenerationMb: 192 },
      [],
    ],
  ];

  // BENCH_VARIANTS=a,b keeps only router variants whose name contains one of the parts.
  const only = process.env.BENCH_VARIANTS?.split(',').filter((v) => v.length > 0);
  if (only !== undefined && only.length > 0) {
    for (let i = variants.length - 1; i >= 0; i--) {
      if (!only.some((o) => variants[i]![0].includes(o))) variants.splice(i, 1);
    }
  }
  const baseline = process.env.BENCH_BASELINE_ROUTER;
  if (baseline?.includes('=')) {
    // Like for like: the other build runs with the settings of the first variant kept.
    const at = baseline.indexOf('=');
    const [, extra, execArgv] = variants[0] ?? ['', { workers: 1 }, []];
    variants.push([baseline.slice(0, at), extra, execArgv, baseline.slice(at + 1)]);
  }

  const routers: Spawned[] = [];
  for (const [name, extra, execArgv, main] of variants) {
    const r = await startRouter(nodeAddress, extra, execArgv, main);
    routers.push(r);
    await checkPath(String(r.first.address), true);
    targets.push({
      name,
      url: `http://${String(r.first.address)}/engram.v1.MemoryService/Recall`,
      pids: () => [r.child.pid!],
      metricsPort: Number(r.first.metricsPort),
    });
  }
  const nginx = await startNginx(nodeAddress);
  if (nginx !== null) {
    await checkPath(`127.0.0.1:${nginx.port}`, false);
    targets.push({
      name: 'nginx grpc_pass',
      url: `http://127.0.0.1:${nginx.port}/engram.v1.MemoryService/Recall`,
      pids: nginx.pids,
    });
  } else {
    console.log('nginx not available: skipped (apt-get install -y nginx)');
  }

  // Only one proxy runs load at a time; the idle ones cost nothing measurable.
  const runs: Row[][] = targets.map(() => []);
  for (let round = 0; round < ROUNDS; round++) {
    for (let k = 0; k < targets.length; k++) {
      const i = (k + round) % targets.length;
      const t = targets[i]!;
      runs[i]!.push(await measure(t, body));
      process.stderr.write(`round ${round + 1}/${ROUNDS}: measured ${t.name}\n`);
    }
  }
  const rows = runs.map(medianRow);
  const direct = rows[0]!;
  const nginxRow = rows.find((r) => r.path.startsWith('nginx'));
  report.note(
    `\nEnd to end, Recall (${msg.length + 5} B request), ${SEQ_CALLS} sequential calls, ${CONC_CALLS} calls at 64 in flight (4 conns x 16 streams), h2load, ${cores} cores, Node ${process.version}; medians of ${ROUNDS} rounds`,
  );
  printRows(report, rows, DEFAULT_PHASES, { direct, reference: nginxRow });
  report.write();

  for (const c of children) c.kill('SIGTERM');
}

const report = new BenchReport('proxy');
main().then(
  () => process.exit(0),
  (err: unknown) => {
    console.error(err);
    process.exit(1);
  },
);

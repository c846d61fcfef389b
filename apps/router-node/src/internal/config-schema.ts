/**
 * Why this module is long (~420 lines): it is the one table of every setting (type, range,
 * default, reloadability, description), one entry per key; parsing, validation, `--help` and
 * the README table are generated from it elsewhere.
 */
import { MAX_TIMEOUT_MS } from '@engram/breaker';
import { MAX_CHANNELS_PER_NODE } from '@engram/pool';
import { MAX_NODES, MAX_TOKENS_PER_NODE, MAX_VNODES_PER_NODE } from '@engram/ring';
import { MAX_READ_BALANCING_THRESHOLD, MAX_RETRIES } from '@engram/router';
import * as CAP from './config-caps.js';
import type { ConfigSchema } from './config-spec.js';

// The one table of router-node's settings. Parsing (file, env, flags), validation, defaults
// (`CONFIG_DEFAULTS`), `--help` and the README's table are all read from `CONFIG_SCHEMA`; a key
// is added here (and to the `RouterNodeConfig` interface) and nowhere else. `ConfigSchema` is
// derived from that interface: a key missing on either side, or a default of the wrong type,
// does not compile.

/**
 * The settings of router-node, one entry per key, in the order of `RouterNodeConfig`. SIGHUP
 * applies every changed key marked `reloadable` (internal/reload.ts); the others are reported
 * as needing a restart. Not reloadable, and why: the `listen.*` limits are fixed in the HTTP/2
 * server at creation; `router.breakerThreshold`/`breakerTimeoutMs` are part of the shared
 * breaker table's layout fingerprint; `router.replicateWrites` decides whether membership
 * changes move data; `hints.maxBytesPerNode`/`maxAgeMs` size the hint store when it opens.
 */
export const CONFIG_SCHEMA: ConfigSchema = Object.freeze({
  'listen.host': {
    type: 'string',
    default: '127.0.0.1',
    reloadable: false,
    description: 'address of the MemoryService + grpc.health.v1 ingress (h2c, or TLS with `tls`)',
  },
  'listen.port': {
    type: 'int',
    min: 0,
    max: CAP.MAX_PORT,
    default: 50051,
    reloadable: false,
    description: 'ingress port; 0 = any free port',
  },
  'listen.maxConcurrentStreams': {
    type: 'int',
    min: 1,
    max: CAP.MAX_CONCURRENT_STREAMS,
    default: 1000,
    reloadable: false,
    description: 'HTTP/2 streams one client connection may have open at once',
  },
  'listen.idleTimeoutMs': {
    type: 'int',
    min: 0,
    max: CAP.MAX_TIMER_MS,
    default: 5 * 60 * 1000, // 5 min
    reloadable: false,
    description:
      'a client connection with no stream and no traffic this long gets GOAWAY (destroyed one period later if it never closes); 0 = never',
  },
  'listen.maxHeaderListBytes': {
    type: 'int',
    min: CAP.MIN_HEADER_LIST_BYTES,
    max: CAP.MAX_HEADER_LIST_BYTES,
    default: 64 * 1024, // 64 KiB, nghttp2's and grpc's usual limit
    reloadable: false,
    description:
      'largest request header list (names + values + 32 per field); a larger request gets HTTP 431, the connection lives on',
  },
  'listen.maxConnectionsPerWorker': {
    type: 'int',
    min: 1,
    max: CAP.MAX_CONNECTIONS_PER_WORKER,
    default: 10_000,
    reloadable: false,
    description:
      'client connections one data-plane thread serves at once; one more is closed as soon as it is accepted (each costs a file descriptor and ~10 KiB)',
  },
  'listen.headerTimeoutMs': {
    type: 'int',
    min: 0,
    max: CAP.MAX_TIMER_MS,
    default: 10 * 1000, // 10 s
    reloadable: false,
    description:
      'a client connection must finish what it started sending (the HTTP/2 preface, a frame, a header block) within this long, or it is closed (slowloris); 0 = off',
  },
  'listen.bodyTimeoutMs': {
    type: 'int',
    min: 0,
    max: CAP.MAX_TIMER_MS,
    default: 30 * 1000, // 30 s
    reloadable: false,
    description:
      'a request must arrive whole (its last DATA frame) within this long of its headers (plus what `listen.bodyMinBytesPerSecond` earns it), or it gets HTTP 408 and RST_STREAM; 0 = off',
  },
  'listen.bodyMinBytesPerSecond': {
    type: 'int',
    min: 1,
    max: CAP.MAX_MESSAGE_BYTES,
    default: 16 * 1024, // 16 KiB/s
    reloadable: false,
    description:
      'each this many request-body bytes received earn the request one more second beyond `listen.bodyTimeoutMs` (a large body on a slow link gets the time its size needs; a trickle does not)',
  },
  'listen.sendTimeoutMs': {
    type: 'int',
    min: 0,
    max: CAP.MAX_TIMER_MS,
    default: 30 * 1000, // 30 s
    reloadable: false,
    description:
      "a reply held back by the client's flow-control window must make progress within this long, or its stream is reset; a connection whose output the kernel does not take (the client does not read) is closed after as long; 0 = off",
  },
  'tls.cert': {
    type: 'string',
    reloadable: false,
    description: 'PEM certificate file; setting `tls` serves the ingress over TLS',
  },
  'tls.key': {
    type: 'string',
    reloadable: false,
    description: 'PEM private key file of `tls.cert`',
  },
  'tls.clientCa': {
    type: 'string-or-null',
    default: null,
    reloadable: false,
    description: 'PEM CA file; when set, ingress clients must present a certificate it signed',
  },
  'admin.enabled': {
    type: 'bool',
    default: true,
    reloadable: false,
    description: 'serve RouterAdmin (gRPC) on its own listener, never the public port',
  },
  'admin.host': {
    type: 'string',
    default: '127.0.0.1',
    reloadable: false,
    description: 'address of the RouterAdmin listener',
  },
  'admin.port': {
    type: 'int',
    min: 0,
    max: CAP.MAX_PORT,
    default: 50052,
    reloadable: false,
    description: 'RouterAdmin port; 0 = any free port',
  },
  'admin.token': {
    type: 'string-or-null',
    default: null,
    reloadable: true,
    description:
      'bearer token every RouterAdmin call must carry (`authorization: Bearer <token>`); inline it is visible in the file, env or process list: prefer `admin.tokenFile`; null = no token',
  },
  'admin.tokenFile': {
    type: 'string-or-null',
    default: null,
    reloadable: true,
    description:
      'file holding the RouterAdmin bearer token (trimmed), read at start and on every SIGHUP (an unreadable file fails the reload: the token in force stays); null = none',
  },
  'admin.tls.cert': {
    type: 'string',
    reloadable: false,
    description: 'PEM certificate file; setting `admin.tls` serves RouterAdmin over TLS',
  },
  'admin.tls.key': {
    type: 'string',
    reloadable: false,
    description: 'PEM private key file of `admin.tls.cert`',
  },
  'admin.tls.clientCa': {
    type: 'string-or-null',
    default: null,
    reloadable: false,
    description: 'PEM CA file; when set, admin clients must present a certificate it signed',
  },
  'metrics.enabled': {
    type: 'bool',
    default: true,
    reloadable: false,
    description: 'serve Prometheus `GET /metrics`',
  },
  'metrics.host': {
    type: 'string',
    default: '127.0.0.1',
    reloadable: false,
    description: 'address of the metrics listener',
  },
  'metrics.port': {
    type: 'int',
    min: 0,
    max: CAP.MAX_PORT,
    default: 9464,
    reloadable: false,
    description: 'metrics port; 0 = any free port',
  },
  workers: {
    type: 'int',
    min: 0,
    max: CAP.MAX_WORKERS,
    // One data-plane thread beside the control plane. Measured (bench/README.md, 2 cores
    // shared with the load and the node): 23.8k calls/s against 22.2k for the main-thread data
    // plane and 22.4k for 2 threads, the lowest added p99, the same memory. And with
    // `workers: 0` a table rebuild on the main thread (124 ms for 100 nodes at 8192 vnodes)
    // pauses traffic.
    default: 1,
    reloadable: false,
    description: 'data-plane worker threads; 0 = the data plane runs on the main thread',
  },
  youngGenerationMb: {
    type: 'int',
    min: 0,
    max: CAP.MAX_YOUNG_GENERATION_MB,
    default: 0, // MiB; 0 = V8's default
    reloadable: false,
    description:
      'young-generation (semi-space) size of each data-plane thread, MiB; 0 = V8 default',
  },
  nodes: {
    type: 'nodes',
    shape: '[{ id, address: "host:port", zone? }]',
    default: [],
    reloadable: true,
    description:
      'memory nodes to route to; required (empty is an error unless `run --local-cluster`); seeds a router with no state file, and on SIGHUP (or at start) a changed list replaces the membership',
  },
  assignments: {
    type: 'assignments',
    shape: '[{ spaceId, primary, replicas }]',
    default: [],
    reloadable: true,
    description:
      'pinned placements; seed a router with no state file, and on SIGHUP (or at start) a changed list replaces the pins (AssignSpace changes pins live)',
  },
  localNodeId: {
    type: 'string-or-null',
    default: null,
    reloadable: false,
    description: 'node that serves LocalOnly calls while partitioned (and Consolidate)',
  },
  replicationFactor: {
    type: 'int',
    min: 1,
    max: CAP.TABLE_MAX_REPLICATION_FACTOR,
    default: 3,
    reloadable: false,
    description: 'nodes per space: the primary and its replicas',
  },
  vnodesPerNode: {
    type: 'int',
    min: 1,
    max: MAX_VNODES_PER_NODE,
    default: 8192,
    reloadable: false,
    description: 'ring tokens per node (see @engram/ring)',
  },
  maxNodes: {
    type: 'int',
    min: 1,
    max: MAX_NODES,
    default: 64,
    reloadable: false,
    description:
      'nodes the router holds at once (leaving ones included); sizes its shared memory at start, per node: vnodesPerNode × 32 B of table (256 KiB at 8192 vnodes, 8 KiB at 256) + 1.1 KiB + 0.5 KiB per data-plane thread. maxNodes × vnodesPerNode is at most 4194304 (e.g. 1000 nodes at 4096 vnodes, or 16384 at 256)',
  },
  'router.maxRetries': {
    type: 'int',
    min: 0,
    max: MAX_RETRIES,
    default: 3,
    reloadable: true,
    description: 'retries after every target failed once',
  },
  'router.retryBaseDelayMs': {
    type: 'int',
    min: 0,
    max: CAP.MAX_RETRY_BASE_DELAY_MS,
    default: 100, // 100 ms
    reloadable: true,
    description: 'first retry backoff; the backoff is base·2^n, capped, full jitter',
  },
  'router.retryMaxDelayMs': {
    type: 'int',
    min: 0,
    max: CAP.MAX_RETRY_MAX_DELAY_MS,
    default: 5 * 1000, // 5 s
    reloadable: true,
    description: 'cap on the retry backoff; at least `router.retryBaseDelayMs`',
  },
  'router.deadlineMs': {
    type: 'int',
    min: 1,
    max: CAP.MAX_CALL_MS,
    default: 10 * 1000, // 10 s
    reloadable: true,
    description: 'deadline of a call whose client sends no `grpc-timeout`',
  },
  'router.attemptTimeoutMs': {
    type: 'int',
    min: 1,
    max: CAP.MAX_CALL_MS,
    default: 2 * 1000, // 2 s: a node silent this long is failed over
    reloadable: true,
    description: 'a node silent this long is failed over (not for Consolidate)',
  },
  'router.replicaFallback': {
    type: 'bool',
    default: true,
    reloadable: true,
    description: 'fail reads over to replicas',
  },
  'router.storeFallback': {
    type: 'bool',
    default: true,
    reloadable: true,
    description: 'fail writes over to replicas',
  },
  'router.replicateWrites': {
    type: 'bool',
    default: true,
    reloadable: false,
    description:
      'a Store goes to every replica (answered after `router.writeConsistency`, hints for the ones that miss it); false = the primary only',
  },
  'router.writeConsistency': {
    type: 'enum',
    values: ['one', 'quorum', 'all'],
    default: 'quorum',
    reloadable: true,
    description: 'replicas that must acknowledge a replicated Store before its answer',
  },
  'router.readConsistency': {
    type: 'enum',
    values: ['one', 'quorum'],
    default: 'one',
    reloadable: true,
    description:
      'one = the first live replica; quorum = a majority, merged newest first, divergent replicas repaired',
  },
  'router.readBalancing': {
    type: 'enum',
    values: ['placement', 'least-request'],
    default: 'placement',
    reloadable: true,
    description:
      'which live replica a read tries first: placement = the primary while up; least-request = the primary unless it has more than `router.readBalancingThreshold` attempts in flight beyond another live replica picked at random (writes keep placement)',
  },
  'router.readBalancingThreshold': {
    type: 'int',
    min: 0,
    max: MAX_READ_BALANCING_THRESHOLD,
    default: 2,
    reloadable: true,
    description:
      'attempts in flight (per data-plane thread) the first replica of a read may have beyond the other choice before the read moves',
  },
  'router.breakerThreshold': {
    type: 'int',
    min: 1,
    max: CAP.MAX_BREAKER_THRESHOLD,
    default: 5,
    reloadable: false,
    description: "consecutive failures that open a node's circuit breaker",
  },
  'router.breakerTimeoutMs': {
    type: 'int',
    min: 1,
    max: MAX_TIMEOUT_MS,
    default: 30 * 1000, // 30 s
    reloadable: false,
    description: 'how long an open breaker stays open before it lets a probe through',
  },
  'router.maxMessageBytes': {
    type: 'int',
    min: CAP.MIN_MESSAGE_BYTES,
    max: CAP.MAX_MESSAGE_BYTES,
    default: 4 * 1024 * 1024, // 4 MiB, grpc's default receive limit
    reloadable: true,
    description: 'largest request accepted; a larger one gets RESOURCE_EXHAUSTED',
  },
  'retryBudget.ratio': {
    type: 'number',
    min: 0,
    max: 1,
    default: 0.2, // 20 % of requests
    reloadable: true,
    description: 'retries allowed as a share of requests (one budget shared by all threads)',
  },
  'retryBudget.minRetriesPerSecond': {
    type: 'number',
    min: 0,
    max: CAP.BUDGET_MAX_MIN_RETRIES_PER_SECOND,
    default: 10, // retries per second
    reloadable: true,
    description: 'retries always allowed per second, on top of the ratio',
  },
  'retryBudget.ttlMs': {
    type: 'int',
    min: CAP.BUDGET_MIN_TTL_MS,
    max: CAP.BUDGET_MAX_TTL_MS,
    default: 10 * 1000, // 10 s
    reloadable: true,
    description: 'window over which requests and retries count',
  },
  'pool.channelsPerNode': {
    type: 'int',
    min: 1,
    max: MAX_CHANNELS_PER_NODE,
    default: 1,
    reloadable: false,
    description: 'HTTP/2 connections per node per data-plane thread',
  },
  'pool.connectTimeoutMs': {
    type: 'int',
    min: 1,
    max: CAP.MAX_CONNECT_TIMEOUT_MS,
    default: 5 * 1000, // 5 s
    reloadable: false,
    description: 'how long connecting to a node may take',
  },
  'pool.keepaliveIntervalMs': {
    type: 'int',
    min: 1,
    max: CAP.MAX_KEEPALIVE_INTERVAL_MS,
    default: 30 * 1000, // 30 s
    reloadable: false,
    description: 'HTTP/2 PING interval on each node connection',
  },
  'pool.keepaliveTimeoutMs': {
    type: 'int',
    min: 1,
    max: CAP.MAX_KEEPALIVE_TIMEOUT_MS,
    default: 10 * 1000, // 10 s
    reloadable: false,
    description: 'a PING unanswered this long marks the connection broken',
  },
  'pool.tls.ca': {
    type: 'string-or-null',
    default: null,
    reloadable: false,
    description:
      'PEM CA file to verify nodes with (null = system roots); `pool.tls` dials nodes (and health checks) over TLS',
  },
  'pool.tls.cert': {
    type: 'string-or-null',
    default: null,
    reloadable: false,
    description: 'PEM client certificate file for mutual TLS; given with `pool.tls.key`',
  },
  'pool.tls.key': {
    type: 'string-or-null',
    default: null,
    reloadable: false,
    description: 'PEM client private key file; given with `pool.tls.cert`',
  },
  'pool.tls.serverName': {
    type: 'string-or-null',
    default: null,
    reloadable: false,
    description: 'name to verify and send as SNI instead of the node address host',
  },
  'health.intervalMs': {
    type: 'int',
    min: CAP.MIN_HEALTH_INTERVAL_MS,
    max: CAP.MAX_HEALTH_INTERVAL_MS,
    default: 1000, // 1 s
    reloadable: true,
    description: 'grpc.health.v1 probe interval per node',
  },
  'health.timeoutMs': {
    type: 'int',
    min: 1,
    max: CAP.MAX_HEALTH_TIMEOUT_MS,
    default: 500, // 0.5 s
    reloadable: true,
    description: 'probe timeout (may exceed the interval: a node is never probed twice at once)',
  },
  'health.unhealthyIntervalMs': {
    type: 'int',
    min: CAP.MIN_HEALTH_INTERVAL_MS,
    max: CAP.MAX_HEALTH_INTERVAL_MS,
    default: 250, // 0.25 s
    reloadable: true,
    description:
      'probe interval of a node that is down or not yet probed (Envoy unhealthy_interval); at or above intervalMs: every interval',
  },
  'health.healthyEdgeIntervalMs': {
    type: 'int',
    min: CAP.MIN_HEALTH_INTERVAL_MS,
    max: CAP.MAX_HEALTH_INTERVAL_MS,
    default: 100, // 0.1 s
    reloadable: true,
    description:
      'probe interval of a down node once a probe of it passed, until it is marked up (Envoy healthy_edge_interval)',
  },
  'health.unhealthyThreshold': {
    type: 'int',
    min: 1,
    max: CAP.MAX_HEALTH_THRESHOLD,
    default: 2,
    reloadable: true,
    description: 'consecutive failed probes that mark a node down',
  },
  'health.healthyThreshold': {
    type: 'int',
    min: 1,
    max: CAP.MAX_HEALTH_THRESHOLD,
    default: 2,
    reloadable: true,
    description: 'consecutive good probes that mark a node up again',
  },
  'health.panicThreshold': {
    type: 'number',
    min: 0,
    max: 1,
    default: 0.3,
    reloadable: true,
    description:
      'share of nodes up below which health verdicts are ignored (every node routed to, breakers decide); 0 = never',
  },
  'health.slowStartMs': {
    type: 'int',
    min: 0,
    max: 10 * 60 * 1000, // 10 min
    default: 3 * 1000, // 3 s
    reloadable: true,
    description:
      'a node marked up again (after down or draining) takes a share of its reads rising linearly to all of them over this window; writes go to it at once; 0 = off',
  },
  'outlier.enabled': {
    type: 'bool',
    default: true,
    reloadable: true,
    description:
      'eject nodes that stall, fail or answer far slower than their peers (tried after every other up node, before down ones; still reachable) for a time that grows with repeated ejections',
  },
  'outlier.intervalMs': {
    type: 'int',
    min: 10,
    max: 60 * 1000,
    default: 250, // 0.25 s
    reloadable: true,
    description:
      'how often the detector reads the attempt counters (stall and consecutive-failure rules, returns)',
  },
  'outlier.windowMs': {
    type: 'int',
    min: 100,
    max: CAP.MAX_OUTLIER_MS,
    default: 10 * 1000, // 10 s, as Envoy's interval
    reloadable: true,
    description: 'window of the failure-rate and latency rules',
  },
  'outlier.consecutiveFailures': {
    type: 'int',
    min: 1,
    max: 1_000_000,
    default: 5,
    reloadable: true,
    description:
      "failed attempts in a row (node-failure status, no reply, the router's attempt timeout; not calls never sent, nor ones ended by the caller's own deadline) that eject a node",
  },
  'outlier.failureRate': {
    type: 'number',
    min: 0.01,
    max: 1,
    default: 0.5,
    reloadable: true,
    description:
      'share of failed attempts in a window (of at least `outlier.minRequests`) that ejects a node',
  },
  'outlier.minRequests': {
    type: 'int',
    min: 1,
    max: 1_000_000,
    default: 100,
    reloadable: true,
    description:
      'attempts a node needs in a window to be judged by the failure-rate and latency rules (and to count as a peer); the p99 is judged from 10 times as many',
  },
  'outlier.latencyFactor': {
    type: 'number',
    min: 1.1,
    max: 1000,
    default: 5,
    reloadable: true,
    description:
      "a node whose attempt p50 or p99 in a window is above this many times its peers' median (and `outlier.latencyFloorMs` above it) is ejected; also scales the stall threshold",
  },
  'outlier.latencyFloorMs': {
    type: 'number',
    min: 0,
    max: 60 * 1000,
    default: 5, // 5 ms
    reloadable: true,
    description:
      "smallest latency excess over the peers' median that ejects (so 0.2 ms against 0.6 ms never does)",
  },
  'outlier.stallMs': {
    type: 'int',
    min: 10,
    max: CAP.MAX_OUTLIER_MS,
    default: 500, // 0.5 s
    reloadable: true,
    description:
      "a node holding attempts with no answer for this long (or `outlier.latencyFactor` × the peers' median p99, if longer), at least two of them at once at some point, is ejected, before the attempts time out",
  },
  'outlier.baseEjectionMs': {
    type: 'int',
    min: 100,
    max: CAP.MAX_OUTLIER_MS,
    default: 30 * 1000, // 30 s, Envoy's
    reloadable: true,
    description:
      'ejection time, times the number of times the node was ejected (at most ceil(`outlier.maxEjectionMs` / this); it drops by one per this long in service)',
  },
  'outlier.maxEjectionMs': {
    type: 'int',
    min: 100,
    max: CAP.MAX_OUTLIER_MS,
    default: 5 * 60 * 1000, // 5 min, Envoy's
    reloadable: true,
    description: 'longest ejection; at least `outlier.baseEjectionMs`',
  },
  'outlier.maxEjectedShare': {
    type: 'number',
    min: 0.01,
    max: 1,
    default: 0.3,
    reloadable: true,
    description:
      'share of the nodes that may be ejected at once; one may always be, when there are two or more',
  },
  dataDir: {
    type: 'string-or-null',
    default: null,
    reloadable: false,
    description:
      'directory for hints, streaming progress and the RouterAdmin state (`router-state.json`: nodes, drains, pins), kept across restarts; null = memory only (admin changes are lost on restart)',
  },
  'hints.maxBytesPerNode': {
    type: 'int',
    min: 1024,
    max: CAP.MAX_HINT_BYTES_PER_NODE,
    default: 64 * 1024 * 1024, // 64 MiB
    reloadable: false,
    description: 'hints kept per node; beyond, a hint is dropped and the node needs a repair',
  },
  'hints.maxAgeMs': {
    type: 'int',
    min: 1000,
    max: CAP.MAX_HINT_AGE_MS,
    default: 3 * 60 * 60 * 1000, // 3 h, Cassandra's max_hint_window
    reloadable: false,
    description: 'hints older than this are dropped (the node needs a repair)',
  },
  'hints.replayPerSecond': {
    type: 'int',
    min: 1,
    max: 1_000_000,
    default: 1000,
    reloadable: true,
    description: 'hints replayed per second per node, so live traffic keeps its latency',
  },
  'streaming.concurrency': {
    type: 'int',
    min: 1,
    max: 64,
    default: 4,
    reloadable: true,
    description: 'spaces streamed at once when a node joins or leaves',
  },
  'repair.intervalMs': {
    type: 'int',
    min: 0,
    max: CAP.MAX_TIMER_MS,
    default: 0,
    reloadable: true,
    description: 'background anti-entropy: every space compared this often; 0 = off',
  },
  'repair.spacesPerSecond': {
    type: 'int',
    min: 1,
    max: 10_000,
    default: 10,
    reloadable: true,
    description: 'spaces the background repair compares per second',
  },
  shutdownGraceMs: {
    type: 'int',
    min: 0,
    max: CAP.MAX_SHUTDOWN_GRACE_MS,
    default: 10 * 1000, // 10 s
    reloadable: false,
    description: 'on SIGTERM, how long calls in flight may take to finish',
  },
  shutdownDrainMs: {
    type: 'int',
    min: 0,
    max: CAP.MAX_SHUTDOWN_GRACE_MS,
    default: 5 * 1000, // 5 s
    reloadable: false,
    description:
      'on SIGTERM, how long health answers NOT_SERVING while calls and connections are still served, before GOAWAY; 0 = no drain window',
  },
  logLevel: {
    type: 'enum',
    values: CAP.LOG_LEVELS,
    default: 'info',
    reloadable: true,
    description: 'pino log level (logs are JSON on stderr)',
  },
  'localCluster.nodes': {
    type: 'int',
    min: 0,
    max: CAP.MAX_LOCAL_NODES,
    default: 3,
    reloadable: false,
    description:
      'memory nodes `run --local-cluster` and `demo` start as child processes (in place of `nodes`); 0 = never (`--local-cluster` is refused)',
  },
  'localCluster.zones': {
    type: 'int',
    min: 1,
    max: CAP.MAX_LOCAL_ZONES,
    default: 2,
    reloadable: false,
    description: 'zones the local memory nodes are spread over, round robin',
  },
  'localCluster.dataDir': {
    type: 'string-or-null',
    default: null,
    reloadable: false,
    description: 'data directory of the local memory nodes; null = a temp dir, deleted on stop',
  },
  'etcd.endpoints': {
    type: 'addresses',
    reloadable: false,
    description:
      "etcd members (`host:port`) several routers share membership, pins and drains through; the section set = etcd mode (the file's `nodes` and `assignments` only seed an empty prefix)",
  },
  'etcd.prefix': {
    type: 'string',
    default: '/engram/router/',
    reloadable: false,
    description: 'key prefix of this router cluster in etcd (one prefix = one cluster)',
  },
  'etcd.routerId': {
    type: 'string-or-null',
    default: null,
    reloadable: false,
    description: "this router's name in etcd (its registration); null = `<hostname>-<pid>`",
  },
  'etcd.ca': {
    type: 'string-or-null',
    default: null,
    reloadable: false,
    description: "PEM CA of etcd's server certificates: etcd over TLS; null = plaintext",
  },
  'etcd.cert': {
    type: 'string-or-null',
    default: null,
    reloadable: false,
    description: 'PEM client certificate for etcd (with `etcd.key` and `etcd.ca`); null = none',
  },
  'etcd.key': {
    type: 'string-or-null',
    default: null,
    reloadable: false,
    description: 'PEM key of `etcd.cert`',
  },
  'etcd.leaseTtlMs': {
    type: 'int',
    min: 2000,
    max: CAP.MAX_TIMER_MS,
    default: 10 * 1000, // 10 s
    reloadable: false,
    description:
      "TTL of the router's registration lease (and of the data-movement driver's election): a dead router is gone from `status`, and another drives streaming, this long after it stops",
  },
  'etcd.tokensPerNode': {
    type: 'int',
    min: 0,
    max: MAX_TOKENS_PER_NODE,
    default: 64,
    reloadable: false,
    description:
      "ring tokens of a node, chosen when it joins by an allocator that balances owned load against the nodes' tokens in etcd (Cassandra's approach) and kept there; 0 = `vnodesPerNode` random ones. The seeding router's value is the cluster's",
  },
  'etcd.requestTimeoutMs': {
    type: 'int',
    min: 100,
    max: CAP.MAX_TIMER_MS,
    default: 2000, // 2 s
    reloadable: false,
    description:
      'deadline of one etcd read or transaction; past it an admin change fails UNAVAILABLE and routing goes on from the last table',
  },
} satisfies ConfigSchema);

// The entries too, not only the table: every reader (parser, validator, help, docs) shares them.
for (const spec of Object.values(CONFIG_SCHEMA)) {
  Object.freeze(spec);
  if (spec.type === 'nodes' || spec.type === 'assignments') Object.freeze(spec.default);
}

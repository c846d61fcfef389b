import type * as http2 from 'node:http2';
import { InvalidArgumentError } from '@engram/common';
import type { H2ClientConnection } from '@engram/h2';
import type * as grpc from '@grpc/grpc-js';
import {
  type ConnectionFactory,
  ConnectionSet,
  type ConnectionSetOptions,
  type ConnectionState,
  connectionStateName,
} from './connection-set.js';
import { ConnectionFailedError, PoolClosedError, UnknownNodeError } from './errors.js';
import {
  defaultMakeClient,
  GrpcChannelFactory,
  type GrpcConnection,
  grpcChannelOptions,
  grpcCredentials,
} from './grpc-channels.js';
import { H2ConnectionFactory } from './h2-connections.js';
import { Http2SessionFactory } from './http2-sessions.js';
import type { RawConnectionOptions } from './liveness.js';
import {
  type ConnectionKind,
  type MakeClient,
  type PoolOptions,
  type ResolvedOptions,
  resolveOptions,
  validateAddress,
} from './options.js';

/** Health of one node's connections. */
export interface NodeHealth {
  readonly nodeId: string;
  readonly address: string;
  readonly slot: number;
  /** At least one of the node's connections (either kind) is READY. */
  readonly healthy: boolean;
  /** One entry per grpc-js channel; empty until the node's channels are first used. */
  readonly channels: readonly ConnectionState[];
  /** One entry per raw HTTP/2 session; empty until the node's sessions are first used. */
  readonly sessions: readonly ConnectionState[];
  /** One entry per `@engram/h2` connection; empty until they are first used. */
  readonly h2: readonly ConnectionState[];
  /** Message of the most recent connection failure, if any. */
  readonly lastError: string | undefined;
}

export interface PoolHealthReport {
  readonly totalNodes: number;
  readonly healthyNodes: number;
  /** Open grpc-js channels over all nodes. */
  readonly totalChannels: number;
  /** Open raw HTTP/2 sessions over all nodes. */
  readonly totalSessions: number;
  /** Open `@engram/h2` connections over all nodes. */
  readonly totalH2: number;
  readonly perNode: readonly NodeHealth[];
}

/**
 * One registered node. Its two connection sets are created on first use of each kind, so a
 * node that is only ever reached over raw sessions carries no grpc-js bookkeeping at all.
 */
class NodeEntry<C> {
  channels: ConnectionSet<GrpcConnection<C>> | undefined = undefined;
  grpc: GrpcChannelFactory<C> | undefined = undefined;
  sessions: ConnectionSet<http2.ClientHttp2Session> | undefined = undefined;
  h2: ConnectionSet<H2ClientConnection> | undefined = undefined;
  closed = false;
  constructor(
    readonly id: string,
    readonly address: string,
    readonly slot: number,
  ) {}

  failure(kind: ConnectionKind): ConnectionFailedError {
    const set = kind === 'channel' ? this.channels : kind === 'session' ? this.sessions : this.h2;
    return new ConnectionFailedError(
      this.id,
      this.address,
      set?.lastError ?? new Error(`no usable ${kind} to ${this.address}`),
    );
  }
}

/**
 * Connections to the nodes of a cluster, two kinds per node: grpc-js channels (typed
 * calls) and raw `node:http2` sessions (frame forwarding). Each kind opens
 * `channelsPerNode` distinct HTTP/2 connections on first use, hands them out round robin,
 * keeps them alive with PINGs and replaces broken ones with backoff.
 *
 * `acquire*` is synchronous; once a node's connections exist it does not allocate. For the
 * fastest path resolve a node's slot once with `addNode`/`slotOf` and acquire by slot.
 */
export class ConnectionPool<C = grpc.Client> {
  /** The options in force, defaults applied. */
  readonly options: ResolvedOptions;
  private readonly grpcCredentials: grpc.ChannelCredentials;
  private readonly grpcOptions: grpc.ChannelOptions;
  private readonly makeClient: MakeClient<C>;
  private readonly byId = new Map<string, NodeEntry<C>>();
  // Slots are never reused, so a stale slot number fails loudly instead of reaching another node.
  private readonly slots: (NodeEntry<C> | undefined)[] = [];
  private channels = 0;
  private sessions = 0;
  private h2Connections = 0;
  private isClosed = false;

  constructor(options: PoolOptions<C> = {}) {
    this.options = resolveOptions(options);
    this.grpcCredentials = grpcCredentials(this.options.credentials);
    this.grpcOptions = grpcChannelOptions(this.options);
    this.makeClient = options.makeClient ?? (defaultMakeClient as unknown as MakeClient<C>);
  }

  /**
   * Registers a node (no connection is opened until first use) and returns its slot.
   * Idempotent for the same address; a new address closes the old connections and keeps
   * the slot.
   */
  addNode(nodeId: string, address: string): number {
    if (this.isClosed) throw new PoolClosedError();
    if (typeof nodeId !== 'string' || nodeId.length === 0) {
      throw new InvalidArgumentError('nodeId', nodeId, 'a non-empty string');
    }
    validateAddress('address', address);
    const existing = this.byId.get(nodeId);
    if (existing !== undefined) {
      if (existing.address === address) return existing.slot;
      void this.closeEntry(existing);
    }
    const slot = existing?.slot ?? this.slots.length;
    const entry = this.createEntry(nodeId, address, slot);
    this.byId.set(nodeId, entry);
    this.slots[slot] = entry;
    return slot;
  }

  /** Whether `nodeId` is registered. */
  hasNode(nodeId: string): boolean {
    return this.byId.has(nodeId);
  }

  /** The slot of `nodeId`, or -1 when it is not registered. */
  slotOf(nodeId: string): number {
    return this.byId.get(nodeId)?.slot ?? -1;
  }

  /** Registered node ids, in insertion order. */
  nodeIds(): string[] {
    return [...this.byId.keys()];
  }

  /** Closes the node's connections and forgets it; its slot is never handed out again. */
  removeNode(nodeId: string): Promise<void> {
    const entry = this.byId.get(nodeId);
    if (entry === undefined) return Promise.resolve();
    this.byId.delete(nodeId);
    this.slots[entry.slot] = undefined;
    return this.closeEntry(entry);
  }

  /**
   * Next grpc-js channel of the node, round robin. Opens the node's channels on first use.
   * @throws UnknownNodeError, PoolClosedError, ConnectionFailedError (every channel failing)
   */
  acquireChannel(node: string | number): grpc.Channel {
    const entry = this.entry(node);
    const connection = (entry.channels ?? this.channelSet(entry)).acquire();
    if (connection === undefined) throw entry.failure('channel');
    return connection.channel;
  }

  /**
   * Next typed client (built by `makeClient` once per channel and cached), round robin over
   * the same channels as `acquireChannel`.
   */
  acquireClient(node: string | number): C {
    const entry = this.entry(node);
    const connection = (entry.channels ?? this.channelSet(entry)).acquire();
    if (connection === undefined) throw entry.failure('channel');
    return connection.client ?? entry.grpc!.client(connection);
  }

  /**
   * Next raw HTTP/2 session of the node, round robin. Opens the node's sessions on first use.
   * @throws UnknownNodeError, PoolClosedError, ConnectionFailedError (every session broken)
   */
  acquireSession(node: string | number): http2.ClientHttp2Session {
    const entry = this.entry(node);
    const session = (entry.sessions ?? this.sessionSet(entry)).acquire();
    if (session === undefined) throw entry.failure('session');
    return session;
  }

  /**
   * Next `@engram/h2` connection of the node, round robin: the cheapest way to forward
   * gRPC frames. Opens the node's connections on first use.
   * @throws UnknownNodeError, PoolClosedError, ConnectionFailedError (every connection broken)
   */
  acquireH2(node: string | number): H2ClientConnection {
    const entry = this.entry(node);
    const c = (entry.h2 ?? this.h2Set(entry)).acquire();
    if (c === undefined) throw entry.failure('h2');
    return c;
  }

  /**
   * Replaces the node's broken connections now instead of after their reconnect backoff (and
   * starts their backoff over): for a node that is known to be back, e.g. marked up by health
   * checks, so its first calls do not fail fast on a connection still waiting to reconnect.
   * A no-op for an unknown node.
   */
  reconnectNow(nodeId: string): void {
    const entry = this.byId.get(nodeId);
    if (entry === undefined || entry.closed) return;
    entry.channels?.reconnectNow();
    entry.sessions?.reconnectNow();
    entry.h2?.reconnectNow();
  }

  /**
   * Opens the node's connections of `kind` (default grpc-js channels) and resolves when all
   * are READY. Rejects with `ConnectionFailedError` (node id, address, cause) as soon as one
   * fails, or when `connectTimeoutMs` passes first.
   */
  async connect(node: string | number, kind: ConnectionKind = 'channel'): Promise<void> {
    const entry = this.entry(node);
    const set =
      kind === 'channel'
        ? this.channelSet(entry)
        : kind === 'session'
          ? this.sessionSet(entry)
          : this.h2Set(entry);
    try {
      await set.whenReady(this.options.connectTimeoutMs);
    } catch (err) {
      throw new ConnectionFailedError(
        entry.id,
        entry.address,
        err instanceof Error ? err : new Error(String(err)),
      );
    }
  }

  /** Snapshot of every node's connection states (allocates; for health endpoints and metrics). */
  healthReport(): PoolHealthReport {
    const perNode: NodeHealth[] = [];
    let healthyNodes = 0;
    for (const entry of this.byId.values()) {
      const channels = entry.channels?.isOpen ? states(entry.channels.states) : [];
      const sessions = entry.sessions?.isOpen ? states(entry.sessions.states) : [];
      const h2 = entry.h2?.isOpen ? states(entry.h2.states) : [];
      const healthy =
        channels.includes('ready') || sessions.includes('ready') || h2.includes('ready');
      if (healthy) healthyNodes++;
      perNode.push({
        nodeId: entry.id,
        address: entry.address,
        slot: entry.slot,
        healthy,
        channels,
        sessions,
        h2,
        lastError: (entry.channels?.lastError ?? entry.sessions?.lastError ?? entry.h2?.lastError)
          ?.message,
      });
    }
    return {
      totalNodes: this.byId.size,
      healthyNodes,
      totalChannels: this.channels,
      totalSessions: this.sessions,
      totalH2: this.h2Connections,
      perNode,
    };
  }

  /** Registered nodes. */
  get nodeCount(): number {
    return this.byId.size;
  }

  /** Open grpc-js channels over all nodes (for metrics). */
  get channelCount(): number {
    return this.channels;
  }

  /** Open raw HTTP/2 sessions over all nodes (for metrics). */
  get sessionCount(): number {
    return this.sessions;
  }

  /** Open `@engram/h2` connections over all nodes (for metrics). */
  get h2Count(): number {
    return this.h2Connections;
  }

  get closed(): boolean {
    return this.isClosed;
  }

  /** Closes every connection; resolves when their sockets are closed. Idempotent. */
  close(): Promise<void> {
    this.isClosed = true;
    const entries = [...this.byId.values()];
    this.byId.clear();
    this.slots.fill(undefined);
    return Promise.all(entries.map((e) => this.closeEntry(e))).then(() => undefined);
  }

  private entry(node: string | number): NodeEntry<C> {
    const entry = typeof node === 'number' ? this.slots[node] : this.byId.get(node);
    if (entry === undefined)
      throw this.isClosed ? new PoolClosedError() : new UnknownNodeError(node);
    return entry;
  }

  private closeEntry(entry: NodeEntry<C>): Promise<void> {
    entry.closed = true;
    return Promise.all([entry.channels?.close(), entry.sessions?.close(), entry.h2?.close()]).then(
      () => undefined,
    );
  }

  private createEntry(nodeId: string, address: string, slot: number): NodeEntry<C> {
    return new NodeEntry<C>(nodeId, address, slot);
  }

  private setOptions(nodeId: string, kind: ConnectionKind): ConnectionSetOptions {
    const o = this.options;
    const onConnection = o.onConnection;
    const onStateChange = o.onStateChange;
    return {
      reconnectBaseDelayMs: o.reconnectBaseDelayMs,
      reconnectMaxDelayMs: o.reconnectMaxDelayMs,
      clock: o.clock,
      random: o.random,
      onEvent: (type: 'open' | 'close', index: number) => {
        const delta = type === 'open' ? 1 : -1;
        if (kind === 'channel') this.channels += delta;
        else if (kind === 'session') this.sessions += delta;
        else this.h2Connections += delta;
        onConnection?.({ type, kind, nodeId, index });
      },
      onState:
        onStateChange === undefined
          ? undefined
          : (index: number, state: number) =>
              onStateChange({ kind, nodeId, index, state: connectionStateName(state) }),
    };
  }

  private channelSet(entry: NodeEntry<C>): ConnectionSet<GrpcConnection<C>> {
    if (entry.channels !== undefined) return entry.channels;
    const factory = new GrpcChannelFactory<C>(
      entry.address,
      this.grpcCredentials,
      this.grpcOptions,
      this.makeClient,
    );
    const set = new ConnectionSet(
      factory,
      this.options.channelsPerNode,
      this.setOptions(entry.id, 'channel'),
    );
    if (entry.closed) void set.close();
    entry.grpc = factory;
    entry.channels = set;
    return set;
  }

  private sessionSet(entry: NodeEntry<C>): ConnectionSet<http2.ClientHttp2Session> {
    entry.sessions ??= this.rawSet(entry, new Http2SessionFactory(this.rawOptions(entry)));
    return entry.sessions;
  }

  private h2Set(entry: NodeEntry<C>): ConnectionSet<H2ClientConnection> {
    entry.h2 ??= this.rawSet(entry, new H2ConnectionFactory(this.rawOptions(entry)));
    return entry.h2;
  }

  private rawOptions(entry: NodeEntry<C>): RawConnectionOptions {
    const o = this.options;
    return {
      address: entry.address,
      credentials: o.credentials,
      connectTimeoutMs: o.connectTimeoutMs,
      keepaliveIntervalMs: o.keepaliveIntervalMs,
      keepaliveTimeoutMs: o.keepaliveTimeoutMs,
      clock: o.clock,
    };
  }

  private rawSet<T>(entry: NodeEntry<C>, factory: ConnectionFactory<T>): ConnectionSet<T> {
    const set = new ConnectionSet(
      factory,
      this.options.channelsPerNode,
      this.setOptions(entry.id, factory.kind),
    );
    if (entry.closed) void set.close();
    return set;
  }
}

function states(codes: Uint8Array): ConnectionState[] {
  return Array.from(codes, connectionStateName);
}

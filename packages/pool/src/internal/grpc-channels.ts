import * as grpc from '@grpc/grpc-js';
import {
  CONNECTION_STATE,
  type ConnectionFactory,
  type ConnectionHooks,
  type ConnectionStateCode,
} from './connection-set.js';
import {
  MAX_TIMER_MS,
  type MakeClient,
  type PoolCredentials,
  type ResolvedOptions,
} from './options.js';

/** One pooled grpc-js channel and the typed client built over it on first use. */
export class GrpcConnection<C> {
  readonly channel: grpc.Channel;
  client: C | undefined = undefined;
  closing = false;
  constructor(channel: grpc.Channel) {
    this.channel = channel;
  }
}

export function grpcCredentials(credentials: PoolCredentials): grpc.ChannelCredentials {
  if (credentials.kind === 'insecure') return grpc.credentials.createInsecure();
  const buf = (v: string | Buffer | undefined): Buffer | null =>
    v === undefined ? null : typeof v === 'string' ? Buffer.from(v) : v;
  return grpc.credentials.createSsl(
    buf(credentials.ca),
    buf(credentials.key),
    buf(credentials.cert),
  );
}

/**
 * Channel options that make each pooled channel its own HTTP/2 connection and keep it warm:
 * - `grpc.use_local_subchannel_pool`: without it grpc-js shares one subchannel (one TCP
 *   connection) among all channels with the same target and options.
 * - `grpc.client_idle_timeout_ms` at the timer ceiling: grpc-js otherwise drops a channel's
 *   connection after 30 idle minutes and the next call pays a handshake.
 * - `grpc.enable_channelz: 0`: channelz bookkeeping costs memory per channel and nobody here
 *   reads it.
 */
export function grpcChannelOptions(options: ResolvedOptions): grpc.ChannelOptions {
  const creds = options.credentials;
  const serverName = creds.kind === 'tls' ? creds.serverName : undefined;
  return {
    'grpc.enable_channelz': 0,
    ...options.channelOptions,
    'grpc.use_local_subchannel_pool': 1,
    'grpc.keepalive_time_ms': options.keepaliveIntervalMs,
    'grpc.keepalive_timeout_ms': options.keepaliveTimeoutMs,
    'grpc.keepalive_permit_without_calls': 1,
    'grpc.initial_reconnect_backoff_ms': Math.max(1, options.reconnectBaseDelayMs),
    'grpc.max_reconnect_backoff_ms': Math.max(1, options.reconnectMaxDelayMs),
    'grpc.client_idle_timeout_ms': MAX_TIMER_MS,
    ...(serverName === undefined
      ? {}
      : { 'grpc.ssl_target_name_override': serverName, 'grpc.default_authority': serverName }),
  };
}

export function defaultMakeClient(
  channel: grpc.Channel,
  address: string,
  credentials: grpc.ChannelCredentials,
): grpc.Client {
  return new grpc.Client(address, credentials, { channelOverride: channel });
}

/**
 * grpc-js channels to one node. grpc-js reconnects a channel's connection itself (with the
 * pool's backoff passed as channel options), so a failing channel only reports its state;
 * the pool re-arms a channel that fell back to IDLE (server restart, GOAWAY, keep-alive
 * timeout) so its replacement connection is opened before the next call needs it.
 */
export class GrpcChannelFactory<C> implements ConnectionFactory<GrpcConnection<C>> {
  readonly kind = 'channel' as const;
  readonly address: string;
  readonly credentials: grpc.ChannelCredentials;
  readonly channelOptions: grpc.ChannelOptions;
  readonly makeClient: MakeClient<C>;

  constructor(
    address: string,
    credentials: grpc.ChannelCredentials,
    channelOptions: grpc.ChannelOptions,
    makeClient: MakeClient<C>,
  ) {
    this.address = address;
    this.credentials = credentials;
    this.channelOptions = channelOptions;
    this.makeClient = makeClient;
  }

  open(index: number, hooks: ConnectionHooks): GrpcConnection<C> {
    const channel = new grpc.Channel(this.address, this.credentials, this.channelOptions);
    const connection = new GrpcConnection<C>(channel);
    const address = this.address;
    const watch = (last: grpc.connectivityState): void => {
      channel.watchConnectivityState(last, Number.POSITIVE_INFINITY, () => {
        const state = channel.getConnectivityState(false);
        if (state === grpc.connectivityState.SHUTDOWN) {
          if (!connection.closing)
            hooks.broken(new Error(`channel ${index} to ${address} shut down`));
          return;
        }
        hooks.state(
          state as number as ConnectionStateCode,
          state === grpc.connectivityState.TRANSIENT_FAILURE
            ? new Error(`channel ${index} to ${address} could not connect (TRANSIENT_FAILURE)`)
            : undefined,
        );
        if (state === grpc.connectivityState.IDLE && !connection.closing) {
          channel.getConnectivityState(true);
        }
        watch(state);
      });
    };
    // Connect now rather than on the first call: acquisition must find a warm connection.
    channel.getConnectivityState(true);
    const current = channel.getConnectivityState(false);
    watch(current);
    hooks.state(
      current === grpc.connectivityState.IDLE
        ? CONNECTION_STATE.CONNECTING
        : (current as number as ConnectionStateCode),
    );
    return connection;
  }

  client(connection: GrpcConnection<C>): C {
    let client = connection.client;
    if (client === undefined) {
      client = this.makeClient(connection.channel, this.address, this.credentials);
      connection.client = client;
    }
    return client;
  }

  close(connection: GrpcConnection<C>): Promise<void> {
    connection.closing = true;
    connection.channel.close();
    return Promise.resolve();
  }
}

import { ConstantBackoff, noop } from 'cockatiel';
import { Etcd3, type IOptions, type IWatchResponse, type Watcher } from 'etcd3';
import { ETCD_KEYS } from './etcd-layout.js';

// The etcd edge every follower of a placement prefix shares (router-node and library mode):
// the client as this project sets it up, one read of the prefix, and its watch.

/** How to reach etcd. */
export interface EtcdEndpoints {
  /** `host:port` of the etcd members. */
  readonly endpoints: readonly string[];
  /** PEM CA of etcd's server certificates: TLS; absent = plaintext. */
  readonly ca?: Buffer | undefined;
  /** PEM client certificate and key, for etcd's client-certificate auth. */
  readonly cert?: Buffer | undefined;
  readonly key?: Buffer | undefined;
  /** Deadline of one read or transaction, ms. Default 2000. */
  readonly requestTimeoutMs?: number | undefined;
}

export const DEFAULT_ETCD_REQUEST_TIMEOUT_MS = 2000;

/**
 * An `etcd3` client for a follower or a writer of a placement: its own retry and
 * circuit-breaker policies off (a retried conditioned write could report a false conflict;
 * the caller's deadlines decide), its reconnect backoff capped at 1 s (a returning etcd is
 * noticed at once, not after grpc-js's 2-minute ceiling), and keepalive pings every 5 s (what
 * etcd accepts) so a hung etcd is noticed, not only a closed one.
 */
export function etcdClient(e: EtcdEndpoints): Etcd3 {
  const timeoutMs = e.requestTimeoutMs ?? DEFAULT_ETCD_REQUEST_TIMEOUT_MS;
  const tls = e.ca !== undefined;
  const options: IOptions = {
    hosts: e.endpoints.map((h) => `${tls ? 'https' : 'http'}://${h}`),
    ...(tls
      ? {
          credentials: {
            rootCertificate: e.ca!,
            ...(e.key !== undefined ? { privateKey: e.key } : {}),
            ...(e.cert !== undefined ? { certChain: e.cert } : {}),
          },
        }
      : {}),
    dialTimeout: timeoutMs,
    faultHandling: {
      global: noop,
      host: () => noop,
      watchBackoff: new ConstantBackoff(Math.min(500, timeoutMs)).next(),
    },
    grpcOptions: {
      'grpc.initial_reconnect_backoff_ms': 100,
      'grpc.max_reconnect_backoff_ms': 1000,
      'grpc.keepalive_time_ms': 5000,
      'grpc.keepalive_timeout_ms': timeoutMs,
      'grpc.keepalive_permit_without_calls': 1,
    },
  };
  return new Etcd3(options);
}

/** The keys under a prefix at one revision. */
export interface PrefixSnapshot {
  /** etcd's revision when read (a watch resumes after it). */
  readonly revision: number;
  /** Mod revision of the placement marker; 0 while the prefix holds no placement. */
  readonly placementRevision: number;
  readonly kvs: Map<string, string>;
  /** Each key's mod revision. */
  readonly modRevisions: Map<string, number>;
}

export interface WatchHandlers {
  data(res: IWatchResponse): void;
  connected(up: boolean, err?: Error): void;
  /** The watch ended for good (etcd compacted past it, or cancelled it). */
  error(err: Error): void;
}

/** Reads and watches one prefix. */
export class EtcdPrefix {
  readonly client: Etcd3;
  readonly prefix: string;
  readonly timeoutMs: number;

  constructor(client: Etcd3, prefix: string, timeoutMs = DEFAULT_ETCD_REQUEST_TIMEOUT_MS) {
    this.client = client;
    this.prefix = prefix;
    this.timeoutMs = timeoutMs;
  }

  /** A deadline `requestTimeoutMs` from now, for one call's options. */
  deadline(): { deadline: number } {
    return { deadline: Date.now() + this.timeoutMs };
  }

  /** Every key under the prefix, at one revision. Rejects as etcd3 does (unreachable...). */
  async snapshot(): Promise<PrefixSnapshot> {
    const res = await this.client.getAll().prefix(this.prefix).options(this.deadline()).exec();
    const kvs = new Map<string, string>();
    const modRevisions = new Map<string, number>();
    let placementRevision = 0;
    const marker = `${this.prefix}${ETCD_KEYS.placement}`;
    for (const kv of res.kvs) {
      const key = kv.key.toString();
      kvs.set(key, kv.value.toString());
      modRevisions.set(key, Number(kv.mod_revision));
      if (key === marker) placementRevision = Number(kv.mod_revision);
    }
    return { revision: Number(res.header.revision), placementRevision, kvs, modRevisions };
  }

  /** Watches the prefix from `fromRevision` (inclusive); etcd3 reconnects and resumes. */
  async watch(fromRevision: number, handlers: WatchHandlers): Promise<Watcher> {
    const watcher = await this.client
      .watch()
      .prefix(this.prefix)
      .startRevision(String(fromRevision))
      .create();
    watcher.on('data', handlers.data);
    watcher.on('connected', () => handlers.connected(true));
    watcher.on('disconnected', (err) => handlers.connected(false, err));
    watcher.on('error', handlers.error);
    return watcher;
  }
}

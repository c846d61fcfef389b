// `@engram/router/etcd`: following a router cluster's placement in etcd (library mode), and
// the etcd pieces router-node builds its etcd mode on. A separate entry point: importing
// `@engram/router` alone never loads the etcd client.
export { EtcdPlacement, type EtcdPlacementOptions } from './internal/etcd-placement.js';
export {
  DEFAULT_ETCD_REQUEST_TIMEOUT_MS,
  type EtcdEndpoints,
  EtcdPrefix,
  etcdClient,
  type PrefixSnapshot,
  type WatchHandlers,
} from './internal/etcd-prefix.js';
export { FollowedTable } from './internal/followed-table.js';
export {
  type FollowerStatus,
  PrefixFollower,
  type PrefixFollowerInit,
} from './internal/prefix-follower.js';

import { createPrivateKey, type KeyObject, X509Certificate } from 'node:crypto';
import { accessSync, constants, readFileSync, statSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { systemErrorText } from '@engram/common';
import { readAdminToken } from './admin.js';
import type { RouterNodeConfig } from './config.js';
import { ConfigError } from './errors.js';

// What the config names outside itself: the PEM files, the token file and the data
// directories. Checked before anything starts (and by `router-node check`), so a missing or
// broken file is a configuration error naming its key, not a stack trace halfway up.

type Pem = 'cert' | 'key';

function readable(key: string, path: string): Buffer {
  try {
    return readFileSync(path);
  } catch (err) {
    throw new ConfigError(key, path, `cannot read: ${systemErrorText(err)}`);
  }
}

// The first certificate of a file (a CA file may hold several) or the private key, parsed as
// TLS will parse it; a file that is not PEM (or an encrypted key: there is no passphrase
// setting) is refused here.
function parsed(key: string, path: string, kind: Pem): X509Certificate | KeyObject {
  const data = readable(key, path);
  try {
    return kind === 'cert' ? new X509Certificate(data) : createPrivateKey(data);
  } catch (err) {
    throw new ConfigError(
      key,
      path,
      `not a PEM ${kind === 'cert' ? 'certificate' : 'private key'}: ${(err as Error).message}`,
    );
  }
}

/** A directory the process must create files in: it exists and is writable, or can be made. */
function writableDir(key: string, path: string): void {
  let at = resolve(path);
  // Walk up to what exists: a directory still to be made needs a writable parent.
  for (;;) {
    let isDir: boolean;
    try {
      isDir = statSync(at).isDirectory();
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT' && dirname(at) !== at) {
        at = dirname(at);
        continue;
      }
      throw new ConfigError(key, path, `cannot use: ${systemErrorText(err)}`);
    }
    if (!isDir) {
      throw new ConfigError(
        key,
        path,
        `${at === resolve(path) ? 'is' : `${at} is`} not a directory`,
      );
    }
    try {
      accessSync(at, constants.W_OK | constants.X_OK);
    } catch (err) {
      const where = at === resolve(path) ? '' : ` (${at}, where it would be created)`;
      throw new ConfigError(key, path, `not writable${where}: ${systemErrorText(err)}`);
    }
    return;
  }
}

/**
 * Checks every file and directory `cfg` names: PEM files readable and parseable (and a
 * listener's key matching its certificate), the admin token file holding one token, the data
 * directories writable. Returns every problem found; the token is never quoted.
 */
export function checkConfigFiles(
  cfg: RouterNodeConfig,
  { localCluster = false }: { readonly localCluster?: boolean } = {},
): ConfigError[] {
  const problems: ConfigError[] = [];
  const check = (fn: () => void) => {
    try {
      fn();
    } catch (err) {
      if (!(err instanceof ConfigError)) throw err;
      problems.push(err);
    }
  };
  const pair = (prefix: string, cert: string | null, key: string | null) => {
    let x509: X509Certificate | undefined;
    let privateKey: KeyObject | undefined;
    if (cert !== null)
      check(() => (x509 = parsed(`${prefix}.cert`, cert, 'cert') as X509Certificate));
    if (key !== null) check(() => (privateKey = parsed(`${prefix}.key`, key, 'key') as KeyObject));
    if (x509 !== undefined && privateKey !== undefined && !x509.checkPrivateKey(privateKey)) {
      problems.push(
        new ConfigError(`${prefix}.key`, key, `does not match ${prefix}.cert (${cert})`),
      );
    }
  };
  const ca = (key: string, path: string | null) => {
    if (path !== null) check(() => parsed(key, path, 'cert'));
  };
  if (cfg.tls !== null) {
    pair('tls', cfg.tls.cert, cfg.tls.key);
    ca('tls.clientCa', cfg.tls.clientCa);
  }
  if (cfg.admin.enabled) {
    if (cfg.admin.tls !== null) {
      pair('admin.tls', cfg.admin.tls.cert, cfg.admin.tls.key);
      ca('admin.tls.clientCa', cfg.admin.tls.clientCa);
    }
    if (cfg.admin.tokenFile !== null) check(() => readAdminToken(cfg.admin));
  }
  if (cfg.pool.tls !== null) {
    pair('pool.tls', cfg.pool.tls.cert, cfg.pool.tls.key);
    ca('pool.tls.ca', cfg.pool.tls.ca);
  }
  if (cfg.etcd !== null) {
    pair('etcd', cfg.etcd.cert, cfg.etcd.key);
    ca('etcd.ca', cfg.etcd.ca);
  }
  if (cfg.dataDir !== null) check(() => writableDir('dataDir', cfg.dataDir!));
  if (localCluster && cfg.localCluster.dataDir !== null) {
    check(() => writableDir('localCluster.dataDir', cfg.localCluster.dataDir!));
  }
  return problems;
}

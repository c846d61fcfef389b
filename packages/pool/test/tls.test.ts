import * as grpc from '@grpc/grpc-js';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { ConnectionFailedError, ConnectionPool, type PoolOptions } from '../src/index.js';
import {
  type HealthServer,
  healthCheck,
  makeTestPki,
  rawHealthCheck,
  startHealthServer,
  type TestPki,
} from './helpers.js';

let pki: TestPki;
let tlsServer: HealthServer;
let mtlsServer: HealthServer;

beforeAll(async () => {
  pki = makeTestPki();
  const keyCerts = [{ cert_chain: pki.serverCert, private_key: pki.serverKey }];
  tlsServer = await startHealthServer({
    credentials: grpc.ServerCredentials.createSsl(null, keyCerts, false),
  });
  mtlsServer = await startHealthServer({
    credentials: grpc.ServerCredentials.createSsl(pki.ca, keyCerts, true),
  });
});

afterAll(async () => {
  await tlsServer?.close();
  await mtlsServer?.close();
  pki?.cleanup();
});

const pools: ConnectionPool[] = [];
afterEach(async () => {
  while (pools.length > 0) await pools.pop()!.close();
});

function pool(options: PoolOptions): ConnectionPool {
  const p = new ConnectionPool({ channelsPerNode: 2, connectTimeoutMs: 2000, ...options });
  pools.push(p);
  return p;
}

describe('TLS', () => {
  it('round-trips over TLS verified with the configured CA (channels and sessions)', async () => {
    const p = pool({ credentials: { kind: 'tls', ca: pki.ca } });
    p.addNode('t', tlsServer.address);
    expect(await healthCheck(p.acquireClient('t'))).toBe('SERVING');
    await p.connect('t', 'session');
    expect(await rawHealthCheck(p.acquireSession('t'))).toBe('SERVING');
  });

  it('verifies the server name given instead of the address host', async () => {
    const p = pool({ credentials: { kind: 'tls', ca: pki.ca, serverName: 'localhost' } });
    p.addNode('t', tlsServer.address);
    expect(await healthCheck(p.acquireClient('t'))).toBe('SERVING');
    await p.connect('t', 'session');
    expect(await rawHealthCheck(p.acquireSession('t'))).toBe('SERVING');
  });

  it('refuses a server whose certificate the CA did not sign', async () => {
    const p = pool({ credentials: { kind: 'tls', ca: pki.otherCa } });
    p.addNode('t', tlsServer.address);
    await expect(p.connect('t')).rejects.toBeInstanceOf(ConnectionFailedError);
    const err = (await p.connect('t', 'session').catch((e: unknown) => e)) as ConnectionFailedError;
    expect(err.code).toBe('ConnectionFailed');
    expect(err.cause.message).toMatch(/certificate/i);
  });
});

describe('mutual TLS', () => {
  it('round-trips with a client certificate', async () => {
    const p = pool({
      credentials: { kind: 'tls', ca: pki.ca, cert: pki.clientCert, key: pki.clientKey },
    });
    p.addNode('m', mtlsServer.address);
    await p.connect('m');
    expect(await healthCheck(p.acquireClient('m'))).toBe('SERVING');
    await p.connect('m', 'session');
    expect(await rawHealthCheck(p.acquireSession('m'))).toBe('SERVING');
  });

  it('is refused without a client certificate', async () => {
    const p = pool({ credentials: { kind: 'tls', ca: pki.ca } });
    p.addNode('m', mtlsServer.address);
    const err = await healthCheck(p.acquireClient('m')).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: grpc.status.UNAVAILABLE });
  });
});

import { join } from 'node:path';
import { callMemory } from '@engram/proto';
import * as grpc from '@grpc/grpc-js';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { generateTestCertificates, type TestCertificates } from '../src/test-support.js';
import { Cleanup, memoryClient, spawnNode, startNode, tempDir } from './helpers.js';

const cleanup = new Cleanup();
const suiteCleanup = new Cleanup();
afterEach(() => cleanup.run());

interface Pki extends TestCertificates {
  /** Holds ca.crt, server.crt, server.key (read by file path in the CLI test). */
  dir: string;
}

// Servers are addressed by IP; send SNI "localhost" (also in the certificate's SANs) because
// an IP address as TLS ServerName is deprecated (DEP0123).
const SNI: grpc.ClientOptions = { 'grpc.ssl_target_name_override': 'localhost' };

let pki: Pki;
beforeAll(() => {
  const dir = tempDir(suiteCleanup, 'engram-pki-');
  pki = { dir, ...generateTestCertificates(dir) };
  return () => suiteCleanup.run();
});

describe('TLS', () => {
  it('serves a round trip over TLS and refuses plaintext clients', async () => {
    const node = await startNode(cleanup, { tls: { cert: pki.serverCert, key: pki.serverKey } });
    const client = memoryClient(cleanup, node.address, grpc.credentials.createSsl(pki.ca), SNI);
    const stored = await callMemory(client, 'store', {
      spaceId: 's',
      memory: { content: 'secret' },
    });
    const res = await callMemory(client, 'recall', { spaceId: 's', cue: { text: 'secret' } });
    expect(res.memories.map((m) => m.memory?.id)).toEqual([stored.memoryId]);

    const plain = memoryClient(cleanup, node.address);
    await expect(
      callMemory(plain, 'recall', { spaceId: 's' }, { deadline: Date.now() + 5000 }),
    ).rejects.toMatchObject({ code: grpc.status.UNAVAILABLE });
  });

  it('requires a client certificate signed by --tls-client-ca', async () => {
    const node = await spawnNode(cleanup, [
      '--id',
      'tls1',
      '--port',
      '0',
      '--tls-cert',
      join(pki.dir, 'server.crt'),
      '--tls-key',
      join(pki.dir, 'server.key'),
      '--tls-client-ca',
      join(pki.dir, 'ca.crt'),
    ]);
    const withCert = memoryClient(
      cleanup,
      node.address,
      grpc.credentials.createSsl(pki.ca, pki.clientKey, pki.clientCert),
      SNI,
    );
    const ok = await callMemory(withCert, 'store', { spaceId: 's', memory: { content: 'mutual' } });
    expect(ok.routing?.servedBy).toBe('tls1');

    const withoutCert = memoryClient(
      cleanup,
      node.address,
      grpc.credentials.createSsl(pki.ca),
      SNI,
    );
    await expect(
      callMemory(withoutCert, 'recall', { spaceId: 's' }, { deadline: Date.now() + 5000 }),
    ).rejects.toMatchObject({ code: grpc.status.UNAVAILABLE });
  });
});

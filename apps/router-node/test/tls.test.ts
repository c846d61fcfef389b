import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { generateTestCertificates } from '@engram/memory-node/test-support';
import { MemoryServiceClient } from '@engram/proto';
import * as grpc from '@grpc/grpc-js';
import { afterEach, describe, expect, it } from 'vitest';
import { MEMORY_NODE_MAIN, RouterAdminClient } from '../src/index.js';
import {
  admin,
  adminClient,
  Cleanup,
  call,
  eventually,
  getTable,
  spawnRouter,
  startSlowNode,
  tempDir,
  testConfig,
} from './helpers.js';

const cleanup = new Cleanup();
afterEach(() => cleanup.run());

/** A memory node requiring client certificates (mutual TLS). */
function spawnTlsNode(dir: string): Promise<string> {
  const child = spawn(
    process.execPath,
    [
      MEMORY_NODE_MAIN,
      '--id',
      't1',
      '--port',
      '0',
      '--data-dir',
      join(dir, 'data'),
      '--tls-cert',
      join(dir, 'server.crt'),
      '--tls-key',
      join(dir, 'server.key'),
      '--tls-client-ca',
      join(dir, 'ca.crt'),
      '--log-level',
      'warn',
    ],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  const exited = new Promise((resolve) => child.once('exit', resolve));
  cleanup.add(async () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    await exited;
  });
  return new Promise((resolve) =>
    createInterface({ input: child.stdout! }).once('line', (line) =>
      resolve((JSON.parse(line) as { address: string }).address),
    ),
  );
}

describe('router-node TLS', () => {
  it('serves TLS on ingress and admin, and talks mutual TLS to the nodes', async () => {
    const dir = tempDir(cleanup);
    const pki = generateTestCertificates(dir);
    const nodeAddress = await spawnTlsNode(dir);
    const listenerTls = { cert: join(dir, 'server.crt'), key: join(dir, 'server.key') };
    const router = await spawnRouter(
      cleanup,
      testConfig({
        nodes: [{ id: 't1', address: nodeAddress }],
        workers: 1,
        tls: listenerTls,
        admin: { host: '127.0.0.1', port: 0, tls: listenerTls },
        pool: {
          tls: {
            ca: join(dir, 'ca.crt'),
            cert: join(dir, 'client.crt'),
            key: join(dir, 'client.key'),
          },
        },
      }),
    );
    const creds = grpc.credentials.createSsl(pki.ca);
    const client = new MemoryServiceClient(router.address, creds);
    cleanup.add(() => client.close());
    const stored = await call(client, 'store', { spaceId: 'tls', memory: { content: 'secret' } });
    expect(stored.routing?.servedBy).toBe('t1');
    const recalled = await call(client, 'recall', { spaceId: 'tls', cue: { text: 'secret' } });
    expect(recalled.memories.map((m) => m.memory?.content)).toEqual(['secret']);

    const admin = new RouterAdminClient(`127.0.0.1:${router.adminPort}`, creds);
    cleanup.add(() => admin.close());
    // Health checks reach the node over mutual TLS too: it stays up.
    const table = await getTable(admin);
    expect(table.nodes.map((n) => [n.id, n.state])).toEqual([['t1', 'up']]);

    const plain = new MemoryServiceClient(router.address, grpc.credentials.createInsecure());
    cleanup.add(() => plain.close());
    const err = await call(plain, 'recall', { spaceId: 'tls', cue: { text: 'x' } }, 1000).catch(
      (e) => e,
    );
    expect(err.code).toBe(grpc.status.UNAVAILABLE);
  });

  it('admin over TLS with a bearer token from admin.tokenFile: refused without it, rotated by SIGHUP', async () => {
    const dir = tempDir(cleanup);
    const pki = generateTestCertificates(dir);
    const node = await startSlowNode(cleanup, 'a', 0);
    const tokenFile = join(dir, 'admin.token');
    writeFileSync(tokenFile, 'first-token-0123456789\n');
    const listenerTls = { cert: join(dir, 'server.crt'), key: join(dir, 'server.key') };
    const config = testConfig({
      nodes: [{ id: 'a', address: node.address }],
      workers: 0,
      admin: { host: '127.0.0.1', port: 0, tls: listenerTls, tokenFile },
    });
    const router = await spawnRouter(cleanup, config);
    const creds = () => grpc.credentials.createSsl(pki.ca);
    const without = await getTable(
      adminClient(cleanup, router.adminPort, undefined, creds()),
    ).catch((e) => e);
    expect(without.code).toBe(grpc.status.UNAUTHENTICATED);
    const first = adminClient(cleanup, router.adminPort, 'first-token-0123456789', creds());
    expect((await getTable(first)).nodes.map((n) => n.id)).toEqual(['a']);

    writeFileSync(tokenFile, 'second-token-0123456789\n');
    router.child.kill('SIGHUP');
    await eventually(async () => {
      const e = await getTable(first).catch((x) => x);
      return e?.code === grpc.status.UNAUTHENTICATED;
    });
    const second = adminClient(cleanup, router.adminPort, 'second-token-0123456789', creds());
    expect(await admin(second, 'GetTable')).toMatchObject({ nodes: [{ id: 'a' }] });
    // A token file that cannot be read on SIGHUP keeps the token in force (never none).
    writeFileSync(tokenFile, '');
    router.child.kill('SIGHUP');
    await eventually(() => router.stderr().includes('admin.tokenFile'));
    expect((await getTable(second)).nodes.map((n) => n.id)).toEqual(['a']);
    expect(router.stderr()).toMatch(/"event":"admin-unauthenticated"/);
    expect(router.stderr()).not.toContain('first-token');
    expect(router.stderr()).not.toContain('second-token');
  });
});

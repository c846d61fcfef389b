import { HealthClient } from '@engram/proto';
import * as grpc from '@grpc/grpc-js';
import { afterEach, describe, expect, it } from 'vitest';
import { Cleanup, eventually, spawnRouter, startSlowNode, testConfig } from './helpers.js';

const cleanup = new Cleanup();
afterEach(() => cleanup.run());

interface Watched {
  statuses: string[];
  ended: Promise<grpc.StatusObject>;
}

function watch(client: HealthClient, service: string): Watched {
  const statuses: string[] = [];
  const stream = client.watch({ service });
  stream.on('data', (r: { status: string }) => statuses.push(r.status));
  stream.on('error', () => {});
  const ended = new Promise<grpc.StatusObject>((resolve) => stream.on('status', resolve));
  cleanup.add(() => stream.cancel());
  return { statuses, ended };
}

describe('grpc.health.v1 Health/Watch on the ingress', () => {
  it.each([0, 1])(
    'streams SERVING, then NOT_SERVING and the end of the stream on SIGTERM (workers %i)',
    async (workers) => {
      const node = await startSlowNode(cleanup, 'a', 0);
      const router = await spawnRouter(
        cleanup,
        testConfig({ nodes: [{ id: 'a', address: node.address, zone: 'z1' }], workers }),
      );
      const client = new HealthClient(router.address, grpc.credentials.createInsecure());
      cleanup.add(() => client.close());
      const all = watch(client, '');
      const named = watch(client, 'engram.v1.MemoryService');
      const unknown = watch(client, 'no.such.Service');
      await eventually(
        () => all.statuses.length > 0 && named.statuses.length > 0 && unknown.statuses.length > 0,
      );
      expect(all.statuses).toEqual(['SERVING']);
      expect(named.statuses).toEqual(['SERVING']);
      expect(unknown.statuses).toEqual(['SERVICE_UNKNOWN']);

      router.child.kill('SIGTERM');
      const status = await all.ended;
      expect(status.code).toBe(grpc.status.OK);
      expect(all.statuses).toEqual(['SERVING', 'NOT_SERVING']);
      expect((await named.ended).code).toBe(grpc.status.OK);
      expect(named.statuses).toEqual(['SERVING', 'NOT_SERVING']);
      // Open watches do not hold the shutdown up to the grace period: it exits cleanly.
      expect(await router.exited).toEqual({ code: 0, signal: null });
    },
  );
});

import { callMemory, callReplica, checkHealth, type MemoryServiceClient } from '@engram/proto';
import * as grpc from '@grpc/grpc-js';
import { afterEach, describe, expect, it } from 'vitest';
import { FAULT_DEFAULTS, type FaultControl, INJECTED_FAULT_MESSAGE } from '../src/index.js';
import { getFaults, putFaults, spawnMemoryNode } from '../src/test-support.js';
import {
  Cleanup,
  eventually,
  healthClient,
  MAIN_JS,
  memoryClient,
  replicaClient,
  startNode,
} from './helpers.js';

// Fault injection over real servers on 127.0.0.1: a node made slow, failing or hung, from the
// start or at runtime (in process and through the admin endpoint of a child process).

const cleanup = new Cleanup();
afterEach(() => cleanup.run());

const LATENCY_MS = 200;
/** Client deadline of calls expected to be held: short, the hold is what is tested. */
const HELD_DEADLINE_MS = 300;
/**
 * libuv runs a timer when its loop clock (whole ms, read once per loop turn) reaches it, so
 * measured on `performance.now()` a delay can look up to 1 ms short.
 */
const TIMER_SLACK_MS = 1;
/** Deadline of calls expected to be answered: generous, for a busy shared machine. */
const ANSWER_DEADLINE_MS = 30_000;

const RECALL = { spaceId: 'space-a', cue: { text: 'cat' } };

function answerDeadline(): number {
  return Date.now() + ANSWER_DEADLINE_MS;
}

async function grpcCode(call: Promise<unknown>): Promise<number | 'OK'> {
  try {
    await call;
    return 'OK';
  } catch (err) {
    return (err as grpc.ServiceError).code;
  }
}

async function elapsedMs(call: Promise<unknown>): Promise<number> {
  const start = performance.now();
  await call;
  return performance.now() - start;
}

async function setup(options: Parameters<typeof startNode>[1] = {}) {
  const node = await startNode(cleanup, options);
  if (node.faults === undefined) throw new Error('fault injection is off');
  return { node, faults: node.faults, client: memoryClient(cleanup, node.address) };
}

/** Starts a Recall that `hang` holds; resolves once the node holds it, with its outcome to come. */
async function heldRecall(
  faults: FaultControl,
  client: MemoryServiceClient,
  deadline: number,
): Promise<{ outcome: Promise<number | 'OK'> }> {
  const before = faults.state().heldCalls;
  const outcome = grpcCode(callMemory(client, 'recall', RECALL, { deadline }));
  await eventually(() => faults.state().heldCalls === before + 1);
  return { outcome };
}

describe('fault injection in process', () => {
  it('is off unless faults or admin is given: no control, calls untouched', async () => {
    const node = await startNode(cleanup);
    expect(node.faults).toBeUndefined();
    expect(node.admin).toBeUndefined();
    const client = memoryClient(cleanup, node.address);
    expect(await grpcCode(callMemory(client, 'recall', RECALL))).toBe('OK');
    const withAdmin = await startNode(cleanup, { admin: { host: '127.0.0.1', port: 0 } });
    expect(withAdmin.faults?.state()).toEqual({ ...FAULT_DEFAULTS, heldCalls: 0 });
    expect(withAdmin.admin?.address).toBe(`127.0.0.1:${withAdmin.admin?.port}`);
  });

  it('latencyMs: a call is answered no sooner than the latency', async () => {
    const { client } = await setup({ faults: { latencyMs: LATENCY_MS } });
    const ms = await elapsedMs(
      callMemory(client, 'recall', RECALL, { deadline: answerDeadline() }),
    );
    expect(ms).toBeGreaterThanOrEqual(LATENCY_MS - TIMER_SLACK_MS);
  });

  it('errorRate 1: every call fails UNAVAILABLE, an injected fault, and stores nothing', async () => {
    const { node, faults, client } = await setup({ faults: { errorRate: 1 } });
    const store = callMemory(client, 'store', {
      spaceId: 'space-a',
      memory: { content: 'the cat sat', confidence: 1 },
    });
    await expect(store).rejects.toMatchObject({
      code: grpc.status.UNAVAILABLE,
      details: INJECTED_FAULT_MESSAGE,
    });
    const replica = replicaClient(cleanup, node.address);
    expect(await grpcCode(callReplica(replica, 'listSpaces', {}))).toBe(grpc.status.UNAVAILABLE);
    faults.update({ errorRate: 0 });
    expect((await callMemory(client, 'recall', RECALL)).memories).toEqual([]);
  });

  it('hang: a call is held until the client deadline, then forgotten', async () => {
    const { faults, client } = await setup({ faults: { hang: true } });
    const { outcome } = await heldRecall(faults, client, Date.now() + HELD_DEADLINE_MS);
    expect(await outcome).toBe(grpc.status.DEADLINE_EXCEEDED);
    await eventually(() => faults.state().heldCalls === 0);
  });

  it('hang: a call the client cancels is forgotten', async () => {
    const { faults, client } = await setup({ faults: { hang: true } });
    const ended = new Promise<grpc.ServiceError | null>((resolve) => {
      const call = client.recall(RECALL, (err) => resolve(err));
      void eventually(() => faults.state().heldCalls === 1).then(() => call.cancel());
    });
    expect((await ended)?.code).toBe(grpc.status.CANCELLED);
    await eventually(() => faults.state().heldCalls === 0);
  });

  it('hang turned off: the held calls are answered normally', async () => {
    const { faults, client } = await setup({ faults: { hang: true } });
    const first = await heldRecall(faults, client, answerDeadline());
    const second = await heldRecall(faults, client, answerDeadline());
    expect(faults.update({ hang: false }).heldCalls).toBe(0);
    expect([await first.outcome, await second.outcome]).toEqual(['OK', 'OK']);
  });

  it('closing the node lets a held call end instead of waiting out the shutdown timeout', async () => {
    const { node, faults, client } = await setup({
      faults: { hang: true },
      shutdownTimeoutMs: 60_000,
    });
    const { outcome } = await heldRecall(faults, client, answerDeadline());
    await node.close();
    expect(await outcome).toBe('OK');
  });

  it('closing the node ends a health Watch that hang held (health set)', async () => {
    const { node, faults } = await setup({
      faults: { hang: true, health: true },
      shutdownTimeoutMs: 60_000,
    });
    const watch = healthClient(cleanup, node.address).watch({ service: '' });
    const ended = new Promise<void>((resolve) => watch.on('status', () => resolve()));
    watch.on('error', () => {}); // the status is what is awaited
    await eventually(() => faults.state().heldCalls === 1);
    await node.close();
    await ended;
  });

  it('health checks answer through hang and errors unless health is set', async () => {
    const { node, faults, client } = await setup({ faults: { hang: true } });
    const health = healthClient(cleanup, node.address);
    expect(await checkHealth(health, '', { deadline: answerDeadline() })).toEqual({
      status: 'SERVING',
    });
    faults.update({ hang: false, errorRate: 1 });
    expect(await checkHealth(health, '', { deadline: answerDeadline() })).toEqual({
      status: 'SERVING',
    });
    expect(await grpcCode(callMemory(client, 'recall', RECALL))).toBe(grpc.status.UNAVAILABLE);
    faults.update({ errorRate: 0, hang: true, health: true });
    const deadline = Date.now() + HELD_DEADLINE_MS;
    expect(await grpcCode(checkHealth(health, '', { deadline }))).toBe(
      grpc.status.DEADLINE_EXCEEDED,
    );
  });

  it('refuses bad fault options with a typed error naming the field', async () => {
    await expect(startNode(cleanup, { faults: { errorRate: 2 } })).rejects.toMatchObject({
      code: 'InvalidArgument',
      field: 'faults.errorRate',
      value: 2,
    });
    await expect(
      startNode(cleanup, { admin: { host: '127.0.0.1', port: 70_000 } }),
    ).rejects.toMatchObject({ code: 'InvalidArgument', field: 'admin.port', value: 70_000 });
  });
});

describe('fault injection in a child process, changed through the admin endpoint', () => {
  async function spawn(options: Omit<Parameters<typeof spawnMemoryNode>[0], 'id' | 'zone'>) {
    const node = await spawnMemoryNode({ id: 'n1', zone: 'a', main: MAIN_JS, ...options });
    cleanup.add(() => node.stop(5000));
    return { node, client: memoryClient(cleanup, node.address) };
  }

  it('starts with the --fault-* options and reports its admin address', async () => {
    const { node, client } = await spawn({ admin: true, faults: { latencyMs: LATENCY_MS } });
    expect(node.adminAddress).toMatch(/^127\.0\.0\.1:\d+$/);
    expect(await node.getFaults()).toEqual({
      latencyMs: LATENCY_MS,
      errorRate: 0,
      hang: false,
      health: false,
      heldCalls: 0,
    });
    const ms = await elapsedMs(
      callMemory(client, 'recall', RECALL, { deadline: answerDeadline() }),
    );
    expect(ms).toBeGreaterThanOrEqual(LATENCY_MS - TIMER_SLACK_MS);
  });

  it('PUT /faults changes the behaviour mid-run', async () => {
    const { node, client } = await spawn({ admin: true });
    expect(await grpcCode(callMemory(client, 'recall', RECALL))).toBe('OK');
    expect(await node.setFaults({ errorRate: 1 })).toMatchObject({ errorRate: 1 });
    expect(await grpcCode(callMemory(client, 'recall', RECALL))).toBe(grpc.status.UNAVAILABLE);
    await node.setFaults({ errorRate: 0, hang: true });
    const deadline = Date.now() + HELD_DEADLINE_MS;
    expect(await grpcCode(callMemory(client, 'recall', RECALL, { deadline }))).toBe(
      grpc.status.DEADLINE_EXCEEDED,
    );
    await node.setFaults({ hang: false });
    expect(await grpcCode(callMemory(client, 'recall', RECALL))).toBe('OK');
  });

  it('a bad PUT body is 400 {code, field, value, message} and changes nothing', async () => {
    const { node } = await spawn({ admin: true, faults: { latencyMs: 5 } });
    const admin = node.adminAddress!;
    const before = await getFaults(admin);
    const put = (body: string) => fetch(`http://${admin}/faults`, { method: 'PUT', body });
    const cases: [string, string, unknown][] = [
      ['{"latencyMs": 1, "errorRate": 1.5}', 'errorRate', 1.5],
      ['{"hang": "yes"}', 'hang', 'yes'],
      ['{"latency": 1}', 'latency', 1],
      ['[]', 'body', []],
      ['{not json', 'body', '{not json'],
    ];
    for (const [body, field, value] of cases) {
      const res = await put(body);
      expect(res.status).toBe(400);
      const error = (await res.json()) as Record<string, unknown>;
      expect(error).toMatchObject({ code: 'InvalidArgument', field, value });
      expect(error.message).toEqual(expect.stringContaining(field));
    }
    expect(await getFaults(admin)).toEqual(before);
    await expect(putFaults(admin, { errorRate: -1 })).rejects.toThrow(/400 .*"field":"errorRate"/);
  });

  it('answers 404 off /faults and 405 to other methods', async () => {
    const { node } = await spawn({ admin: true });
    const base = `http://${node.adminAddress}`;
    expect((await fetch(`${base}/other`)).status).toBe(404);
    const post = await fetch(`${base}/faults`, { method: 'POST', body: '{}' });
    expect(post.status).toBe(405);
    expect(post.headers.get('allow')).toBe('GET, PUT');
  });

  it('setFaults rejects on a node started without the admin endpoint', async () => {
    const { node } = await spawn({});
    expect(node.adminAddress).toBeUndefined();
    await expect(node.setFaults({ hang: true })).rejects.toThrow(/no admin endpoint/);
  });
});

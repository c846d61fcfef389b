import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildRing } from '@engram/ring';
import { LagTable } from '@engram/router';
import { pino } from 'pino';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { CONFIG_DEFAULTS, type RouterNodeConfig } from '../src/internal/config.js';
import { DataMovement } from '../src/internal/data-movement.js';
import { Membership } from '../src/internal/membership.js';
import { FakeTime } from './fake-time.js';

const NODES = [{ id: 'n1', address: '127.0.0.1:7001', zone: '' }];

describe('DataMovement.reconfigure', () => {
  let movement: DataMovement | undefined;
  let dir = '';
  afterEach(async () => {
    await movement?.close();
    movement = undefined;
    if (dir !== '') rmSync(dir, { recursive: true, force: true });
  });

  async function open(
    config: RouterNodeConfig,
    time: FakeTime,
    health: 'up' | undefined = undefined,
  ): Promise<DataMovement> {
    let membership = Membership.create(NODES, [], null, { maxNodes: 4, maxSlots: 4 }, true);
    if (health !== undefined) membership = membership.setHealth('n1', health);
    const ring = buildRing({ nodes: NODES, vnodesPerNode: 8, replicationFactor: 1 });
    movement = await DataMovement.open(
      {
        config,
        upstream: { kind: 'insecure' },
        lag: new LagTable({ slots: 4 }),
        timers: time,
        log: pino({ level: 'silent' }),
        membership: () => membership,
        ring: () => ring,
        complete: () => {},
      },
      () => 0,
    );
    return movement;
  }

  it('tries a node repair that could not reach every space again after a pause, until it succeeds', async () => {
    dir = mkdtempSync(join(tmpdir(), 'engram-dm-'));
    const time = new FakeTime();
    const m = await open({ ...CONFIG_DEFAULTS, nodes: NODES, dataDir: dir }, time, 'up');
    const repairNode = vi
      .spyOn(m.repairer, 'repairNode')
      .mockResolvedValueOnce({ spaces: 0, failed: 1 })
      .mockResolvedValue({ spaces: 1, failed: 0 });
    await m.start();
    m.markRepairNeeded('n1');
    await time.advance(0);
    expect(repairNode).toHaveBeenCalledTimes(1);
    expect(m.status('n1').repairNeeded).toBe(true);
    await time.advance(999);
    expect(repairNode).toHaveBeenCalledTimes(1);
    await time.advance(1);
    expect(repairNode).toHaveBeenCalledTimes(2);
    expect(m.status('n1').repairNeeded).toBe(false);
    await time.advance(10_000);
    expect(repairNode).toHaveBeenCalledTimes(2);
  });

  it('starts, changes and stops the background repair sweep by repair.intervalMs', async () => {
    dir = mkdtempSync(join(tmpdir(), 'engram-dm-'));
    const time = new FakeTime();
    const config: RouterNodeConfig = { ...CONFIG_DEFAULTS, nodes: NODES, dataDir: dir };
    const m = await open(config, time);
    const sweep = vi.spyOn(m.repairer, 'sweep').mockResolvedValue(undefined as never);
    await m.start();
    await time.advance(10_000);
    expect(sweep).toHaveBeenCalledTimes(0); // repair.intervalMs 0: off
    m.reconfigure({ ...config, repair: { ...config.repair, intervalMs: 1000 } });
    await time.advance(3000);
    expect(sweep).toHaveBeenCalledTimes(3);
    m.reconfigure({ ...config, repair: { ...config.repair, intervalMs: 2000 } });
    await time.advance(4000);
    expect(sweep).toHaveBeenCalledTimes(5);
    m.reconfigure(config);
    await time.advance(10_000);
    expect(sweep).toHaveBeenCalledTimes(5);
  });

  it('fences streams by router.deadlineMs; a lowered one keeps the old length for as long', async () => {
    dir = mkdtempSync(join(tmpdir(), 'engram-dm-'));
    const time = new FakeTime();
    const config: RouterNodeConfig = { ...CONFIG_DEFAULTS, nodes: NODES, dataDir: dir };
    const m = await open(config, time);
    expect(m.fenceMs).toBe(10_000);
    m.reconfigure({ ...config, router: { ...config.router, deadlineMs: 30_000 } });
    expect(m.fenceMs).toBe(30_000); // raised: at once
    const lowered = { ...config, router: { ...config.router, deadlineMs: 2000 } };
    m.reconfigure(lowered);
    expect(m.fenceMs).toBe(30_000); // calls of the 30 s deadline may still be running
    await time.advance(29_999);
    expect(m.fenceMs).toBe(30_000);
    await time.advance(1);
    expect(m.fenceMs).toBe(2000);
  });
});

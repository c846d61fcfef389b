import type { NodeInfo, PlacementTable } from '@engram/ring';
import { type ReplicaAccess, repairSpace, type SpaceRepair } from '@engram/router';
import type { Logger } from 'pino';
import type { Timers } from './timers.js';

/** Spaces listed per ListSpaces page when a node is repaired as a whole. */
const LIST_PAGE = 1000;

export interface RepairerInit {
  readonly access: ReplicaAccess;
  /** The routing table now (current placements). */
  readonly table: () => PlacementTable;
  /** Nodes that answer (health up), by id: only those are compared. */
  readonly isUp: (nodeId: string) => boolean;
  readonly timers: Timers;
  readonly log: Logger;
  /** Spaces compared per second by whole-node and background repair. */
  readonly spacesPerSecond: number;
}

/** Totals for metrics and GetTable. */
export interface RepairStats {
  spacesCompared: number;
  spacesDiffered: number;
  entriesApplied: number;
  failures: number;
}

/**
 * Anti-entropy in the control plane: one space at a time (the Router's `repairSpace`: digests
 * compared, what a replica lacks copied to it), whole nodes (every space the node should hold,
 * at `spacesPerSecond`), and the background sweep. Requests for a space already being repaired
 * share its run.
 */
export class Repairer {
  readonly #init: RepairerInit;
  readonly #running = new Map<string, Promise<SpaceRepair>>();
  readonly stats: RepairStats = {
    spacesCompared: 0,
    spacesDiffered: 0,
    entriesApplied: 0,
    failures: 0,
  };
  #stopped = false;

  constructor(init: RepairerInit) {
    this.#init = init;
  }

  stop(): void {
    this.#stopped = true;
  }

  /** The space's reachable replicas compared and made equal; shares a run already going. */
  repairSpace(spaceId: string): Promise<SpaceRepair> {
    let run = this.#running.get(spaceId);
    if (run === undefined) {
      run = this.#repair(spaceId).finally(() => this.#running.delete(spaceId));
      this.#running.set(spaceId, run);
    }
    return run;
  }

  async #repair(spaceId: string): Promise<SpaceRepair> {
    const placement = this.#init.table().lookup(spaceId);
    const nodes = [placement.primary, ...placement.replicas].filter((n) => this.#init.isUp(n.id));
    try {
      const report = await repairSpace(this.#init.access, spaceId, nodes);
      this.stats.spacesCompared++;
      if (report.differed) {
        this.stats.spacesDiffered++;
        this.stats.entriesApplied += report.applied;
        this.#init.log.info(
          { event: 'repair-space', spaceId, applied: report.applied, replicas: report.compared },
          `repaired space ${spaceId}: ${report.applied} entries copied`,
        );
      }
      return report;
    } catch (err) {
      this.stats.failures++;
      throw err;
    }
  }

  /**
   * Every space `nodeId` holds or should hold (listed from every up node), repaired at
   * `spacesPerSecond`. Resolves with the spaces repaired; a space that failed, or that was
   * compared without the node (it did not answer), is counted as failed and skipped (the next
   * repair takes it again).
   */
  async repairNode(nodeId: string): Promise<{ spaces: number; failed: number }> {
    const table = this.#init.table();
    const spaces = await this.listSpaces(table.nodes.filter((n) => this.#init.isUp(n.id)));
    let count = 0;
    let failed = 0;
    for (const spaceId of spaces) {
      if (this.#stopped) break;
      const placement = this.#init.table().lookup(spaceId);
      if (placement.primary.id !== nodeId && !placement.replicas.some((r) => r.id === nodeId)) {
        continue;
      }
      try {
        const report = await this.repairSpace(spaceId);
        // Repaired only if the node itself took part (it may have gone away meanwhile).
        if (report.compared.includes(nodeId)) count++;
        else failed++;
      } catch {
        failed++;
      }
      await this.#pace();
    }
    return { spaces: count, failed };
  }

  /**
   * The union of the spaces held by `nodes`, in code-point order. A node that cannot list is
   * skipped (`complete: false`: repair gets another chance) or fails the whole listing
   * (`complete: true`, for streaming: a space missed there would be hidden once the change
   * applies).
   */
  async listSpaces(nodes: readonly NodeInfo[], complete = false): Promise<string[]> {
    const all = new Set<string>();
    await Promise.all(
      nodes.map(async (node) => {
        let after = '';
        for (;;) {
          let page: Awaited<ReturnType<ReplicaAccess['listSpaces']>>;
          try {
            page = await this.#init.access.listSpaces(node, after, LIST_PAGE);
          } catch (err) {
            if (complete) throw err;
            this.#init.log.warn({ err, node: node.id }, 'listing spaces failed');
            return;
          }
          for (const s of page.spaces) all.add(s.spaceId);
          const last = page.spaces.at(-1)?.spaceId;
          if (!page.more || last === undefined || last === after) return;
          after = last;
        }
      }),
    );
    return [...all].sort(codePointOrder);
  }

  /** One background sweep over every space (repair.intervalMs). */
  async sweep(): Promise<void> {
    const table = this.#init.table();
    const spaces = await this.listSpaces(table.nodes.filter((n) => this.#init.isUp(n.id)));
    for (const spaceId of spaces) {
      if (this.#stopped) return;
      await this.repairSpace(spaceId).catch(() => {});
      await this.#pace();
    }
  }

  #pace(): Promise<void> {
    const ms = 1000 / this.#init.spacesPerSecond;
    return new Promise((resolve) => this.#init.timers.setTimeout(resolve, ms));
  }
}

function codePointOrder(a: string, b: string): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    const x = a.codePointAt(i)!;
    const y = b.codePointAt(i)!;
    if (x !== y) return x - y;
    if (x > 0xffff) i++;
  }
  return a.length - b.length;
}

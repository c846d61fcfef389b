import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { arch, cpus, loadavg, platform } from 'node:os';
import { dirname, join } from 'node:path';
import { QUICK } from './quick.js';
import { formatTable, type Table } from './table.js';

export interface ReportOptions {
  /** Results directory; default `<repo root>/bench/results`. */
  dir?: string;
}

function repoRoot(): string {
  let at = process.cwd();
  while (!existsSync(join(at, 'pnpm-workspace.yaml'))) {
    const up = dirname(at);
    if (up === at) return process.cwd();
    at = up;
  }
  return at;
}

const round2 = (n: number) => Math.round(n * 100) / 100;

/**
 * Collects a bench's tables, prints each as it is added, and writes them with the run's
 * stamp (machine, Node, load average at start and end, date, quick or full) to
 * `bench/results/<name>.json`. Create it first thing, so the start load is taken before
 * the bench loads the machine.
 */
export class BenchReport {
  readonly #name: string;
  readonly #file: string;
  readonly #started = new Date();
  readonly #loadStart = loadavg().map(round2);
  readonly #tables: Table[] = [];
  readonly #notes: string[] = [];

  constructor(name: string, options: ReportOptions = {}) {
    this.#name = name;
    this.#file = join(options.dir ?? join(repoRoot(), 'bench', 'results'), `${name}.json`);
    const cpu = cpus()[0]?.model ?? 'unknown cpu';
    console.log(
      `${name}: ${QUICK ? 'quick' : 'full'} run, node ${process.version}, ${cpu} × ${cpus().length}, load ${this.#loadStart.join(' ')}`,
    );
  }

  /** Prints `table` and keeps it for the JSON file. */
  table(table: Table): void {
    this.#tables.push(table);
    console.log(`\n${formatTable(table)}`);
  }

  /** A line printed now and kept in the JSON (a size, a caveat, a skipped section). */
  note(text: string): void {
    this.#notes.push(text);
    console.log(text);
  }

  /** Writes the JSON file; returns its path. */
  write(): string {
    const loadEnd = loadavg().map(round2);
    mkdirSync(dirname(this.#file), { recursive: true });
    const json = {
      bench: this.#name,
      mode: QUICK ? 'quick' : 'full',
      date: this.#started.toISOString(),
      machine: {
        cpu: cpus()[0]?.model ?? 'unknown',
        cores: cpus().length,
        platform: platform(),
        arch: arch(),
      },
      node: process.version,
      loadavg: { start: this.#loadStart, end: loadEnd },
      tables: this.#tables,
      notes: this.#notes,
    };
    writeFileSync(this.#file, `${JSON.stringify(json, null, 2)}\n`);
    console.log(
      `\nload ${this.#loadStart.join(' ')} → ${loadEnd.join(' ')}; results in ${this.#file}`,
    );
    return this.#file;
  }
}

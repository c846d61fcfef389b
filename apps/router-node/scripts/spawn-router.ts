// One router-node for the measurement scripts: a build's dist/main.js started with workers 1,
// no admin listener, every port free, in front of `nodes`; resolves once it is listening.
import { type ChildProcess, spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import type { NodeConfig } from '../src/index.js';

export interface ScriptRouter {
  readonly child: ChildProcess;
  /** The data listener's port. */
  readonly port: number;
  readonly metricsPort: number;
}

/** Starts `main` with its config written to `dir`/router.json. */
export async function spawnScriptRouter(
  main: string,
  nodes: readonly NodeConfig[],
  dir: string,
): Promise<ScriptRouter> {
  const config = join(dir, 'router.json');
  writeFileSync(
    config,
    JSON.stringify({
      nodes,
      workers: 1,
      listen: { host: '127.0.0.1', port: 0 },
      admin: { enabled: false },
      metrics: { host: '127.0.0.1', port: 0 },
      logLevel: 'warn',
    }),
  );
  const child = spawn(process.execPath, [main, '--config', config], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const line = await new Promise<string>((resolve) =>
    createInterface({ input: child.stdout! }).once('line', resolve),
  );
  const { port, metricsPort } = JSON.parse(line) as { port: number; metricsPort: number };
  return { child, port, metricsPort };
}

#!/usr/bin/env node
/**
 * memory-node CLI:
 *   node dist/main.js --id n1 [--port 0] [--zone a] [--host 127.0.0.1] [--data-dir DIR]
 *     [--max-content-bytes N] [--tls-cert F --tls-key F [--tls-client-ca F]] [--log-level info]
 * Prints one JSON line on stdout once bound:
 *   {"event":"listening","id":"n1","zone":"a","address":"127.0.0.1:43567","port":43567}
 * Logs (pino JSON) go to stderr. SIGTERM/SIGINT: graceful stop, exit 0.
 */
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { pino } from 'pino';
import { type MemoryNodeOptions, startMemoryNode } from './index.js';

const USAGE =
  'usage: memory-node --id ID [--port 0] [--zone Z] [--host 127.0.0.1] [--data-dir DIR] ' +
  '[--max-content-bytes N] [--tls-cert F --tls-key F [--tls-client-ca F]] [--log-level info]';

function fail(message: string): never {
  process.stderr.write(`${message}\n${USAGE}\n`);
  process.exit(2);
}

function intArg(name: string, v: string | undefined): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isInteger(n)) fail(`--${name} must be an integer, got ${JSON.stringify(v)}`);
  return n;
}

async function main(): Promise<void> {
  let values: Record<string, string | undefined>;
  try {
    ({ values } = parseArgs({
      options: {
        id: { type: 'string' },
        port: { type: 'string' },
        zone: { type: 'string' },
        host: { type: 'string' },
        'data-dir': { type: 'string' },
        'max-content-bytes': { type: 'string' },
        'tls-cert': { type: 'string' },
        'tls-key': { type: 'string' },
        'tls-client-ca': { type: 'string' },
        'log-level': { type: 'string' },
      },
      strict: true,
      allowPositionals: false,
    }) as { values: Record<string, string | undefined> });
  } catch (err) {
    fail((err as Error).message);
  }
  if (values.id === undefined) fail('--id is required');
  const logger = pino(
    { level: values['log-level'] ?? 'info', base: { node: values.id } },
    pino.destination({ dest: 2, sync: true }),
  );
  const options: MemoryNodeOptions = { id: values.id, logger };
  const port = intArg('port', values.port);
  if (port !== undefined) options.port = port;
  if (values.zone !== undefined) options.zone = values.zone;
  if (values.host !== undefined) options.host = values.host;
  if (values['data-dir'] !== undefined) options.dataDir = values['data-dir'];
  const maxContentBytes = intArg('max-content-bytes', values['max-content-bytes']);
  if (maxContentBytes !== undefined) options.maxContentBytes = maxContentBytes;
  const cert = values['tls-cert'];
  const key = values['tls-key'];
  const clientCa = values['tls-client-ca'];
  if ((cert === undefined) !== (key === undefined)) fail('--tls-cert and --tls-key go together');
  if (clientCa !== undefined && cert === undefined)
    fail('--tls-client-ca needs --tls-cert and --tls-key');
  if (cert !== undefined && key !== undefined) {
    options.tls = { cert: readFileSync(cert), key: readFileSync(key) };
    if (clientCa !== undefined) options.tls.clientCa = readFileSync(clientCa);
  }

  const node = await startMemoryNode(options);
  process.stdout.write(
    `${JSON.stringify({ event: 'listening', id: node.id, zone: node.zone, address: node.address, port: node.port })}\n`,
  );

  let stopping = false;
  const stop = (signal: NodeJS.Signals) => {
    if (stopping) {
      logger.warn({ signal }, 'second signal; exiting now');
      process.exit(1);
    }
    stopping = true;
    logger.info({ signal }, 'stopping');
    node.close().then(
      () => process.exit(0),
      (err: unknown) => {
        logger.error({ err }, 'error while stopping');
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}

main().catch((err: unknown) => {
  process.stderr.write(
    `memory-node failed to start: ${err instanceof Error ? err.stack : String(err)}\n`,
  );
  process.exit(1);
});

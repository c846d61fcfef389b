// Writes the configuration table of README.md from CONFIG_SCHEMA, between the
// `<!-- config-table:start -->` / `<!-- config-table:end -->` markers; the rest of the README is
// left as it is. `--check` writes nothing and exits 1 when the README differs (the unit test in
// test/config-doc.test.ts fails the same way).
//   pnpm --filter @engram/router-node config-table [--check]
import { readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { withConfigTable } from '../src/internal/config-doc.js';

const readmePath = fileURLToPath(new URL('../README.md', import.meta.url));
const readme = readFileSync(readmePath, 'utf8');
const next = withConfigTable(readme);
if (process.argv.includes('--check')) {
  if (next !== readme) {
    process.stderr.write(
      'README.md: the config table differs from CONFIG_SCHEMA; run config-table\n',
    );
    process.exit(1);
  }
} else if (next !== readme) {
  writeFileSync(readmePath, next);
  process.stdout.write('README.md: config table rewritten\n');
}

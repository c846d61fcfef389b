// Build step: copies the repository's `protos/` (the contract shared with other languages, the
// one source of truth) into this package, so the published tarball carries the `.proto` files
// its loader reads. The copy is replaced whole, so a proto deleted upstream does not linger.
import { cpSync, rmSync, statSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const from = fileURLToPath(new URL('../../../protos/', import.meta.url));
const to = fileURLToPath(new URL('../protos/', import.meta.url));

rmSync(to, { recursive: true, force: true });
cpSync(from, to, {
  recursive: true,
  filter: (src) => src.endsWith('.proto') || statSync(src).isDirectory(),
});

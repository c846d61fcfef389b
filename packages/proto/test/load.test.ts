import { cpSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import {
  BUNDLED_PROTO_ROOT,
  HEALTH_PROTO_FILE,
  isProtoError,
  loadProtos,
  MEMORY_PROTO_FILE,
  PROTO_ROOT_ENV,
} from '../src/index.js';

const dirs: string[] = [];
afterEach(() => {
  vi.unstubAllEnvs();
  vi.resetModules();
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

/** A copy of the bundled protos somewhere else, as a deployment that moves them would have. */
function protosElsewhere(): string {
  const dir = mkdtempSync(join(tmpdir(), 'engram-protos-'));
  dirs.push(dir);
  cpSync(BUNDLED_PROTO_ROOT, dir, { recursive: true });
  return dir;
}

function thrown(fn: () => unknown): unknown {
  try {
    fn();
  } catch (error) {
    return error;
  }
  throw new Error('did not throw');
}

describe('loadProtos', () => {
  it('loads the memory and health services from the bundled protos by default', () => {
    const def = loadProtos();
    expect(def['engram.v1.MemoryService']).toHaveProperty('Store');
    expect(def['grpc.health.v1.Health']).toHaveProperty('Check');
  });

  it('loads from an explicit root, resolving imports under it', () => {
    const def = loadProtos({ root: protosElsewhere(), files: ['engram/v1/router.proto'] });
    expect(def['engram.v1.RouterAdmin']).toHaveProperty('GetTable');
  });

  it('names the missing file and the root when a proto is not there', () => {
    const root = mkdtempSync(join(tmpdir(), 'engram-protos-'));
    dirs.push(root);
    const error = thrown(() => loadProtos({ root }));
    expect(isProtoError(error)).toBe(true);
    expect(error).toMatchObject({ code: 'ProtoNotFound' });
    expect((error as Error).message).toContain(MEMORY_PROTO_FILE);
    expect((error as Error).message).toContain(root);
  });

  it('refuses an empty root or file list, naming the option', () => {
    expect(thrown(() => loadProtos({ root: '' }))).toMatchObject({
      code: 'InvalidArgument',
      field: 'root',
    });
    expect(thrown(() => loadProtos({ files: [] }))).toMatchObject({ field: 'files' });
    expect(thrown(() => loadProtos({ files: [HEALTH_PROTO_FILE, ''] }))).toMatchObject({
      field: 'files[1]',
    });
  });
});

describe(`${PROTO_ROOT_ENV}`, () => {
  it('points the load at import elsewhere, and LOADER_OPTIONS with it', async () => {
    const root = protosElsewhere();
    vi.stubEnv(PROTO_ROOT_ENV, root);
    const fresh = await import('../src/index.js');
    expect(fresh.PROTO_ROOT).toBe(root);
    expect(fresh.LOADER_OPTIONS.includeDirs).toEqual([root]);
    expect(fresh.MemoryServiceDefinition.Recall.path).toBe('/engram.v1.MemoryService/Recall');
  });

  it('fails the import with ProtoNotFound when it names a directory without the protos', async () => {
    const root = mkdtempSync(join(tmpdir(), 'engram-protos-'));
    dirs.push(root);
    vi.stubEnv(PROTO_ROOT_ENV, root);
    await expect(import('../src/index.js')).rejects.toMatchObject({ code: 'ProtoNotFound' });
  });

  it('is ignored when empty', async () => {
    vi.stubEnv(PROTO_ROOT_ENV, '');
    const fresh = await import('../src/index.js');
    expect(fresh.PROTO_ROOT).toBe(BUNDLED_PROTO_ROOT);
  });
});

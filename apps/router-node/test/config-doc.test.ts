import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { CONFIG_KEYS, CONFIG_SCHEMA, envName } from '../src/index.js';
import {
  CONFIG_TABLE_END,
  CONFIG_TABLE_START,
  formatDefault,
  renderConfigTable,
  withConfigTable,
} from '../src/internal/config-doc.js';

const README = readFileSync(new URL('../README.md', import.meta.url), 'utf8');

describe('README configuration table', () => {
  it('is the table the schema generates (run `pnpm config-table` after changing a key)', () => {
    const start = README.indexOf(CONFIG_TABLE_START);
    const end = README.indexOf(CONFIG_TABLE_END);
    expect(start).toBeGreaterThan(0);
    expect(end).toBeGreaterThan(start);
    expect(README.slice(start + CONFIG_TABLE_START.length, end).trim()).toBe(renderConfigTable());
    expect(withConfigTable(README)).toBe(README);
  });

  it('has one row per key with its env var, default and description', () => {
    const rows = renderConfigTable().split('\n').slice(2);
    expect(rows).toHaveLength(CONFIG_KEYS.length);
    CONFIG_KEYS.forEach((key, i) => {
      const spec = CONFIG_SCHEMA[key];
      expect(rows[i]).toMatch(new RegExp(`^\\| \`${key.replaceAll('.', '\\.')}\` \\|`));
      expect(rows[i]).toContain(spec.description);
      if (spec.type !== 'nodes' && spec.type !== 'assignments') {
        expect(rows[i]).toContain(`\`${envName(key)}\``);
        if (spec.default !== undefined) expect(rows[i]).toContain(`\`${formatDefault(key)}\``);
      }
    });
  });

  it('replaces only what is between the markers', () => {
    const doc = `# t\n\nbefore\n${CONFIG_TABLE_START}\nstale\n${CONFIG_TABLE_END}\nafter\n`;
    expect(withConfigTable(doc)).toBe(
      `# t\n\nbefore\n${CONFIG_TABLE_START}\n${renderConfigTable()}\n${CONFIG_TABLE_END}\nafter\n`,
    );
    expect(() => withConfigTable('# no markers\n')).toThrow(/config-table:start/);
  });
});

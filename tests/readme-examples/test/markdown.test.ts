import { describe, expect, it } from 'vitest';
import { declaredNames, scanCodeBlocks, withChecks } from './markdown.js';

const md = (...lines: string[]) => lines.join('\n');

describe('scanCodeBlocks', () => {
  it('finds ts, typescript and js blocks with the line of their first code line', () => {
    const blocks = scanCodeBlocks(
      md(
        '# T',
        '```ts',
        'a;',
        '```',
        '```sh',
        'ls',
        '```',
        '```typescript',
        'b;',
        '```',
        '```js',
        'c;',
        '```',
      ),
    );
    expect(blocks.map((b) => [b.line, b.language, b.code])).toEqual([
      [3, 'ts', ['a;']],
      [9, 'ts', ['b;']],
      [12, 'js', ['c;']],
    ]);
  });

  it('type-checks an unmarked block', () => {
    expect(scanCodeBlocks(md('```ts', 'a;', '```'))[0]).toMatchObject({
      mode: 'typecheck',
      problem: undefined,
    });
  });

  it('reads the marker before the fence, blank lines allowed, with its hidden prelude', () => {
    const [block] = scanCodeBlocks(
      md('<!-- example: run', 'declare const x: number;', '-->', '', '```ts', 'x;', '```'),
    );
    expect(block).toMatchObject({
      mode: 'run',
      prelude: ['declare const x: number;'],
      problem: undefined,
    });
  });

  it('takes the reason of a skip, and refuses a skip without one or an unknown mode', () => {
    const [skipped, bare, unknown] = scanCodeBlocks(
      md(
        '<!-- example: skip (signatures) -->',
        '```ts',
        '```',
        '<!-- example: skip -->',
        '```ts',
        '```',
        '<!-- example: runn -->',
        '```ts',
        '```',
      ),
    );
    expect(skipped).toMatchObject({ mode: 'skip', reason: 'signatures', problem: undefined });
    expect(bare!.problem).toMatch(/must say why/);
    expect(unknown!.problem).toMatch(/unknown example mode 'runn'/);
  });

  it('ignores other comments and fences inside a longer fence', () => {
    const blocks = scanCodeBlocks(
      md('<!-- note -->', '````md', '```ts', 'x', '```', '````', '```ts', 'y;', '```'),
    );
    expect(blocks).toHaveLength(1);
    expect(blocks[0]).toMatchObject({ line: 8, mode: 'typecheck', code: ['y;'] });
  });
});

describe('withChecks', () => {
  it('turns `expr; // → value` into a check on the same line, and leaves other lines alone', () => {
    expect(
      withChecks(['  routing; // → { a: 1 }', 'f(); // note'], (i) => `R.md:${i + 10}`),
    ).toEqual(['  __expectShown(routing, { a: 1 }, "R.md:10");', 'f(); // note']);
  });
});

describe('declaredNames', () => {
  it('takes the top-level names of an API summary, not its members', () => {
    const code = [
      'class Router {',
      '  constructor(init: RouterInit);',
      '  store(req: Init<StoreRequest>): Promise<StoreResponse>;',
      '}',
      'function whenCancelled(ctx: CallContext, fn: () => void): () => void;',
      'const RoutingStrategy = { Primary } as const;',
      'interface RoutingInfo { servedBy }',
      'retry<T>(fn: () => T): Promise<T>',
      'INITIAL_BACKOFF_STATE; validateBackoff(options)',
    ];
    expect(declaredNames(code)).toEqual([
      { name: 'Router', index: 0 },
      { name: 'whenCancelled', index: 4 },
      { name: 'RoutingStrategy', index: 5 },
      { name: 'RoutingInfo', index: 6 },
      { name: 'retry', index: 7 },
      { name: 'INITIAL_BACKOFF_STATE', index: 8 },
    ]);
  });
});

// The README tells a newcomer what they will run into: how long `npm test` takes and that it checks the
// reference solutions (while `vmxlab grade` checks their own code), and every key watch mode reads.
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { describe, expect, test } from 'vitest';
import { KEYS } from '../src/cli/watch-screen.ts';

const README = readFileSync(resolve(import.meta.dirname, '../README.md'), 'utf8');
const quickStart = README.slice(README.indexOf('## Quick start'), README.indexOf('## How a chapter works'));

describe('README', () => {
  test('quick start: npm test takes minutes and checks solutions/; vmxlab grade checks your exercises/', () => {
    expect(quickStart).toMatch(/`npm test`[^]*?\b\d+ minutes\b/);
    expect(quickStart).toMatch(/`npm test`[^]*?reference solutions[^]*?not your exercises/);
    expect(quickStart).toMatch(/vmxlab grade[^\n]*YOUR code in exercises\//);
  });
  test('documents every key watch mode reads', () => {
    const row = README.split('\n').find((l) => l.startsWith('| `vmxlab` / `vmxlab watch'))!;
    for (const [, key] of KEYS.matchAll(/(?:keys: |· )(\w) /g)) expect(row, `key ${key}`).toContain(`\`${key}\``);
  });
});

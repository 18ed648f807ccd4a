import { describe, expect, test } from 'vitest';
import { resolve } from 'node:path';
import { assertionsWithoutMessage, rawHtmlIn, staticChecks } from './author-checks.ts';

const ROOT = resolve(import.meta.dirname, '..');

describe('author checks', () => {
  test('an assertion without a message is found, with its line', () => {
    const text = "expect(1, 'one').toBe(1);\nexpect(2).toBe(2);\nfc.assert(fc.property(fc.nat(), (n) => {\n  expect(n >= 0).toBe(true);\n}));\n";
    expect(assertionsWithoutMessage('x.test.ts', text)).toEqual([2, 4]);
  });
  test('a hint with a raw tag is found; in backticks, and shifts, are fine', () => {
    expect(rawHtmlIn('as "cpu N: <error>", joined')).toBe('"<error>"');
    expect(rawHtmlIn('as `cpu N: <error>`, and (v & 0xff) << 8, and a < b')).toBeNull();
  });
  test('every hint renders as markdown: no raw HTML tags', () => {
    expect(staticChecks(ROOT).filter((f) => f.check === 'hint-markdown').map((f) => f.message)).toEqual([]);
  });
  test('every assertion in the chapter tests says what its value means', () => {
    const findings = staticChecks(ROOT).filter((f) => f.check === 'assertion-message');
    expect(findings.map((f) => f.where)).toEqual([]);
  });
});

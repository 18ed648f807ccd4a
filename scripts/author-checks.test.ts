import { describe, expect, test } from 'vitest';
import { resolve } from 'node:path';
import { assertionsWithoutMessage, staticChecks } from './author-checks.ts';

const ROOT = resolve(import.meta.dirname, '..');

describe('author checks', () => {
  test('an assertion without a message is found, with its line', () => {
    const text = "expect(1, 'one').toBe(1);\nexpect(2).toBe(2);\nfc.assert(fc.property(fc.nat(), (n) => {\n  expect(n >= 0).toBe(true);\n}));\n";
    expect(assertionsWithoutMessage('x.test.ts', text)).toEqual([2, 4]);
  });
  test('every assertion in the chapter tests says what its value means', () => {
    const findings = staticChecks(ROOT).filter((f) => f.check === 'assertion-message');
    expect(findings.map((f) => f.where)).toEqual([]);
  });
});

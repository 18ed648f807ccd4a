import { describe, expect, test } from 'vitest';
import { failureMessage } from './stack.ts';

describe('failureMessage', () => {
  test('a failed property shows the assertion first, then fast-check\'s report', () => {
    const err = {
      message: 'Property failed after 1 tests\n{ seed: 1, path: "0", endOnFailure: true }\nCounterexample: [256]\n\nHint: Enable verbose mode in order to have the list of all failing values encountered during the run',
      cause: { message: "hostSelector(0x100) = 0x0: the index (bits 15:3) must stay 0x20: expected +0 to be 32\n    at foo (x.ts:1:1)" },
    };
    const lines = failureMessage(err).split('\n');
    expect(lines[0]).toBe('hostSelector(0x100) = 0x0: the index (bits 15:3) must stay 0x20: expected +0 to be 32');
    expect(lines.findIndex((l) => l.startsWith('Hint: Enable verbose mode'))).toBeGreaterThan(0);
    expect(lines.some((l) => /^\s+at /.test(l))).toBe(false);
  });
  test('a plain assertion is its message, without colours', () => {
    expect(failureMessage({ message: '\u001b[31mexpected 1 to be 2\u001b[39m' })).toBe('expected 1 to be 2');
  });
});

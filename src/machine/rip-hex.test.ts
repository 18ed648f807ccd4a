// The run result's RIP text (Machine.run's `detail`) is kept per RIP; it must be the BigInt formula's text for every
// RIP an LP can hold, including after the cache was cleared.
import { expect, test } from 'vitest';
import fc from 'fast-check';
import { ripHex } from './machine.ts';

test('ripHex(rip) is BigInt.asUintN(64, BigInt(rip)).toString(16)', () => {
  const rip = fc.oneof(
    fc.integer({ min: -(2 ** 31), max: 2 ** 31 }),
    fc.double({ min: -(2 ** 63), max: 2 ** 63, noNaN: true, noDefaultInfinity: true }).map(Math.trunc),
    fc.constantFrom(-1, -(2 ** 32), -(2 ** 32) - 1, -(2 ** 32) + 1, -(2 ** 53), -(2 ** 53) + 1, -(2 ** 63), 0, 2 ** 53),
  );
  fc.assert(fc.property(rip, (r) => {
    expect(ripHex(r)).toBe(BigInt.asUintN(64, BigInt(r)).toString(16));
  }), { seed: 0x41, numRuns: 2000 });
});

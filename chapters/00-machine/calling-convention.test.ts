import { describe, expect, test } from 'vitest';
import fc from 'fast-check';
import { argumentLocation, isCalleeSaved, returnRegisters, type Gpr } from '#impl/00-machine/calling-convention';

// From the System V AMD64 ABI, "Parameter Passing" and "Registers".
describe('argumentLocation', () => {
  test('the first six arguments: rdi, rsi, rdx, rcx, r8, r9', () => {
    expect([0, 1, 2, 3, 4, 5].map((n) => argumentLocation(n)), 'integer arguments 1–6 go in rdi, rsi, rdx, rcx, r8, r9, in that order').toEqual(
      ['rdi', 'rsi', 'rdx', 'rcx', 'r8', 'r9'].map((register) => ({ kind: 'register', register })),
    );
  });
  test('the 7th argument is just above the return address: [rsp+8]', () => {
    expect(argumentLocation(6), 'argument index 6 (the 7th): [rsp+0] holds the return address, so it is at [rsp+8] on entry').toEqual({ kind: 'stack', offset: 8 });
  });
  test('stack arguments are 8 bytes apart, in order', () => {
    fc.assert(
      fc.property(fc.integer({ min: 6, max: 1000 }), (n) => {
        expect(argumentLocation(n), `argument index ${n}: stack arguments start at [rsp+8] and are 8 bytes apart`).toEqual({ kind: 'stack', offset: 8 * (n - 5) });
      }),
    );
  });
  test('rejects nonsense indexes', () => {
    expect(() => argumentLocation(-1), 'argumentLocation(-1) must throw a RangeError').toThrow(RangeError);
    expect(() => argumentLocation(1.5), 'argumentLocation(1.5) must throw a RangeError').toThrow(RangeError);
  });
});

describe('isCalleeSaved and returnRegisters', () => {
  const all: Gpr[] = ['rax', 'rbx', 'rcx', 'rdx', 'rsi', 'rdi', 'rbp', 'rsp', 'r8', 'r9', 'r10', 'r11', 'r12', 'r13', 'r14', 'r15'];
  test('exactly rbx, rbp, rsp and r12–r15 survive a call', () => {
    expect(all.filter(isCalleeSaved).sort(), 'the registers isCalleeSaved says survive a call (sorted): the callee must preserve rbx, rbp, rsp, r12–r15').toEqual(['r12', 'r13', 'r14', 'r15', 'rbp', 'rbx', 'rsp']);
  });
  test('integers come back in rax, 128-bit values in rdx:rax', () => {
    expect(returnRegisters(64), 'a 64-bit integer comes back in rax').toEqual(['rax']);
    expect(returnRegisters(128), 'a 128-bit integer comes back in rdx:rax (low half in rax)').toEqual(['rax', 'rdx']);
  });
});

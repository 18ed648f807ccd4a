import { describe, expect, test } from 'vitest';
import fc from 'fast-check';
import { rflagsAfter, vmxStatus, type VmxStatus } from '#impl/00-machine/vmx-status';
import { showRflags } from '../lib/show.ts';

// Bit positions from SDM Vol. 1, "EFLAGS Register"; outcomes from SDM Vol. 3C, "Conventions".
const CF = 1n, PF = 1n << 2n, AF = 1n << 4n, ZF = 1n << 6n, SF = 1n << 7n, OF = 1n << 11n;
const SIX = CF | PF | AF | ZF | SF | OF;
const rflags = fc.bigInt({ min: 0n, max: (1n << 22n) - 1n }).map((v) => v | 2n); // bit 1 is always 1
const statuses = fc.constantFrom<VmxStatus>('VMsucceed', 'VMfailInvalid', 'VMfailValid');

describe('vmxStatus', () => {
  test('0x2 (no flags) is VMsucceed', () => expect(vmxStatus(0x2n), 'RFLAGS 0x2: CF = 0 and ZF = 0').toBe('VMsucceed'));
  test('0x3 (CF) is VMfailInvalid', () => expect(vmxStatus(0x3n), 'RFLAGS 0x3: CF = 1').toBe('VMfailInvalid'));
  test('0x46 (ZF, PF) is VMfailValid', () => expect(vmxStatus(0x46n), 'RFLAGS 0x46: ZF = 1, CF = 0 (PF does not matter)').toBe('VMfailValid'));
  test('PF, AF, SF, OF and unrelated bits do not change the verdict', () => {
    fc.assert(
      fc.property(rflags, (r) => {
        const expected = (r & CF) !== 0n ? 'VMfailInvalid' : (r & ZF) !== 0n ? 'VMfailValid' : 'VMsucceed';
        expect(vmxStatus(r), `RFLAGS ${showRflags(r)}: only CF (bit 0) and ZF (bit 6) decide`).toBe(expected);
      }),
    );
  });
});

describe('rflagsAfter', () => {
  test('VMfailInvalid sets CF and clears PF AF ZF SF OF (not only "set CF")', () => {
    const out = rflagsAfter(0x2n | ZF | SF | OF | PF | AF, 'VMfailInvalid');
    expect(out, `rflagsAfter(${showRflags(0x2n | ZF | SF | OF | PF | AF)}, 'VMfailInvalid') = ${showRflags(out)}, expected 0x3 (CF)`).toBe(0x3n);
  });
  test('VMfailValid sets ZF and clears CF', () => {
    const out = rflagsAfter(0x3n, 'VMfailValid');
    expect(out, `rflagsAfter(0x3 (CF), 'VMfailValid') = ${showRflags(out)}, expected 0x42 (ZF)`).toBe(0x2n | ZF);
  });
  test('leaves IF, DF, TF and every other bit alone, and round-trips through vmxStatus', () => {
    fc.assert(
      fc.property(rflags, statuses, (r, s) => {
        const out = rflagsAfter(r, s);
        const call = `rflagsAfter(${showRflags(r)}, '${s}') = ${showRflags(out)}`;
        expect(out & ~SIX, `${call}: bits other than CF PF AF ZF SF OF must not change`).toBe(r & ~SIX);
        const six = s === 'VMfailInvalid' ? CF : s === 'VMfailValid' ? ZF : 0n;
        expect(out & SIX, `${call}: of the six status flags exactly ${showRflags(six)} must be set`).toBe(six);
        expect(vmxStatus(out), `vmxStatus(${showRflags(out)}) must give back '${s}'`).toBe(s);
      }),
    );
  });
});

// The EPT entry-format table: every bit of every format in exactly one field, and the masks derived from it equal
// the SDM's tables (values written as numbers here on purpose). See SDM Vol. 3C, "EPT Translation Mechanism".
import { describe, expect, it } from 'vitest';
import { addressMask, EPT_FORMATS, EPT_LEVELS, fieldMask, fixedReservedMask, physAddrReservedMask } from './entry.ts';

const bits = (hi: number, lo: number) => ((1n << BigInt(hi - lo + 1)) - 1n) << BigInt(lo);

describe('EPT entry formats', () => {
  it.each([36, 39, 46, 52])('every format covers bits 63:0 exactly once, in order (MAXPHYADDR %i)', (m) => {
    for (const f of Object.values(EPT_FORMATS)) {
      let covered = 0n;
      let next = 0;
      for (const field of f.fields) {
        const mask = fieldMask(field, m);
        if (mask === 0n) continue; // 51:M is empty when M = 52
        expect(covered & mask, `${f.id} ${field.name}`).toBe(0n);
        expect(mask & -mask, `${f.id} ${field.name} starts at bit ${next}`).toBe(1n << BigInt(next));
        covered |= mask;
        next = mask.toString(2).length;
      }
      expect(covered, f.id).toBe((1n << 64n) - 1n);
    }
  });
  it('reserved bits per format, as the SDM tables give them', () => {
    expect(fixedReservedMask(EPT_FORMATS.pml5e)).toBe(bits(7, 3));
    expect(fixedReservedMask(EPT_FORMATS.pml4e)).toBe(bits(7, 3));
    expect(fixedReservedMask(EPT_FORMATS.pdpte)).toBe(bits(7, 3));
    expect(fixedReservedMask(EPT_FORMATS.pde)).toBe(bits(7, 3));
    expect(fixedReservedMask(EPT_FORMATS['pdpte-1g'])).toBe(bits(29, 12));
    expect(fixedReservedMask(EPT_FORMATS['pde-2m'])).toBe(bits(20, 12));
    expect(fixedReservedMask(EPT_FORMATS.pte)).toBe(0n);
    for (const f of Object.values(EPT_FORMATS)) {
      expect(physAddrReservedMask(f, 39), f.id).toBe(bits(51, 39));
      expect(physAddrReservedMask(f, 52), f.id).toBe(0n);
    }
  });
  it('address fields end at MAXPHYADDR − 1 and start at the page or table alignment', () => {
    expect(addressMask(EPT_FORMATS.pml4e, 39)).toBe(bits(38, 12));
    expect(addressMask(EPT_FORMATS.pte, 46)).toBe(bits(45, 12));
    expect(addressMask(EPT_FORMATS['pde-2m'], 39)).toBe(bits(38, 21));
    expect(addressMask(EPT_FORMATS['pdpte-1g'], 52)).toBe(bits(51, 30));
  });
  it('levels name their formats, index shifts 48/39/30/21/12, large pages only at levels 3 and 2', () => {
    expect(Object.entries(EPT_LEVELS).map(([l, v]) => [Number(l), v.indexShift, v.large?.format ?? null]))
      .toEqual([[1, 12, null], [2, 21, 'pde-2m'], [3, 30, 'pdpte-1g'], [4, 39, null], [5, 48, null]]);
    for (const [l, v] of Object.entries(EPT_LEVELS)) {
      expect(EPT_FORMATS[v.table].level).toBe(Number(l));
      if (v.large !== null) expect(EPT_FORMATS[v.large.format]).toMatchObject({ level: Number(l), leaf: true });
    }
    expect([EPT_FORMATS.pte.pageSize, EPT_FORMATS['pde-2m'].pageSize, EPT_FORMATS['pdpte-1g'].pageSize]).toEqual([4096, 1 << 21, 1 << 30]);
  });
});

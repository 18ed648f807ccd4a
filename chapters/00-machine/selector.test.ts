import { describe, expect, test } from 'vitest';
import fc from 'fast-check';
import { hostSelector, makeSelector, parseSelector } from '#impl/00-machine/selector';

// The layout, written independently of the learner's code: SDM Vol. 3A, "Segment Selectors".
const layout = (index: number, ti: 0 | 1, rpl: number) => index * 8 + ti * 4 + rpl;

describe('makeSelector', () => {
  test('the Linux kernel code segment: GDT index 2, RPL 0 is 0x10', () => {
    expect(makeSelector(2, 'gdt', 0)).toBe(0x10);
  });
  test('a user data selector: GDT index 5, RPL 3 is 0x2b', () => {
    expect(makeSelector(5, 'gdt', 3)).toBe(0x2b);
  });
  test('TI selects the LDT', () => {
    expect(makeSelector(1, 'ldt', 0)).toBe(0x0c);
  });
  test('places every field where the SDM says (any index, table, RPL)', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 8191 }), fc.boolean(), fc.integer({ min: 0, max: 3 }), (i, ldt, rpl) => {
        expect(makeSelector(i, ldt ? 'ldt' : 'gdt', rpl)).toBe(layout(i, ldt ? 1 : 0, rpl));
      }),
    );
  });
  test('rejects an index that does not fit in 13 bits and an RPL above 3', () => {
    expect(() => makeSelector(8192, 'gdt', 0)).toThrow(RangeError);
    expect(() => makeSelector(-1, 'gdt', 0)).toThrow(RangeError);
    expect(() => makeSelector(1, 'gdt', 4)).toThrow(RangeError);
  });
});

describe('parseSelector', () => {
  test('0x2b is GDT index 5 with RPL 3', () => {
    expect(parseSelector(0x2b)).toEqual({ index: 5, table: 'gdt', rpl: 3 });
  });
  test('inverts makeSelector for every selector value', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 0xffff }), (sel) => {
        const s = parseSelector(sel);
        expect(layout(s.index, s.table === 'ldt' ? 1 : 0, s.rpl)).toBe(sel);
      }),
    );
  });
});

describe('hostSelector (common mistake: masking with 0xF8)', () => {
  test('keeps index bits above bit 7: 0x10b becomes 0x108, not 0x08', () => {
    expect(hostSelector(0x10b)).toBe(0x108);
  });
  test('clears exactly RPL and TI for every selector', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 0xffff }), (sel) => {
        const h = hostSelector(sel);
        expect(h & 7).toBe(0);
        expect(h >> 3).toBe(sel >> 3);
      }),
    );
  });
});

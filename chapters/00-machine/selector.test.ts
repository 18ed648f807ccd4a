import { describe, expect, test } from 'vitest';
import fc from 'fast-check';
import { hostSelector, makeSelector, parseSelector } from '#impl/00-machine/selector';
import { hex } from '../lib/show.ts';

// The layout, written independently of the learner's code: SDM Vol. 3A, "Segment Selectors".
const layout = (index: number, ti: 0 | 1, rpl: number) => index * 8 + ti * 4 + rpl;

describe('makeSelector', () => {
  test('the Linux kernel code segment: GDT index 2, RPL 0 is 0x10', () => {
    const s = makeSelector(2, 'gdt', 0);
    expect(s, `makeSelector(2, 'gdt', 0) = ${hex(s)}: index 2 in bits 15:3 is 2 << 3 = 0x10, TI = 0, RPL = 0`).toBe(0x10);
  });
  test('a user data selector: GDT index 5, RPL 3 is 0x2b', () => {
    const s = makeSelector(5, 'gdt', 3);
    expect(s, `makeSelector(5, 'gdt', 3) = ${hex(s)}: 5 << 3 = 0x28, plus RPL 3 in bits 1:0, is 0x2b`).toBe(0x2b);
  });
  test('TI selects the LDT', () => {
    const s = makeSelector(1, 'ldt', 0);
    expect(s, `makeSelector(1, 'ldt', 0) = ${hex(s)}: 1 << 3 = 0x8, plus TI (bit 2) for the LDT, is 0xc`).toBe(0x0c);
  });
  test('places every field where the SDM says (any index, table, RPL)', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 8191 }), fc.boolean(), fc.integer({ min: 0, max: 3 }), (i, ldt, rpl) => {
        const s = makeSelector(i, ldt ? 'ldt' : 'gdt', rpl);
        const want = layout(i, ldt ? 1 : 0, rpl);
        expect(s, `makeSelector(${i}, '${ldt ? 'ldt' : 'gdt'}', ${rpl}) = ${hex(s)}, expected ${hex(want)}: index in bits 15:3, TI in bit 2, RPL in bits 1:0`).toBe(want);
      }),
    );
  });
  test('rejects an index that does not fit in 13 bits and an RPL above 3', () => {
    expect(() => makeSelector(8192, 'gdt', 0), 'index 8192 (0x2000) does not fit in 13 bits: throw a RangeError').toThrow(RangeError);
    expect(() => makeSelector(-1, 'gdt', 0), 'index -1: throw a RangeError').toThrow(RangeError);
    expect(() => makeSelector(1, 'gdt', 4), 'RPL 4 does not fit in 2 bits: throw a RangeError').toThrow(RangeError);
  });
});

describe('parseSelector', () => {
  test('0x2b is GDT index 5 with RPL 3', () => {
    expect(parseSelector(0x2b), 'selector 0x2b = 0b101_0_11: index 5, TI 0 (GDT), RPL 3').toEqual({ index: 5, table: 'gdt', rpl: 3 });
  });
  test('inverts makeSelector for every selector value', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 0xffff }), (sel) => {
        const s = parseSelector(sel);
        const back = layout(s.index, s.table === 'ldt' ? 1 : 0, s.rpl);
        expect(back, `parseSelector(${hex(sel)}) = ${JSON.stringify(s)}, which puts back together as ${hex(back)}`).toBe(sel);
      }),
    );
  });
});

describe('hostSelector (common mistake: masking with 0xF8)', () => {
  test('keeps index bits above bit 7: 0x10b becomes 0x108, not 0x08', () => {
    const h = hostSelector(0x10b);
    expect(h, `hostSelector(0x10b) = ${hex(h)}: clear RPL and TI (& ~7) to get 0x108; & 0xf8 also drops index bit 8`).toBe(0x108);
  });
  test('clears exactly RPL and TI for every selector', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 0xffff }), (sel) => {
        const h = hostSelector(sel);
        expect(h & 7, `hostSelector(${hex(sel)}) = ${hex(h)}: RPL (bits 1:0) and TI (bit 2) must be 0`).toBe(0);
        expect(h >> 3, `hostSelector(${hex(sel)}) = ${hex(h)}: the index (bits 15:3) must stay ${hex(sel >> 3)}`).toBe(sel >> 3);
      }),
    );
  });
});

import { describe, expect, test } from 'vitest';
import fc from 'fast-check';
import { accessRights, decodeDescriptor } from '#impl/00-machine/descriptor';

// An independent encoder following the SDM picture (Vol. 3A, "Segment Descriptors").
interface Fields {
  base: number; limit: number; type: number; s: boolean; dpl: number; present: boolean;
  avl: boolean; long: boolean; db: boolean; granularity: boolean;
}
function encode(f: Fields): bigint {
  const b = BigInt(f.base >>> 0);
  const l = BigInt(f.limit);
  const flag = (v: boolean, n: number) => (v ? 1n << BigInt(n) : 0n);
  return (
    (l & 0xffffn) | ((b & 0xffffffn) << 16n) | (BigInt(f.type) << 40n) | flag(f.s, 44) | (BigInt(f.dpl) << 45n) |
    flag(f.present, 47) | (((l >> 16n) & 0xfn) << 48n) | flag(f.avl, 52) | flag(f.long, 53) | flag(f.db, 54) |
    flag(f.granularity, 55) | (((b >> 24n) & 0xffn) << 56n)
  );
}
const fields = fc.record({
  base: fc.integer({ min: 0, max: 0xffffffff }),
  limit: fc.integer({ min: 0, max: 0xfffff }),
  type: fc.integer({ min: 0, max: 15 }),
  s: fc.boolean(), dpl: fc.integer({ min: 0, max: 3 }), present: fc.boolean(),
  avl: fc.boolean(), long: fc.boolean(), db: fc.boolean(), granularity: fc.boolean(),
});

describe('decodeDescriptor', () => {
  test('Linux __KERNEL_CS 0x00af9b000000ffff: 64-bit code, DPL 0, flat', () => {
    const d = decodeDescriptor(0x00af9b000000ffffn);
    expect(d).toMatchObject({ base: 0, limit: 0xfffff, type: 0xb, s: true, dpl: 0, present: true, long: true, db: false, granularity: true });
    expect(d.effectiveLimit).toBe(0xffffffff);
  });
  test('a 32-bit data segment with byte granularity: 0x00409300_1000ffff', () => {
    const d = decodeDescriptor(0x004093001000ffffn);
    expect(d).toMatchObject({ base: 0x1000, limit: 0xffff, effectiveLimit: 0xffff, type: 3, db: true, granularity: false });
  });
  test('base above 2^31 stays a positive number', () => {
    const d = decodeDescriptor(0xff0093ff0000ffffn);
    expect(d.base).toBe(0xffff0000);
  });
  test('recovers every field of any descriptor', () => {
    fc.assert(
      fc.property(fields, (f) => {
        const d = decodeDescriptor(encode(f));
        expect(d).toMatchObject(f);
        expect(d.effectiveLimit).toBe(f.granularity ? f.limit * 4096 + 4095 : f.limit);
      }),
    );
  });
});

describe('accessRights', () => {
  test('__KERNEL_CS gives 0xa09b', () => {
    expect(accessRights(decodeDescriptor(0x00af9b000000ffffn))).toBe(0xa09b);
  });
  test('a flat 32-bit writable data segment gives 0xc093', () => {
    expect(accessRights(decodeDescriptor(0x00cf93000000ffffn))).toBe(0xc093);
  });
  test('is descriptor bits 47:40 and 55:52, with reserved bits 11:8 and 31:16 clear', () => {
    fc.assert(
      fc.property(fields, (f) => {
        const raw = encode(f);
        const ar = accessRights(decodeDescriptor(raw));
        expect(ar & 0xff).toBe(Number((raw >> 40n) & 0xffn));
        expect((ar >> 12) & 0xf).toBe(Number((raw >> 52n) & 0xfn));
        expect(ar & 0xffff0f00).toBe(0);
      }),
    );
  });
});

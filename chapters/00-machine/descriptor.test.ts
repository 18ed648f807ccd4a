import { describe, expect, test } from 'vitest';
import fc from 'fast-check';
import { accessRights, decodeDescriptor } from '#impl/00-machine/descriptor';
import { hex } from '../lib/show.ts';

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
    expect(d, 'descriptor 0x00af9b000000ffff: access byte 9BH (P=1, DPL 0, S=1, type BH), flags AH (G=1, L=1)').toMatchObject({ base: 0, limit: 0xfffff, type: 0xb, s: true, dpl: 0, present: true, long: true, db: false, granularity: true });
    expect(d.effectiveLimit, `effectiveLimit ${hex(d.effectiveLimit)}: limit 0xfffff with G = 1 counts 4-KByte units, so 0xffffffff`).toBe(0xffffffff);
  });
  test('a 32-bit data segment with byte granularity: 0x00409300_1000ffff', () => {
    const d = decodeDescriptor(0x004093001000ffffn);
    expect(d, 'descriptor 0x004093001000ffff: base 0x1000 (bits 39:16), limit 0xffff, type 3, D/B = 1, G = 0 (byte granularity)').toMatchObject({ base: 0x1000, limit: 0xffff, effectiveLimit: 0xffff, type: 3, db: true, granularity: false });
  });
  test('base above 2^31 stays a positive number', () => {
    const d = decodeDescriptor(0xff0093ff0000ffffn);
    expect(d.base, `base ${hex(d.base)}: bits 31:24 are FFH, so the base is 0xffff0000, a positive number (>>> 0 makes one)`).toBe(0xffff0000);
  });
  test('recovers every field of any descriptor', () => {
    fc.assert(
      fc.property(fields, (f) => {
        const raw = encode(f);
        const d = decodeDescriptor(raw);
        expect(d, `descriptor ${hex(raw)}: the fields from SDM Vol. 3A, "Segment Descriptors"`).toMatchObject(f);
        const want = f.granularity ? f.limit * 4096 + 4095 : f.limit;
        expect(d.effectiveLimit, `descriptor ${hex(raw)}: limit ${hex(f.limit)}, G = ${Number(f.granularity)}: effectiveLimit ${hex(d.effectiveLimit)}, expected ${hex(want)} (G = 1 counts 4-KByte units)`).toBe(want);
      }),
    );
  });
});

describe('accessRights', () => {
  test('__KERNEL_CS gives 0xa09b', () => {
    const ar = accessRights(decodeDescriptor(0x00af9b000000ffffn));
    expect(ar, `access rights ${hex(ar)}, expected 0xa09b: descriptor bits 47:40 (9BH) in bits 7:0, and 55:52 (AH) in bits 15:12`).toBe(0xa09b);
  });
  test('a flat 32-bit writable data segment gives 0xc093', () => {
    const ar = accessRights(decodeDescriptor(0x00cf93000000ffffn));
    expect(ar, `access rights ${hex(ar)}, expected 0xc093: descriptor bits 47:40 (93H) in bits 7:0, and 55:52 (CH) in bits 15:12`).toBe(0xc093);
  });
  test('is descriptor bits 47:40 and 55:52, with reserved bits 11:8 and 31:16 clear', () => {
    fc.assert(
      fc.property(fields, (f) => {
        const raw = encode(f);
        const ar = accessRights(decodeDescriptor(raw));
        const seen = `descriptor ${hex(raw)}, your access rights ${hex(ar)}`;
        expect(ar & 0xff, `${seen}: bits 7:0 must be descriptor bits 47:40 (type, S, DPL, P) = ${hex((raw >> 40n) & 0xffn)}`).toBe(Number((raw >> 40n) & 0xffn));
        expect((ar >> 12) & 0xf, `${seen}: bits 15:12 must be descriptor bits 55:52 (AVL, L, D/B, G) = ${hex((raw >> 52n) & 0xfn)}`).toBe(Number((raw >> 52n) & 0xfn));
        expect(ar & 0xffff0f00, `${seen}: bits 11:8 and 31:16 are reserved and must be 0, not ${hex(ar & 0xffff0f00)}`).toBe(0);
      }),
    );
  });
});

// Segment descriptors: the 8-byte GDT/LDT entries a selector points at, and the "access rights"
// form in which a VMCS holds the same attributes.
// See SDM Vol. 3A, "Segment Descriptors", and Vol. 3C, "Guest Register State" (access-rights format).
//
//  63      56 55 54 53 52 51   48 47 46 45 44 43  40 39      32
// +----------+--+--+--+--+-------+--+-----+--+------+----------+
// |base 31:24| G|DB| L|AVL|lim 19:16| P| DPL | S| type |base 23:16|
// +----------+--+--+--+--+-------+--+-----+--+------+----------+
//  31                         16 15                          0
// +-----------------------------+-----------------------------+
// |         base 15:0           |        limit 15:0           |
// +-----------------------------+-----------------------------+

export interface SegmentDescriptor {
  base: number;
  /** The 20-bit limit field as stored. */
  limit: number;
  /** The last valid offset: limit, or (limit << 12) | 0xFFF when G = 1. */
  effectiveLimit: number;
  type: number;
  /** S: 1 = code/data, 0 = system (TSS, LDT, gates). */
  s: boolean;
  dpl: number;
  present: boolean;
  avl: boolean;
  /** L: 64-bit code segment (IA-32e mode). */
  long: boolean;
  /** D/B: default operation size 32-bit (code) / big (stack). */
  db: boolean;
  /** G: limit counts 4-KByte units. */
  granularity: boolean;
}

const bit = (raw: bigint, n: number) => ((raw >> BigInt(n)) & 1n) === 1n;
const bits = (raw: bigint, hi: number, lo: number) => Number((raw >> BigInt(lo)) & ((1n << BigInt(hi - lo + 1)) - 1n));

export function decodeDescriptor(raw: bigint): SegmentDescriptor {
  const limit = bits(raw, 15, 0) | (bits(raw, 51, 48) << 16);
  const base = (bits(raw, 39, 16) | (bits(raw, 63, 56) << 24)) >>> 0;
  const granularity = bit(raw, 55);
  return {
    base,
    limit,
    // With G = 1 the limit is scaled by 4 KBytes and the low 12 bits are all ones.
    // See SDM Vol. 3A, "Segment Descriptors" (G flag).
    effectiveLimit: granularity ? ((limit * 0x1000) | 0xfff) >>> 0 : limit,
    type: bits(raw, 43, 40),
    s: bit(raw, 44),
    dpl: bits(raw, 46, 45),
    present: bit(raw, 47),
    avl: bit(raw, 52),
    long: bit(raw, 53),
    db: bit(raw, 54),
    granularity,
  };
}

/**
 * The VMCS access-rights form: descriptor bits 47:40 → 7:0 and 55:52 → 15:12; bits 11:8 and 31:17
 * are reserved (0); bit 16 is "segment unusable" (0 here: a descriptor loaded from a table is usable).
 * See SDM Vol. 3C, "Guest Register State", table "Format of Access Rights".
 */
export function accessRights(d: SegmentDescriptor): number {
  return (
    d.type |
    (d.s ? 1 << 4 : 0) |
    (d.dpl << 5) |
    (d.present ? 1 << 7 : 0) |
    (d.avl ? 1 << 12 : 0) |
    (d.long ? 1 << 13 : 0) |
    (d.db ? 1 << 14 : 0) |
    (d.granularity ? 1 << 15 : 0)
  );
}

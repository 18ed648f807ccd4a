// Exercise 0.2 — decode a GDT descriptor and derive its VMCS access rights.
// Read chapters/00-machine/README.md, section "Segment descriptors".
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

export function decodeDescriptor(raw: bigint): SegmentDescriptor {
  // TODO: pull every field out of the 64-bit descriptor (see the picture above).
  // Careful: base and limit are split into pieces; numbers above 2^31 must stay positive.
  throw new Error('TODO: decodeDescriptor');
}

/**
 * The VMCS access-rights form of a usable segment: descriptor bits 47:40 → 7:0, 55:52 → 15:12,
 * everything else 0. See SDM Vol. 3C, "Guest Register State", table "Format of Access Rights".
 */
export function accessRights(d: SegmentDescriptor): number {
  // TODO
  throw new Error('TODO: accessRights');
}

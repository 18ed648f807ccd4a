// Segment selectors, descriptors and the VMX "access rights" format.
// See SDM Vol. 3A, "Segment Selectors", "Segment Descriptors" and Vol. 3C, "Guest Register State"
// (the access-rights format used by VMCS fields and by this emulator's hidden segment state).

export const SELECTOR = { RPL_MASK: 3, TI: 1 << 2, INDEX_SHIFT: 3 } as const;

export interface DecodedSelector {
  index: number;
  /** Table indicator: false = GDT, true = LDT. */
  ti: boolean;
  rpl: number;
}
export function decodeSelector(sel: number): DecodedSelector {
  return { index: sel >>> SELECTOR.INDEX_SHIFT, ti: (sel & SELECTOR.TI) !== 0, rpl: sel & SELECTOR.RPL_MASK };
}

/**
 * Access rights as a 32-bit value in the VMCS layout: bits 3:0 type, 4 S, 6:5 DPL, 7 P, 12 AVL, 13 L, 14 D/B,
 * 15 G, 16 unusable. This is descriptor bits 47:40 and 55:52 shifted down by 40.
 */
export const AR = {
  TYPE_MASK: 0xf,
  /** For code/data: accessed bit of the type. */
  ACCESSED: 1 << 0,
  /** Data: writable; code: readable. */
  RW: 1 << 1,
  /** Data: expand-down; code: conforming. */
  DC: 1 << 2,
  /** Code (1) or data (0). */
  CODE: 1 << 3,
  S: 1 << 4,
  DPL_SHIFT: 5,
  DPL_MASK: 3 << 5,
  P: 1 << 7,
  AVL: 1 << 12,
  L: 1 << 13,
  DB: 1 << 14,
  G: 1 << 15,
  UNUSABLE: 1 << 16,
} as const;

/** System-descriptor types (S = 0) in IA-32e mode. See SDM Vol. 3A, "System Descriptor Types". */
export const SYSTEM_TYPE = {
  LDT: 0x2,
  TSS_AVAILABLE: 0x9,
  TSS_BUSY: 0xb,
  CALL_GATE: 0xc,
  INTERRUPT_GATE: 0xe,
  TRAP_GATE: 0xf,
} as const;

export interface DecodedDescriptor {
  base: number;
  /** Effective limit in bytes - 1 (scaled by G). */
  limit: number;
  /** Access rights, VMCS layout. */
  ar: number;
}

/** Decode an 8-byte code/data/system descriptor given as two 32-bit halves (low dword first). */
export function decodeDescriptor(lo: number, hi: number): DecodedDescriptor {
  const base = ((lo >>> 16) | ((hi & 0xff) << 16) | (hi & 0xff000000)) >>> 0;
  const rawLimit = (lo & 0xffff) | (hi & 0xf0000);
  const ar = ((hi >>> 8) & 0xff) | ((hi >>> 8) & 0xf000);
  const limit = ar & AR.G ? ((rawLimit << 12) | 0xfff) >>> 0 : rawLimit;
  return { base, limit, ar };
}

/** Encode a descriptor (for tests and for guest images): returns [low dword, high dword]. */
export function encodeDescriptor(base: number, limit: number, ar: number): [number, number] {
  const rawLimit = ar & AR.G ? limit >>> 12 : limit;
  const lo = ((rawLimit & 0xffff) | ((base & 0xffff) << 16)) >>> 0;
  const hi = (((base >>> 16) & 0xff) | ((ar & 0xff) << 8) | (rawLimit & 0xf0000) | ((ar & 0xf000) << 8) | (base & 0xff000000)) >>> 0;
  return [lo, hi];
}

export function arDpl(ar: number): number {
  return (ar & AR.DPL_MASK) >>> AR.DPL_SHIFT;
}

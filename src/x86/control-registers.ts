// Control register, EFER and XCR0 bits. See SDM Vol. 3A, "Control Registers" and
// "Extended Feature Enable Register".

export const CR0 = {
  PE: 1 << 0,
  MP: 1 << 1,
  EM: 1 << 2,
  TS: 1 << 3,
  ET: 1 << 4,
  NE: 1 << 5,
  WP: 1 << 16,
  AM: 1 << 18,
  NW: 1 << 29,
  CD: 1 << 30,
  PG: 2 ** 31,
} as const;
/** CR0 bits that exist; the rest of the low 32 bits and all of bits 63:32 are reserved (#GP if set). */
export const CR0_DEFINED = CR0.PE | CR0.MP | CR0.EM | CR0.TS | CR0.ET | CR0.NE | CR0.WP | CR0.AM | CR0.NW | CR0.CD | CR0.PG;

export const CR4 = {
  VME: 1 << 0,
  PVI: 1 << 1,
  TSD: 1 << 2,
  DE: 1 << 3,
  PSE: 1 << 4,
  PAE: 1 << 5,
  MCE: 1 << 6,
  PGE: 1 << 7,
  PCE: 1 << 8,
  OSFXSR: 1 << 9,
  OSXMMEXCPT: 1 << 10,
  UMIP: 1 << 11,
  LA57: 1 << 12,
  VMXE: 1 << 13,
  SMXE: 1 << 14,
  FSGSBASE: 1 << 16,
  PCIDE: 1 << 17,
  OSXSAVE: 1 << 18,
  SMEP: 1 << 20,
  SMAP: 1 << 21,
  PKE: 1 << 22,
} as const;
/** CR4 bits this emulator lets software set (LA57 5-level paging and PKE are not modelled, so they are reserved). */
export const CR4_SUPPORTED =
  CR4.VME | CR4.PVI | CR4.TSD | CR4.DE | CR4.PSE | CR4.PAE | CR4.MCE | CR4.PGE | CR4.PCE | CR4.OSFXSR |
  CR4.OSXMMEXCPT | CR4.UMIP | CR4.VMXE | CR4.SMXE | CR4.FSGSBASE | CR4.PCIDE | CR4.OSXSAVE | CR4.SMEP | CR4.SMAP;

export const EFER = {
  SCE: 1 << 0,
  LME: 1 << 8,
  LMA: 1 << 10,
  NXE: 1 << 11,
} as const;
export const EFER_DEFINED = EFER.SCE | EFER.LME | EFER.LMA | EFER.NXE;

/** XCR0 bit 0 (x87) must always be 1. See SDM Vol. 1, "XSAVE-Supported Features and State-Component Bitmaps". */
export const XCR0 = { X87: 1 << 0, SSE: 1 << 1, AVX: 1 << 2 } as const;

/** DR6/DR7 bits used by the single-step and breakpoint logic. See SDM Vol. 3A, "Debug Registers". */
export const DR6 = { B0: 1 << 0, BD: 1 << 13, BS: 1 << 14, BT: 1 << 15, /** bits that read as 1 */ FIXED1: 0xffff0ff0 } as const;
export const DR7_FIXED1 = 1 << 10;
/** DR7.GD (bit 13), general detect: any MOV DR raises #DB. See SDM Vol. 3B, "Debug Control Register (DR7)". */
export const DR7_GD = 1 << 13;

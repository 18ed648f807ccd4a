// The page-level memory type: a leaf paging entry's PAT, PCD and PWT flags select one of the eight entries of
// IA32_PAT (index = 4·PAT + 2·PCD + PWT). The PAT flag is bit 7 of a PTE (4-KByte page) but bit 12 of a PDE or
// PDPTE that maps a 2-MByte or 1-GByte page (bit 7 is PS there). See SDM Vol. 3A, "Selecting a Memory Type from
// the PAT" and "Programming the PAT".
import { isPatMemoryType, type MemoryType } from '../../x86/memory-types.ts';

/** Flags of a leaf paging entry that select the PAT entry. See SDM Vol. 3A, "Paging and Memory Typing". */
export const PAGE_MEMTYPE_BIT = {
  PWT: 3n,
  PCD: 4n,
  /** PAT in a PTE. */
  PAT_4K: 7n,
  /** PAT in a PDE/PDPTE with PS = 1. */
  PAT_LARGE: 12n,
} as const;

/** IA32_PAT at power-up and reset: WB, WT, UC-, UC, WB, WT, UC-, UC. See SDM Vol. 3A, "Programming the PAT". */
export const PAT_POWER_UP = 0x0007040600070406n;

export interface PatSelection {
  readonly pat: boolean;
  readonly pcd: boolean;
  readonly pwt: boolean;
  /** 4·PAT + 2·PCD + PWT: which byte of IA32_PAT. */
  readonly index: number;
}

/** The PAT entry a leaf entry selects; `largePage`: a PDE or PDPTE mapping a 2-MByte or 1-GByte page. */
export function patSelection(leaf: bigint, largePage: boolean): PatSelection {
  const bit = (n: bigint) => ((leaf >> n) & 1n) === 1n;
  const pat = bit(largePage ? PAGE_MEMTYPE_BIT.PAT_LARGE : PAGE_MEMTYPE_BIT.PAT_4K);
  const pcd = bit(PAGE_MEMTYPE_BIT.PCD), pwt = bit(PAGE_MEMTYPE_BIT.PWT);
  return { pat, pcd, pwt, index: (pat ? 4 : 0) + (pcd ? 2 : 0) + (pwt ? 1 : 0) };
}

/** The first of the eight entries of an IA32_PAT value that holds a reserved encoding (2, 3, 8–FFH), or -1. */
export function reservedPatEntry(ia32Pat: bigint): number {
  for (let i = 0; i < 8; i++) if (!isPatMemoryType(Number((ia32Pat >> BigInt(8 * i)) & 0xffn))) return i;
  return -1;
}

/**
 * The memory type in entry `index` of an IA32_PAT value. WRMSR refuses reserved encodings, so a reserved one here
 * comes from a value no processor would hold; it is reported as a number the caller can show.
 */
export function patType(ia32Pat: bigint, index: number): MemoryType | { reserved: number } {
  const t = Number((ia32Pat >> BigInt(8 * index)) & 0xffn);
  return isPatMemoryType(t) ? t : { reserved: t };
}

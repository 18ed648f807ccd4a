// The EPT paging-structure entry formats, defined once: the walker, the misconfiguration rules, the explanation and
// the tests all read this table. One format per (level, what the entry maps), exactly as the SDM's tables list them.
// See SDM Vol. 3C, "EPT Translation Mechanism" (the tables "Format of an EPT PML5 Entry" … "Format of an EPT
// Page-Table Entry that Maps a 4-KByte Page"), "Accessed and Dirty Flags for EPT" and "EPT and Memory Typing".
//
// M below is MAXPHYADDR, the processor's physical-address width: address bits run up to M−1 and bits 51:M are
// reserved, so those two fields are written with the symbol 'M' and resolved by `fieldMask`.
import { EPT_VPID_CAP } from '../msrs.ts';

/** Bit positions shared by the formats (Linux names in comments: VMX_EPT_*). */
export const EPT_BIT = {
  /** Bit 0: reads allowed (VMX_EPT_READABLE_MASK). */
  READ: 0,
  /** Bit 1: writes allowed (VMX_EPT_WRITABLE_MASK). */
  WRITE: 1,
  /** Bit 2: instruction fetches allowed; with mode-based execute control, from supervisor-mode linear addresses. */
  EXECUTE: 2,
  /** Bits 5:3 of a leaf: the EPT memory type (VMX_EPT_MT_EPTE_SHIFT). */
  MEMORY_TYPE: 3,
  /** Bit 6 of a leaf: ignore PAT memory type (VMX_EPT_IPAT_BIT). */
  IGNORE_PAT: 6,
  /** Bit 7 of a PDPTE or PDE: the entry maps a page (1 GByte, 2 MBytes) instead of referencing a table. */
  PAGE_SIZE: 7,
  /** Bit 8: accessed flag, if EPTP bit 6 is 1; ignored otherwise. */
  ACCESSED: 8,
  /** Bit 9 of a leaf: dirty flag, if EPTP bit 6 is 1; ignored otherwise. */
  DIRTY: 9,
  /** Bit 10: execute for user-mode linear addresses, if "mode-based execute control for EPT" is 1; else ignored. */
  USER_EXECUTE: 10,
  /** Bit 63 of a leaf: suppress #VE (used only with "EPT-violation #VE", which VMX Lab does not model). */
  SUPPRESS_VE: 63,
} as const;

/** Bits 2:0, the permission field. */
export const EPT_RWX_MASK = 0x7n;

/** Memory types the SDM reserves in bits 5:3 of a leaf: using one is an EPT misconfiguration. */
export const EPT_RESERVED_MEMORY_TYPES: readonly number[] = [2, 3, 7];

/** The EPT levels by the SDM's number: 5 = PML5 (5-level EPT only), 4 = PML4, 3 = PDPT, 2 = PD, 1 = PT. */
export type EptLevel = 1 | 2 | 3 | 4 | 5;

/** The entry names the SDM uses, by level. */
export const EPT_LEVEL_NAMES: Readonly<Record<EptLevel, 'PML5E' | 'PML4E' | 'PDPTE' | 'PDE' | 'PTE'>> = {
  5: 'PML5E', 4: 'PML4E', 3: 'PDPTE', 2: 'PDE', 1: 'PTE',
};

export type EptFieldKind =
  | 'permission' // bits 2:0 and bit 10
  | 'memory-type' // bits 5:3 of a leaf
  | 'flag' // ignore PAT, page size, accessed, dirty, suppress #VE
  | 'address' // the physical address of the next table or the page
  | 'reserved' // must be 0, else EPT misconfiguration
  | 'ignored'; // the processor does not look at these bits

export interface EptField {
  readonly name: string;
  /** Lowest bit, or 'M' for MAXPHYADDR. */
  readonly lo: number | 'M';
  /** Highest bit, or 'M-1' for MAXPHYADDR − 1. */
  readonly hi: number | 'M-1';
  readonly kind: EptFieldKind;
  readonly meaning: string;
}

export interface EptEntryFormat {
  /** Stable id: `pml4e`, `pdpte-1g`, … */
  readonly id: string;
  readonly level: EptLevel;
  /** True if the entry maps a page (the last entry of the walk); false if it references the next table. */
  readonly leaf: boolean;
  /** Bytes mapped by a leaf entry. */
  readonly pageSize: number;
  /** The SDM table that gives this format, by title. */
  readonly sdm: string;
  /** Every bit 63:0 exactly once, from bit 0 up. */
  readonly fields: readonly EptField[];
}

const SDM_TABLE = (title: string) => `SDM Vol. 3C, "EPT Translation Mechanism", table "${title}"`;

// Fields every format starts with.
const R: EptField = { name: 'R', lo: 0, hi: 0, kind: 'permission', meaning: 'read access' };
const W: EptField = { name: 'W', lo: 1, hi: 1, kind: 'permission', meaning: 'write access' };
const X: EptField = { name: 'X', lo: 2, hi: 2, kind: 'permission', meaning: 'execute access (for supervisor-mode linear addresses if mode-based execute control for EPT is 1)' };
const A: EptField = { name: 'A', lo: 8, hi: 8, kind: 'flag', meaning: 'accessed (if EPTP bit 6 is 1; ignored otherwise)' };
const XU: EptField = { name: 'XU', lo: 10, hi: 10, kind: 'permission', meaning: 'execute access for user-mode linear addresses (if mode-based execute control for EPT is 1; ignored otherwise)' };
const IGN11: EptField = { name: 'ignored', lo: 11, hi: 11, kind: 'ignored', meaning: 'ignored' };
const RSVD_HIGH: EptField = { name: 'reserved', lo: 'M', hi: 51, kind: 'reserved', meaning: 'reserved: address bits beyond MAXPHYADDR (must be 0)' };
const IGN_TOP: EptField = { name: 'ignored', lo: 52, hi: 63, kind: 'ignored', meaning: 'ignored' };

/** A table-referencing entry (PML5E, PML4E, PDPTE, PDE): bits 7:3 reserved, bit 9 ignored, 63:52 ignored. */
function tableFormat(id: string, level: EptLevel, next: string, title: string): EptEntryFormat {
  return {
    id, level, leaf: false, pageSize: 0, sdm: SDM_TABLE(title),
    fields: [
      R, W, X,
      { name: 'reserved', lo: 3, hi: 6, kind: 'reserved', meaning: 'reserved (must be 0)' },
      { name: 'PS', lo: 7, hi: 7, kind: 'reserved', meaning: level >= 4 ? 'reserved (must be 0): no page can be mapped at this level' : 'page size: 0 here (this format references a table)' },
      A,
      { name: 'ignored', lo: 9, hi: 9, kind: 'ignored', meaning: 'ignored' },
      XU, IGN11,
      { name: 'address', lo: 12, hi: 'M-1', kind: 'address', meaning: `physical address of the 4-KByte aligned EPT ${next}` },
      RSVD_HIGH, IGN_TOP,
    ],
  };
}

/** A page-mapping entry (PDPTE with bit 7 = 1, PDE with bit 7 = 1, PTE). */
function leafFormat(id: string, level: EptLevel, pageSize: number, title: string): EptEntryFormat {
  const addressLo = Math.log2(pageSize);
  return {
    id, level, leaf: true, pageSize, sdm: SDM_TABLE(title),
    fields: [
      R, W, X,
      { name: 'memory type', lo: 3, hi: 5, kind: 'memory-type', meaning: 'EPT memory type of the page (2, 3 and 7 are reserved)' },
      { name: 'IPAT', lo: 6, hi: 6, kind: 'flag', meaning: 'ignore PAT memory type' },
      level === 1
        ? { name: 'ignored', lo: 7, hi: 7, kind: 'ignored', meaning: 'ignored' }
        : { name: 'PS', lo: 7, hi: 7, kind: 'flag', meaning: 'page size: 1 (this entry maps a page)' },
      A,
      { name: 'D', lo: 9, hi: 9, kind: 'flag', meaning: 'dirty (if EPTP bit 6 is 1; ignored otherwise)' },
      XU, IGN11,
      ...(addressLo > 12 ? [{ name: 'reserved', lo: 12, hi: addressLo - 1, kind: 'reserved', meaning: 'reserved (must be 0): below the page-size alignment' } as const] : []),
      { name: 'address', lo: addressLo, hi: 'M-1', kind: 'address', meaning: `physical address of the ${pageSize === 4096 ? '4-KByte' : pageSize === 1 << 21 ? '2-MByte' : '1-GByte'} page` },
      RSVD_HIGH,
      // Bits 62:52: ignored here. Some have meanings with features VMX Lab does not model (sub-page write
      // permissions, supervisor shadow stack, paging-write / verify-guest-paging); with those off they are ignored.
      { name: 'ignored', lo: 52, hi: 62, kind: 'ignored', meaning: 'ignored' },
      { name: 'SVE', lo: 63, hi: 63, kind: 'flag', meaning: 'suppress #VE (only with "EPT-violation #VE", not modelled)' },
    ],
  };
}

/** Every EPT entry format, by id. */
export const EPT_FORMATS = {
  pml5e: tableFormat('pml5e', 5, 'PML4 table', 'Format of an EPT PML5 Entry (PML5E)'),
  pml4e: tableFormat('pml4e', 4, 'page-directory-pointer table', 'Format of an EPT PML4 Entry (PML4E) that References an EPT Page-Directory-Pointer Table'),
  pdpte: tableFormat('pdpte', 3, 'page directory', 'Format of an EPT Page-Directory-Pointer-Table Entry (PDPTE) that References an EPT Page Directory'),
  'pdpte-1g': leafFormat('pdpte-1g', 3, 1 << 30, 'Format of an EPT Page-Directory-Pointer-Table Entry (PDPTE) that Maps a 1-GByte Page'),
  pde: tableFormat('pde', 2, 'page table', 'Format of an EPT Page-Directory Entry (PDE) that References an EPT Page Table'),
  'pde-2m': leafFormat('pde-2m', 2, 1 << 21, 'Format of an EPT Page-Directory Entry that Maps a 2-MByte Page'),
  pte: leafFormat('pte', 1, 4096, 'Format of an EPT Page-Table Entry that Maps a 4-KByte Page'),
} as const satisfies Record<string, EptEntryFormat>;

export type EptFormatId = keyof typeof EPT_FORMATS;

/**
 * How each level reads bit 7. `large` is the page-mapping format selected by bit 7 = 1 and `capBit` the
 * IA32_VMX_EPT_VPID_CAP bit that allows it ("Not all processors allow bit 7 of an EPT PDPTE [PDE] to be set to 1";
 * bit 17 for 1-GByte, bit 16 for 2-MByte pages); null where bit 7 is always reserved (PML5E, PML4E) or ignored (PTE).
 * See SDM Vol. 3C, "EPT Translation Mechanism" and Vol. 3D, "VPID and EPT Capabilities".
 */
export const EPT_LEVELS: Readonly<Record<EptLevel, {
  readonly table: EptFormatId;
  readonly large: { readonly format: EptFormatId; readonly capBit: bigint; readonly capName: string } | null;
  /** Lowest guest-physical-address bit of this level's 9-bit index. */
  readonly indexShift: number;
}>> = {
  5: { table: 'pml5e', large: null, indexShift: 48 },
  4: { table: 'pml4e', large: null, indexShift: 39 },
  3: { table: 'pdpte', large: { format: 'pdpte-1g', capBit: EPT_VPID_CAP.VMX_EPT_1GB_PAGE_BIT, capName: 'IA32_VMX_EPT_VPID_CAP[17] (1-GByte pages)' }, indexShift: 30 },
  2: { table: 'pde', large: { format: 'pde-2m', capBit: EPT_VPID_CAP.VMX_EPT_2MB_PAGE_BIT, capName: 'IA32_VMX_EPT_VPID_CAP[16] (2-MByte pages)' }, indexShift: 21 },
  1: { table: 'pte', large: null, indexShift: 12 },
};

/** The mask of one field's bits, with M = `maxPhysAddr`. */
export function fieldMask(f: EptField, maxPhysAddr: number): bigint {
  const lo = f.lo === 'M' ? maxPhysAddr : f.lo;
  const hi = f.hi === 'M-1' ? maxPhysAddr - 1 : f.hi;
  if (hi < lo) return 0n;
  return ((1n << BigInt(hi - lo + 1)) - 1n) << BigInt(lo);
}

/** Reserved bits of a format that do not depend on MAXPHYADDR (e.g. 6:3 of a PML4E, 20:12 of a 2-MByte PDE). */
export function fixedReservedMask(format: EptEntryFormat): bigint {
  return format.fields.filter((f) => f.kind === 'reserved' && f.lo !== 'M').reduce((m, f) => m | fieldMask(f, 64), 0n);
}

/** Reserved bits 51:M: physical-address bits beyond the processor's width. */
export function physAddrReservedMask(format: EptEntryFormat, maxPhysAddr: number): bigint {
  return format.fields.filter((f) => f.kind === 'reserved' && f.lo === 'M').reduce((m, f) => m | fieldMask(f, maxPhysAddr), 0n);
}

/** The address field of a format: the next table's base or the page frame. */
export function addressMask(format: EptEntryFormat, maxPhysAddr: number): bigint {
  const f = format.fields.find((x) => x.kind === 'address');
  return f === undefined ? 0n : fieldMask(f, maxPhysAddr);
}

/** The field that holds `bit` in `format` (every bit is in exactly one field). */
export function fieldAt(format: EptEntryFormat, bit: number, maxPhysAddr: number): EptField {
  const f = format.fields.find((x) => (fieldMask(x, maxPhysAddr) >> BigInt(bit)) & 1n);
  if (f === undefined) throw new Error(`EPT format ${format.id}: bit ${bit} in no field`);
  return f;
}

/** One bit of an entry. */
export const bitOf = (value: bigint, bit: number): boolean => ((value >> BigInt(bit)) & 1n) === 1n;

// Exercise 7.4 — the memory type of a guest access under EPT. The guest chooses a PAT entry in each leaf of its
// own page tables (index = 4·PAT + 2·PCD + PWT; the PAT flag is bit 7 of a PTE but bit 12 of a PDE or PDPTE that
// maps a large page, where bit 7 is PS), IA32_PAT says which type that entry holds, and the EPT leaf gives the type
// the MTRRs would otherwise give. The two combine by the effective-type table, with the EPT type in the MTRR's column — unless the
// EPT leaf sets "ignore PAT", and then the EPT type is used alone. CR0.CD = 1 makes it UC.
// Read chapters/07-mtrr/README.md. Yours to write: patIndex, patEntryType, effectiveMemoryType (with its table) and
// guestMemoryTypeOf.
// See SDM Vol. 3A, "Page Attribute Table (PAT)", "Selecting a Memory Type from the PAT", "Effective Page-Level
// Memory Types for Pentium III and More Recent Processor Families", and Vol. 3C, "Memory Type Used for Translated
// Guest-Physical Addresses".

/** Memory-type encodings. See SDM Vol. 3A, "Memory Types That Can Be Encoded With PAT". */
export const UC = 0, WC = 1, WT = 4, WP = 5, WB = 6, UC_MINUS = 7;

/** Leaf paging-entry flags that select the PAT entry. */
export const PAGE_PWT = 3n;
export const PAGE_PCD = 4n;
/** PAT flag: bit 7 of a PTE, bit 12 of a PDE/PDPTE with PS = 1. */
export const PAGE_PAT_4K = 7n;
export const PAGE_PAT_LARGE = 12n;
/** EPT leaf: bits 5:3 memory type, bit 6 ignore PAT. */
const EPT_MEMORY_TYPE_SHIFT = 3n;
const EPT_IGNORE_PAT = 6n;

const bit = (v: bigint, n: bigint): number => Number((v >> n) & 1n);

/** Which of IA32_PAT's eight entries a leaf selects; `largePage`: a PDE or PDPTE that maps a 2-MByte or 1-GByte page. */
export function patIndex(leaf: bigint, largePage: boolean): number {
  // TODO: 4·PAT + 2·PCD + PWT; PAT is bit 7 of a PTE, bit 12 of a large-page entry.
  throw new Error('TODO: patIndex');
}

/** Entry `index` of IA32_PAT: bits 8·index+7 : 8·index. */
export function patEntryType(ia32Pat: bigint, index: number): number {
  // TODO: byte `index` of IA32_PAT.
  throw new Error('TODO: patEntryType');
}

/** The effective type of a range type (MTRR, or EPT under EPT) and a PAT type. */
export function effectiveMemoryType(rangeType: number, patType: number): number {
  // TODO: the SDM's table, written once as data (rows by range type, columns by PAT type), then a lookup.
  throw new Error('TODO: effectiveMemoryType');
}

/** A guest access translated by EPT: what decides its memory type. */
export interface GuestAccess {
  /** The last EPT entry of the walk (a PTE, or a PDE/PDPTE with bit 7). */
  readonly eptLeaf: bigint;
  /** Guest CR0.CD. */
  readonly cr0Cd: boolean;
  /** The guest's IA32_PAT. */
  readonly guestPat: bigint;
  /** The guest's leaf paging entry for the linear address; null when guest paging is off (CR0.PG = 0). */
  readonly guestLeaf: { readonly entry: bigint; readonly largePage: boolean } | null;
}

/** The effective memory type of the access (the MTRRs play no part under EPT). */
export function guestMemoryTypeOf(a: GuestAccess): number {
  // TODO: CR0.CD; then "ignore PAT" (EPT leaf bit 6); then the EPT type (bits 5:3) with the PAT type (WB when
  // guest paging is off) by effectiveMemoryType.
  throw new Error('TODO: guestMemoryTypeOf');
}

// The memory type of a guest access under EPT. The guest chooses a PAT entry in each leaf of its own page tables
// (index = 4·PAT + 2·PCD + PWT; the PAT flag is bit 7 of a PTE but bit 12 of a PDE or PDPTE that maps a large page,
// where bit 7 is PS), IA32_PAT says which type that entry holds, and the EPT leaf gives the type the MTRRs would
// otherwise give. The two combine by the effective-type table, with the EPT type in the MTRR's column — unless the
// EPT leaf sets "ignore PAT", and then the EPT type is used alone. CR0.CD = 1 makes it UC.
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
  return 4 * bit(leaf, largePage ? PAGE_PAT_LARGE : PAGE_PAT_4K) + 2 * bit(leaf, PAGE_PCD) + bit(leaf, PAGE_PWT);
}

/** Entry `index` of IA32_PAT: bits 8·index+7 : 8·index. */
export function patEntryType(ia32Pat: bigint, index: number): number {
  return Number((ia32Pat >> BigInt(8 * index)) & 0xffn);
}

/**
 * The table "Effective Page-Level Memory Types for Pentium III and More Recent Processor Families": a row per MTRR
 * (or EPT) type, a column per PAT type. PAT WC gives WC on every row; PAT UC gives UC; PAT WB leaves the range type.
 */
const EFFECTIVE: Readonly<Record<number, Readonly<Record<number, number>>>> = {
  [UC]: { [UC]: UC, [UC_MINUS]: UC, [WC]: WC, [WT]: UC, [WB]: UC, [WP]: UC },
  [WC]: { [UC]: UC, [UC_MINUS]: WC, [WC]: WC, [WT]: UC, [WB]: WC, [WP]: UC },
  [WT]: { [UC]: UC, [UC_MINUS]: UC, [WC]: WC, [WT]: WT, [WB]: WT, [WP]: WP },
  [WB]: { [UC]: UC, [UC_MINUS]: UC, [WC]: WC, [WT]: WT, [WB]: WB, [WP]: WP },
  [WP]: { [UC]: UC, [UC_MINUS]: WC, [WC]: WC, [WT]: WT, [WB]: WP, [WP]: WP },
};

/** The effective type of a range type (MTRR, or EPT under EPT) and a PAT type. */
export function effectiveMemoryType(rangeType: number, patType: number): number {
  const t = EFFECTIVE[rangeType]?.[patType];
  if (t === undefined) throw new Error(`effectiveMemoryType: no table cell for range type ${rangeType} and PAT type ${patType}`);
  return t;
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
  if (a.cr0Cd) return UC;
  const eptType = Number((a.eptLeaf >> EPT_MEMORY_TYPE_SHIFT) & 7n);
  if (bit(a.eptLeaf, EPT_IGNORE_PAT) === 1) return eptType;
  // With guest paging off no leaf selects a PAT entry: the PAT type is WB, which leaves the EPT type as it is.
  const patType = a.guestLeaf === null ? WB : patEntryType(a.guestPat, patIndex(a.guestLeaf.entry, a.guestLeaf.largePage));
  return effectiveMemoryType(eptType, patType);
}

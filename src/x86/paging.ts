// Paging-structure entry formats that VMX code checks. See SDM Vol. 3A, "Paging".

/** PAE page-directory-pointer-table entry. See SDM Vol. 3A, "PAE Paging". */
export const PDPTE = {
  P: 1n,
  /** Bits 2:1 and 8:5 are reserved (plus bits beyond MAXPHYADDR, checked separately). */
  RESERVED_LOW: 0x6n | 0x1e0n,
} as const;

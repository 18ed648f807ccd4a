// The exit qualification of an EPT violation (exit reason 48), bit by bit, defined once. The walker builds it from
// these names, the explanation decodes it with them, the tests read them. See SDM Vol. 3C, "Exit Qualification for
// EPT Violations" (the table) and "EPT Violations".
//
// Bits the table defines only for features VMX Lab does not model are left 0: 13 (shadow-stack access), 14
// (supervisor shadow-stack paging entry), 15 (guest-paging verification), 16 (asynchronous to instruction
// execution). Bits the table calls undefined are also written as 0: bit 6 when mode-based execute control is 0,
// bit 8 when bit 7 is 0 ("reserved, cleared to 0"), and bits 11:9 unless the processor reports advanced VM-exit
// information for EPT violations and bits 7 and 8 are both 1. Bits 63:17 are reserved and 0.

/** Bit positions (Linux names: EPT_VIOLATION_*). */
export const EPT_QUAL = {
  /** Bit 0: the access was a data read (EPT_VIOLATION_ACC_READ). */
  READ: 0,
  /** Bit 1: the access was a data write (EPT_VIOLATION_ACC_WRITE). */
  WRITE: 1,
  /** Bit 2: the access was an instruction fetch (EPT_VIOLATION_ACC_INSTR). */
  FETCH: 2,
  /** Bit 3: AND of bit 0 (R) of the EPT entries used: the guest-physical address was readable. */
  READABLE: 3,
  /** Bit 4: AND of bit 1 (W): writable. */
  WRITABLE: 4,
  /** Bit 5: AND of bit 2 (X): executable — for supervisor-mode linear addresses if mode-based execute control is 1. */
  EXECUTABLE: 5,
  /** Bit 6: AND of bit 10 (XU), if mode-based execute control is 1: executable for user-mode linear addresses. */
  USER_EXECUTABLE: 6,
  /** Bit 7: the guest linear-address field is valid (all violations but the PAE PDPTE loads of MOV to CR). */
  GLA_VALID: 7,
  /**
   * Bit 8, if bit 7 is 1: 1 if the access was to the guest-physical address that is the translation of the linear
   * address (the final page), 0 if it was to a guest paging-structure entry (a page walk or an A/D update).
   * Linux: EPT_VIOLATION_GVA_TRANSLATED.
   */
  GLA_TRANSLATED: 8,
  /** Bit 9 (advanced information, bits 7 and 8 = 1): 1 if the linear address is a user-mode address. */
  USER_LINEAR: 9,
  /** Bit 10 (advanced information): 1 if guest paging maps the linear address read/write. */
  READ_WRITE_PAGE: 10,
  /** Bit 11 (advanced information): 1 if guest paging maps the linear address execute-disable. */
  EXECUTE_DISABLE_PAGE: 11,
  /** Bit 12: NMI unblocking due to IRET. */
  NMI_UNBLOCKING: 12,
} as const;

/** One line per defined bit, for the explanation and the reference page. */
export const EPT_QUAL_MEANINGS: ReadonlyArray<{ readonly bit: number; readonly name: keyof typeof EPT_QUAL; readonly meaning: string }> = [
  { bit: 0, name: 'READ', meaning: 'data read' },
  { bit: 1, name: 'WRITE', meaning: 'data write' },
  { bit: 2, name: 'FETCH', meaning: 'instruction fetch' },
  { bit: 3, name: 'READABLE', meaning: 'readable (AND of bit 0 of the EPT entries used)' },
  { bit: 4, name: 'WRITABLE', meaning: 'writable (AND of bit 1)' },
  { bit: 5, name: 'EXECUTABLE', meaning: 'executable (AND of bit 2; supervisor-mode with mode-based execute control)' },
  { bit: 6, name: 'USER_EXECUTABLE', meaning: 'user-mode executable (AND of bit 10; mode-based execute control only)' },
  { bit: 7, name: 'GLA_VALID', meaning: 'guest linear-address field valid' },
  { bit: 8, name: 'GLA_TRANSLATED', meaning: 'access to the translation of the linear address (0: to a guest paging-structure entry)' },
  { bit: 9, name: 'USER_LINEAR', meaning: 'user-mode linear address (advanced information)' },
  { bit: 10, name: 'READ_WRITE_PAGE', meaning: 'guest paging maps it read/write (advanced information)' },
  { bit: 11, name: 'EXECUTE_DISABLE_PAGE', meaning: 'guest paging maps it execute-disable (advanced information)' },
  { bit: 12, name: 'NMI_UNBLOCKING', meaning: 'NMI unblocking due to IRET' },
];

/** A qualification value from the bits that are set. */
export function qualificationOf(bits: Partial<Record<keyof typeof EPT_QUAL, boolean>>): bigint {
  let q = 0n;
  for (const [name, bit] of Object.entries(EPT_QUAL) as [keyof typeof EPT_QUAL, number][]) {
    if (bits[name] === true) q |= 1n << BigInt(bit);
  }
  return q;
}

/** Is `name` set in `qualification`? */
export const qualHas = (qualification: bigint, name: keyof typeof EPT_QUAL): boolean =>
  ((qualification >> BigInt(EPT_QUAL[name])) & 1n) === 1n;

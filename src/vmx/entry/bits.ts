// Named bits the VM-entry checks and the load/save code read.
// Control-field bit positions are defined in ../controls.ts; the formats here are those of fields whose layout
// only entry/exit code needs (interruption information, interruptibility state, pending debug exceptions, EPTP).

/** VM-entry interruption-information field. See SDM Vol. 3C, "VM-Entry Controls for Event Injection". */
export const INTR_INFO = {
  VECTOR_MASK: 0xff,
  TYPE_SHIFT: 8,
  TYPE_MASK: 0x7 << 8,
  DELIVER_ERROR_CODE: 1 << 11,
  /** Bits 30:12 are reserved. */
  RESERVED: 0x7ffff000,
  VALID: 2 ** 31,
} as const;

/** Interruption types (bits 10:8). Type 1 is reserved; 7 ("other event") needs MTF support. */
export const INTR_TYPE = {
  EXTERNAL_INTERRUPT: 0,
  RESERVED: 1,
  NMI: 2,
  HARDWARE_EXCEPTION: 3,
  SOFTWARE_INTERRUPT: 4,
  PRIVILEGED_SOFTWARE_EXCEPTION: 5,
  SOFTWARE_EXCEPTION: 6,
  OTHER_EVENT: 7,
} as const;

/** An interruption-information field (VM-entry, VM-exit or IDT-vectoring: the same layout), decoded. */
export interface InterruptionInfo {
  readonly valid: boolean;
  readonly type: number;
  readonly vector: number;
  readonly deliverErrorCode: boolean;
  readonly raw: number;
}
export function decodeInterruptionInfo(raw: number): InterruptionInfo {
  return {
    valid: (raw & INTR_INFO.VALID) !== 0,
    type: (raw & INTR_INFO.TYPE_MASK) >>> INTR_INFO.TYPE_SHIFT,
    vector: raw & INTR_INFO.VECTOR_MASK,
    deliverErrorCode: (raw & INTR_INFO.DELIVER_ERROR_CODE) !== 0,
    raw,
  };
}

/** Exceptions that push an error code. See SDM Vol. 3A, "Exception and Interrupt Reference". */
export const VECTORS_WITH_ERROR_CODE: readonly number[] = [8, 10, 11, 12, 13, 14, 17];

/** Guest interruptibility state. See SDM Vol. 3C, "Guest Non-Register State". */
export const INTERRUPTIBILITY = {
  BLOCKING_BY_STI: 1 << 0,
  BLOCKING_BY_MOV_SS: 1 << 1,
  BLOCKING_BY_SMI: 1 << 2,
  BLOCKING_BY_NMI: 1 << 3,
  ENCLAVE_INTERRUPTION: 1 << 4,
  /** Bits 31:5 are reserved. */
  RESERVED: 0xffffffe0,
} as const;

/** Guest activity states. See SDM Vol. 3C, "Guest Non-Register State". */
export const ACTIVITY_STATE = { ACTIVE: 0, HLT: 1, SHUTDOWN: 2, WAIT_FOR_SIPI: 3 } as const;

/** Pending debug exceptions field. See SDM Vol. 3C, "Guest Non-Register State". */
export const PENDING_DBG = {
  B0_B3: 0xfn,
  ENABLED_BREAKPOINT: 1n << 12n,
  BS: 1n << 14n,
  RTM: 1n << 16n,
  /** Bits 11:4, 13, 15 and 63:17 are reserved. */
  RESERVED: 0xff0n | (1n << 13n) | (1n << 15n) | (~0n << 17n & 0xffffffffffffffffn),
} as const;

/** Extended-page-table pointer. See SDM Vol. 3C, "Extended-Page-Table Pointer (EPTP)". */
export const EPTP = {
  MEMORY_TYPE_MASK: 0x7n,
  WALK_LENGTH_SHIFT: 3n,
  WALK_LENGTH_MASK: 0x7n << 3n,
  ACCESSED_DIRTY: 1n << 6n,
  /** Bits 11:7 are reserved (bit 7 only has a meaning with supervisor shadow-stack control, not modelled). */
  RESERVED_LOW: 0xf80n,
} as const;

/** Memory types. See SDM Vol. 3A, "Memory Types and Their Properties". */
export const MEMORY_TYPE = { UC: 0, WC: 1, WT: 4, WP: 5, WB: 6, UC_MINUS: 7 } as const;

/** IA32_DEBUGCTL bits that exist (all others reserved). See SDM Vol. 3B, "IA32_DEBUGCTL MSR". */
export const DEBUGCTL = {
  LBR: 1n << 0n,
  BTF: 1n << 1n,
  /** Bits 5:2 and 63:16 are reserved. */
  RESERVED: 0x3cn | (~0n << 16n & 0xffffffffffffffffn),
} as const;

/** PAE page-directory-pointer-table entry. See SDM Vol. 3A, "PAE Paging". */
export const PDPTE = {
  P: 1n,
  /** Bits 2:1 and 8:5 are reserved (plus bits beyond MAXPHYADDR, checked separately). */
  RESERVED_LOW: 0x6n | 0x1e0n,
} as const;

// The guest non-register state VM entries load and VM exits save, in the VMCS layout: activity state,
// interruptibility state, pending debug exceptions. See SDM Vol. 3C, "Guest Non-Register State".

/** Guest activity states. */
export const ACTIVITY_STATE = { ACTIVE: 0, HLT: 1, SHUTDOWN: 2, WAIT_FOR_SIPI: 3 } as const;

/** Guest interruptibility state. */
export const INTERRUPTIBILITY = {
  BLOCKING_BY_STI: 1 << 0,
  BLOCKING_BY_MOV_SS: 1 << 1,
  BLOCKING_BY_SMI: 1 << 2,
  BLOCKING_BY_NMI: 1 << 3,
  ENCLAVE_INTERRUPTION: 1 << 4,
  /** Bits 31:5 are reserved. */
  RESERVED: 0xffffffe0,
} as const;

/** Pending debug exceptions field. */
export const PENDING_DBG = {
  B0_B3: 0xfn,
  ENABLED_BREAKPOINT: 1n << 12n,
  BS: 1n << 14n,
  RTM: 1n << 16n,
  /** Bits 11:4, 13, 15 and 63:17 are reserved. */
  RESERVED: 0xff0n | (1n << 13n) | (1n << 15n) | (~0n << 17n & 0xffffffffffffffffn),
} as const;

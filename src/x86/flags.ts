// RFLAGS bits. See SDM Vol. 1, "EFLAGS Register" and "RFLAGS Register in 64-Bit Mode".
export const RFLAGS = {
  CF: 1 << 0,
  /** Bit 1 is reserved and always reads as 1. */
  FIXED1: 1 << 1,
  PF: 1 << 2,
  AF: 1 << 4,
  ZF: 1 << 6,
  SF: 1 << 7,
  TF: 1 << 8,
  IF: 1 << 9,
  DF: 1 << 10,
  OF: 1 << 11,
  IOPL: 3 << 12,
  NT: 1 << 14,
  RF: 1 << 16,
  VM: 1 << 17,
  AC: 1 << 18,
  VIF: 1 << 19,
  VIP: 1 << 20,
  ID: 1 << 21,
} as const;

/** The six arithmetic status flags. */
export const RFLAGS_STATUS = RFLAGS.CF | RFLAGS.PF | RFLAGS.AF | RFLAGS.ZF | RFLAGS.SF | RFLAGS.OF;
/** Bits software may change with POPF at CPL 0 (VM and the VIF/VIP pair are not changed by POPF in 64-bit mode). */
export const RFLAGS_WRITABLE =
  RFLAGS_STATUS | RFLAGS.TF | RFLAGS.IF | RFLAGS.DF | RFLAGS.IOPL | RFLAGS.NT | RFLAGS.AC | RFLAGS.ID;

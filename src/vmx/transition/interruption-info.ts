// The interruption-information format: the VM-entry interruption-information field (event injection), the VM-exit
// interruption-information field and the IDT-vectoring information field all use it. See SDM Vol. 3C, "VM-Entry
// Controls for Event Injection" and "Information for VM Exits Due to Vectored Events".

/** Bits of an interruption-information field. */
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

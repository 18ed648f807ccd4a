// Exit-qualification layouts, built in one place. Each function packs the fields of one SDM table.
import type { IoAccess } from '../../machine/vmx-seam.ts';
import { INTR_INFO } from '../transition/interruption-info.ts';
import { UNDEFINED_32 } from '../exit/info.ts';

/** How a control register was accessed: bits 5:4 of the CR-access exit qualification. */
export const CR_ACCESS_TYPE = { MOV_TO_CR: 0, MOV_FROM_CR: 1, CLTS: 2, LMSW: 3 } as const;

/**
 * Exit qualification for control-register accesses:
 *   3:0 CR number (0 for CLTS and LMSW) · 5:4 access type · 6 LMSW operand type (0 register, 1 memory) ·
 *   11:8 the general-purpose register of MOV CR (0 = RAX … 15 = R15) · 31:16 LMSW source data · 63:32 cleared.
 * See SDM Vol. 3C, "Exit Qualification for Control-Register Accesses".
 */
export function crAccessQualification(q: { cr: number; access: 0 | 1 | 2 | 3; gpr: number; lmswMemory: boolean; lmswSource: number }): bigint {
  const movCr = q.access === CR_ACCESS_TYPE.MOV_TO_CR || q.access === CR_ACCESS_TYPE.MOV_FROM_CR;
  const lmsw = q.access === CR_ACCESS_TYPE.LMSW;
  return BigInt(((movCr ? q.cr & 0xf : 0) | (q.access << 4) | (lmsw && q.lmswMemory ? 1 << 6 : 0) |
    (movCr ? (q.gpr & 0xf) << 8 : 0) | (lmsw ? (q.lmswSource & 0xffff) << 16 : 0)) >>> 0);
}

/**
 * Exit qualification for I/O instructions:
 *   2:0 size of access − 1 (0 = 1 byte, 1 = 2 bytes, 3 = 4 bytes) · 3 direction (0 OUT, 1 IN) · 4 string
 *   instruction · 5 REP prefixed · 6 operand encoding (0 DX, 1 immediate) · 15:7 cleared · 31:16 port number ·
 *   63:32 cleared. See SDM Vol. 3C, "Exit Qualification for I/O Instructions".
 */
export function ioQualification(io: IoAccess): bigint {
  return BigInt(((io.size - 1) | (io.direction === 'in' ? 1 << 3 : 0) | (io.string ? 1 << 4 : 0) |
    (io.rep ? 1 << 5 : 0) | (io.immediate ? 1 << 6 : 0) | ((io.port & 0xffff) << 16)) >>> 0);
}

/** Address-size encodings of the VM-exit instruction-information field (bits 9:7): 0 16-bit, 1 32-bit, 2 64-bit. */
const ADDRESS_SIZE_CODE = { 2: 0, 4: 1, 8: 2 } as const;

/**
 * VM-exit instruction information for INS and OUTS (when IA32_VMX_BASIC[54] = 1):
 *   9:7 address size · 17:15 segment register (ES 0 … GS 5), undefined for INS · all other bits undefined.
 * Undefined bits carry poison, like undefined fields. See SDM Vol. 3C, "Information for VM Exits Due to
 * Instruction Execution" (table "Format of the VM-Exit Instruction-Information Field as Used for INS and OUTS").
 */
export function insOutsInstructionInfo(io: IoAccess): number {
  const defined = io.direction === 'out' ? 0x7 << 7 | 0x7 << 15 : 0x7 << 7;
  const value = ADDRESS_SIZE_CODE[io.addressSize] << 7 | (io.direction === 'out' ? (io.segment & 7) << 15 : 0);
  return ((UNDEFINED_32 & ~defined) | value) >>> 0;
}

/**
 * Exit qualification for debug exceptions: 3:0 B0–B3 (breakpoint conditions met) · 13 BD (debug-register access
 * detected) · 14 BS (single step) · other bits cleared (16, RTM, is not modelled). Bit positions as in DR6.
 * See SDM Vol. 3C, "Exit Qualification for Debug Exceptions".
 */
export function debugExceptionQualification(dr6: bigint): bigint {
  return dr6 & (DR6_B0_B3 | DR6_BD | DR6_BS);
}
const DR6_B0_B3 = 0xfn, DR6_BD = 1n << 13n, DR6_BS = 1n << 14n;

/** Bit 12 of the VM-exit interruption information: NMI unblocking due to IRET. */
export const NMI_UNBLOCKING_DUE_TO_IRET = 1 << 12;

/**
 * The VM-exit interruption-information and IDT-vectoring information fields (one layout):
 *   7:0 vector · 10:8 type · 11 error code valid · 12 NMI unblocking due to IRET (VM-exit field; undefined in the
 *   IDT-vectoring field) · 30:13 cleared · 31 valid. `bit12` is 0, 1 or 'undefined' (poison).
 * See SDM Vol. 3C, "Information for VM Exits Due to Vectored Events" and "Information for VM Exits During
 * Event Delivery".
 */
export function interruptionInformation(vector: number, type: number, errorCodeValid: boolean, bit12: 0 | 1 | 'undefined'): number {
  const b12 = bit12 === 'undefined' ? UNDEFINED_32 & NMI_UNBLOCKING_DUE_TO_IRET : bit12 === 1 ? NMI_UNBLOCKING_DUE_TO_IRET : 0;
  return ((vector & INTR_INFO.VECTOR_MASK) | ((type & 7) << INTR_INFO.TYPE_SHIFT) |
    (errorCodeValid ? INTR_INFO.DELIVER_ERROR_CODE : 0) | b12 | INTR_INFO.VALID) >>> 0;
}

// Exit-qualification layouts, built in one place. Each function packs the fields of one SDM table.
import type { IoAccess, MemOperandEncoding } from '../../machine/vmx-seam.ts';
import { INTR_INFO } from '../transition/interruption-info.ts';
import { UNDEFINED_32, UNDEFINED_64 } from '../exit/info.ts';
// The VM-exit instruction-information layouts live here too: like qualifications, they describe the instruction.
// Bits the SDM leaves undefined inside a defined field carry the poison pattern of ../exit/info.ts.

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

// ---------------------------------------------------------------------------------------------------------------
// Instruction exits other than I/O and CR access: MOV DR, MWAIT, displacements, VM-exit instruction information.
// ---------------------------------------------------------------------------------------------------------------

/**
 * Exit qualification for MOV DR: 2:0 the debug register as encoded (DR4/DR5 stay 4/5) · 4 direction
 * (0 = MOV to DR, 1 = MOV from DR) · 11:8 the general-purpose register (0 = RAX … 15 = R15) · all else cleared.
 * See SDM Vol. 3C, "Exit Qualification for MOV DR".
 */
export function movDrQualification(q: { dr: number; direction: 'to' | 'from'; gpr: number }): bigint {
  return BigInt((q.dr & 7) | ((q.direction === 'from' ? 1 : 0) << 4) | ((q.gpr & 0xf) << 8));
}

/** MWAIT: bit 0 is 1 if the address-range monitoring hardware was armed. See SDM Vol. 3C, "Basic VM-Exit Information". */
export function mwaitQualification(monitorArmed: boolean): bigint {
  return monitorArmed ? 1n : 0n;
}

/**
 * The exit qualification of the instructions whose operand the VM-exit instruction-information field describes
 * (the VMX instructions with an operand, INVPCID, the descriptor-table instructions): the displacement,
 * sign-extended to 64 bits; 0 when the operand is a register or there is no displacement; for RIP-relative
 * addressing the displacement plus the RIP of the next instruction. Bits beyond the address size are undefined.
 * See SDM Vol. 3C, "Basic VM-Exit Information" (exit qualification for "VM exits due to instructions").
 */
export function displacementQualification(mem: MemOperandEncoding | null, addressSize: 2 | 4 | 8, nextRip: bigint): bigint {
  if (mem === null) return 0n;
  const value = mem.ripRelative ? mem.displacement + nextRip : mem.displacement;
  const defined = (1n << BigInt(8 * addressSize)) - 1n;
  return (value & defined) | (UNDEFINED_64 & ~defined);
}

/** Operand-size codes (RDRAND/RDSEED bits 12:11; LGDT… bit 11 without the 64-bit code). */
const OPERAND_SIZE_CODE = { 2: 0, 4: 1, 8: 2 } as const;

/** The positions of the VM-exit instruction-information fields the tables below share. */
const INFO = {
  SCALING: 0, REG1: 3, ADDRESS_SIZE: 7, MEM_REG: 10, OPERAND_SIZE: 11, SEGMENT: 15,
  INDEX: 18, INDEX_INVALID: 22, BASE: 23, BASE_INVALID: 27, IDENTITY: 28, REG2: 28,
} as const;
/** Mask of `width` bits at `pos`. */
const bits = (pos: number, width: number): number => (((1 << width) - 1) << pos) >>> 0;

/** A field value with the bits the SDM leaves undefined replaced by poison (the pattern ../exit/info.ts uses). */
function poisonUndefined(defined: number, undefinedMask: number): number {
  return ((defined & ~undefinedMask) | (UNDEFINED_32 & undefinedMask)) >>> 0;
}

/**
 * Scaling (1:0), address size (9:7), segment (17:15), index (21:18) with its invalid bit (22) and base (26:23)
 * with its invalid bit (27), as every memory-operand table of the field has them. Scaling and index are undefined
 * without an index register, the base without a base register (also for RIP-relative addressing).
 */
function memoryOperandInfo(m: MemOperandEncoding, addressSize: 2 | 4 | 8): { value: number; undefinedMask: number } {
  let value = (ADDRESS_SIZE_CODE[addressSize] << INFO.ADDRESS_SIZE) | ((m.segment & 7) << INFO.SEGMENT);
  let undefinedMask = 0;
  if (m.index >= 0) value |= ((m.scale & 3) << INFO.SCALING) | ((m.index & 0xf) << INFO.INDEX);
  else {
    value |= 1 << INFO.INDEX_INVALID;
    undefinedMask |= bits(INFO.SCALING, 2) | bits(INFO.INDEX, 4);
  }
  if (m.base >= 0 && !m.ripRelative) value |= (m.base & 0xf) << INFO.BASE;
  else {
    value |= 1 << INFO.BASE_INVALID;
    undefinedMask |= bits(INFO.BASE, 4);
  }
  return { value: value >>> 0, undefinedMask };
}

/** The memory-operand fields (bits 27:0 minus 10) of a register-operand instruction: all undefined. */
const MEMORY_FIELDS = (bits(0, 2) | bits(7, 3) | bits(15, 13)) >>> 0;

/**
 * VM-exit instruction information for VMCLEAR, VMPTRLD, VMPTRST and VMXON: the memory operand (scaling, address
 * size, segment, index, base); bit 10 cleared; bits 6:2, 14:11 and 31:28 undefined.
 * See SDM Vol. 3C, "VM-Exit Instruction-Information Field".
 */
export function vmcsPointerInstructionInfo(m: MemOperandEncoding, addressSize: 2 | 4 | 8): number {
  const op = memoryOperandInfo(m, addressSize);
  return poisonUndefined(op.value, op.undefinedMask | bits(2, 5) | bits(11, 4) | bits(28, 4));
}

/**
 * VM-exit instruction information for INVEPT, INVPCID and INVVPID: the memory operand (the descriptor), bit 10
 * cleared, Reg2 (31:28) the register holding the type; bits 6:2 and 14:11 undefined.
 * See SDM Vol. 3C, "VM-Exit Instruction-Information Field".
 */
export function invalidationInstructionInfo(m: MemOperandEncoding, addressSize: 2 | 4 | 8, reg2: number): number {
  const op = memoryOperandInfo(m, addressSize);
  return poisonUndefined(op.value | ((reg2 & 0xf) << INFO.REG2), op.undefinedMask | bits(2, 5) | bits(11, 4));
}

/**
 * VM-exit instruction information for VMREAD and VMWRITE. Memory form (bit 10 = 0): the memory operand, Reg1
 * (6:3) undefined. Register form (bit 10 = 1): Reg1 the r/m register, the memory fields undefined. Reg2 (31:28)
 * is the register operand (the field encoding); bits 2 and 14:11 undefined.
 * See SDM Vol. 3C, "VM-Exit Instruction-Information Field".
 */
export function vmreadVmwriteInstructionInfo(op: { mem: MemOperandEncoding | null; reg1: number; addressSize: 2 | 4 | 8; reg2: number }): number {
  const reg2 = (op.reg2 & 0xf) << INFO.REG2;
  const always = bits(2, 1) | bits(11, 4);
  if (op.mem === null) {
    return poisonUndefined(reg2 | (1 << INFO.MEM_REG) | ((op.reg1 & 0xf) << INFO.REG1), always | MEMORY_FIELDS);
  }
  const m = memoryOperandInfo(op.mem, op.addressSize);
  return poisonUndefined(m.value | reg2, m.undefinedMask | always | bits(INFO.REG1, 4));
}

/** Instruction identity (bits 29:28) for LGDT, LIDT, SGDT and SIDT. */
export const GDTR_IDTR_IDENTITY = { SGDT: 0, SIDT: 1, LGDT: 2, LIDT: 3 } as const;
/** Instruction identity (bits 29:28) for LLDT, LTR, SLDT and STR. */
export const LDTR_TR_IDENTITY = { SLDT: 0, STR: 1, LLDT: 2, LTR: 3 } as const;

/**
 * VM-exit instruction information for LGDT, LIDT, SGDT and SIDT: the memory operand, bit 10 cleared, operand
 * size (11: 0 = 16-bit, 1 = 32-bit; undefined for VM exits from 64-bit mode), identity (29:28); bits 6:2, 14:12
 * and 31:30 undefined. See SDM Vol. 3C, "VM-Exit Instruction-Information Field".
 */
export function gdtrIdtrInstructionInfo(op: { mem: MemOperandEncoding; addressSize: 2 | 4 | 8; operandSize: 2 | 4 | 8; from64BitMode: boolean; identity: number }): number {
  const m = memoryOperandInfo(op.mem, op.addressSize);
  const size = op.from64BitMode ? 0 : (op.operandSize === 2 ? 0 : 1) << INFO.OPERAND_SIZE;
  return poisonUndefined(m.value | size | ((op.identity & 3) << INFO.IDENTITY),
    m.undefinedMask | bits(2, 5) | bits(12, 3) | bits(30, 2) | (op.from64BitMode ? bits(INFO.OPERAND_SIZE, 1) : 0));
}

/**
 * VM-exit instruction information for LLDT, LTR, SLDT and STR. Memory form (bit 10 = 0): the memory operand,
 * Reg1 undefined. Register form (bit 10 = 1): Reg1 (6:3) the register, the memory fields undefined. Identity
 * (29:28); bits 2, 14:11 and 31:30 undefined. See SDM Vol. 3C, "VM-Exit Instruction-Information Field".
 */
export function ldtrTrInstructionInfo(op: { mem: MemOperandEncoding | null; reg1: number; addressSize: 2 | 4 | 8; identity: number }): number {
  const identity = (op.identity & 3) << INFO.IDENTITY;
  const always = bits(2, 1) | bits(11, 4) | bits(30, 2);
  if (op.mem === null) {
    return poisonUndefined(identity | (1 << INFO.MEM_REG) | ((op.reg1 & 0xf) << INFO.REG1), always | MEMORY_FIELDS);
  }
  const m = memoryOperandInfo(op.mem, op.addressSize);
  return poisonUndefined(m.value | identity, m.undefinedMask | always | bits(INFO.REG1, 4));
}

/**
 * VM-exit instruction information for RDRAND and RDSEED: the destination register (6:3) and the operand size
 * (12:11: 0 = 16-bit, 1 = 32-bit, 2 = 64-bit); every other bit undefined.
 * See SDM Vol. 3C, "VM-Exit Instruction-Information Field".
 */
export function randomNumberInstructionInfo(reg: number, operandSize: 2 | 4 | 8): number {
  return poisonUndefined(((reg & 0xf) << INFO.REG1) | (OPERAND_SIZE_CODE[operandSize] << INFO.OPERAND_SIZE),
    ~(bits(INFO.REG1, 4) | bits(INFO.OPERAND_SIZE, 2)) >>> 0);
}

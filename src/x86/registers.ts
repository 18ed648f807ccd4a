// General-purpose and segment register names and their encodings (the numbers used in ModRM/REX).
// See SDM Vol. 2A, "Register Encodings Associated with the +rb, +rw, and +rd Nomenclature" and
// "Addressing-Mode Encoding of ModR/M and SIB Bytes".

/** 64-bit GPR names in encoding order: the index is the register number in ModRM.reg/rm (+ REX.R/B). */
export const GPR64 = [
  'rax', 'rcx', 'rdx', 'rbx', 'rsp', 'rbp', 'rsi', 'rdi',
  'r8', 'r9', 'r10', 'r11', 'r12', 'r13', 'r14', 'r15',
] as const;
export const GPR32 = [
  'eax', 'ecx', 'edx', 'ebx', 'esp', 'ebp', 'esi', 'edi',
  'r8d', 'r9d', 'r10d', 'r11d', 'r12d', 'r13d', 'r14d', 'r15d',
] as const;
export const GPR16 = [
  'ax', 'cx', 'dx', 'bx', 'sp', 'bp', 'si', 'di',
  'r8w', 'r9w', 'r10w', 'r11w', 'r12w', 'r13w', 'r14w', 'r15w',
] as const;
/** 8-bit registers with a REX prefix (SPL..DIL replace AH..BH). */
export const GPR8_REX = [
  'al', 'cl', 'dl', 'bl', 'spl', 'bpl', 'sil', 'dil',
  'r8b', 'r9b', 'r10b', 'r11b', 'r12b', 'r13b', 'r14b', 'r15b',
] as const;
/** 8-bit registers without REX: encodings 4–7 name the high bytes of AX, CX, DX, BX. */
export const GPR8_LEGACY = ['al', 'cl', 'dl', 'bl', 'ah', 'ch', 'dh', 'bh'] as const;

export type Gpr64Name = (typeof GPR64)[number];

export const RAX = 0, RCX = 1, RDX = 2, RBX = 3, RSP = 4, RBP = 5, RSI = 6, RDI = 7;
export const R8 = 8, R9 = 9, R10 = 10, R11 = 11, R12 = 12, R13 = 13, R14 = 14, R15 = 15;

/** Segment registers in the order of the ModRM.reg encoding of MOV Sreg. See SDM Vol. 2B, "MOV—Move". */
export const SEGMENT_REGISTERS = ['es', 'cs', 'ss', 'ds', 'fs', 'gs'] as const;
export type SegmentName = (typeof SEGMENT_REGISTERS)[number];
export const ES = 0, CS = 1, SS = 2, DS = 3, FS = 4, GS = 5;

/** Index of a 64-bit GPR by name, or -1. */
export function gprIndex(name: string): number {
  return (GPR64 as readonly string[]).indexOf(name.toLowerCase());
}

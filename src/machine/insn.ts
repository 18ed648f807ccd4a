// A decoded instruction: the decoder's output and the interpreter's input.
// One Insn object is reused (or kept in a code block); decoding allocates nothing.
// See SDM Vol. 2A, "Instruction Format".

export class Insn {
  /**
   * Opcode key: one-byte opcodes 000H–0FFH, 0F xx → 100H–1FFH, 0F 38 xx → 200H–2FFH, 0F 3A xx → 300H–3FFH.
   * OP_INVALID when decoding found no valid/implemented instruction (see `invalidReason`).
   */
  op = 0;
  /** Length in bytes (1–15). */
  len = 0;
  /** Code size this was decoded for: 16, 32 or 64. */
  bits = 64;
  /** Operand size in bytes (2, 4, 8). Byte forms are told apart by opcode. */
  opSize = 4;
  /** Address size in bytes (2, 4, 8). */
  addrSize = 8;
  /** 0, F3H (REP/REPE) or F2H (REPNE) — the last of the two seen. */
  rep = 0;
  lock = false;
  has66 = false;
  /** REX byte (40H–4FH) or 0. With any REX, byte registers 4–7 are SPL..DIL instead of AH..BH. */
  rex = 0;
  /** ModRM fields: mod (0–3), reg (0–15 with REX.R), rm (0–15 with REX.B; register number when mod = 3). */
  mod = 0;
  reg = 0;
  rm = 0;
  /** True when the r/m operand (or moffs, or a string operand) is in memory. */
  mem = false;
  /** Segment of the memory operand: the override, or the default (DS, or SS for RSP/RBP-based). */
  seg = 3;
  /** Segment override prefix (0–5) or -1. */
  segOverride = -1;
  /** Memory operand: base and index GPR numbers (-1 for none), scale as a shift (0–3), signed displacement. */
  base = -1;
  index = -1;
  scale = 0;
  disp = 0;
  /** RIP-relative: the effective address is next-RIP + disp. */
  ripRel = false;
  /** Immediate, low 32 bits (sign-extended values are kept signed); `immHi` the high 32 bits (imm64 or sign). */
  imm = 0;
  immHi = 0;
  /** Second immediate: far-pointer selector, ENTER level, RET imm16 … */
  imm2 = 0;
  /** For OP_INVALID: why. 'invalid' = not an x86 instruction here; 'unimplemented' = valid x86, not in VMX Lab. */
  invalidKind: '' | 'invalid' | 'unimplemented' = '';
  invalidReason = '';
  /** For OP_INVALID: the opcode key that was refused (-1 otherwise), e.g. so an x87 escape still gets its #NM. */
  invalidKey = -1;
  /** Opcode bytes without prefixes, for messages. */
  opcodeText = '';

  copyFrom(o: Insn): void {
    this.op = o.op; this.len = o.len; this.bits = o.bits; this.opSize = o.opSize; this.addrSize = o.addrSize;
    this.rep = o.rep; this.lock = o.lock; this.has66 = o.has66; this.rex = o.rex; this.mod = o.mod;
    this.reg = o.reg; this.rm = o.rm; this.mem = o.mem; this.seg = o.seg; this.segOverride = o.segOverride;
    this.base = o.base; this.index = o.index; this.scale = o.scale; this.disp = o.disp; this.ripRel = o.ripRel;
    this.imm = o.imm; this.immHi = o.immHi; this.imm2 = o.imm2; this.invalidKind = o.invalidKind;
    this.invalidReason = o.invalidReason; this.invalidKey = o.invalidKey; this.opcodeText = o.opcodeText;
  }
}

export const OP_INVALID = 0x400;

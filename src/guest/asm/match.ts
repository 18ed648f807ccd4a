// Matching parsed operands against the operand kinds of an iced form (`OpCodeOperandKind`), and
// turning each accepted operand into an argument for building the iced Instruction.
import { MemoryOperand, OpCodeOperandKind, Register, RegisterExt } from 'iced-x86';
import type { Expr } from './expr.ts';
import type { Form } from './forms.ts';
import type { MemOperand, Operand } from './parse.ts';
import { hexLower } from '../../util/hex.ts';

/** What the encoder needs to know while matching: code size, address, `default rel`, expression values. */
export interface MatchContext {
  readonly bits: 16 | 32 | 64;
  /** Address of the instruction (its RIP). */
  readonly address: bigint;
  /** `default rel` is in effect. */
  readonly defaultRel: boolean;
  /** Evaluate an expression (the assembler substitutes a placeholder for a not-yet-defined label). */
  value(e: Expr): bigint;
}

export type Arg =
  | { readonly t: 'R'; readonly reg: Register }
  | { readonly t: 'M'; readonly mem: (length: number) => MemoryOperand; readonly ripBase: boolean }
  | { readonly t: 'I'; readonly signed: boolean; readonly v: bigint }
  | { readonly t: 'B'; readonly target: bigint }
  | { readonly t: 'F'; readonly selector: number; readonly offset: number };

const K = OpCodeOperandKind;
type RegClass = (r: Register) => boolean;
const gpr8: RegClass = (r) => RegisterExt.isGPR8(r);
const gpr16: RegClass = (r) => RegisterExt.isGPR16(r);
const gpr32: RegClass = (r) => RegisterExt.isGPR32(r);
const gpr64: RegClass = (r) => RegisterExt.isGPR64(r);
const xmm: RegClass = (r) => RegisterExt.isXMM(r);
const fixed = (reg: Register): RegClass => (r) => r === reg;

/** Operand kinds that take a register, and which registers they accept. */
const REGISTER_KINDS = new Map<OpCodeOperandKind, RegClass>([
  [K.r8_reg, gpr8], [K.r8_opcode, gpr8], [K.r8_or_mem, gpr8],
  [K.r16_reg, gpr16], [K.r16_reg_mem, gpr16], [K.r16_rm, gpr16], [K.r16_opcode, gpr16], [K.r16_or_mem, gpr16],
  [K.r32_reg, gpr32], [K.r32_reg_mem, gpr32], [K.r32_rm, gpr32], [K.r32_opcode, gpr32], [K.r32_or_mem, gpr32],
  [K.r64_reg, gpr64], [K.r64_reg_mem, gpr64], [K.r64_rm, gpr64], [K.r64_opcode, gpr64], [K.r64_or_mem, gpr64],
  [K.xmm_reg, xmm], [K.xmm_rm, xmm], [K.xmm_or_mem, xmm],
  [K.seg_reg, (r) => RegisterExt.isSegmentRegister(r)],
  [K.cr_reg, (r) => RegisterExt.isCR(r)],
  [K.dr_reg, (r) => RegisterExt.isDR(r)],
  [K.es, fixed(Register.ES)], [K.cs, fixed(Register.CS)], [K.ss, fixed(Register.SS)],
  [K.ds, fixed(Register.DS)], [K.fs, fixed(Register.FS)], [K.gs, fixed(Register.GS)],
  [K.al, fixed(Register.AL)], [K.cl, fixed(Register.CL)], [K.ax, fixed(Register.AX)],
  [K.dx, fixed(Register.DX)], [K.eax, fixed(Register.EAX)], [K.rax, fixed(Register.RAX)],
]);

/** Operand kinds that take a memory operand. */
const MEMORY_KINDS = new Set<OpCodeOperandKind>([
  K.mem, K.r8_or_mem, K.r16_or_mem, K.r32_or_mem, K.r64_or_mem,
  K.r16_reg_mem, K.r32_reg_mem, K.r64_reg_mem, K.xmm_or_mem,
]);

/** Immediate kinds: [bytes in the instruction, operand width the value is sign-extended to (0 = none)]. */
const IMMEDIATE_KINDS = new Map<OpCodeOperandKind, readonly [number, number]>([
  [K.imm8, [1, 0]], [K.imm8_const_1, [1, 0]], [K.imm16, [2, 0]], [K.imm32, [4, 0]], [K.imm64, [8, 0]],
  [K.imm8sex16, [1, 16]], [K.imm8sex32, [1, 32]], [K.imm8sex64, [1, 64]], [K.imm32sex64, [4, 64]],
]);

/**
 * Relative branch kinds and the code size they belong to. A rel16 branch in 32/64-bit code is an
 * operand-size override that truncates the instruction pointer — never what `jmp label` means.
 */
const BRANCH_KINDS = new Map<OpCodeOperandKind, 16 | 32 | 64>([
  [K.br16_1, 16], [K.br16_2, 16], [K.br32_1, 32], [K.br32_4, 32], [K.br64_1, 64], [K.br64_4, 64],
]);
const SHORT_BRANCH_KINDS = new Set<OpCodeOperandKind>([K.br16_1, K.br32_1, K.br64_1]);

/** An Arg if the operand fits the kind; undefined if it is the wrong sort; a string says why a near-fit failed. */
export function matchOperand(kind: OpCodeOperandKind, op: Operand, form: Form, index: number, ctx: MatchContext): Arg | string | undefined {
  switch (op.kind) {
    case 'reg':
      if (REGISTER_KINDS.get(kind)?.(op.reg)) return { t: 'R', reg: op.reg };
      if (readsLow16(kind, form, index) && RegisterExt.isGPR16(op.reg)) {
        return { t: 'R', reg: RegisterExt.fullRegister32(op.reg) };
      }
      return undefined;
    case 'mem':
      return MEMORY_KINDS.has(kind) ? matchMemory(op, form, ctx) : undefined;
    case 'far':
      return matchFar(kind, op.selector, op.offset, op.size, ctx);
    case 'imm': {
      const branchBits = BRANCH_KINDS.get(kind);
      if (branchBits !== undefined) {
        if (branchBits !== ctx.bits) return undefined;
        if (op.distance !== undefined && (op.distance === 'short') !== SHORT_BRANCH_KINDS.has(kind)) return undefined;
        return { t: 'B', target: BigInt.asUintN(64, ctx.value(op.expr)) };
      }
      const imm = IMMEDIATE_KINDS.get(kind);
      if (imm === undefined) return undefined;
      // `push word 5` names the operand size; `strict dword 5` the immediate field's size.
      if (op.size !== undefined && op.size !== imm[0] && (op.strict || op.size * 8 !== form.operandSize)) return undefined;
      const v = ctx.value(op.expr);
      if (kind === K.imm8_const_1) return v === 1n ? { t: 'I', signed: false, v } : undefined;
      return immediate(v, imm[0], imm[1]);
    }
  }
}

/**
 * A source operand of the "r32/m16" kind (MOV Sreg, r/m16; LTR; LLDT; VERR; VERW; LMSW) uses only
 * the low 16 bits of the register, so `mov ds, ax` or `ltr ax` needs no operand-size prefix: it is
 * encoded as the 32-bit register, as NASM does. (Not for destinations: `mov ax, ss` with a 32-bit
 * register would zero bits 31:16.) See SDM Vol. 2, "MOV—Move" and "LTR—Load Task Register".
 */
function readsLow16(kind: OpCodeOperandKind, form: Form, index: number): boolean {
  if (form.memSize !== 2 || (kind !== K.r32_or_mem && kind !== K.r64_or_mem)) return false;
  if (index !== form.ops.length - 1) return false;
  return form.ops.length === 2 || LOW16_READERS.has(form.name.split('_')[0]!.toLowerCase());
}

const LOW16_READERS = new Set(['ltr', 'lldt', 'verr', 'verw', 'lmsw']);

function matchMemory(op: MemOperand, form: Form, ctx: MatchContext): Arg | string | undefined {
  if (op.far !== form.farPointer) return undefined;
  if (op.size !== undefined && form.memSize !== 0 && op.size !== form.memSize) return undefined;
  const disp = op.disp === undefined ? 0n : ctx.value(op.disp);
  const noRegisters = op.base === undefined && op.index === undefined;
  if (op.ripBase) {
    if (ctx.bits !== 64) return 'RIP-relative addressing exists only in 64-bit mode';
    const next = (length: number) => BigInt.asUintN(64, ctx.address + BigInt(length) + disp);
    return { t: 'M', ripBase: true, mem: (length) => new MemoryOperand(Register.RIP, Register.None, 1, next(length), 8, false, op.seg ?? Register.None) };
  }
  const ripRelative = ctx.bits === 64 && noRegisters && (op.rel ?? (ctx.defaultRel && !isFsGs(op.seg)));
  const base = ripRelative ? Register.RIP : (op.base ?? Register.None);
  const index = op.index ?? Register.None;
  const seg = op.seg ?? Register.None;
  // displSize: iced wants the address size for an absolute [disp] (8 = SIB form in 64-bit mode),
  // and otherwise 0 for "no displacement" or 1 for "as short as fits".
  const displSize = ripRelative ? 8 : noRegisters ? ctx.bits / 8 : disp === 0n ? 0 : 1;
  const displacement = ripRelative ? BigInt.asUintN(64, disp) : BigInt.asIntN(64, disp);
  return { t: 'M', ripBase: false, mem: () => new MemoryOperand(base, index, op.scale, displacement, displSize, false, seg) };
}

function isFsGs(seg: Register | undefined): boolean {
  return seg === Register.FS || seg === Register.GS;
}

function matchFar(kind: OpCodeOperandKind, selExpr: Expr, offExpr: Expr, size: number | undefined, ctx: MatchContext): Arg | string | undefined {
  // Without `word`/`dword`, the offset is as wide as the code size (ptr16:16 in 16-bit code), as in NASM.
  const offsetBytes = kind === K.farbr2_2 ? 2 : kind === K.farbr4_2 ? 4 : 0;
  if (offsetBytes === 0 || offsetBytes !== (size ?? (ctx.bits === 16 ? 2 : 4))) return undefined;
  const selector = ctx.value(selExpr);
  const offset = ctx.value(offExpr);
  if (selector < 0n || selector > 0xffffn) return `selector ${selector} does not fit in 16 bits`;
  if (offset < 0n || offset >= 1n << BigInt(8 * offsetBytes)) return `offset ${hexLower(offset)} does not fit in ${8 * offsetBytes} bits`;
  return { t: 'F', selector: Number(selector), offset: Number(offset) };
}

/**
 * An immediate of `bytes` bytes. With `extendTo` > 0 the CPU sign-extends it to that operand
 * width, so the value must survive the round trip (e.g. `add eax, 0xffffffff` is imm8 -1).
 */
function immediate(v: bigint, bytes: number, extendTo: number): Arg | string {
  const bits = BigInt(8 * bytes);
  if (extendTo === 0) {
    if (v < -(1n << (bits - 1n)) || v >= 1n << bits) return `value ${v} out of range for a ${bits}-bit immediate`;
    return { t: 'I', signed: false, v: BigInt.asUintN(Number(bits), v) };
  }
  const width = BigInt(extendTo);
  if (v < -(1n << (width - 1n)) || v >= 1n << width) return `value ${v} out of range for a ${width}-bit operand`;
  const narrow = BigInt.asIntN(Number(bits), v);
  if (BigInt.asUintN(extendTo, narrow) !== BigInt.asUintN(extendTo, v)) return `value ${v} does not fit in a sign-extended ${bits}-bit immediate`;
  return { t: 'I', signed: true, v: narrow };
}


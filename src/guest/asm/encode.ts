// Encoding one parsed instruction with iced-x86: pick the forms whose operand kinds accept the
// operands, build an iced `Instruction` for each, encode it at its address, keep the shortest.
import { Instruction, MemoryOperand, OpCodeOperandKind, Register, RegisterExt } from 'iced-x86';
import type { Code, Encoder } from 'iced-x86';
import { AsmError } from './expr.ts';
import type { Expr } from './expr.ts';
import { canonicalMnemonic, formsOf } from './forms.ts';
import type { Form } from './forms.ts';
import type { Instruction as ParsedInstruction, MemOperand, Operand } from './parse.ts';
import { registerName } from './registers.ts';
import { stringInstruction } from './string-ops.ts';

export interface EncodeContext {
  readonly bits: 16 | 32 | 64;
  /** Address of the instruction (its RIP). */
  readonly address: bigint;
  /** `default rel` is in effect. */
  readonly defaultRel: boolean;
  /** Evaluate an expression (the assembler substitutes a placeholder for a not-yet-defined label). */
  value(e: Expr): bigint;
  /** A reusable iced encoder for `bits`. */
  readonly encoder: Encoder;
}

/**
 * The bytes of one instruction. `minLength` keeps a form chosen in an earlier pass from shrinking
 * (so label layout converges): only encodings at least that long are considered when there are any.
 */
export function encodeInstruction(insn: ParsedInstruction, ctx: EncodeContext, minLength = 0): Uint8Array {
  const mnemonic = canonicalMnemonic(insn.mnemonic, ctx.bits);
  if (insn.operands.length === 0) {
    const str = stringInstruction(mnemonic, ctx.bits, insn.prefixes);
    if (str !== undefined) return encodeBuilt([{ make: () => str, lengthDependent: false }], ctx, minLength);
  }
  const all = formsOf(mnemonic);
  if (all.length === 0) throw new AsmError(`unknown instruction '${insn.mnemonic}'`);
  const forms = all.filter((f) => f.modes[ctx.bits]);
  if (forms.length === 0) throw new AsmError(`'${insn.mnemonic}' is not valid in ${ctx.bits}-bit code`);

  const reasons: string[] = [];
  let matched = matchForms(forms, insn.operands, ctx, reasons);
  // XCHG and TEST are symmetric; the SDM lists one operand order, assemblers accept both.
  if (matched.length === 0 && SYMMETRIC.has(mnemonic) && insn.operands.length === 2) {
    matched = matchForms(forms, [insn.operands[1]!, insn.operands[0]!], ctx, reasons);
  }
  matched = resolveOperandSize(matched, insn.operands, all, ctx.bits);
  if (matched.length === 0) {
    const shape = insn.operands.map(describe).join(', ');
    const why = reasons.length > 0 ? `: ${reasons[reasons.length - 1]}` : '';
    throw new AsmError(`invalid operands for '${insn.mnemonic}' (${shape})${why}`);
  }
  const prefixes = insn.prefixes;
  return encodeBuilt(
    matched.map(({ form, args }) => ({
      make: (length: number) => withPrefixes(build(form.code, args, length), prefixes),
      lengthDependent: args.some((a) => a.t === 'M' && a.ripBase),
    })),
    ctx,
    minLength,
  );
}

const SYMMETRIC = new Set(['xchg', 'test']);

function matchForms(forms: readonly Form[], operands: readonly Operand[], ctx: EncodeContext, reasons: string[]): { form: Form; args: Arg[] }[] {
  const matched: { form: Form; args: Arg[] }[] = [];
  for (const form of forms) {
    if (form.ops.length !== operands.length) continue;
    const args: Arg[] = [];
    for (let i = 0; i < form.ops.length; i++) {
      const a = matchOperand(form.ops[i]!, operands[i]!, form, i, ctx);
      if (typeof a === 'string') reasons.push(a);
      if (a === undefined || typeof a === 'string') break;
      args.push(a);
    }
    if (args.length === form.ops.length) matched.push({ form, args });
  }
  return matched;
}

/**
 * How to build one candidate. `length` is the instruction's own length, needed for `[rip + disp]`:
 * iced takes the absolute target of a RIP-relative operand, which is the next instruction's address
 * plus disp. The length of such an instruction does not depend on disp (always disp32), so it is
 * built once to learn the length and once more with the right target.
 */
interface Builder {
  make(length: number): Instruction;
  lengthDependent: boolean;
}

/** Encode every candidate; keep the shortest that is at least `minLength` long (else the shortest). */
function encodeBuilt(builders: readonly Builder[], ctx: EncodeContext, minLength: number): Uint8Array {
  let best: Uint8Array | undefined;
  let bestShort: Uint8Array | undefined;
  let lastError = '';
  for (const b of builders) {
    try {
      let bytes = encodeOnce(b.make(0), ctx);
      if (b.lengthDependent) bytes = encodeOnce(b.make(bytes.length), ctx);
      if (bestShort === undefined || bytes.length < bestShort.length) bestShort = bytes;
      if (bytes.length >= minLength && (best === undefined || bytes.length < best.length)) best = bytes;
    } catch (e) {
      lastError = e instanceof Error ? e.message : String(e);
      ctx.encoder.takeBuffer(); // a failed encode may leave partial bytes behind
    }
  }
  const chosen = best ?? bestShort;
  if (chosen === undefined) throw new AsmError(cleanIcedMessage(lastError));
  return chosen;
}

function encodeOnce(ins: Instruction, ctx: EncodeContext): Uint8Array {
  try {
    ctx.encoder.encode(ins, ctx.address);
    return ctx.encoder.takeBuffer();
  } finally {
    ins.free();
  }
}

type Arg =
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

/** An Arg if the operand fits the kind; undefined if it is the wrong sort; a string says why a near-fit failed. */
function matchOperand(kind: OpCodeOperandKind, op: Operand, form: Form, index: number, ctx: EncodeContext): Arg | string | undefined {
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
        return branchBits === ctx.bits ? { t: 'B', target: BigInt.asUintN(64, ctx.value(op.expr)) } : undefined;
      }
      const imm = IMMEDIATE_KINDS.get(kind);
      if (imm === undefined) return undefined;
      if (op.size !== undefined && op.size !== imm[0]) return undefined;
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

function matchMemory(op: MemOperand, form: Form, ctx: EncodeContext): Arg | string | undefined {
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

function matchFar(kind: OpCodeOperandKind, selExpr: Expr, offExpr: Expr, size: number | undefined, ctx: EncodeContext): Arg | string | undefined {
  // Without `word`/`dword`, the offset is as wide as the code size (ptr16:16 in 16-bit code), as in NASM.
  const offsetBytes = kind === K.farbr2_2 ? 2 : kind === K.farbr4_2 ? 4 : 0;
  if (offsetBytes === 0 || offsetBytes !== (size ?? (ctx.bits === 16 ? 2 : 4))) return undefined;
  const selector = ctx.value(selExpr);
  const offset = ctx.value(offExpr);
  if (selector < 0n || selector > 0xffffn) return `selector ${selector} does not fit in 16 bits`;
  if (offset < 0n || offset >= 1n << BigInt(8 * offsetBytes)) return `offset 0x${offset.toString(16)} does not fit in ${8 * offsetBytes} bits`;
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

/**
 * With a memory operand of unstated size, several forms may match (`inc [rax]`). NASM rejects that
 * — except for instructions whose operand size defaults to the stack width (PUSH/POP, JMP/CALL
 * through memory), which take the natural size of the mode.
 */
function resolveOperandSize(
  matched: { form: Form; args: Arg[] }[],
  operands: readonly Operand[],
  allForms: readonly Form[],
  bits: 16 | 32 | 64,
): { form: Form; args: Arg[] }[] {
  const unsized = operands.some((o) => o.kind === 'mem' && o.size === undefined);
  const sizes = new Set(matched.map((m) => m.form.memSize).filter((s) => s !== 0));
  if (!unsized || sizes.size <= 1) return matched;
  if (allForms.some((f) => f.defaultOpSize64)) {
    // A far pointer is a selector plus an offset of the natural size: m16:16 or m16:32 (NASM's default).
    const far = operands.some((o) => o.kind === 'mem' && o.far);
    const naturalSize = far ? 2 + (bits === 16 ? 2 : 4) : bits / 8;
    const natural = matched.filter((m) => m.form.memSize === naturalSize);
    if (natural.length > 0) return natural;
  }
  throw new AsmError('operation size not specified (add byte, word, dword or qword)');
}

/** Build the iced Instruction for a code from its arguments (iced's create* functions, by operand shape). */
function build(code: Code, args: readonly Arg[], length: number): Instruction {
  const shape = args.map((a) => a.t).join('');
  const [a, b, c] = args;
  const R = (x: Arg | undefined): Register => (x?.t === 'R' ? x.reg : Register.None);
  const M = (x: Arg | undefined): MemoryOperand => (x?.t === 'M' ? x.mem(length) : new MemoryOperand(Register.None, Register.None, 1, 0n, 0, false, Register.None));
  const I = (x: Arg | undefined): { signed: boolean; v: bigint } => (x?.t === 'I' ? x : { signed: false, v: 0n });
  const i32 = (x: Arg | undefined): number => Number(I(x).v);
  switch (shape) {
    case '': return Instruction.create(code);
    case 'R': return Instruction.createReg(code, R(a));
    case 'M': return Instruction.createMem(code, M(a));
    case 'I': return I(a).signed ? Instruction.createI32(code, i32(a)) : Instruction.createU32(code, i32(a));
    case 'B': return Instruction.createBranch(code, a?.t === 'B' ? a.target : 0n);
    case 'F': return a?.t === 'F' ? Instruction.createFarBranch(code, a.selector, a.offset) : Instruction.create(code);
    case 'RR': return Instruction.createRegReg(code, R(a), R(b));
    case 'RM': return Instruction.createRegMem(code, R(a), M(b));
    case 'MR': return Instruction.createMemReg(code, M(a), R(b));
    case 'RI': {
      const imm = I(b);
      if (imm.v > 0xffffffffn) return Instruction.createRegU64(code, R(a), imm.v);
      return imm.signed ? Instruction.createRegI32(code, R(a), i32(b)) : Instruction.createRegU32(code, R(a), i32(b));
    }
    case 'MI': return I(b).signed ? Instruction.createMemI32(code, M(a), i32(b)) : Instruction.createMemU32(code, M(a), i32(b));
    case 'IR': return Instruction.createU32Reg(code, i32(a), R(b));
    case 'II': return Instruction.createU32U32(code, i32(a), i32(b));
    case 'RRI': return I(c).signed ? Instruction.createRegRegI32(code, R(a), R(b), i32(c)) : Instruction.createRegRegU32(code, R(a), R(b), i32(c));
    case 'RMI': return I(c).signed ? Instruction.createRegMemI32(code, R(a), M(b), i32(c)) : Instruction.createRegMemU32(code, R(a), M(b), i32(c));
    case 'MRI': return I(c).signed ? Instruction.createMemRegI32(code, M(a), R(b), i32(c)) : Instruction.createMemRegU32(code, M(a), R(b), i32(c));
    case 'RRR': return Instruction.createRegRegReg(code, R(a), R(b), R(c));
    case 'MRR': return Instruction.createMemRegReg(code, M(a), R(b), R(c));
  }
  throw new AsmError(`operand shape ${shape} is not supported by the assembler`);
}

function withPrefixes(ins: Instruction, prefixes: readonly string[]): Instruction {
  for (const p of prefixes) {
    if (p === 'lock') ins.hasLockPrefix = true;
    else if (p === 'repne' || p === 'repnz') ins.hasRepnePrefix = true;
    else ins.hasRepePrefix = true;
  }
  return ins;
}

/** Short operand description for error messages: reg64, mem, qword mem, imm, far ptr. */
function describe(op: Operand): string {
  switch (op.kind) {
    case 'reg':
      return RegisterExt.isGPR(op.reg) ? `reg${8 * RegisterExt.size(op.reg)} ${registerName(op.reg)}` : registerName(op.reg);
    case 'mem':
      return op.size === undefined ? 'mem' : `${op.size * 8}-bit mem`;
    case 'imm':
      return 'imm';
    case 'far':
      return 'far pointer';
  }
}

/** iced's messages end with the instruction in parentheses; keep the first sentence. */
function cleanIcedMessage(message: string): string {
  return message.replace(/\s*\(.*\)\s*$/, '') || 'cannot encode instruction';
}


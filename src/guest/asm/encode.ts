// Encoding one parsed instruction with iced-x86: pick the forms whose operand kinds accept the
// operands, build an iced `Instruction` for each, encode it at its address, keep the shortest.
import { RegisterExt } from 'iced-x86';
import type { Encoder, Instruction } from 'iced-x86';
import { build, withPrefixes } from './build.ts';
import { AsmError } from './expr.ts';
import { canonicalMnemonic, formsOf } from './forms.ts';
import type { Form } from './forms.ts';
import { matchOperand } from './match.ts';
import type { Arg, MatchContext } from './match.ts';
import type { Instruction as ParsedInstruction, Operand } from './parse.ts';
import { registerName } from './registers.ts';
import { stringInstruction } from './string-ops.ts';

export interface EncodeContext extends MatchContext {
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


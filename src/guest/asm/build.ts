// Building the iced Instruction for a chosen form from its matched arguments, with iced's
// Instruction.create* functions chosen by operand shape (R register, M memory, I immediate,
// B branch target, F far pointer).
import { Instruction, MemoryOperand, Register } from 'iced-x86';
import type { Code } from 'iced-x86';
import { AsmError } from './expr.ts';
import type { Arg } from './match.ts';

/** Build the iced Instruction for a code from its arguments (iced's create* functions, by operand shape). */
export function build(code: Code, args: readonly Arg[], length: number): Instruction {
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

export function withPrefixes(ins: Instruction, prefixes: readonly string[]): Instruction {
  for (const p of prefixes) {
    if (p === 'lock') ins.hasLockPrefix = true;
    else if (p === 'repne' || p === 'repnz') ins.hasRepnePrefix = true;
    else ins.hasRepePrefix = true;
  }
  return ins;
}


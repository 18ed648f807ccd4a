// String instructions (MOVS, CMPS, LODS, STOS, SCAS, INS, OUTS) written without operands, as
// `rep movsb`. Their operands are implicit (DS:rSI, ES:rDI), so iced builds them from the address
// size and the REP prefix. See SDM Vol. 2, "REP/REPE/REPZ/REPNE/REPNZ—Repeat String Operation Prefix".
// XLATB addresses memory implicitly too (DS:[rBX + AL]) and is built here the same way.
import { Code, Instruction, OpKind, Register, RepPrefixKind } from 'iced-x86';

type Maker = (addressSize: number, rep: RepPrefixKind) => Instruction;
const N = Register.None;

const STRING_OPS: Readonly<Record<string, Maker>> = {
  movsb: (a, r) => Instruction.createMovsb(a, N, r),
  movsw: (a, r) => Instruction.createMovsw(a, N, r),
  movsd: (a, r) => Instruction.createMovsd(a, N, r),
  movsq: (a, r) => Instruction.createMovsq(a, N, r),
  cmpsb: (a, r) => Instruction.createCmpsb(a, N, r),
  cmpsw: (a, r) => Instruction.createCmpsw(a, N, r),
  cmpsd: (a, r) => Instruction.createCmpsd(a, N, r),
  cmpsq: (a, r) => Instruction.createCmpsq(a, N, r),
  lodsb: (a, r) => Instruction.createLodsb(a, N, r),
  lodsw: (a, r) => Instruction.createLodsw(a, N, r),
  lodsd: (a, r) => Instruction.createLodsd(a, N, r),
  lodsq: (a, r) => Instruction.createLodsq(a, N, r),
  stosb: (a, r) => Instruction.createStosb(a, r),
  stosw: (a, r) => Instruction.createStosw(a, r),
  stosd: (a, r) => Instruction.createStosd(a, r),
  stosq: (a, r) => Instruction.createStosq(a, r),
  scasb: (a, r) => Instruction.createScasb(a, r),
  scasw: (a, r) => Instruction.createScasw(a, r),
  scasd: (a, r) => Instruction.createScasd(a, r),
  scasq: (a, r) => Instruction.createScasq(a, r),
  insb: (a, r) => Instruction.createInsb(a, r),
  insw: (a, r) => Instruction.createInsw(a, r),
  insd: (a, r) => Instruction.createInsd(a, r),
  outsb: (a, r) => Instruction.createOutsb(a, N, r),
  outsw: (a, r) => Instruction.createOutsw(a, N, r),
  outsd: (a, r) => Instruction.createOutsd(a, N, r),
  xlatb: (a) => xlat(a),
};

function xlat(addressSize: number): Instruction {
  const ins = Instruction.create(Code.Xlat_m8);
  ins.op0Kind = OpKind.Memory;
  ins.memoryBase = addressSize === 64 ? Register.RBX : addressSize === 32 ? Register.EBX : Register.BX;
  ins.memoryIndex = Register.AL;
  ins.memoryIndexScale = 1;
  return ins;
}

/** The instruction, or undefined if `mnemonic` is not a string instruction (or is invalid in this mode). */
export function stringInstruction(mnemonic: string, bits: 16 | 32 | 64, prefixes: readonly string[]): Instruction | undefined {
  const make = STRING_OPS[mnemonic];
  if (make === undefined || (mnemonic.endsWith('q') && bits !== 64)) return undefined;
  const rep = prefixes.some((p) => p === 'repne' || p === 'repnz')
    ? RepPrefixKind.Repne
    : prefixes.some((p) => p === 'rep' || p === 'repe' || p === 'repz')
      ? RepPrefixKind.Repe
      : RepPrefixKind.None;
  const ins = make(bits, rep);
  if (prefixes.includes('lock')) ins.hasLockPrefix = true;
  return ins;
}

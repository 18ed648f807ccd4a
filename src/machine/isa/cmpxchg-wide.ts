// CMPXCHG8B m64 / CMPXCHG16B m128 (0F C7 /1; REX.W selects the 16-byte form): compare EDX:EAX (RDX:RAX) with
// the memory operand; if equal set ZF and store ECX:EBX (RCX:RBX), otherwise clear ZF and load the operand into
// EDX:EAX (RDX:RAX). The operand is written back with its own value when the comparison fails (the processor
// always writes it, so the access is a locked read-modify-write). Only ZF changes.
// See SDM Vol. 2A, "CMPXCHG8B/CMPXCHG16B—Compare and Exchange Bytes".
//
// Exceptions: #UD for a register operand (the decoder refuses it), for CMPXCHG8B without CPUID.01H:EDX.CX8 and
// CMPXCHG16B without CPUID.01H:ECX.CX16; #GP(0) when the CMPXCHG16B operand is not 16-byte aligned; the usual
// #GP/#SS/#PF of a write to the operand. VMX Lab checks that the whole operand is writable before it stores
// anything, so a fault leaves memory and registers unchanged. One LP runs at a time, so LOCK needs no more.

import type { Insn } from '../insn.ts';
import type { LogicalProcessor } from '../lp.ts';
import { ZF } from '../lazy-flags.ts';
import { gp, ud } from '../fault.ts';
import { linearAddress, readMem, scratch, setReg, writeMem } from '../operands.ts';
import { ACCESS_WRITE } from '../paging.ts';
import { CPUID_FEATURE, cpuidBit } from '../../x86/cpuid.ts';
import { RAX, RBX, RCX, RDX } from '../../x86/registers.ts';

const SDM = 'SDM Vol. 2A, "CMPXCHG8B/CMPXCHG16B—Compare and Exchange Bytes"';

export function cmpxchgWide(lp: LogicalProcessor, d: Insn, next: number): boolean {
  const wide = d.opSize === 8; // REX.W: CMPXCHG16B
  const f = wide ? CPUID_FEATURE.CX16 : CPUID_FEATURE.CX8;
  if (!cpuidBit(lp.cpuid(f.leaf, f.subleaf)[f.reg], f.bit)) {
    throw ud(`${wide ? 'CMPXCHG16B' : 'CMPXCHG8B'}: CPUID.01H:${f.reg.toUpperCase()}.${wide ? 'CX16' : 'CX8'}[bit ${f.bit}] = 0 on this processor`, SDM);
  }
  const half = wide ? 8 : 4;
  const la = linearAddress(lp, d, half * 2);
  if (wide && la % 16 !== 0) throw gp(0, 'CMPXCHG16B with a memory operand that is not 16-byte aligned', SDM);
  // The whole operand must be writable before anything changes (a page boundary may split it).
  lp.translate(la, ACCESS_WRITE);
  lp.translate(la + half * 2 - 1, ACCESS_WRITE);
  const mLo = readMem(lp, la, half), mLoHi = wide ? scratch.hi : 0;
  const mHi = readMem(lp, la + half, half), mHiHi = wide ? scratch.hi : 0;
  const equal = wide
    ? mLo === lp.regLo[RAX] && mLoHi === lp.regHi[RAX] && mHi === lp.regLo[RDX] && mHiHi === lp.regHi[RDX]
    : mLo === lp.regLo[RAX] && mHi === lp.regLo[RDX];
  if (equal) {
    writeMem(lp, la, half, lp.regLo[RBX]!, lp.regHi[RBX]!);
    writeMem(lp, la + half, half, lp.regLo[RCX]!, lp.regHi[RCX]!);
  } else {
    writeMem(lp, la, half, mLo, mLoHi);
    writeMem(lp, la + half, half, mHi, mHiHi);
    // A 32-bit register write zero-extends in 64-bit mode, as for any 32-bit destination.
    setReg(lp, RAX, half, 0, mLo, mLoHi);
    setReg(lp, RDX, half, 0, mHi, mHiHi);
  }
  lp.materializeFlags();
  lp.rflagsRaw = equal ? lp.rflagsRaw | ZF : lp.rflagsRaw & ~ZF;
  lp.rip = next;
  return false;
}

// SYSCALL (0F 05) and SYSRET (0F 07; REX.W 0F 07 returns to 64-bit code): the fast system call of 64-bit kernels.
// CS and SS selectors come from IA32_STAR, the target from IA32_LSTAR, the RFLAGS bits to clear from IA32_FMASK;
// the descriptor caches are loaded with fixed flat values (./flat-segments.ts). Both are #UD outside 64-bit mode:
// Intel processors do not support SYSCALL in compatibility mode, so IA32_CSTAR is never read.
// See SDM Vol. 2B, "SYSCALL—Fast System Call", "SYSRET—Return From Fast System Call" and Vol. 3A, "Fast System
// Calls in 64-Bit Mode".
//
// Neither causes a VM exit in VMX non-root operation (they are in no list of Vol. 3C, "Instructions That Cause VM
// Exits Conditionally" or "… Unconditionally"): a guest's SYSCALL goes to the guest's IA32_LSTAR.

import type { Insn } from '../insn.ts';
import type { LogicalProcessor } from '../lp.ts';
import { gp, ud } from '../fault.ts';
import { EFER } from '../../x86/control-registers.ts';
import { CPUID_FEATURE, cpuidBit } from '../../x86/cpuid.ts';
import { RFLAGS } from '../../x86/flags.ts';
import { RCX, R11 } from '../../x86/registers.ts';
import * as MSR from '../../x86/msr.ts';
import { getReg64, isCanonical, loadFlatCsSs, setReg64, signedAddress } from './flat-segments.ts';

const SYSCALL_SDM = 'SDM Vol. 2B, "SYSCALL—Fast System Call"';
const SYSRET_SDM = 'SDM Vol. 2B, "SYSRET—Return From Fast System Call"';
/** IA32_STAR[47:32]: the SYSCALL CS selector (SS is 8 above it). */
const STAR_SYSCALL_CS_SHIFT = 32n;
/** IA32_STAR[63:48]: the SYSRET base selector (32-bit CS at +0, SS at +8, 64-bit CS at +16). */
const STAR_SYSRET_CS_SHIFT = 48n;
/** The RFLAGS bits SYSRET takes from R11: RF, VM and the reserved bits are cleared. */
const SYSRET_RFLAGS_MASK = 0x3c7fd7;
const RPL_3 = 3;

/** SYSCALL: RCX ← RIP, R11 ← RFLAGS, RFLAGS &= ~IA32_FMASK, RIP ← IA32_LSTAR, CPL 0 with flat CS/SS from IA32_STAR. */
export function syscall(lp: LogicalProcessor, next: number): boolean {
  requireSyscallEnabled(lp, 'SYSCALL', SYSCALL_SDM);
  const star = lp.rdmsr(MSR.MSR_STAR);
  // The SDM has WRMSR keep IA32_LSTAR canonical; lp.ts does not check that yet, and a non-canonical target faults
  // at the first fetch instead.
  const target = signedAddress(lp.rdmsr(MSR.MSR_LSTAR));
  const fmask = Number(lp.rdmsr(MSR.MSR_SYSCALL_MASK) & 0xffffffffn);
  const rflags = lp.getRflags();
  setReg64(lp, RCX, next);
  lp.regLo[R11] = rflags;
  lp.regHi[R11] = 0;
  // RF is cleared as by any instruction that completes; FMASK picks the rest (usually IF, TF, DF, AC).
  lp.setRflags(rflags & ~fmask & ~RFLAGS.RF);
  const cs = Number((star >> STAR_SYSCALL_CS_SHIFT) & 0xffffn);
  loadFlatCsSs(lp, cs & 0xfffc, cs + 8, 0, true);
  lp.rip = target;
  return true;
}

/**
 * SYSRET: back to CPL 3 at RCX (64-bit, with REX.W) or ECX (compatibility mode), RFLAGS from R11, flat CS/SS from
 * IA32_STAR[63:48]. The #GP(0) for a non-canonical RCX is raised before anything changes, so it is delivered at
 * CPL 0 — on whatever stack RSP holds, which by then is usually the user's (why kernels check RCX themselves).
 */
export function sysret(lp: LogicalProcessor, d: Insn): boolean {
  requireSyscallEnabled(lp, 'SYSRET', SYSRET_SDM);
  if (lp.cpl !== 0) throw gp(0, `SYSRET at CPL ${lp.cpl}`, SYSRET_SDM);
  const to64 = d.opSize === 8;
  let target: number;
  if (to64) {
    target = getReg64(lp, RCX);
    if (!isCanonical(target)) throw gp(0, `SYSRET to a non-canonical RCX ${lp.getReg('rcx').toString(16)}H (the #GP is taken at CPL 0)`, SYSRET_SDM);
  } else target = lp.regLo[RCX]! >>> 0;
  const base = Number((lp.rdmsr(MSR.MSR_STAR) >> STAR_SYSRET_CS_SHIFT) & 0xffffn);
  lp.setRflags((lp.regLo[R11]! & SYSRET_RFLAGS_MASK) | RFLAGS.FIXED1);
  loadFlatCsSs(lp, (to64 ? base + 16 : base) | RPL_3, (base + 8) | RPL_3, 3, to64);
  lp.rip = target;
  return true;
}

/** #UD unless in 64-bit mode with IA32_EFER.SCE = 1 on a processor that reports SYSCALL. */
function requireSyscallEnabled(lp: LogicalProcessor, what: string, sdm: string): void {
  if (!lp.longMode64) throw ud(`${what} outside 64-bit mode (Intel processors do not support it in compatibility or legacy mode)`, sdm);
  const f = CPUID_FEATURE.SYSCALL;
  if (!cpuidBit(lp.cpuid(f.leaf, f.subleaf)[f.reg], f.bit)) throw ud(`${what}: CPUID.80000001H:EDX.SYSCALL[bit 11] = 0 on this processor`, sdm);
  if (!(lp.efer & EFER.SCE)) throw ud(`${what} with IA32_EFER.SCE = 0 (system-call extensions not enabled)`, sdm);
}

// SYSENTER (0F 34) and SYSEXIT (0F 35; REX.W 0F 35 returns to 64-bit code): the fast system call of 32-bit
// kernels, also available in IA-32e mode. The selectors are computed from IA32_SYSENTER_CS (SS at +8; SYSEXIT's
// CS at +16, or +32 for 64-bit code, with SS 8 above), the kernel's RIP and RSP come from IA32_SYSENTER_EIP/ESP and
// the user's from RDX/RCX. The descriptor caches get fixed flat values (./flat-segments.ts).
// See SDM Vol. 2B, "SYSENTER—Fast System Call", "SYSEXIT—Fast Return from Fast System Call" and Vol. 3A,
// "Performing Fast Calls to System Procedures with the SYSENTER and SYSEXIT Instructions".
//
// Neither causes a VM exit in VMX non-root operation (Vol. 3C, "Instructions That Cause VM Exits Conditionally"
// does not list them); a guest uses its own IA32_SYSENTER_* MSRs, which VM entry loads from the guest-state area.

import type { Insn } from '../insn.ts';
import type { LogicalProcessor } from '../lp.ts';
import { gp, ud } from '../fault.ts';
import { CR0, EFER } from '../../x86/control-registers.ts';
import { CPUID_FEATURE, cpuidBit } from '../../x86/cpuid.ts';
import { RFLAGS } from '../../x86/flags.ts';
import { RCX, RDX, RSP } from '../../x86/registers.ts';
import * as MSR from '../../x86/msr.ts';
import { getReg64, isCanonical, loadFlatCsSs, setReg64, signedAddress } from './flat-segments.ts';

const SYSENTER_SDM = 'SDM Vol. 2B, "SYSENTER—Fast System Call"';
const SYSEXIT_SDM = 'SDM Vol. 2B, "SYSEXIT—Fast Return from Fast System Call"';
const RPL_MASK = 3;

/**
 * SYSENTER: CPL 0 at IA32_SYSENTER_EIP with RSP = IA32_SYSENTER_ESP (64-bit code in IA-32e mode, else 32-bit),
 * RFLAGS.VM, IF and RF cleared. #GP(0) in real-address mode and when IA32_SYSENTER_CS[15:2] = 0 (a null selector).
 */
export function sysenter(lp: LogicalProcessor): boolean {
  requireSep(lp, 'SYSENTER', SYSENTER_SDM);
  if (!(lp.cr0 & CR0.PE)) throw gp(0, 'SYSENTER in real-address mode', SYSENTER_SDM);
  const cs = sysenterCs(lp, 'SYSENTER', SYSENTER_SDM);
  const ia32e = (lp.efer & EFER.LMA) !== 0;
  const eip = signedAddress(lp.rdmsr(MSR.MSR_IA32_SYSENTER_EIP));
  const esp = signedAddress(lp.rdmsr(MSR.MSR_IA32_SYSENTER_ESP));
  lp.setRflags(lp.getRflags() & ~(RFLAGS.VM | RFLAGS.IF | RFLAGS.RF));
  const sel = cs & 0xfffc;
  loadFlatCsSs(lp, sel, sel + 8, 0, ia32e);
  if (ia32e) {
    setReg64(lp, RSP, esp);
    lp.rip = eip;
  } else {
    lp.regLo[RSP] = esp | 0;
    lp.regHi[RSP] = 0;
    lp.rip = eip >>> 0;
  }
  return true;
}

/**
 * SYSEXIT: CPL 3 at RDX with RSP = RCX (REX.W: 64-bit code, both must be canonical) or at EDX with ESP = ECX.
 * #GP(0) at CPL ≠ 0, in real-address mode, and when IA32_SYSENTER_CS[15:2] = 0. RFLAGS is left as it is.
 */
export function sysexit(lp: LogicalProcessor, d: Insn): boolean {
  requireSep(lp, 'SYSEXIT', SYSEXIT_SDM);
  if (!(lp.cr0 & CR0.PE)) throw gp(0, 'SYSEXIT in real-address mode', SYSEXIT_SDM);
  const cs = sysenterCs(lp, 'SYSEXIT', SYSEXIT_SDM);
  if (lp.cpl !== 0) throw gp(0, `SYSEXIT at CPL ${lp.cpl}`, SYSEXIT_SDM);
  const to64 = d.opSize === 8;
  const rip = to64 ? getReg64(lp, RDX) : lp.regLo[RDX]! >>> 0;
  const rsp = to64 ? getReg64(lp, RCX) : lp.regLo[RCX]! >>> 0;
  if (to64 && !isCanonical(rip)) throw gp(0, `SYSEXIT to a non-canonical RDX ${lp.getReg('rdx').toString(16)}H`, SYSEXIT_SDM);
  if (to64 && !isCanonical(rsp)) throw gp(0, `SYSEXIT with a non-canonical RCX ${lp.getReg('rcx').toString(16)}H`, SYSEXIT_SDM);
  const sel = ((cs + (to64 ? 32 : 16)) & 0xffff) | RPL_MASK;
  loadFlatCsSs(lp, sel, sel + 8, 3, to64);
  setReg64(lp, RSP, rsp);
  lp.rip = rip;
  return true;
}

/** IA32_SYSENTER_CS[15:0]; #GP(0) when bits 15:2 are 0 (no kernel code segment configured). */
function sysenterCs(lp: LogicalProcessor, what: string, sdm: string): number {
  const cs = Number(lp.rdmsr(MSR.MSR_IA32_SYSENTER_CS) & 0xffffn);
  if ((cs & 0xfffc) === 0) throw gp(0, `${what} with IA32_SYSENTER_CS[15:2] = 0`, sdm);
  return cs;
}

/** #UD unless CPUID.01H:EDX.SEP[bit 11] = 1. */
function requireSep(lp: LogicalProcessor, what: string, sdm: string): void {
  const f = CPUID_FEATURE.SEP;
  if (!cpuidBit(lp.cpuid(f.leaf, f.subleaf)[f.reg], f.bit)) throw ud(`${what}: CPUID.01H:EDX.SEP[bit 11] = 0 on this processor`, sdm);
}

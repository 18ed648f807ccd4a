// LDMXCSR m32 / STMXCSR m32 (0F AE /2, /3): load and store the SSE control/status register. No SSE arithmetic
// runs in VMX Lab, but kernels set MXCSR while they bring up the FPU, and FXSAVE/FXRSTOR move the same register.
// See SDM Vol. 2B, "LDMXCSR—Load MXCSR Register" and Vol. 2C, "STMXCSR—Store MXCSR Register State".
//
// Exceptions, in order: #UD when CR0.EM = 1, CR4.OSFXSR = 0 or CPUID.01H:EDX.SSE = 0 (and for LOCK, refused by the
// decoder); #NM when CR0.TS = 1; the access's own faults; LDMXCSR: #GP(0) for a bit outside MXCSR_MASK.

import type { Insn } from '../insn.ts';
import type { LogicalProcessor } from '../lp.ts';
import { CpuFault, gp, ud } from '../fault.ts';
import { linearAddress, readMem, writeMem } from '../operands.ts';
import { CR0, CR4 } from '../../x86/control-registers.ts';
import { CPUID_FEATURE, cpuidBit } from '../../x86/cpuid.ts';
import { MXCSR_MASK } from './fpu-state.ts';

export function ldStMxcsr(lp: LogicalProcessor, d: Insn, next: number, load: boolean): boolean {
  const name = load ? 'LDMXCSR' : 'STMXCSR';
  const sdm = load ? 'SDM Vol. 2B, "LDMXCSR—Load MXCSR Register"' : 'SDM Vol. 2C, "STMXCSR—Store MXCSR Register State"';
  if (lp.cr0 & CR0.EM) throw ud(`${name} with CR0.EM = 1`, sdm);
  if (!(lp.cr4 & CR4.OSFXSR)) throw ud(`${name} with CR4.OSFXSR = 0 (the OS has not enabled SSE)`, sdm);
  const f = CPUID_FEATURE.SSE;
  if (!cpuidBit(lp.cpuid(f.leaf, f.subleaf)[f.reg], f.bit)) throw ud(`${name}: CPUID.01H:EDX.SSE[bit 25] = 0 on this processor`, sdm);
  if (lp.cr0 & CR0.TS) throw new CpuFault(7, -1, `${name} with CR0.TS = 1`, sdm);
  const la = linearAddress(lp, d, 4);
  if (load) {
    const v = readMem(lp, la, 4) >>> 0;
    if ((v & ~MXCSR_MASK) !== 0) throw gp(0, `LDMXCSR of ${v.toString(16).toUpperCase()}H: bits outside MXCSR_MASK ${MXCSR_MASK.toString(16).toUpperCase()}H are reserved`, sdm);
    lp.fpu.mxcsr = v;
  } else {
    writeMem(lp, la, 4, lp.fpu.mxcsr | 0, 0);
  }
  lp.rip = next;
  return false;
}

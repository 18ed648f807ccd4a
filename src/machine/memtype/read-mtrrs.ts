// The MTRR state of a logical processor, read the way software reads it: IA32_MTRRCAP first, then only the MSRs it
// announces (fixed ranges if FIX, VCNT variable pairs, the SMRR pair if SMRR). See SDM Vol. 3A, "MTRR Feature
// Identification".
import * as MSR from '../../x86/msr.ts';
import { FIXED_RANGE_MTRRS } from '../../x86/mtrr.ts';
import type { LogicalProcessor } from '../lp.ts';
import { hasFixedRanges, hasSmrr, vcntOf, type MtrrState } from './mtrr-state.ts';

/** null when the LP has no MTRRs (its CPU model reports CPUID.1:EDX.MTRR = 0, or there is no model). */
export function readMtrrState(lp: LogicalProcessor): MtrrState | null {
  if (!lp.hasMsr(MSR.MSR_IA32_MTRRCAP)) return null;
  const cap = lp.rdmsr(MSR.MSR_IA32_MTRRCAP);
  return {
    maxPhysAddr: lp.maxPhysAddr,
    cap,
    defType: lp.rdmsr(MSR.MSR_MTRRdefType),
    fixed: FIXED_RANGE_MTRRS.map((r) => (hasFixedRanges(cap) ? lp.rdmsr(r.msr) : 0n)),
    variable: Array.from({ length: vcntOf(cap) }, (_, n) => ({
      base: lp.rdmsr(MSR.MTRRphysBase_MSR(n)),
      mask: lp.rdmsr(MSR.MTRRphysMask_MSR(n)),
    })),
    smrr: hasSmrr(cap) ? { base: lp.rdmsr(MSR.MSR_IA32_SMRR_PHYSBASE), mask: lp.rdmsr(MSR.MSR_IA32_SMRR_PHYSMASK) } : null,
  };
}

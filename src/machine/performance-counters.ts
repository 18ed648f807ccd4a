// RDPMC's view of the performance-monitoring counters. ECX[30] selects the fixed-function counters (index in
// ECX[29:0]) or the general-purpose ones; an index the processor does not have is #GP(0). How many counters there
// are comes from CPUID leaf 0AH (EAX[15:8] general-purpose counters, EDX[4:0] fixed-function counters from
// version 2 on). VMX Lab counts no events: every counter that exists reads 0.
// See SDM Vol. 2B, "RDPMC—Read Performance-Monitoring Counters" and Vol. 3B, "Architectural Performance
// Monitoring".
import { gp } from './fault.ts';
import type { LogicalProcessor } from './lp.ts';

const RDPMC_SDM = 'SDM Vol. 2B, "RDPMC—Read Performance-Monitoring Counters"';
const CPUID_PERFMON_LEAF = 0xa;
const FIXED_FUNCTION_SELECT = 1 << 30;

/** The value RDPMC returns in EDX:EAX for counter `ecx`, or a #GP(0) for a counter that does not exist. */
export function readPerformanceCounter(lp: LogicalProcessor, ecx: number): bigint {
  const leaf = lp.cpuid(CPUID_PERFMON_LEAF);
  const version = leaf.eax & 0xff;
  const fixed = (ecx & FIXED_FUNCTION_SELECT) !== 0;
  const count = fixed ? (version >= 2 ? leaf.edx & 0x1f : 0) : version >= 1 ? (leaf.eax >>> 8) & 0xff : 0;
  const index = ecx & 0x3fffffff;
  if (index >= count) {
    throw gp(0, `RDPMC of ${fixed ? 'fixed-function' : 'general-purpose'} counter ${index}: this processor has ${count} (CPUID.0AH)`, RDPMC_SDM);
  }
  return 0n;
}

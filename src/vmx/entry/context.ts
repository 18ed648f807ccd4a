// What VM entry needs from the rest of the machine: the VMCS being entered, the capability MSRs, and the logical
// processor. This is the narrow view VMLAUNCH/VMRESUME hands to `vmEntry`.
import type { VmxCapabilities } from '../capabilities.ts';
import type { TransitionContext } from '../transition/transition-cpu.ts';
import type { CachedVmcsData } from './incremental.ts';

/** Everything `vmEntry` needs. */
export interface EntryContext extends TransitionContext {
  /** The model's decoded capability MSRs (usually `cpu.caps`). */
  readonly caps: VmxCapabilities;
  readonly instruction: 'VMLAUNCH' | 'VMRESUME';
  /**
   * The processor's cached copy of the VMCS being entered, when VM entry may remember its checks of it and re-run
   * only those whose inputs changed (./incremental.ts). Absent: every check runs.
   */
  readonly cached?: CachedVmcsData;
}

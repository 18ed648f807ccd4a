// Exercise 3.3 — read IA32_VMX_MISC and IA32_VMX_EPT_VPID_CAP, and build an EPT pointer this processor accepts.
// Read chapters/03-capabilities/README.md, sections "IA32_VMX_MISC" and "IA32_VMX_EPT_VPID_CAP and the EPTP".
// See SDM Vol. 3D, appendix "Miscellaneous Data" and "VPID and EPT Capabilities", and Vol. 3C,
// "Extended-Page-Table Pointer (EPTP)".
import {
  MSR_IA32_VMX_EPT_VPID_CAP, MSR_IA32_VMX_MISC, MSR_IA32_VMX_PROCBASED_CTLS, MSR_IA32_VMX_PROCBASED_CTLS2,
} from '#src/vmx/msrs';

/** Reads a model-specific register; reading one the processor does not implement raises #GP. */
export type Rdmsr = (msr: number) => bigint;

/** IA32_VMX_MISC, decoded. See SDM Vol. 3D, "Miscellaneous Data". */
export interface VmxMiscInfo {
  /** Bits 4:0: the VMX-preemption timer counts down by 1 every 2^rate TSC ticks. */
  readonly preemptionTimerRate: number;
  /** Bit 5: VM exits store EFER.LMA into the "IA-32e mode guest" VM-entry control. */
  readonly storesEferLma: boolean;
  /** Bits 8:6: activity states the guest-activity-state field may hold besides "active". */
  readonly activityStates: { readonly hlt: boolean; readonly shutdown: boolean; readonly waitForSipi: boolean };
  /** Bits 24:16: number of CR3-target values supported. */
  readonly cr3TargetCount: number;
  /** Bits 27:25 = N: recommended maximum number of entries in each MSR load/store list, 512 * (N + 1). */
  readonly maxMsrListEntries: number;
  /** Bit 29: VMWRITE may write any supported field, including the read-only VM-exit information fields. */
  readonly vmwriteAnyField: boolean;
  /** Bit 30: VM entry may inject a software interrupt/exception with instruction length 0. */
  readonly zeroLengthInjection: boolean;
  /** Bits 63:32: MSEG revision identifier. */
  readonly msegRevisionId: number;
}

/** IA32_VMX_EPT_VPID_CAP, decoded. See SDM Vol. 3D, "VPID and EPT Capabilities". */
export interface EptVpidCaps {
  /** Bit 0: EPT entries may allow execute without read (execute-only pages). */
  readonly executeOnly: boolean;
  /** Bit 6: page-walk length 4 (EPTP bits 5:3 = 3). Bit 7: page-walk length 5. */
  readonly pageWalkLength4: boolean;
  readonly pageWalkLength5: boolean;
  /** Bit 8: EPT paging structures may be uncacheable (EPTP memory type 0). */
  readonly memoryTypeUC: boolean;
  /** Bit 14: EPT paging structures may be write-back (EPTP memory type 6). */
  readonly memoryTypeWB: boolean;
  /** Bit 16: a PDE may map a 2-MByte page. Bit 17: a PDPTE may map a 1-GByte page. */
  readonly pages2M: boolean;
  readonly pages1G: boolean;
  /** Bit 21: accessed and dirty flags for EPT (EPTP bit 6 may be 1). */
  readonly accessedDirty: boolean;
  /** Bit 22: advanced VM-exit information for EPT violations. */
  readonly advancedExitInfo: boolean;
  /** Bit 20: INVEPT; bit 25: single-context type; bit 26: all-context type. */
  readonly invept: { readonly supported: boolean; readonly singleContext: boolean; readonly allContext: boolean };
  /** Bit 32: INVVPID; bits 40–43: individual-address, single-context, all-context, single-context-retaining-globals. */
  readonly invvpid: {
    readonly supported: boolean;
    readonly individualAddress: boolean;
    readonly singleContext: boolean;
    readonly allContext: boolean;
    readonly singleContextRetainingGlobals: boolean;
  };
}

export interface EptpOptions {
  /** MAXPHYADDR (CPUID.80000008H:EAX[7:0]): the PML4 address must fit in this many bits. */
  readonly maxPhysAddr: number;
  /** Ask for EPT accessed/dirty flags (default true); they are enabled only if the processor supports them. */
  readonly accessedDirty?: boolean;
}

export type EptpFailure =
  | 'EPT not supported'
  | 'page-walk length 4 not supported'
  | 'no supported EPT memory type'
  | 'PML4 address not 4-KByte aligned'
  | 'PML4 address beyond MAXPHYADDR';

export type EptpResult =
  | { readonly ok: true; readonly eptp: bigint; readonly memoryType: 'WB' | 'UC'; readonly accessedDirty: boolean }
  | { readonly ok: false; readonly reason: EptpFailure };

// EPTP layout (SDM Vol. 3C, "Extended-Page-Table Pointer (EPTP)"):
//
//   63         N  N-1            12 11    7   6    5    3 2     0
//  +------------+------------------+-------+-----+-------+-------+
//  | reserved 0 | PML4 phys address| rsvd 0| A/D | walk-1| memtype|
//  +------------+------------------+-------+-----+-------+-------+
//   N = MAXPHYADDR; walk-1 = 3 for 4-level EPT; memtype 6 = WB, 0 = UC.

export function decodeVmxMisc(rdmsr: Rdmsr): VmxMiscInfo {
  // TODO: read IA32_VMX_MISC and pull out each field (bit positions are in the interface above).
  throw new Error('TODO: decodeVmxMisc');
}

/**
 * IA32_VMX_EPT_VPID_CAP decoded, or null when the MSR does not exist: it exists only if "enable EPT" or
 * "enable VPID" may be 1 (which needs the secondary controls). See SDM Vol. 3D, "VPID and EPT Capabilities".
 */
export function decodeEptVpidCap(rdmsr: Rdmsr): EptVpidCaps | null {
  // TODO: first make sure the MSR exists — reading a missing MSR raises #GP:
  //   IA32_VMX_PROCBASED_CTLS bit 63 (allowed-1 of "activate secondary controls") must be 1, and then
  //   IA32_VMX_PROCBASED_CTLS2 bit 33 ("enable EPT" allowed-1) or bit 37 ("enable VPID" allowed-1) must be 1.
  throw new Error('TODO: decodeEptVpidCap');
}

/**
 * An EPTP for a 4-level EPT whose PML4 table is at physical address `pml4`: write-back paging-structure accesses if
 * supported (else uncacheable), accessed/dirty flags only if asked for (default: asked) and IA32_VMX_EPT_VPID_CAP[21] = 1
 * (setting bit 6 otherwise makes VMLAUNCH fail with VM-instruction error 7). On failure, report the first problem
 * in the order the EptpFailure type lists them.
 */
export function makeEptp(rdmsr: Rdmsr, pml4: bigint, opts: EptpOptions): EptpResult {
  // TODO: "enable EPT" must be allowed-1; then page-walk length 4; then a memory type (WB preferred, else UC);
  // then the address. Build the EPTP from the picture above.
  throw new Error('TODO: makeEptp');
}

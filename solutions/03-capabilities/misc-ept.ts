// Reading IA32_VMX_MISC and IA32_VMX_EPT_VPID_CAP, and building an EPT pointer this processor accepts.
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

const bit = (value: bigint, n: number) => ((value >> BigInt(n)) & 1n) === 1n;
const field = (value: bigint, hi: number, lo: number) => Number((value >> BigInt(lo)) & ((1n << BigInt(hi - lo + 1)) - 1n));

export function decodeVmxMisc(rdmsr: Rdmsr): VmxMiscInfo {
  const misc = rdmsr(MSR_IA32_VMX_MISC);
  return {
    preemptionTimerRate: field(misc, 4, 0),
    storesEferLma: bit(misc, 5),
    activityStates: { hlt: bit(misc, 6), shutdown: bit(misc, 7), waitForSipi: bit(misc, 8) },
    cr3TargetCount: field(misc, 24, 16),
    maxMsrListEntries: 512 * (field(misc, 27, 25) + 1),
    vmwriteAnyField: bit(misc, 29),
    zeroLengthInjection: bit(misc, 30),
    msegRevisionId: field(misc, 63, 32),
  };
}

// Secondary processor-based control bits whose availability decides whether IA32_VMX_EPT_VPID_CAP exists.
const ACTIVATE_SECONDARY_CONTROLS = 63; // allowed-1 half of IA32_VMX_PROCBASED_CTLS: bit 32 + 31
const ENABLE_EPT = 32 + 1; // allowed-1 half of IA32_VMX_PROCBASED_CTLS2
const ENABLE_VPID = 32 + 5;

/** The secondary-controls capability MSR, or null when the processor has no secondary controls. */
function secondaryCaps(rdmsr: Rdmsr): bigint | null {
  // IA32_VMX_PROCBASED_CTLS2 exists only if "activate secondary controls" may be 1.
  // See SDM Vol. 3D, "Secondary Processor-Based VM-Execution Controls".
  return bit(rdmsr(MSR_IA32_VMX_PROCBASED_CTLS), ACTIVATE_SECONDARY_CONTROLS) ? rdmsr(MSR_IA32_VMX_PROCBASED_CTLS2) : null;
}

/**
 * IA32_VMX_EPT_VPID_CAP decoded, or null when the MSR does not exist: it exists only if "enable EPT" or
 * "enable VPID" may be 1 (which needs the secondary controls). See SDM Vol. 3D, "VPID and EPT Capabilities".
 */
export function decodeEptVpidCap(rdmsr: Rdmsr): EptVpidCaps | null {
  const proc2 = secondaryCaps(rdmsr);
  if (proc2 === null || !(bit(proc2, ENABLE_EPT) || bit(proc2, ENABLE_VPID))) return null;
  const cap = rdmsr(MSR_IA32_VMX_EPT_VPID_CAP);
  return {
    executeOnly: bit(cap, 0),
    pageWalkLength4: bit(cap, 6),
    pageWalkLength5: bit(cap, 7),
    memoryTypeUC: bit(cap, 8),
    memoryTypeWB: bit(cap, 14),
    pages2M: bit(cap, 16),
    pages1G: bit(cap, 17),
    accessedDirty: bit(cap, 21),
    advancedExitInfo: bit(cap, 22),
    invept: { supported: bit(cap, 20), singleContext: bit(cap, 25), allContext: bit(cap, 26) },
    invvpid: {
      supported: bit(cap, 32),
      individualAddress: bit(cap, 40),
      singleContext: bit(cap, 41),
      allContext: bit(cap, 42),
      singleContextRetainingGlobals: bit(cap, 43),
    },
  };
}

// EPTP fields. See SDM Vol. 3C, "Extended-Page-Table Pointer (EPTP)".
const EPTP_MEMTYPE_UC = 0n; // bits 2:0
const EPTP_MEMTYPE_WB = 6n;
const EPTP_PAGE_WALK_4 = 3n << 3n; // bits 5:3 = page-walk length - 1
const EPTP_AD_ENABLE = 1n << 6n;
const PAGE_MASK = 0xfffn;

/**
 * An EPTP for a 4-level EPT whose PML4 table is at physical address `pml4`: write-back paging-structure accesses if
 * supported (else uncacheable), accessed/dirty flags only if asked for and IA32_VMX_EPT_VPID_CAP[21] = 1 (setting
 * bit 6 otherwise makes VMLAUNCH fail with VM-instruction error 7). Failures are checked in the order of EptpFailure.
 */
export function makeEptp(rdmsr: Rdmsr, pml4: bigint, opts: EptpOptions): EptpResult {
  // "Enable EPT" itself must be allowed-1; the capability MSR also exists on a VPID-only processor.
  const proc2 = secondaryCaps(rdmsr);
  const caps = proc2 !== null && bit(proc2, ENABLE_EPT) ? decodeEptVpidCap(rdmsr) : null;
  if (caps === null) return { ok: false, reason: 'EPT not supported' };
  if (!caps.pageWalkLength4) return { ok: false, reason: 'page-walk length 4 not supported' };
  if (!caps.memoryTypeWB && !caps.memoryTypeUC) return { ok: false, reason: 'no supported EPT memory type' };
  if ((pml4 & PAGE_MASK) !== 0n) return { ok: false, reason: 'PML4 address not 4-KByte aligned' };
  if (pml4 < 0n || pml4 >> BigInt(opts.maxPhysAddr) !== 0n) return { ok: false, reason: 'PML4 address beyond MAXPHYADDR' };

  const memoryType = caps.memoryTypeWB ? 'WB' : 'UC';
  const accessedDirty = (opts.accessedDirty ?? true) && caps.accessedDirty;
  const eptp = pml4 | (memoryType === 'WB' ? EPTP_MEMTYPE_WB : EPTP_MEMTYPE_UC) | EPTP_PAGE_WALK_4 | (accessedDirty ? EPTP_AD_ENABLE : 0n);
  return { ok: true, eptp, memoryType, accessedDirty };
}

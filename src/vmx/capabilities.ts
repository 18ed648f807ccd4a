// Decoding a CPU model's VMX capability MSRs into the facts the VMX instructions and VM entry use.
// Decoding happens once per model; the decoded object is plain data (numbers for 32-bit control masks, bigint for
// 64-bit MSR values). See SDM Vol. 3D, "VMX Capability Reporting Facility".
import {
  EPT_VPID_CAP, MSR_IA32_VMX_BASIC, MSR_IA32_VMX_CR0_FIXED0, MSR_IA32_VMX_CR0_FIXED1, MSR_IA32_VMX_CR4_FIXED0,
  MSR_IA32_VMX_CR4_FIXED1, MSR_IA32_VMX_ENTRY_CTLS, MSR_IA32_VMX_EPT_VPID_CAP, MSR_IA32_VMX_EXIT_CTLS,
  MSR_IA32_VMX_MISC, MSR_IA32_VMX_PINBASED_CTLS, MSR_IA32_VMX_PROCBASED_CTLS, MSR_IA32_VMX_PROCBASED_CTLS2,
  MSR_IA32_VMX_PROCBASED_CTLS3, MSR_IA32_VMX_TRUE_ENTRY_CTLS, MSR_IA32_VMX_TRUE_EXIT_CTLS,
  MSR_IA32_VMX_TRUE_PINBASED_CTLS, MSR_IA32_VMX_TRUE_PROCBASED_CTLS, MSR_IA32_VMX_VMCS_ENUM, MSR_IA32_VMX_VMFUNC,
  VMFUNC_EPTP_SWITCHING, VMX_BASIC, VMX_MISC,
} from './msrs.ts';
import { VMX_CONTROL } from './controls.ts';
import { intelHex } from '../util/hex.ts';

/**
 * Allowed settings of a 32-bit control field, as one capability MSR reports them: bits 31:0 are the allowed-0
 * settings (a 1 means the control must be 1), bits 63:32 the allowed-1 settings (a 0 means the control must be 0).
 * Both are unsigned 32-bit numbers. See SDM Vol. 3D, "VMX Capability Reporting Facility".
 */
export interface AllowedSettings {
  readonly allowed0: number;
  readonly allowed1: number;
}

export interface VmxBasic {
  /** Bits 30:0: the VMCS revision identifier software writes into VMXON and VMCS regions. */
  readonly revisionId: number;
  /** Bits 44:32: bytes to allocate for the VMXON region and each VMCS region. */
  readonly regionSize: number;
  /** Bit 48: the VMXON region, VMCS regions and referenced structures must be below 4 GBytes. */
  readonly physAddr32: boolean;
  /** Bit 49: dual-monitor treatment of SMIs and SMM is supported. */
  readonly dualMonitor: boolean;
  /** Bits 53:50: memory type the processor uses to access the VMCS (0 = UC, 6 = WB). */
  readonly memoryType: number;
  /** Bit 54: INS/OUTS exits report VM-exit instruction information. */
  readonly insOutsInfo: boolean;
  /** Bit 55: the TRUE_* MSRs exist; use them for allowed-0 settings. */
  readonly trueCtls: boolean;
  /** Bit 56: VM entry may inject hardware exceptions with or without an error code regardless of vector. */
  readonly noHwErrcodeCheck: boolean;
}

export interface VmxMisc {
  readonly raw: bigint;
  /** The preemption timer counts down by 1 every 2^rate TSC ticks. */
  readonly preemptionTimerRate: number;
  readonly storesEferLma: boolean;
  readonly activityHlt: boolean;
  readonly activityShutdown: boolean;
  readonly activityWaitForSipi: boolean;
  readonly cr3TargetCount: number;
  /** Recommended maximum number of entries in each MSR list: 512 * (N + 1). */
  readonly maxMsrListEntries: number;
  /** Bit 29: VMWRITE may write VM-exit information fields. */
  readonly vmwriteAnyField: boolean;
  /** Bit 30: software interrupts/exceptions may be injected with instruction length 0. */
  readonly zeroLengthInjection: boolean;
  readonly msegRevisionId: number;
}

export interface VmxCapabilities {
  /** The raw MSR values (index → value), as the model reports them. */
  readonly raw: ReadonlyMap<number, bigint>;
  readonly basic: VmxBasic;
  /** Non-TRUE control MSRs (481H–484H): default1 bits are reported as must-be-1. */
  readonly pinbased: AllowedSettings;
  readonly procbased: AllowedSettings;
  readonly exit: AllowedSettings;
  readonly entry: AllowedSettings;
  /** TRUE_* MSRs (48DH–490H), or null when IA32_VMX_BASIC[55] = 0 (the MSRs do not exist). */
  readonly truePinbased: AllowedSettings | null;
  readonly trueProcbased: AllowedSettings | null;
  readonly trueExit: AllowedSettings | null;
  readonly trueEntry: AllowedSettings | null;
  /** What VM entry checks against: the TRUE_* settings when BASIC[55] = 1, else the non-TRUE ones. */
  readonly effective: {
    readonly pin: AllowedSettings;
    readonly proc: AllowedSettings;
    /** All zero when there are no secondary controls. */
    readonly proc2: AllowedSettings;
    readonly exit: AllowedSettings;
    readonly entry: AllowedSettings;
  };
  /** IA32_VMX_PROCBASED_CTLS2, or null when "activate secondary controls" cannot be 1 (the MSR does not exist). */
  readonly procbased2: AllowedSettings | null;
  /** IA32_VMX_PROCBASED_CTLS3 (allowed-1 settings of the 64-bit tertiary controls), or null. */
  readonly procbased3: bigint | null;
  readonly misc: VmxMisc;
  readonly cr0Fixed0: bigint;
  readonly cr0Fixed1: bigint;
  readonly cr4Fixed0: bigint;
  readonly cr4Fixed1: bigint;
  /** IA32_VMX_VMCS_ENUM bits 9:1: the highest field index the processor reports. */
  readonly vmcsEnumMaxIndex: number;
  /** IA32_VMX_EPT_VPID_CAP, or 0n when neither EPT nor VPID can be enabled (the MSR does not exist). */
  readonly eptVpidCap: bigint;
  /** IA32_VMX_VMFUNC, or 0n when "enable VM functions" cannot be 1. */
  readonly vmfunc: bigint;
  /** Facts about the model's data the decoder had to assume, for the reference pages and tests. */
  readonly notes: readonly string[];
}

/** Thrown only for a malformed model definition (a data error), never by anything software does at run time. */
export class CapabilityDataError extends Error {
  override readonly name = 'CapabilityDataError';
}

const U32 = 0xffffffffn;

/** Split a control capability MSR into allowed-0 (bits 31:0) and allowed-1 (bits 63:32). */
export function allowedSettings(msr: bigint): AllowedSettings {
  return { allowed0: Number(msr & U32), allowed1: Number((msr >> 32n) & U32) };
}

/** True if `value` is a legal setting: every allowed-0 bit set, no bit outside allowed-1 set. */
export function controlsAllowed(value: number, a: AllowedSettings): boolean {
  return ((value & a.allowed0) >>> 0) === a.allowed0 >>> 0 && (value & ~a.allowed1) >>> 0 === 0;
}

export function decodeBasic(basic: bigint): VmxBasic {
  return {
    revisionId: Number(basic & VMX_BASIC.REVISION_ID_MASK),
    regionSize: Number((basic >> VMX_BASIC.REGION_SIZE_SHIFT) & VMX_BASIC.REGION_SIZE_MASK),
    physAddr32: (basic & VMX_BASIC.PHYS_ADDR_32BIT) !== 0n,
    dualMonitor: (basic & VMX_BASIC.DUAL_MONITOR) !== 0n,
    memoryType: Number((basic >> VMX_BASIC.MEMORY_TYPE_SHIFT) & VMX_BASIC.MEMORY_TYPE_MASK),
    insOutsInfo: (basic & VMX_BASIC.INOUT) !== 0n,
    trueCtls: (basic & VMX_BASIC.TRUE_CTLS) !== 0n,
    noHwErrcodeCheck: (basic & VMX_BASIC.NO_HW_ERRCODE_CHECK) !== 0n,
  };
}

export function decodeMisc(misc: bigint): VmxMisc {
  return {
    raw: misc,
    preemptionTimerRate: Number(misc & VMX_MISC.PREEMPTION_TIMER_RATE_MASK),
    storesEferLma: (misc & VMX_MISC.SAVE_EFER_LMA) !== 0n,
    activityHlt: (misc & VMX_MISC.ACTIVITY_HLT) !== 0n,
    activityShutdown: (misc & VMX_MISC.ACTIVITY_SHUTDOWN) !== 0n,
    activityWaitForSipi: (misc & VMX_MISC.ACTIVITY_WAIT_SIPI) !== 0n,
    cr3TargetCount: Number((misc >> VMX_MISC.CR3_TARGETS_SHIFT) & VMX_MISC.CR3_TARGETS_MASK),
    maxMsrListEntries: 512 * (Number((misc >> VMX_MISC.MSR_LIST_SHIFT) & VMX_MISC.MSR_LIST_MASK) + 1),
    vmwriteAnyField: (misc & VMX_MISC.VMWRITE_ANY_FIELD) !== 0n,
    zeroLengthInjection: (misc & VMX_MISC.ZERO_LEN_INS) !== 0n,
    msegRevisionId: Number((misc >> VMX_MISC.MSEG_REVISION_SHIFT) & U32),
  };
}

/**
 * Decode a model's capability MSRs. An MSR the SDM says must exist (BASIC, the four control MSRs, MISC, the
 * fixed-bit MSRs, VMCS_ENUM; the TRUE_* MSRs when BASIC[55] = 1; PROCBASED_CTLS2 when secondary controls can be
 * enabled) missing from the model is a data error.
 */
export function decodeCapabilities(msrs: ReadonlyMap<number, bigint>): VmxCapabilities {
  const notes: string[] = [];
  const need = (index: number): bigint => {
    const v = msrs.get(index);
    if (v === undefined) throw new CapabilityDataError(`capability MSR ${intelHex(index)} missing from the model`);
    return v;
  };
  const basic = decodeBasic(need(MSR_IA32_VMX_BASIC));
  const pinbased = allowedSettings(need(MSR_IA32_VMX_PINBASED_CTLS));
  const procbased = allowedSettings(need(MSR_IA32_VMX_PROCBASED_CTLS));
  const exit = allowedSettings(need(MSR_IA32_VMX_EXIT_CTLS));
  const entry = allowedSettings(need(MSR_IA32_VMX_ENTRY_CTLS));

  // The TRUE_* MSRs exist only if IA32_VMX_BASIC[55] = 1. See SDM Vol. 3D, "Basic VMX Information".
  const trueOf = (index: number) => (basic.trueCtls ? allowedSettings(need(index)) : null);
  const truePinbased = trueOf(MSR_IA32_VMX_TRUE_PINBASED_CTLS);
  const trueProcbased = trueOf(MSR_IA32_VMX_TRUE_PROCBASED_CTLS);
  const trueExit = trueOf(MSR_IA32_VMX_TRUE_EXIT_CTLS);
  const trueEntry = trueOf(MSR_IA32_VMX_TRUE_ENTRY_CTLS);

  // PROCBASED_CTLS2 exists only if bit 63 of PROCBASED_CTLS ("activate secondary controls" allowed-1) is 1.
  // See SDM Vol. 3D, "Secondary Processor-Based VM-Execution Controls".
  const hasSecondary = (procbased.allowed1 & VMX_CONTROL.CPU_BASED_ACTIVATE_SECONDARY_CONTROLS) !== 0;
  const procbased2 = hasSecondary ? allowedSettings(need(MSR_IA32_VMX_PROCBASED_CTLS2)) : null;
  const hasTertiary = (procbased.allowed1 & VMX_CONTROL.CPU_BASED_ACTIVATE_TERTIARY_CONTROLS) !== 0;
  let procbased3: bigint | null = null;
  if (hasTertiary) {
    procbased3 = msrs.get(MSR_IA32_VMX_PROCBASED_CTLS3) ?? null;
    if (procbased3 === null) {
      procbased3 = 0n;
      notes.push('IA32_VMX_PROCBASED_CTLS3 (492H) not in the data although tertiary controls are allowed; assumed 0 (no tertiary control can be 1)');
    }
  }

  // EPT_VPID_CAP exists only if "enable EPT" or "enable VPID" may be 1; VMFUNC only if "enable VM functions" may
  // be 1. See SDM Vol. 3D, "VPID and EPT Capabilities" and "VM Functions".
  const p2a1 = procbased2?.allowed1 ?? 0;
  const eptOrVpid = (p2a1 & (VMX_CONTROL.SECONDARY_EXEC_ENABLE_EPT | VMX_CONTROL.SECONDARY_EXEC_ENABLE_VPID)) !== 0;
  const eptVpidCap = eptOrVpid ? need(MSR_IA32_VMX_EPT_VPID_CAP) : 0n;
  let vmfunc = 0n;
  if ((p2a1 & VMX_CONTROL.SECONDARY_EXEC_ENABLE_VMFUNC) !== 0) {
    const v = msrs.get(MSR_IA32_VMX_VMFUNC);
    if (v === undefined) {
      // The source log did not print 491H. EPTP switching is the only VM function the SDM defines and every
      // processor that allows "enable VM functions" reports it.
      vmfunc = VMFUNC_EPTP_SWITCHING;
      notes.push('IA32_VMX_VMFUNC (491H) not in the data although VM functions are allowed; assumed 1 (EPTP switching)');
    } else vmfunc = v;
  }

  const effective = {
    pin: truePinbased ?? pinbased,
    proc: trueProcbased ?? procbased,
    proc2: procbased2 ?? { allowed0: 0, allowed1: 0 },
    exit: trueExit ?? exit,
    entry: trueEntry ?? entry,
  };

  return {
    raw: msrs,
    basic,
    pinbased, procbased, exit, entry,
    truePinbased, trueProcbased, trueExit, trueEntry,
    effective,
    procbased2,
    procbased3,
    misc: decodeMisc(need(MSR_IA32_VMX_MISC)),
    cr0Fixed0: need(MSR_IA32_VMX_CR0_FIXED0),
    cr0Fixed1: need(MSR_IA32_VMX_CR0_FIXED1),
    cr4Fixed0: need(MSR_IA32_VMX_CR4_FIXED0),
    cr4Fixed1: need(MSR_IA32_VMX_CR4_FIXED1),
    // Bits 9:1 of IA32_VMX_VMCS_ENUM. See SDM Vol. 3D, "VMCS Enumeration".
    vmcsEnumMaxIndex: Number((need(MSR_IA32_VMX_VMCS_ENUM) >> 1n) & 0x1ffn),
    eptVpidCap,
    vmfunc,
    notes,
  };
}

// ---------------------------------------------------------------------------------------------------------------
// Feature questions asked in more than one place.
// ---------------------------------------------------------------------------------------------------------------

/** May control `mask` of `field` be 1 on this processor? (Uses the effective allowed-1 settings.) */
export function canSet(caps: VmxCapabilities, field: 'pin' | 'proc' | 'proc2' | 'exit' | 'entry', mask: number): boolean {
  return (caps.effective[field].allowed1 & mask) >>> 0 === mask >>> 0;
}

/** May tertiary control bit `bit` be 1? */
export function canSetTertiary(caps: VmxCapabilities, bit: number): boolean {
  return canSet(caps, 'proc', VMX_CONTROL.CPU_BASED_ACTIVATE_TERTIARY_CONTROLS) && caps.procbased3 !== null &&
    ((caps.procbased3 >> BigInt(bit)) & 1n) === 1n;
}

export function eptCap(caps: VmxCapabilities, bit: bigint): boolean {
  return (caps.eptVpidCap & bit) !== 0n;
}

/** The processor supports EPT and the INVEPT instruction. See SDM Vol. 3C, "INVEPT—Invalidate Translations Derived from EPT". */
export function supportsInvept(caps: VmxCapabilities): boolean {
  return canSet(caps, 'proc2', VMX_CONTROL.SECONDARY_EXEC_ENABLE_EPT) && eptCap(caps, EPT_VPID_CAP.VMX_EPT_INVEPT_BIT);
}

/** The processor supports VPIDs and the INVVPID instruction. See SDM Vol. 3C, "INVVPID—Invalidate Translations Based on VPID". */
export function supportsInvvpid(caps: VmxCapabilities): boolean {
  return canSet(caps, 'proc2', VMX_CONTROL.SECONDARY_EXEC_ENABLE_VPID) && eptCap(caps, EPT_VPID_CAP.VMX_VPID_INVVPID_BIT);
}

/** Physical-address width for VMX structures: 32 if IA32_VMX_BASIC[48] = 1, else MAXPHYADDR. */
export function vmxPhysAddrWidth(caps: VmxCapabilities, maxPhysAddr: number): number {
  return caps.basic.physAddr32 ? 32 : maxPhysAddr;
}

/**
 * The CPU models the course uses by default, chosen to cover the cases a hypervisor must handle:
 * a current full-featured CPU; one without EPT accessed/dirty flags (EPT_VPID_CAP[21] = 0); one without
 * "unrestricted guest" (secondary bit 7 not allowed-1); one without the TRUE_* MSRs (BASIC[55] = 0) and without
 * EPT/VPID; a recent hybrid CPU with tertiary controls; and Bochs's modeled Skylake-X for comparison.
 * Tests run on every model in data/cpu-models anyway.
 */
export const COURSE_CPU_MODELS = [
  'skylake-i5-6300u',
  'ivybridge-i5-3320m',
  'nehalem-lynnfield-i7-870',
  'penryn-core2-duo-t9600',
  'alderlake-i7-12700',
  'bochs-corei7-skylake-x',
] as const;

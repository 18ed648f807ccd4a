// The VMX capability MSRs (480H–492H) and IA32_FEATURE_CONTROL, with Linux names, and the named bits of the
// MSRs whose layout is not a plain allowed-0/allowed-1 pair.
// See SDM Vol. 3D, "VMX Capability Reporting Facility" and Vol. 3C, "Enabling and Entering VMX Operation".
import { FEATURE_CONTROL, MSR_IA32_FEATURE_CONTROL } from '../x86/msr.ts';

export { MSR_IA32_FEATURE_CONTROL };

export interface VmxMsr {
  readonly index: number;
  /** Linux name (arch/x86/include/asm/msr-index.h). */
  readonly name: string;
  readonly description: string;
  readonly sdm: string;
}

const CAP = (t: string) => `SDM Vol. 3D, "${t}"`;

export const MSR_IA32_VMX_BASIC = 0x480;
export const MSR_IA32_VMX_PINBASED_CTLS = 0x481;
export const MSR_IA32_VMX_PROCBASED_CTLS = 0x482;
export const MSR_IA32_VMX_EXIT_CTLS = 0x483;
export const MSR_IA32_VMX_ENTRY_CTLS = 0x484;
export const MSR_IA32_VMX_MISC = 0x485;
export const MSR_IA32_VMX_CR0_FIXED0 = 0x486;
export const MSR_IA32_VMX_CR0_FIXED1 = 0x487;
export const MSR_IA32_VMX_CR4_FIXED0 = 0x488;
export const MSR_IA32_VMX_CR4_FIXED1 = 0x489;
export const MSR_IA32_VMX_VMCS_ENUM = 0x48a;
export const MSR_IA32_VMX_PROCBASED_CTLS2 = 0x48b;
export const MSR_IA32_VMX_EPT_VPID_CAP = 0x48c;
export const MSR_IA32_VMX_TRUE_PINBASED_CTLS = 0x48d;
export const MSR_IA32_VMX_TRUE_PROCBASED_CTLS = 0x48e;
export const MSR_IA32_VMX_TRUE_EXIT_CTLS = 0x48f;
export const MSR_IA32_VMX_TRUE_ENTRY_CTLS = 0x490;
export const MSR_IA32_VMX_VMFUNC = 0x491;
export const MSR_IA32_VMX_PROCBASED_CTLS3 = 0x492;

/** The capability MSRs in index order. */
export const VMX_CAPABILITY_MSRS: readonly VmxMsr[] = [
  { index: MSR_IA32_VMX_BASIC, name: 'MSR_IA32_VMX_BASIC', description: 'Basic VMX information: VMCS revision id, region size, memory type, TRUE-controls support', sdm: CAP('Basic VMX Information') },
  { index: MSR_IA32_VMX_PINBASED_CTLS, name: 'MSR_IA32_VMX_PINBASED_CTLS', description: 'Allowed settings of the pin-based VM-execution controls', sdm: CAP('Pin-Based VM-Execution Controls') },
  { index: MSR_IA32_VMX_PROCBASED_CTLS, name: 'MSR_IA32_VMX_PROCBASED_CTLS', description: 'Allowed settings of the primary processor-based VM-execution controls', sdm: CAP('Primary Processor-Based VM-Execution Controls') },
  { index: MSR_IA32_VMX_EXIT_CTLS, name: 'MSR_IA32_VMX_EXIT_CTLS', description: 'Allowed settings of the primary VM-exit controls', sdm: CAP('Primary VM-Exit Controls') },
  { index: MSR_IA32_VMX_ENTRY_CTLS, name: 'MSR_IA32_VMX_ENTRY_CTLS', description: 'Allowed settings of the VM-entry controls', sdm: CAP('VM-Entry Controls') },
  { index: MSR_IA32_VMX_MISC, name: 'MSR_IA32_VMX_MISC', description: 'Miscellaneous data: preemption-timer rate, activity states, CR3-target count, MSR-list size, VMWRITE to read-only fields', sdm: CAP('Miscellaneous Data') },
  { index: MSR_IA32_VMX_CR0_FIXED0, name: 'MSR_IA32_VMX_CR0_FIXED0', description: 'CR0 bits that must be 1 in VMX operation', sdm: CAP('VMX-Fixed Bits in CR0') },
  { index: MSR_IA32_VMX_CR0_FIXED1, name: 'MSR_IA32_VMX_CR0_FIXED1', description: 'CR0 bits that may be 1 in VMX operation (0 = must be 0)', sdm: CAP('VMX-Fixed Bits in CR0') },
  { index: MSR_IA32_VMX_CR4_FIXED0, name: 'MSR_IA32_VMX_CR4_FIXED0', description: 'CR4 bits that must be 1 in VMX operation', sdm: CAP('VMX-Fixed Bits in CR4') },
  { index: MSR_IA32_VMX_CR4_FIXED1, name: 'MSR_IA32_VMX_CR4_FIXED1', description: 'CR4 bits that may be 1 in VMX operation (0 = must be 0)', sdm: CAP('VMX-Fixed Bits in CR4') },
  { index: MSR_IA32_VMX_VMCS_ENUM, name: 'MSR_IA32_VMX_VMCS_ENUM', description: 'VMCS enumeration: highest field index (bits 9:1)', sdm: CAP('VMCS Enumeration') },
  { index: MSR_IA32_VMX_PROCBASED_CTLS2, name: 'MSR_IA32_VMX_PROCBASED_CTLS2', description: 'Allowed settings of the secondary processor-based VM-execution controls', sdm: CAP('Secondary Processor-Based VM-Execution Controls') },
  { index: MSR_IA32_VMX_EPT_VPID_CAP, name: 'MSR_IA32_VMX_EPT_VPID_CAP', description: 'EPT and VPID capabilities', sdm: CAP('VPID and EPT Capabilities') },
  { index: MSR_IA32_VMX_TRUE_PINBASED_CTLS, name: 'MSR_IA32_VMX_TRUE_PINBASED_CTLS', description: 'Allowed settings of the pin-based controls, including default1 bits that can be 0', sdm: CAP('Pin-Based VM-Execution Controls') },
  { index: MSR_IA32_VMX_TRUE_PROCBASED_CTLS, name: 'MSR_IA32_VMX_TRUE_PROCBASED_CTLS', description: 'Allowed settings of the primary processor-based controls, including default1 bits that can be 0', sdm: CAP('Primary Processor-Based VM-Execution Controls') },
  { index: MSR_IA32_VMX_TRUE_EXIT_CTLS, name: 'MSR_IA32_VMX_TRUE_EXIT_CTLS', description: 'Allowed settings of the VM-exit controls, including default1 bits that can be 0', sdm: CAP('Primary VM-Exit Controls') },
  { index: MSR_IA32_VMX_TRUE_ENTRY_CTLS, name: 'MSR_IA32_VMX_TRUE_ENTRY_CTLS', description: 'Allowed settings of the VM-entry controls, including default1 bits that can be 0', sdm: CAP('VM-Entry Controls') },
  { index: MSR_IA32_VMX_VMFUNC, name: 'MSR_IA32_VMX_VMFUNC', description: 'Allowed VM functions (bit n = function n may be enabled)', sdm: CAP('VM Functions') },
  { index: MSR_IA32_VMX_PROCBASED_CTLS3, name: 'MSR_IA32_VMX_PROCBASED_CTLS3', description: 'Allowed-1 settings of the tertiary processor-based VM-execution controls (64 bits)', sdm: CAP('Tertiary Processor-Based VM-Execution Controls') },
];

/**
 * IA32_FEATURE_CONTROL (3AH) bits: lock (bit 0) and the VMXON enables. Once the lock bit is set, WRMSR to this
 * MSR raises #GP until reset; VMXON raises #GP if the lock bit is 0 or the enable for the current mode is 0.
 * See SDM Vol. 3C, "Enabling and Entering VMX Operation".
 */
export const FEAT_CTL_LOCKED = FEATURE_CONTROL.LOCKED;
export const FEAT_CTL_VMX_ENABLED_INSIDE_SMX = FEATURE_CONTROL.VMXON_INSIDE_SMX;
export const FEAT_CTL_VMX_ENABLED_OUTSIDE_SMX = FEATURE_CONTROL.VMXON_OUTSIDE_SMX;
/** Bits 14:8: SENTER local function enables; bit 15: SENTER global enable. */
export const FEAT_CTL_SENTER_LOCAL_MASK = 0x7f << 8;
export const FEAT_CTL_SENTER_GLOBAL = 1 << 15;
export const FEAT_CTL_SGX_LC_ENABLED = 1 << 17;
export const FEAT_CTL_SGX_ENABLED = 1 << 18;
export const FEAT_CTL_LMCE_ENABLED = 1 << 20;

/** IA32_VMX_BASIC fields. See SDM Vol. 3D, "Basic VMX Information". */
export const VMX_BASIC = {
  /** Bits 30:0: VMCS revision identifier; bit 31 is always 0. */
  REVISION_ID_MASK: 0x7fffffffn,
  /** Bits 44:32: bytes to allocate for the VMXON region and any VMCS region (at most 4096). */
  REGION_SIZE_SHIFT: 32n,
  REGION_SIZE_MASK: 0x1fffn,
  /** Bit 48: physical addresses of VMXON region, VMCS and structures they reference are limited to 32 bits. */
  PHYS_ADDR_32BIT: 1n << 48n,
  /** Bit 49: dual-monitor treatment of SMIs and SMM supported. */
  DUAL_MONITOR: 1n << 49n,
  /** Bits 53:50: memory type for the VMCS and referenced structures (0 = UC, 6 = WB). */
  MEMORY_TYPE_SHIFT: 50n,
  MEMORY_TYPE_MASK: 0xfn,
  /** Bit 54: VM exits due to INS/OUTS report instruction information. */
  INOUT: 1n << 54n,
  /** Bit 55: the TRUE_* capability MSRs exist and report default1 controls that may be 0. */
  TRUE_CTLS: 1n << 55n,
  /** Bit 56: VM entry may deliver a hardware exception with or without an error code regardless of vector. */
  NO_HW_ERRCODE_CHECK: 1n << 56n,
} as const;

/** IA32_VMX_MISC fields. See SDM Vol. 3D, "Miscellaneous Data". */
export const VMX_MISC = {
  /** Bits 4:0: the preemption timer counts down once every 2^N TSC ticks. */
  PREEMPTION_TIMER_RATE_MASK: 0x1fn,
  /** Bit 5: VM exits store EFER.LMA into the "IA-32e mode guest" entry control. */
  SAVE_EFER_LMA: 1n << 5n,
  /** Bits 8:6: activity states supported besides active (6 = HLT, 7 = shutdown, 8 = wait-for-SIPI). */
  ACTIVITY_HLT: 1n << 6n,
  ACTIVITY_SHUTDOWN: 1n << 7n,
  ACTIVITY_WAIT_SIPI: 1n << 8n,
  /** Bit 14: Intel PT usable in VMX operation. */
  INTEL_PT: 1n << 14n,
  /** Bit 15: RDMSR can read IA32_SMBASE in SMM. */
  RDMSR_SMBASE: 1n << 15n,
  /** Bits 24:16: number of CR3-target values supported. */
  CR3_TARGETS_SHIFT: 16n,
  CR3_TARGETS_MASK: 0x1ffn,
  /** Bits 27:25: N; the recommended maximum number of MSRs in each MSR list is 512 * (N + 1). */
  MSR_LIST_SHIFT: 25n,
  MSR_LIST_MASK: 0x7n,
  /** Bit 28: SMM monitor control bit 2 can be set (SMIs blocked after VMXOFF). */
  SMM_BLOCKS_VMXOFF: 1n << 28n,
  /** Bit 29: VMWRITE may write any supported field, including VM-exit information fields. */
  VMWRITE_ANY_FIELD: 1n << 29n,
  /** Bit 30: VM entry may inject software interrupts/exceptions with instruction length 0. */
  ZERO_LEN_INS: 1n << 30n,
  /** Bits 63:32: MSEG revision identifier. */
  MSEG_REVISION_SHIFT: 32n,
} as const;

/** IA32_VMX_EPT_VPID_CAP bits, Linux names (VMX_EPT_*, VMX_VPID_*). See SDM Vol. 3D, "VPID and EPT Capabilities". */
export const EPT_VPID_CAP = {
  VMX_EPT_EXECUTE_ONLY_BIT: 1n << 0n,
  VMX_EPT_PAGE_WALK_4_BIT: 1n << 6n,
  VMX_EPT_PAGE_WALK_5_BIT: 1n << 7n,
  /** EPT paging structures may be uncacheable (EPTP memory type 0). */
  VMX_EPTP_UC_BIT: 1n << 8n,
  /** EPT paging structures may be write-back (EPTP memory type 6). */
  VMX_EPTP_WB_BIT: 1n << 14n,
  VMX_EPT_2MB_PAGE_BIT: 1n << 16n,
  VMX_EPT_1GB_PAGE_BIT: 1n << 17n,
  VMX_EPT_INVEPT_BIT: 1n << 20n,
  /** Accessed and dirty flags for EPT (EPTP bit 6 may be set only if this is 1). */
  VMX_EPT_AD_BIT: 1n << 21n,
  /** Advanced VM-exit information for EPT violations. */
  VMX_EPT_ADVANCED_EXIT_INFO_BIT: 1n << 22n,
  /** Supervisor shadow-stack control. */
  VMX_EPT_SSS_BIT: 1n << 23n,
  VMX_EPT_EXTENT_CONTEXT_BIT: 1n << 25n,
  VMX_EPT_EXTENT_GLOBAL_BIT: 1n << 26n,
  VMX_VPID_INVVPID_BIT: 1n << 32n,
  VMX_VPID_EXTENT_INDIVIDUAL_ADDR_BIT: 1n << 40n,
  VMX_VPID_EXTENT_SINGLE_CONTEXT_BIT: 1n << 41n,
  VMX_VPID_EXTENT_ALL_CONTEXT_BIT: 1n << 42n,
  VMX_VPID_EXTENT_SINGLE_NON_GLOBAL_BIT: 1n << 43n,
} as const;

/** IA32_VMX_VMFUNC bit 0: EPTP switching. See SDM Vol. 3D, "VM Functions". */
export const VMFUNC_EPTP_SWITCHING = 1n << 0n;

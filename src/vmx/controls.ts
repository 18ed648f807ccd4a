// Named bits of the VMX control fields, with Linux names: pin-based, primary/secondary/tertiary processor-based
// VM-execution controls, VM-exit controls and VM-entry controls. One table; the constants below are derived.
// See SDM Vol. 3C, "VM-Execution Control Fields", "VM-Exit Control Fields" and "VM-Entry Control Fields".

/** Which control field a bit belongs to; also names the capability MSR that reports it. */
export type ControlField = 'pin' | 'proc' | 'proc2' | 'proc3' | 'exit' | 'entry';

export interface ControlBit {
  readonly field: ControlField;
  /** Linux name, e.g. PIN_BASED_NMI_EXITING. */
  readonly name: string;
  readonly bit: number;
  readonly description: string;
  readonly sdm: string;
}

/** The VMCS field (Linux name) holding each control field. */
export const CONTROL_FIELD_VMCS: Readonly<Record<ControlField, string>> = {
  pin: 'PIN_BASED_VM_EXEC_CONTROL',
  proc: 'CPU_BASED_VM_EXEC_CONTROL',
  proc2: 'SECONDARY_VM_EXEC_CONTROL',
  proc3: 'TERTIARY_VM_EXEC_CONTROL',
  exit: 'VM_EXIT_CONTROLS',
  entry: 'VM_ENTRY_CONTROLS',
};

const PIN = 'SDM Vol. 3C, "Pin-Based VM-Execution Controls"';
const PROC = 'SDM Vol. 3C, "Processor-Based VM-Execution Controls"';
const EXIT = 'SDM Vol. 3C, "VM-Exit Controls"';
const ENTRY = 'SDM Vol. 3C, "VM-Entry Controls"';

function c<const N extends string, const B extends number>(field: ControlField, name: N, bit: B, description: string) {
  const sdm = field === 'pin' ? PIN : field === 'exit' ? EXIT : field === 'entry' ? ENTRY : PROC;
  return { field, name, bit, description, sdm } as const;
}

const TABLE = [
  // Pin-based VM-execution controls (PIN_BASED_VM_EXEC_CONTROL).
  c('pin', 'PIN_BASED_EXT_INTR_MASK', 0, 'External-interrupt exiting: external interrupts cause VM exits'),
  c('pin', 'PIN_BASED_NMI_EXITING', 3, 'NMI exiting: non-maskable interrupts cause VM exits'),
  c('pin', 'PIN_BASED_VIRTUAL_NMIS', 5, 'Virtual NMIs: NMI blocking is virtualized (requires NMI exiting)'),
  c('pin', 'PIN_BASED_VMX_PREEMPTION_TIMER', 6, 'Activate VMX-preemption timer'),
  c('pin', 'PIN_BASED_POSTED_INTR', 7, 'Process posted interrupts'),

  // Primary processor-based VM-execution controls (CPU_BASED_VM_EXEC_CONTROL).
  c('proc', 'CPU_BASED_INTR_WINDOW_EXITING', 2, 'Interrupt-window exiting'),
  c('proc', 'CPU_BASED_USE_TSC_OFFSETTING', 3, 'Use TSC offsetting'),
  c('proc', 'CPU_BASED_HLT_EXITING', 7, 'HLT exiting'),
  c('proc', 'CPU_BASED_INVLPG_EXITING', 9, 'INVLPG exiting'),
  c('proc', 'CPU_BASED_MWAIT_EXITING', 10, 'MWAIT exiting'),
  c('proc', 'CPU_BASED_RDPMC_EXITING', 11, 'RDPMC exiting'),
  c('proc', 'CPU_BASED_RDTSC_EXITING', 12, 'RDTSC exiting'),
  c('proc', 'CPU_BASED_CR3_LOAD_EXITING', 15, 'CR3-load exiting (default 1; clearable only with the TRUE MSR)'),
  c('proc', 'CPU_BASED_CR3_STORE_EXITING', 16, 'CR3-store exiting (default 1; clearable only with the TRUE MSR)'),
  c('proc', 'CPU_BASED_ACTIVATE_TERTIARY_CONTROLS', 17, 'Activate tertiary controls'),
  c('proc', 'CPU_BASED_CR8_LOAD_EXITING', 19, 'CR8-load exiting'),
  c('proc', 'CPU_BASED_CR8_STORE_EXITING', 20, 'CR8-store exiting'),
  c('proc', 'CPU_BASED_TPR_SHADOW', 21, 'Use TPR shadow'),
  c('proc', 'CPU_BASED_NMI_WINDOW_EXITING', 22, 'NMI-window exiting'),
  c('proc', 'CPU_BASED_MOV_DR_EXITING', 23, 'MOV-DR exiting'),
  c('proc', 'CPU_BASED_UNCOND_IO_EXITING', 24, 'Unconditional I/O exiting'),
  c('proc', 'CPU_BASED_USE_IO_BITMAPS', 25, 'Use I/O bitmaps'),
  c('proc', 'CPU_BASED_MONITOR_TRAP_FLAG', 27, 'Monitor trap flag'),
  c('proc', 'CPU_BASED_USE_MSR_BITMAPS', 28, 'Use MSR bitmaps'),
  c('proc', 'CPU_BASED_MONITOR_EXITING', 29, 'MONITOR exiting'),
  c('proc', 'CPU_BASED_PAUSE_EXITING', 30, 'PAUSE exiting'),
  c('proc', 'CPU_BASED_ACTIVATE_SECONDARY_CONTROLS', 31, 'Activate secondary controls'),

  // Secondary processor-based VM-execution controls (SECONDARY_VM_EXEC_CONTROL).
  c('proc2', 'SECONDARY_EXEC_VIRTUALIZE_APIC_ACCESSES', 0, 'Virtualize APIC accesses'),
  c('proc2', 'SECONDARY_EXEC_ENABLE_EPT', 1, 'Enable EPT'),
  c('proc2', 'SECONDARY_EXEC_DESC', 2, 'Descriptor-table exiting'),
  c('proc2', 'SECONDARY_EXEC_ENABLE_RDTSCP', 3, 'Enable RDTSCP'),
  c('proc2', 'SECONDARY_EXEC_VIRTUALIZE_X2APIC_MODE', 4, 'Virtualize x2APIC mode'),
  c('proc2', 'SECONDARY_EXEC_ENABLE_VPID', 5, 'Enable VPID'),
  c('proc2', 'SECONDARY_EXEC_WBINVD_EXITING', 6, 'WBINVD exiting'),
  c('proc2', 'SECONDARY_EXEC_UNRESTRICTED_GUEST', 7, 'Unrestricted guest (real mode and unpaged protected mode; requires EPT)'),
  c('proc2', 'SECONDARY_EXEC_APIC_REGISTER_VIRT', 8, 'APIC-register virtualization'),
  c('proc2', 'SECONDARY_EXEC_VIRTUAL_INTR_DELIVERY', 9, 'Virtual-interrupt delivery'),
  c('proc2', 'SECONDARY_EXEC_PAUSE_LOOP_EXITING', 10, 'PAUSE-loop exiting'),
  c('proc2', 'SECONDARY_EXEC_RDRAND_EXITING', 11, 'RDRAND exiting'),
  c('proc2', 'SECONDARY_EXEC_ENABLE_INVPCID', 12, 'Enable INVPCID'),
  c('proc2', 'SECONDARY_EXEC_ENABLE_VMFUNC', 13, 'Enable VM functions'),
  c('proc2', 'SECONDARY_EXEC_SHADOW_VMCS', 14, 'VMCS shadowing'),
  c('proc2', 'SECONDARY_EXEC_ENCLS_EXITING', 15, 'Enable ENCLS exiting'),
  c('proc2', 'SECONDARY_EXEC_RDSEED_EXITING', 16, 'RDSEED exiting'),
  c('proc2', 'SECONDARY_EXEC_ENABLE_PML', 17, 'Enable PML'),
  c('proc2', 'SECONDARY_EXEC_EPT_VIOLATION_VE', 18, 'EPT-violation #VE'),
  c('proc2', 'SECONDARY_EXEC_PT_CONCEAL_VMX', 19, 'Conceal VMX from PT'),
  c('proc2', 'SECONDARY_EXEC_XSAVES', 20, 'Enable XSAVES/XRSTORS'),
  c('proc2', 'SECONDARY_EXEC_MODE_BASED_EPT_EXEC', 22, 'Mode-based execute control for EPT'),
  c('proc2', 'SECONDARY_EXEC_PT_USE_GPA', 24, 'Intel PT uses guest physical addresses'),
  c('proc2', 'SECONDARY_EXEC_TSC_SCALING', 25, 'Use TSC scaling'),
  c('proc2', 'SECONDARY_EXEC_ENABLE_USR_WAIT_PAUSE', 26, 'Enable user wait and pause'),
  c('proc2', 'SECONDARY_EXEC_BUS_LOCK_DETECTION', 30, 'VM exit on bus lock'),
  c('proc2', 'SECONDARY_EXEC_NOTIFY_VM_EXITING', 31, 'Instruction timeout (notify VM exiting)'),

  // Tertiary processor-based VM-execution controls (TERTIARY_VM_EXEC_CONTROL, 64 bits; low 32 bits named here).
  c('proc3', 'TERTIARY_EXEC_IPI_VIRT', 4, 'IPI virtualization'),

  // Primary VM-exit controls (VM_EXIT_CONTROLS).
  c('exit', 'VM_EXIT_SAVE_DEBUG_CONTROLS', 2, 'Save debug controls (DR7, IA32_DEBUGCTL)'),
  c('exit', 'VM_EXIT_HOST_ADDR_SPACE_SIZE', 9, 'Host address-space size: return to 64-bit mode'),
  c('exit', 'VM_EXIT_LOAD_IA32_PERF_GLOBAL_CTRL', 12, 'Load IA32_PERF_GLOBAL_CTRL'),
  c('exit', 'VM_EXIT_ACK_INTR_ON_EXIT', 15, 'Acknowledge interrupt on exit'),
  c('exit', 'VM_EXIT_SAVE_IA32_PAT', 18, 'Save IA32_PAT'),
  c('exit', 'VM_EXIT_LOAD_IA32_PAT', 19, 'Load IA32_PAT'),
  c('exit', 'VM_EXIT_SAVE_IA32_EFER', 20, 'Save IA32_EFER'),
  c('exit', 'VM_EXIT_LOAD_IA32_EFER', 21, 'Load IA32_EFER'),
  c('exit', 'VM_EXIT_SAVE_VMX_PREEMPTION_TIMER', 22, 'Save VMX-preemption timer value'),
  c('exit', 'VM_EXIT_CLEAR_BNDCFGS', 23, 'Clear IA32_BNDCFGS'),
  c('exit', 'VM_EXIT_PT_CONCEAL_PIP', 24, 'Conceal VMX from PT'),
  c('exit', 'VM_EXIT_CLEAR_IA32_RTIT_CTL', 25, 'Clear IA32_RTIT_CTL'),
  c('exit', 'VM_EXIT_LOAD_CET_STATE', 28, 'Load CET state'),

  // VM-entry controls (VM_ENTRY_CONTROLS).
  c('entry', 'VM_ENTRY_LOAD_DEBUG_CONTROLS', 2, 'Load debug controls (DR7, IA32_DEBUGCTL)'),
  c('entry', 'VM_ENTRY_IA32E_MODE', 9, 'IA-32e mode guest'),
  c('entry', 'VM_ENTRY_SMM', 10, 'Entry to SMM'),
  c('entry', 'VM_ENTRY_DEACT_DUAL_MONITOR', 11, 'Deactivate dual-monitor treatment'),
  c('entry', 'VM_ENTRY_LOAD_IA32_PERF_GLOBAL_CTRL', 13, 'Load IA32_PERF_GLOBAL_CTRL'),
  c('entry', 'VM_ENTRY_LOAD_IA32_PAT', 14, 'Load IA32_PAT'),
  c('entry', 'VM_ENTRY_LOAD_IA32_EFER', 15, 'Load IA32_EFER'),
  c('entry', 'VM_ENTRY_LOAD_BNDCFGS', 16, 'Load IA32_BNDCFGS'),
  c('entry', 'VM_ENTRY_PT_CONCEAL_PIP', 17, 'Conceal VMX from PT'),
  c('entry', 'VM_ENTRY_LOAD_IA32_RTIT_CTL', 18, 'Load IA32_RTIT_CTL'),
  c('entry', 'VM_ENTRY_LOAD_CET_STATE', 20, 'Load CET state'),
] as const;

/** Every named control bit. */
export const CONTROL_BITS: readonly ControlBit[] = TABLE;

type Row = (typeof TABLE)[number];

/**
 * Each control as a 32-bit mask, by Linux name: `VMX_CONTROL.CPU_BASED_HLT_EXITING === 1 << 7`.
 * Bit 31 is the positive number 2 ** 31; test bits with `(value & mask) !== 0`.
 */
export const VMX_CONTROL = Object.freeze(Object.fromEntries(TABLE.map((r) => [r.name, 2 ** r.bit]))) as {
  readonly [R in Row as R['name']]: number;
};
export type ControlName = Row['name'];

export function controlByName(name: string): ControlBit | undefined {
  return TABLE.find((r) => r.name === name);
}
export function controlsOf(field: ControlField): readonly ControlBit[] {
  return TABLE.filter((r) => r.field === field);
}

/**
 * The "default1" class: control bits that are 1 in the non-TRUE capability MSRs' allowed-0 settings, and that
 * only the TRUE_* MSRs (IA32_VMX_BASIC[55] = 1) can report as clearable.
 * See SDM Vol. 3D, "VMX Capability Reporting Facility", the subsection for each control MSR.
 */
export const DEFAULT1: Readonly<Record<'pin' | 'proc' | 'exit' | 'entry', number>> = {
  // Pin-based: bits 1, 2 and 4.
  pin: (1 << 1) | (1 << 2) | (1 << 4),
  // Primary processor-based: bits 1, 4–6, 8, 13–16 and 26.
  proc: (1 << 1) | (0x7 << 4) | (1 << 8) | (0xf << 13) | (1 << 26),
  // VM-exit: bits 0–8, 10, 11, 13, 14, 16 and 17.
  exit: 0x1ff | (1 << 10) | (1 << 11) | (1 << 13) | (1 << 14) | (1 << 16) | (1 << 17),
  // VM-entry: bits 0–8 and 12.
  entry: 0x1ff | (1 << 12),
};

// Basic exit reasons: bits 15:0 of the VM_EXIT_REASON field, with Linux names (uapi/asm/vmx.h) and what the exit
// qualification holds for each. See SDM Vol. 3D, "VMX Basic Exit Reasons" and Vol. 3C, "Basic VM-Exit Information".
//
// The SDM lists the causes for which the exit qualification is saved; "for all other VM exits, the field is
// cleared" — so most reasons below say '0 (cleared)'. See SDM Vol. 3C, "Basic VM-Exit Information".

export interface ExitReason {
  readonly number: number;
  /** Linux name, EXIT_REASON_*. */
  readonly name: string;
  readonly description: string;
  /** What EXIT_QUALIFICATION holds for this reason: a format, '0 (cleared)', or 'undefined (poisoned)'. */
  readonly qualification: string;
  /** SDM section defining the qualification format, when it has one. */
  readonly qualificationSdm?: string;
  readonly sdm: string;
  /** SDM-defined reason that Linux 6.1 does not name (the name here follows Linux's pattern). */
  readonly supplementary?: true;
}

/** Bits of the exit-reason field besides the basic reason. See SDM Vol. 3C, "Basic VM-Exit Information". */
export const EXIT_REASON_BASIC_MASK = 0xffff;
/** Bit 27: the exit happened in enclave mode. */
export const VMX_EXIT_REASONS_SGX_ENCLAVE_MODE = 1 << 27;
/** Bit 28: pending MTF VM exit (SMM VM exits only). */
export const VMX_EXIT_REASONS_PENDING_MTF = 1 << 28;
/** Bit 29: VM exit from VMX root operation (SMM VM exits only). */
export const VMX_EXIT_REASONS_FROM_ROOT = 1 << 29;
/** Bit 31: VM-entry failure — guest state was not loaded; the "exit" reports why the entry failed. */
export const VMX_EXIT_REASONS_FAILED_VMENTRY = 2 ** 31;

const APPX = 'SDM Vol. 3D, "VMX Basic Exit Reasons"';
const CLEARED = '0 (cleared)';
const DISPLACEMENT =
  "the instruction's displacement field, sign-extended to 64 bits (0 if the instruction has no displacement); the operand is described by VMX_INSTRUCTION_INFO";
const Q_BASIC = 'SDM Vol. 3C, "Basic VM-Exit Information"';

function r<const K extends number, const N extends string>(
  number: K, name: N, description: string, qualification = CLEARED, qualificationSdm?: string, supp?: 'supp',
): ExitReason & { readonly number: K; readonly name: N } {
  return {
    number, name, description, qualification, sdm: APPX,
    ...(qualificationSdm !== undefined ? { qualificationSdm } : {}),
    ...(supp === 'supp' ? { supplementary: true as const } : {}),
  };
}

const TABLE = [
  r(0, 'EXIT_REASON_EXCEPTION_NMI', 'Exception or non-maskable interrupt (NMI): an exception whose exception-bitmap bit is 1, or an NMI with "NMI exiting" = 1',
    '#DB: the debug-exception bits (B3–B0, BD, BS, RTM); #PF: the faulting linear address; any other exception or an NMI: 0 (cleared)',
    'SDM Vol. 3C, "Exit Qualification for Debug Exceptions"'),
  r(1, 'EXIT_REASON_EXTERNAL_INTERRUPT', 'External interrupt with "external-interrupt exiting" = 1'),
  r(2, 'EXIT_REASON_TRIPLE_FAULT', 'Triple fault: the guest hit a fault while delivering a double fault'),
  r(3, 'EXIT_REASON_INIT_SIGNAL', 'INIT signal arrived'),
  r(4, 'EXIT_REASON_SIPI_SIGNAL', 'Start-up IPI (SIPI) arrived while in wait-for-SIPI state', 'the SIPI vector in bits 7:0; bits 63:8 cleared', Q_BASIC),
  r(5, 'EXIT_REASON_IO_SMI', 'I/O system-management interrupt (SMI) immediately after an I/O instruction (dual-monitor treatment)',
    'bit 0: an I/O instruction was executed; details of the I/O in the I/O RCX/RSI/RDI/RIP fields', Q_BASIC, 'supp'),
  r(6, 'EXIT_REASON_OTHER_SMI', 'Other SMI (dual-monitor treatment)', CLEARED, undefined, 'supp'),
  r(7, 'EXIT_REASON_INTERRUPT_WINDOW', 'Interrupt window: RFLAGS.IF = 1 and no blocking, with "interrupt-window exiting" = 1'),
  r(8, 'EXIT_REASON_NMI_WINDOW', 'NMI window: no virtual-NMI blocking, with "NMI-window exiting" = 1'),
  r(9, 'EXIT_REASON_TASK_SWITCH', 'Task switch attempted by the guest',
    'selector of the new TSS (15:0), source of the switch (31:30: CALL, IRET, JMP, IDT task gate)', 'SDM Vol. 3C, "Exit Qualification for Task Switch"'),
  r(10, 'EXIT_REASON_CPUID', 'Guest executed CPUID (always exits)'),
  r(11, 'EXIT_REASON_GETSEC', 'Guest executed GETSEC (always exits)', CLEARED, undefined, 'supp'),
  r(12, 'EXIT_REASON_HLT', 'Guest executed HLT with "HLT exiting" = 1'),
  r(13, 'EXIT_REASON_INVD', 'Guest executed INVD (always exits)'),
  r(14, 'EXIT_REASON_INVLPG', 'Guest executed INVLPG with "INVLPG exiting" = 1', 'the linear-address operand (bits 63:32 cleared outside 64-bit mode)', Q_BASIC),
  r(15, 'EXIT_REASON_RDPMC', 'Guest executed RDPMC with "RDPMC exiting" = 1'),
  r(16, 'EXIT_REASON_RDTSC', 'Guest executed RDTSC with "RDTSC exiting" = 1'),
  r(17, 'EXIT_REASON_RSM', 'Guest executed RSM in SMM (dual-monitor treatment)', CLEARED, undefined, 'supp'),
  r(18, 'EXIT_REASON_VMCALL', 'Guest executed VMCALL (always exits in VMX non-root operation)'),
  r(19, 'EXIT_REASON_VMCLEAR', 'Guest executed VMCLEAR', DISPLACEMENT, Q_BASIC),
  r(20, 'EXIT_REASON_VMLAUNCH', 'Guest executed VMLAUNCH'),
  r(21, 'EXIT_REASON_VMPTRLD', 'Guest executed VMPTRLD', DISPLACEMENT, Q_BASIC),
  r(22, 'EXIT_REASON_VMPTRST', 'Guest executed VMPTRST', DISPLACEMENT, Q_BASIC),
  r(23, 'EXIT_REASON_VMREAD', 'Guest executed VMREAD', DISPLACEMENT, Q_BASIC),
  r(24, 'EXIT_REASON_VMRESUME', 'Guest executed VMRESUME'),
  r(25, 'EXIT_REASON_VMWRITE', 'Guest executed VMWRITE', DISPLACEMENT, Q_BASIC),
  r(26, 'EXIT_REASON_VMOFF', 'Guest executed VMXOFF'),
  r(27, 'EXIT_REASON_VMON', 'Guest executed VMXON', DISPLACEMENT, Q_BASIC),
  r(28, 'EXIT_REASON_CR_ACCESS', 'Control-register access: MOV to/from CR0/CR3/CR4/CR8, CLTS or LMSW that the controls intercept',
    'CR number (3:0), access type (5:4: MOV to CR, MOV from CR, CLTS, LMSW), LMSW operand type (6), GPR (11:8), LMSW source data (31:16)',
    'SDM Vol. 3C, "Exit Qualification for Control-Register Accesses"'),
  r(29, 'EXIT_REASON_DR_ACCESS', 'MOV DR with "MOV-DR exiting" = 1', 'DR number (2:0), direction (4: 0 = MOV to DR), GPR (11:8)',
    'SDM Vol. 3C, "Exit Qualification for MOV DR"'),
  r(30, 'EXIT_REASON_IO_INSTRUCTION', 'IN/OUT/INS/OUTS intercepted by unconditional I/O exiting or the I/O bitmaps',
    'size - 1 (2:0), direction (3: 1 = IN), string (4), REP (5), operand encoding (6: 1 = immediate), port (31:16)',
    'SDM Vol. 3C, "Exit Qualification for I/O Instructions"'),
  r(31, 'EXIT_REASON_MSR_READ', 'RDMSR intercepted (MSR bitmaps, or no MSR bitmaps)'),
  r(32, 'EXIT_REASON_MSR_WRITE', 'WRMSR intercepted (MSR bitmaps, or no MSR bitmaps)'),
  r(33, 'EXIT_REASON_INVALID_STATE', 'VM-entry failure due to invalid guest state (exit reason bit 31 set)',
    '0 (default), 2 (failure loading a PDPTE), 3 (NMI injection while blocked by STI), 4 (invalid VMCS link pointer) — see VM_ENTRY_FAILURE_QUALIFICATIONS',
    'SDM Vol. 3C, "VM-Entry Failures During or After Loading Guest State"'),
  r(34, 'EXIT_REASON_MSR_LOAD_FAIL', 'VM-entry failure due to MSR loading (exit reason bit 31 set)',
    'the index (from 1) of the VM-entry MSR-load entry that failed',
    'SDM Vol. 3C, "VM-Entry Failures During or After Loading Guest State"'),
  r(36, 'EXIT_REASON_MWAIT_INSTRUCTION', 'Guest executed MWAIT with "MWAIT exiting" = 1', 'bit 0: 1 if the monitor hardware was armed', Q_BASIC),
  r(37, 'EXIT_REASON_MONITOR_TRAP_FLAG', 'Monitor trap flag: an instruction completed with "monitor trap flag" = 1'),
  r(39, 'EXIT_REASON_MONITOR_INSTRUCTION', 'Guest executed MONITOR with "MONITOR exiting" = 1'),
  r(40, 'EXIT_REASON_PAUSE_INSTRUCTION', 'PAUSE with "PAUSE exiting" = 1, or PAUSE-loop exiting'),
  r(41, 'EXIT_REASON_MCE_DURING_VMENTRY', 'VM-entry failure due to a machine-check event (exit reason bit 31 set)'),
  r(43, 'EXIT_REASON_TPR_BELOW_THRESHOLD', 'TPR below threshold after a TPR write (TPR shadow)'),
  r(44, 'EXIT_REASON_APIC_ACCESS', 'Guest accessed the APIC-access page',
    'page offset (11:0), access type (15:12), asynchronous (16)', 'SDM Vol. 3C, "Exit Qualification for APIC-Access VM Exits from Linear Accesses and Guest-Physical Accesses"'),
  r(45, 'EXIT_REASON_EOI_INDUCED', 'EOI virtualization for a vector set in the EOI-exit bitmap', 'the vector (7:0)', Q_BASIC),
  r(46, 'EXIT_REASON_GDTR_IDTR', 'LGDT/LIDT/SGDT/SIDT with "descriptor-table exiting" = 1', DISPLACEMENT, Q_BASIC),
  r(47, 'EXIT_REASON_LDTR_TR', 'LLDT/LTR/SLDT/STR with "descriptor-table exiting" = 1', DISPLACEMENT, Q_BASIC),
  r(48, 'EXIT_REASON_EPT_VIOLATION', 'EPT violation: a guest-physical access the EPT entries do not allow',
    'the access (0 read, 1 write, 2 instruction fetch), what the EPT entries allowed (3 readable, 4 writable, 5 executable, 6 user-mode executable), guest-linear address valid (7), access to the translated address vs. a paging-structure entry (8), NMI unblocking due to IRET (12); the address is in GUEST_PHYSICAL_ADDRESS',
    'SDM Vol. 3C, "Exit Qualification for EPT Violations"'),
  r(49, 'EXIT_REASON_EPT_MISCONFIG', 'EPT misconfiguration: an EPT entry with an illegal combination (e.g. write without read, reserved bits, bad memory type)'),
  r(50, 'EXIT_REASON_INVEPT', 'Guest executed INVEPT', DISPLACEMENT, Q_BASIC),
  r(51, 'EXIT_REASON_RDTSCP', 'Guest executed RDTSCP with "RDTSC exiting" = 1'),
  r(52, 'EXIT_REASON_PREEMPTION_TIMER', 'VMX-preemption timer counted down to 0'),
  r(53, 'EXIT_REASON_INVVPID', 'Guest executed INVVPID', DISPLACEMENT, Q_BASIC),
  r(54, 'EXIT_REASON_WBINVD', 'WBINVD/WBNOINVD with "WBINVD exiting" = 1'),
  r(55, 'EXIT_REASON_XSETBV', 'Guest executed XSETBV (always exits)'),
  r(56, 'EXIT_REASON_APIC_WRITE', 'APIC-write emulation: a write to the virtual-APIC page that must be emulated', 'page offset of the write (11:0)', Q_BASIC),
  r(57, 'EXIT_REASON_RDRAND', 'RDRAND with "RDRAND exiting" = 1'),
  r(58, 'EXIT_REASON_INVPCID', 'INVPCID with "INVLPG exiting" and "enable INVPCID" = 1', DISPLACEMENT, Q_BASIC),
  r(59, 'EXIT_REASON_VMFUNC', 'VMFUNC for a VM function that is not enabled or fails'),
  r(60, 'EXIT_REASON_ENCLS', 'ENCLS leaf selected by the ENCLS-exiting bitmap'),
  r(61, 'EXIT_REASON_RDSEED', 'RDSEED with "RDSEED exiting" = 1'),
  r(62, 'EXIT_REASON_PML_FULL', 'Page-modification log full', 'NMI unblocking due to IRET (12)', Q_BASIC),
  r(63, 'EXIT_REASON_XSAVES', 'XSAVES with a component set in the XSS-exiting bitmap', DISPLACEMENT, Q_BASIC),
  r(64, 'EXIT_REASON_XRSTORS', 'XRSTORS with a component set in the XSS-exiting bitmap', DISPLACEMENT, Q_BASIC),
  r(67, 'EXIT_REASON_UMWAIT', 'UMWAIT with "enable user wait and pause" and "RDTSC exiting" = 1'),
  r(68, 'EXIT_REASON_TPAUSE', 'TPAUSE with "enable user wait and pause" and "RDTSC exiting" = 1'),
  r(74, 'EXIT_REASON_BUS_LOCK', 'Bus lock detected with "bus-lock detection" = 1'),
  r(75, 'EXIT_REASON_NOTIFY', 'Instruction timeout: no event window for the notify window (instruction-timeout control)',
    'VM context invalid (0), NMI unblocking due to IRET (12)', Q_BASIC),
] as const;

/** Every basic exit reason, by number. */
export const EXIT_REASONS: readonly ExitReason[] = TABLE;

const BY_NUMBER = new Map<number, ExitReason>(EXIT_REASONS.map((e) => [e.number, e]));
const BY_NAME = new Map<string, ExitReason>(EXIT_REASONS.map((e) => [e.name, e]));

/** The basic exit reason named by bits 15:0 of an exit-reason value (bit 31 and the other flags are ignored). */
export function exitReasonByNumber(exitReason: number): ExitReason | undefined {
  return BY_NUMBER.get(exitReason & EXIT_REASON_BASIC_MASK);
}
export function exitReasonByName(name: string): ExitReason | undefined {
  return BY_NAME.get(name);
}

/** Linux names for the exit reasons: `EXIT_REASON.EXIT_REASON_HLT === 12`. */
export const EXIT_REASON = Object.freeze(Object.fromEntries(EXIT_REASONS.map((e) => [e.name, e.number]))) as {
  readonly [E in (typeof TABLE)[number] as E['name']]: E['number'];
};
export type ExitReasonName = keyof typeof EXIT_REASON;
/** A basic exit reason number the SDM defines (a typed union, not any number). */
export type ExitReasonNumber = (typeof EXIT_REASON)[ExitReasonName];

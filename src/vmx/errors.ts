// VM-instruction error numbers (what VMfailValid writes into VM_INSTRUCTION_ERROR), VM-entry failure
// qualifications (EXIT_QUALIFICATION of a failed-entry "exit" with reason 33) and VMX-abort indicators.
// Linux names from arch/x86/include/asm/vmx.h and uapi/asm/vmx.h.

export interface VmInstructionError {
  readonly number: number;
  /** Linux name, VMXERR_*. */
  readonly name: string;
  readonly description: string;
  readonly sdm: string;
}

const ERR_SDM = 'SDM Vol. 3C, "VM Instruction Error Numbers"';

function e<const K extends number, const N extends string>(number: K, name: N, description: string) {
  return { number, name, description, sdm: ERR_SDM } as const;
}

// Numbers 14, 21 and 27 are not used by the SDM.
const ERRORS = [
  e(1, 'VMXERR_VMCALL_IN_VMX_ROOT_OPERATION', 'VMCALL executed in VMX root operation'),
  e(2, 'VMXERR_VMCLEAR_INVALID_ADDRESS', 'VMCLEAR with invalid physical address'),
  e(3, 'VMXERR_VMCLEAR_VMXON_POINTER', 'VMCLEAR with VMXON pointer'),
  e(4, 'VMXERR_VMLAUNCH_NONCLEAR_VMCS', 'VMLAUNCH with non-clear VMCS'),
  e(5, 'VMXERR_VMRESUME_NONLAUNCHED_VMCS', 'VMRESUME with non-launched VMCS'),
  e(6, 'VMXERR_VMRESUME_AFTER_VMXOFF', 'VMRESUME after VMXOFF (VMXOFF and VMXON between VMLAUNCH and VMRESUME)'),
  e(7, 'VMXERR_ENTRY_INVALID_CONTROL_FIELD', 'VM entry with invalid control field(s)'),
  e(8, 'VMXERR_ENTRY_INVALID_HOST_STATE_FIELD', 'VM entry with invalid host-state field(s)'),
  e(9, 'VMXERR_VMPTRLD_INVALID_ADDRESS', 'VMPTRLD with invalid physical address'),
  e(10, 'VMXERR_VMPTRLD_VMXON_POINTER', 'VMPTRLD with VMXON pointer'),
  e(11, 'VMXERR_VMPTRLD_INCORRECT_VMCS_REVISION_ID', 'VMPTRLD with incorrect VMCS revision identifier'),
  e(12, 'VMXERR_UNSUPPORTED_VMCS_COMPONENT', 'VMREAD/VMWRITE from/to unsupported VMCS component'),
  e(13, 'VMXERR_VMWRITE_READ_ONLY_VMCS_COMPONENT', 'VMWRITE to read-only VMCS component'),
  e(15, 'VMXERR_VMXON_IN_VMX_ROOT_OPERATION', 'VMXON executed in VMX root operation'),
  e(16, 'VMXERR_ENTRY_INVALID_EXECUTIVE_VMCS_POINTER', 'VM entry with invalid executive-VMCS pointer'),
  e(17, 'VMXERR_ENTRY_NONLAUNCHED_EXECUTIVE_VMCS', 'VM entry with non-launched executive VMCS'),
  e(18, 'VMXERR_ENTRY_EXECUTIVE_VMCS_POINTER_NOT_VMXON_POINTER',
    'VM entry with executive-VMCS pointer not VMXON pointer (when attempting to deactivate the dual-monitor treatment of SMIs and SMM)'),
  e(19, 'VMXERR_VMCALL_NONCLEAR_VMCS', 'VMCALL with non-clear VMCS (when attempting to activate the dual-monitor treatment of SMIs and SMM)'),
  e(20, 'VMXERR_VMCALL_INVALID_VM_EXIT_CONTROL_FIELDS', 'VMCALL with invalid VM-exit control fields'),
  e(22, 'VMXERR_VMCALL_INCORRECT_MSEG_REVISION_ID', 'VMCALL with incorrect MSEG revision identifier'),
  e(23, 'VMXERR_VMXOFF_UNDER_DUAL_MONITOR_TREATMENT_OF_SMIS_AND_SMM', 'VMXOFF under dual-monitor treatment of SMIs and SMM'),
  e(24, 'VMXERR_VMCALL_INVALID_SMM_MONITOR_FEATURES', 'VMCALL with invalid SMM-monitor features'),
  e(25, 'VMXERR_ENTRY_INVALID_VM_EXECUTION_CONTROL_FIELDS_IN_EXECUTIVE_VMCS',
    'VM entry with invalid VM-execution control fields in executive VMCS (when attempting to return from SMM)'),
  e(26, 'VMXERR_ENTRY_EVENTS_BLOCKED_BY_MOV_SS', 'VM entry with events blocked by MOV SS'),
  e(28, 'VMXERR_INVALID_OPERAND_TO_INVEPT_INVVPID', 'Invalid operand to INVEPT/INVVPID'),
] as const;

export const VM_INSTRUCTION_ERRORS: readonly VmInstructionError[] = ERRORS;

/** Error numbers by Linux name: `VMXERR.VMXERR_UNSUPPORTED_VMCS_COMPONENT === 12`. */
export const VMXERR = Object.freeze(Object.fromEntries(ERRORS.map((x) => [x.name, x.number]))) as {
  readonly [X in (typeof ERRORS)[number] as X['name']]: X['number'];
};
/** A VM-instruction error number the SDM defines. */
export type VmInstructionErrorNumber = (typeof ERRORS)[number]['number'];

const ERR_BY_NUMBER = new Map<number, VmInstructionError>(ERRORS.map((x) => [x.number, x]));
export function vmInstructionError(n: number): VmInstructionError | undefined {
  return ERR_BY_NUMBER.get(n);
}

// ---------------------------------------------------------------------------------------------------------------

export interface EntryFailureQualification {
  readonly value: number;
  /** Linux name, ENTRY_FAIL_*. */
  readonly name: string;
  readonly description: string;
  readonly sdm: string;
}

const FAIL_SDM = 'SDM Vol. 3C, "VM-Entry Failures During or After Loading Guest State"';

/** EXIT_QUALIFICATION values of a VM-entry failure with basic exit reason 33 (invalid guest state). */
export const VM_ENTRY_FAILURE_QUALIFICATIONS: readonly EntryFailureQualification[] = [
  { value: 0, name: 'ENTRY_FAIL_DEFAULT', description: 'Default: a guest-state check failed', sdm: FAIL_SDM },
  { value: 2, name: 'ENTRY_FAIL_PDPTE', description: 'Failure was due to a problem loading the PDPTEs', sdm: FAIL_SDM },
  { value: 3, name: 'ENTRY_FAIL_NMI', description: 'Failure was due to an attempt to inject an NMI into a guest that is blocking events through STI blocking', sdm: FAIL_SDM },
  { value: 4, name: 'ENTRY_FAIL_VMCS_LINK_PTR', description: 'Failure was due to an invalid VMCS link pointer', sdm: FAIL_SDM },
];
export const ENTRY_FAIL_DEFAULT = 0;
export const ENTRY_FAIL_PDPTE = 2;
export const ENTRY_FAIL_NMI = 3;
export const ENTRY_FAIL_VMCS_LINK_PTR = 4;

// ---------------------------------------------------------------------------------------------------------------

export interface VmxAbortIndicator {
  readonly value: number;
  /** Linux name, VMX_ABORT_* (names for values Linux lacks follow its pattern and are marked). */
  readonly name: string;
  readonly description: string;
  readonly sdm: string;
  readonly supplementary?: true;
}

const ABORT_SDM = 'SDM Vol. 3C, "VMX Aborts"';

/**
 * What a VM exit writes into the VMX-abort indicator (offset 4 of the VMCS region) when it cannot complete; the
 * logical processor then enters a shutdown state.
 */
export const VMX_ABORT_INDICATORS: readonly VmxAbortIndicator[] = [
  { value: 1, name: 'VMX_ABORT_SAVE_GUEST_MSR_FAIL', description: 'There was a failure in saving guest MSRs', sdm: ABORT_SDM },
  { value: 2, name: 'VMX_ABORT_LOAD_HOST_PDPTE_FAIL', description: 'Host checking of the page-directory-pointer-table entries (PDPTEs) failed', sdm: ABORT_SDM },
  { value: 3, name: 'VMX_ABORT_VMCS_CORRUPTED', description: 'The current VMCS has been corrupted through writes to the corresponding VMCS region', sdm: ABORT_SDM, supplementary: true },
  { value: 4, name: 'VMX_ABORT_LOAD_HOST_MSR_FAIL', description: 'There was a failure on loading host MSRs', sdm: ABORT_SDM },
  { value: 5, name: 'VMX_ABORT_MACHINE_CHECK', description: 'There was a machine-check event during the VM exit', sdm: ABORT_SDM, supplementary: true },
  { value: 6, name: 'VMX_ABORT_HOST_NOT_64BIT', description: 'The logical processor was in IA-32e mode before the VM exit and the "host address-space size" VM-exit control was 0', sdm: ABORT_SDM, supplementary: true },
];
export const VMX_ABORT_SAVE_GUEST_MSR_FAIL = 1;
export const VMX_ABORT_LOAD_HOST_PDPTE_FAIL = 2;
export const VMX_ABORT_VMCS_CORRUPTED = 3;
export const VMX_ABORT_LOAD_HOST_MSR_FAIL = 4;
export const VMX_ABORT_MACHINE_CHECK = 5;
export const VMX_ABORT_HOST_NOT_64BIT = 6;

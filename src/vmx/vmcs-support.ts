// Which VMCS fields a processor supports. A field exists only on processors that support the feature it belongs
// to; VMREAD/VMWRITE of any other encoding fail with VM-instruction error 12 ("unsupported VMCS component").
// See SDM Vol. 3C, "VMREAD—Read Field from Virtual-Machine Control Structure" and Vol. 3D, "Field Encoding in VMCS"
// (each field's row names the control whose 1-setting makes it exist).
import { canSet, canSetTertiary, type VmxCapabilities } from './capabilities.ts';
import { VMX_CONTROL as C } from './controls.ts';
import { VMFUNC_EPTP_SWITCHING } from './msrs.ts';
import type { VmcsFullFieldName } from './fields.ts';
import { SLOT_FIELDS, VMCS_SLOT_COUNT } from './vmcs.ts';

type Requirement = (caps: VmxCapabilities) => boolean;

const proc2 = (mask: number): Requirement => (c) => canSet(c, 'proc2', mask);
const ept = proc2(C.SECONDARY_EXEC_ENABLE_EPT);
const exitOrEntry = (exitMask: number, entryMask: number): Requirement => (c) =>
  canSet(c, 'exit', exitMask) || canSet(c, 'entry', entryMask);

/** Fields that exist only with a feature. Every field not listed here exists on every VMX processor. */
export const FIELD_REQUIREMENTS: { readonly [N in VmcsFullFieldName]?: { readonly requires: string; readonly test: Requirement } } = {
  VIRTUAL_PROCESSOR_ID: { requires: '"enable VPID" allowed-1', test: proc2(C.SECONDARY_EXEC_ENABLE_VPID) },
  POSTED_INTR_NV: { requires: '"process posted interrupts" allowed-1', test: (c) => canSet(c, 'pin', C.PIN_BASED_POSTED_INTR) },
  POSTED_INTR_DESC_ADDR: { requires: '"process posted interrupts" allowed-1', test: (c) => canSet(c, 'pin', C.PIN_BASED_POSTED_INTR) },
  EPTP_IDX: { requires: '"EPT-violation #VE" allowed-1', test: proc2(C.SECONDARY_EXEC_EPT_VIOLATION_VE) },
  LAST_PID_POINTER_INDEX: { requires: '"IPI virtualization" (tertiary) allowed-1', test: (c) => canSetTertiary(c, 4) },
  PID_POINTER_TABLE: { requires: '"IPI virtualization" (tertiary) allowed-1', test: (c) => canSetTertiary(c, 4) },
  GUEST_INTR_STATUS: { requires: '"virtual-interrupt delivery" allowed-1', test: proc2(C.SECONDARY_EXEC_VIRTUAL_INTR_DELIVERY) },
  EOI_EXIT_BITMAP0: { requires: '"virtual-interrupt delivery" allowed-1', test: proc2(C.SECONDARY_EXEC_VIRTUAL_INTR_DELIVERY) },
  EOI_EXIT_BITMAP1: { requires: '"virtual-interrupt delivery" allowed-1', test: proc2(C.SECONDARY_EXEC_VIRTUAL_INTR_DELIVERY) },
  EOI_EXIT_BITMAP2: { requires: '"virtual-interrupt delivery" allowed-1', test: proc2(C.SECONDARY_EXEC_VIRTUAL_INTR_DELIVERY) },
  EOI_EXIT_BITMAP3: { requires: '"virtual-interrupt delivery" allowed-1', test: proc2(C.SECONDARY_EXEC_VIRTUAL_INTR_DELIVERY) },
  GUEST_PML_INDEX: { requires: '"enable PML" allowed-1', test: proc2(C.SECONDARY_EXEC_ENABLE_PML) },
  PML_ADDRESS: { requires: '"enable PML" allowed-1', test: proc2(C.SECONDARY_EXEC_ENABLE_PML) },
  VIRTUAL_APIC_PAGE_ADDR: { requires: '"use TPR shadow" allowed-1', test: (c) => canSet(c, 'proc', C.CPU_BASED_TPR_SHADOW) },
  TPR_THRESHOLD: { requires: '"use TPR shadow" allowed-1', test: (c) => canSet(c, 'proc', C.CPU_BASED_TPR_SHADOW) },
  APIC_ACCESS_ADDR: { requires: '"virtualize APIC accesses" allowed-1', test: proc2(C.SECONDARY_EXEC_VIRTUALIZE_APIC_ACCESSES) },
  VM_FUNCTION_CONTROL: { requires: '"enable VM functions" allowed-1', test: proc2(C.SECONDARY_EXEC_ENABLE_VMFUNC) },
  EPTP_LIST_ADDRESS: {
    requires: 'EPTP switching (IA32_VMX_VMFUNC[0])',
    test: (c) => canSet(c, 'proc2', C.SECONDARY_EXEC_ENABLE_VMFUNC) && (c.vmfunc & VMFUNC_EPTP_SWITCHING) !== 0n,
  },
  EPT_POINTER: { requires: '"enable EPT" allowed-1', test: ept },
  GUEST_PHYSICAL_ADDRESS: { requires: '"enable EPT" allowed-1', test: ept },
  GUEST_PDPTR0: { requires: '"enable EPT" allowed-1', test: ept },
  GUEST_PDPTR1: { requires: '"enable EPT" allowed-1', test: ept },
  GUEST_PDPTR2: { requires: '"enable EPT" allowed-1', test: ept },
  GUEST_PDPTR3: { requires: '"enable EPT" allowed-1', test: ept },
  VMREAD_BITMAP: { requires: '"VMCS shadowing" allowed-1', test: proc2(C.SECONDARY_EXEC_SHADOW_VMCS) },
  VMWRITE_BITMAP: { requires: '"VMCS shadowing" allowed-1', test: proc2(C.SECONDARY_EXEC_SHADOW_VMCS) },
  XSS_EXIT_BITMAP: { requires: '"enable XSAVES/XRSTORS" allowed-1', test: proc2(C.SECONDARY_EXEC_XSAVES) },
  ENCLS_EXITING_BITMAP: { requires: '"enable ENCLS exiting" allowed-1', test: proc2(C.SECONDARY_EXEC_ENCLS_EXITING) },
  TSC_MULTIPLIER: { requires: '"use TSC scaling" allowed-1', test: proc2(C.SECONDARY_EXEC_TSC_SCALING) },
  TERTIARY_VM_EXEC_CONTROL: { requires: '"activate tertiary controls" allowed-1', test: (c) => canSet(c, 'proc', C.CPU_BASED_ACTIVATE_TERTIARY_CONTROLS) },
  SECONDARY_VM_EXEC_CONTROL: { requires: '"activate secondary controls" allowed-1', test: (c) => canSet(c, 'proc', C.CPU_BASED_ACTIVATE_SECONDARY_CONTROLS) },
  PLE_GAP: { requires: '"PAUSE-loop exiting" allowed-1', test: proc2(C.SECONDARY_EXEC_PAUSE_LOOP_EXITING) },
  PLE_WINDOW: { requires: '"PAUSE-loop exiting" allowed-1', test: proc2(C.SECONDARY_EXEC_PAUSE_LOOP_EXITING) },
  NOTIFY_WINDOW: { requires: '"instruction timeout" allowed-1', test: proc2(C.SECONDARY_EXEC_NOTIFY_VM_EXITING) },
  VMX_PREEMPTION_TIMER_VALUE: { requires: '"activate VMX-preemption timer" allowed-1', test: (c) => canSet(c, 'pin', C.PIN_BASED_VMX_PREEMPTION_TIMER) },
  GUEST_IA32_PAT: { requires: '"save IA32_PAT" or "load IA32_PAT" (entry) allowed-1', test: exitOrEntry(C.VM_EXIT_SAVE_IA32_PAT, C.VM_ENTRY_LOAD_IA32_PAT) },
  GUEST_IA32_EFER: { requires: '"save IA32_EFER" or "load IA32_EFER" (entry) allowed-1', test: exitOrEntry(C.VM_EXIT_SAVE_IA32_EFER, C.VM_ENTRY_LOAD_IA32_EFER) },
  GUEST_IA32_PERF_GLOBAL_CTRL: { requires: '"load IA32_PERF_GLOBAL_CTRL" (entry) allowed-1', test: (c) => canSet(c, 'entry', C.VM_ENTRY_LOAD_IA32_PERF_GLOBAL_CTRL) },
  GUEST_BNDCFGS: { requires: '"clear IA32_BNDCFGS" or "load IA32_BNDCFGS" allowed-1', test: exitOrEntry(C.VM_EXIT_CLEAR_BNDCFGS, C.VM_ENTRY_LOAD_BNDCFGS) },
  GUEST_IA32_RTIT_CTL: { requires: '"clear IA32_RTIT_CTL" or "load IA32_RTIT_CTL" allowed-1', test: exitOrEntry(C.VM_EXIT_CLEAR_IA32_RTIT_CTL, C.VM_ENTRY_LOAD_IA32_RTIT_CTL) },
  GUEST_S_CET: { requires: '"load CET state" (entry) allowed-1', test: (c) => canSet(c, 'entry', C.VM_ENTRY_LOAD_CET_STATE) },
  HOST_IA32_PAT: { requires: '"load IA32_PAT" (exit) allowed-1', test: (c) => canSet(c, 'exit', C.VM_EXIT_LOAD_IA32_PAT) },
  HOST_IA32_EFER: { requires: '"load IA32_EFER" (exit) allowed-1', test: (c) => canSet(c, 'exit', C.VM_EXIT_LOAD_IA32_EFER) },
  HOST_IA32_PERF_GLOBAL_CTRL: { requires: '"load IA32_PERF_GLOBAL_CTRL" (exit) allowed-1', test: (c) => canSet(c, 'exit', C.VM_EXIT_LOAD_IA32_PERF_GLOBAL_CTRL) },
  HOST_S_CET: { requires: '"load CET state" (exit) allowed-1', test: (c) => canSet(c, 'exit', C.VM_EXIT_LOAD_CET_STATE) },
};

/** One byte per slot: 1 if this processor supports the field. Computed once per capability set. */
export function supportedSlots(caps: VmxCapabilities): Uint8Array {
  const out = new Uint8Array(VMCS_SLOT_COUNT);
  SLOT_FIELDS.forEach((f, slot) => {
    const req = FIELD_REQUIREMENTS[f.name];
    out[slot] = req === undefined || req.test(caps) ? 1 : 0;
  });
  return out;
}

/** Why a field is unsupported on this processor, for the explanation channel. */
export function unsupportedReason(name: VmcsFullFieldName): string | undefined {
  return FIELD_REQUIREMENTS[name]?.requires;
}

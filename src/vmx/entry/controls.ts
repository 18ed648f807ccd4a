// VM-entry checks on the VMX controls. A failure ends VMLAUNCH/VMRESUME with VMfailValid(7),
// "VM entry with invalid control field(s)". See SDM Vol. 3C, "Checks on VMX Controls".
import type { AllowedSettings } from '../capabilities.ts';
import type { StateCheck, CheckResult } from './rule.ts';
import { ERROR_INVALID_CONTROL, fail } from './rule.ts';
import { hex } from '../../util/hex.ts';
import type { EntryView } from './view.ts';
import { VMX_CONTROL } from '../controls.ts';
import { eptpProblem, type EptpPart } from '../eptp.ts';
import { INTR_INFO, INTR_TYPE, VECTORS_WITH_ERROR_CODE, decodeInterruptionInfo, type InterruptionInfo } from '../transition/interruption-info.ts';
import type { VmcsFullFieldName } from '../fields.ts';

const EXEC = 'Checks on VM-Execution Control Fields';
const EXIT = 'Checks on VM-Exit Control Fields';
const ENTRY = 'Checks on VM-Entry Control Fields';

function control(section: string, id: string, fields: readonly VmcsFullFieldName[], check: (v: EntryView) => CheckResult, explain: string): StateCheck {
  return { id, group: 'controls', section, fields, outcome: ERROR_INVALID_CONTROL, check, explain };
}

/** A control value against its allowed-0/allowed-1 settings; names the offending bits and the MSR. */
function allowedSettings(field: VmcsFullFieldName, value: number, allowed: AllowedSettings, msr: string): CheckResult {
  const missing = (allowed.allowed0 & ~value) >>> 0;
  const forbidden = (value & ~allowed.allowed1) >>> 0;
  if (missing === 0 && forbidden === 0) return true;
  const parts: string[] = [];
  if (missing) parts.push(`bits ${hex(missing)} must be 1 (allowed-0 settings in ${msr})`);
  if (forbidden) parts.push(`bits ${hex(forbidden)} must be 0 (allowed-1 settings in ${msr})`);
  return fail(field, value, `${hex(allowed.allowed0)} ⊆ value ⊆ ${hex(allowed.allowed1)}`, parts.join('; '));
}

/** A physical address that must be aligned to 2^alignBits and lie within MAXPHYADDR. */
function physAddress(v: EntryView, field: VmcsFullFieldName, alignBits: number, what: string): CheckResult {
  const a = v.u64(field);
  const mask = (1n << BigInt(alignBits)) - 1n;
  if ((a & mask) !== 0n) return fail(field, a, `bits ${alignBits - 1}:0 clear`, `${what} must be aligned to ${2 ** alignBits} bytes`);
  if (!v.withinPhysWidth(a)) {
    return fail(field, a, `< 2^${v.physAddrWidth}`, `${what} sets bits beyond the physical-address width (${v.physAddrWidth})`);
  }
  return true;
}

/** An MSR area (16 bytes per entry): 16-byte aligned, and its last byte within MAXPHYADDR. */
function msrArea(v: EntryView, countField: VmcsFullFieldName, addrField: VmcsFullFieldName, what: string): CheckResult {
  const count = v.u32(countField);
  if (count === 0) return true;
  const a = v.u64(addrField);
  if ((a & 0xfn) !== 0n) return fail(addrField, a, 'bits 3:0 clear', `${what} address must be 16-byte aligned`);
  const last = a + BigInt(count) * 16n - 1n;
  if (!v.withinPhysWidth(last)) {
    return fail(addrField, a, `last byte ${hex(last)} < 2^${v.physAddrWidth}`, `${what} (${count} entries) extends beyond the physical-address width`);
  }
  return true;
}

const has = (value: number, bit: number): boolean => (value & bit) !== 0;

/** With "enable EPT" = 1, one part of the EPTP, checked by the rules INVEPT uses too (../eptp.ts). */
function eptpRule(id: string, part: EptpPart, explain: string): StateCheck {
  return control(EXEC, id, ['SECONDARY_VM_EXEC_CONTROL', 'EPT_POINTER'], (v) => {
    if (!has(v.proc2, VMX_CONTROL.SECONDARY_EXEC_ENABLE_EPT)) return true;
    const e = v.u64('EPT_POINTER');
    const problem = eptpProblem(e, v.caps, v.physAddrWidth, [part]);
    return problem === null || fail('EPT_POINTER', e, problem.expected, `EPTP ${hex(e)}: ${problem.message}`);
  }, explain);
}

function injected(v: EntryView): InterruptionInfo {
  return decodeInterruptionInfo(v.u32('VM_ENTRY_INTR_INFO_FIELD'));
}
export { injected as entryInterruptionInfo };

export const CONTROL_CHECKS: readonly StateCheck[] = [
  // --- VM-execution control fields -------------------------------------------------------------------------
  control(EXEC, 'pin-based-controls-allowed', ['PIN_BASED_VM_EXEC_CONTROL'],
    (v) => allowedSettings('PIN_BASED_VM_EXEC_CONTROL', v.pin, v.caps.effective.pin, 'IA32_VMX_(TRUE_)PINBASED_CTLS'),
    'Reserved pin-based control bits must hold the values IA32_VMX_PINBASED_CTLS (or the TRUE_ MSR when IA32_VMX_BASIC[55] = 1) requires.'),
  control(EXEC, 'proc-based-controls-allowed', ['CPU_BASED_VM_EXEC_CONTROL'],
    (v) => allowedSettings('CPU_BASED_VM_EXEC_CONTROL', v.proc, v.caps.effective.proc, 'IA32_VMX_(TRUE_)PROCBASED_CTLS'),
    'Reserved primary processor-based control bits must hold the values IA32_VMX_PROCBASED_CTLS (or its TRUE_ MSR) requires.'),
  control(EXEC, 'secondary-controls-allowed', ['CPU_BASED_VM_EXEC_CONTROL', 'SECONDARY_VM_EXEC_CONTROL'],
    (v) => !has(v.proc, VMX_CONTROL.CPU_BASED_ACTIVATE_SECONDARY_CONTROLS) ||
      allowedSettings('SECONDARY_VM_EXEC_CONTROL', v.proc2, v.caps.effective.proc2, 'IA32_VMX_PROCBASED_CTLS2'),
    'With "activate secondary controls" = 1, secondary control bits must be allowed by IA32_VMX_PROCBASED_CTLS2.'),
  control(EXEC, 'tertiary-controls-allowed', ['CPU_BASED_VM_EXEC_CONTROL', 'TERTIARY_VM_EXEC_CONTROL'], (v) => {
    if (!has(v.proc, VMX_CONTROL.CPU_BASED_ACTIVATE_TERTIARY_CONTROLS)) return true;
    const t = v.u64('TERTIARY_VM_EXEC_CONTROL');
    const allowed = v.caps.procbased3 ?? 0n;
    return (t & ~allowed) === 0n || fail('TERTIARY_VM_EXEC_CONTROL', t, `⊆ IA32_VMX_PROCBASED_CTLS3 = ${hex(allowed)}`, `tertiary control bits ${hex(t & ~allowed)} are not allowed by IA32_VMX_PROCBASED_CTLS3`);
  }, 'With "activate tertiary controls" = 1, every tertiary control bit set must be allowed by IA32_VMX_PROCBASED_CTLS3.'),
  control(EXEC, 'cr3-target-count', ['CR3_TARGET_COUNT'], (v) => {
    const n = v.u32('CR3_TARGET_COUNT');
    const max = v.caps.misc.cr3TargetCount;
    return n <= max || fail('CR3_TARGET_COUNT', n, `≤ ${max} (IA32_VMX_MISC[24:16])`, `CR3-target count ${n} exceeds the ${max} values this CPU supports`);
  }, 'The CR3-target count must not exceed the number of CR3-target values the CPU reports in IA32_VMX_MISC[24:16] (4 on all CPUs so far).'),
  control(EXEC, 'io-bitmap-a-address', ['CPU_BASED_VM_EXEC_CONTROL', 'IO_BITMAP_A'],
    (v) => !has(v.proc, VMX_CONTROL.CPU_BASED_USE_IO_BITMAPS) || physAddress(v, 'IO_BITMAP_A', 12, 'I/O bitmap A'),
    'With "use I/O bitmaps" = 1, I/O-bitmap address A must be 4-KByte aligned and within the physical-address width.'),
  control(EXEC, 'io-bitmap-b-address', ['CPU_BASED_VM_EXEC_CONTROL', 'IO_BITMAP_B'],
    (v) => !has(v.proc, VMX_CONTROL.CPU_BASED_USE_IO_BITMAPS) || physAddress(v, 'IO_BITMAP_B', 12, 'I/O bitmap B'),
    'With "use I/O bitmaps" = 1, I/O-bitmap address B must be 4-KByte aligned and within the physical-address width.'),
  control(EXEC, 'msr-bitmap-address', ['CPU_BASED_VM_EXEC_CONTROL', 'MSR_BITMAP'],
    (v) => !has(v.proc, VMX_CONTROL.CPU_BASED_USE_MSR_BITMAPS) || physAddress(v, 'MSR_BITMAP', 12, 'The MSR-bitmap address'),
    'With "use MSR bitmaps" = 1, the MSR-bitmap address must be 4-KByte aligned and within the physical-address width.'),
  control(EXEC, 'virtual-apic-address', ['CPU_BASED_VM_EXEC_CONTROL', 'VIRTUAL_APIC_PAGE_ADDR'],
    (v) => !has(v.proc, VMX_CONTROL.CPU_BASED_TPR_SHADOW) || physAddress(v, 'VIRTUAL_APIC_PAGE_ADDR', 12, 'The virtual-APIC address'),
    'With "use TPR shadow" = 1, the virtual-APIC address must be 4-KByte aligned and within the physical-address width.'),
  control(EXEC, 'tpr-threshold-reserved', ['CPU_BASED_VM_EXEC_CONTROL', 'SECONDARY_VM_EXEC_CONTROL', 'TPR_THRESHOLD'], (v) => {
    if (!has(v.proc, VMX_CONTROL.CPU_BASED_TPR_SHADOW) || has(v.proc2, VMX_CONTROL.SECONDARY_EXEC_VIRTUAL_INTR_DELIVERY)) return true;
    const t = v.u32('TPR_THRESHOLD');
    return (t & ~0xf) === 0 || fail('TPR_THRESHOLD', t, 'bits 31:4 clear', 'TPR threshold bits 31:4 must be 0');
  }, 'With "use TPR shadow" = 1 and "virtual-interrupt delivery" = 0, bits 31:4 of the TPR threshold must be 0.'),
  control(EXEC, 'tpr-threshold-vs-vtpr', ['CPU_BASED_VM_EXEC_CONTROL', 'SECONDARY_VM_EXEC_CONTROL', 'TPR_THRESHOLD', 'VIRTUAL_APIC_PAGE_ADDR'], (v) => {
    if (!has(v.proc, VMX_CONTROL.CPU_BASED_TPR_SHADOW) || has(v.proc2, VMX_CONTROL.SECONDARY_EXEC_VIRTUALIZE_APIC_ACCESSES | VMX_CONTROL.SECONDARY_EXEC_VIRTUAL_INTR_DELIVERY)) return true;
    const t = v.u32('TPR_THRESHOLD') & 0xf;
    // VTPR is the byte at offset 80H of the virtual-APIC page. See SDM Vol. 3C, "Virtualized APIC Registers".
    const vtpr = v.readPhys32(v.u64('VIRTUAL_APIC_PAGE_ADDR') + 0x80n) & 0xff;
    return t <= vtpr >>> 4 || fail('TPR_THRESHOLD', t, `≤ VTPR[7:4] = ${vtpr >>> 4}`, 'TPR threshold bits 3:0 exceed bits 7:4 of VTPR (offset 80H of the virtual-APIC page)');
  }, 'With a TPR shadow but neither APIC-access virtualization nor virtual-interrupt delivery, TPR threshold[3:0] must not exceed VTPR[7:4].'),
  control(EXEC, 'apic-virtualization-needs-tpr-shadow', ['CPU_BASED_VM_EXEC_CONTROL', 'SECONDARY_VM_EXEC_CONTROL'], (v) => {
    const need = VMX_CONTROL.SECONDARY_EXEC_VIRTUALIZE_X2APIC_MODE | VMX_CONTROL.SECONDARY_EXEC_APIC_REGISTER_VIRT | VMX_CONTROL.SECONDARY_EXEC_VIRTUAL_INTR_DELIVERY;
    return has(v.proc, VMX_CONTROL.CPU_BASED_TPR_SHADOW) || !has(v.proc2, need) ||
      fail('SECONDARY_VM_EXEC_CONTROL', v.proc2, '"use TPR shadow" = 1', '"virtualize x2APIC mode", "APIC-register virtualization" and "virtual-interrupt delivery" need "use TPR shadow" = 1');
  }, 'Without "use TPR shadow", "virtualize x2APIC mode", "APIC-register virtualization" and "virtual-interrupt delivery" must be 0.'),
  control(EXEC, 'x2apic-mode-excludes-apic-accesses', ['SECONDARY_VM_EXEC_CONTROL'],
    (v) => !has(v.proc2, VMX_CONTROL.SECONDARY_EXEC_VIRTUALIZE_X2APIC_MODE) || !has(v.proc2, VMX_CONTROL.SECONDARY_EXEC_VIRTUALIZE_APIC_ACCESSES) ||
      fail('SECONDARY_VM_EXEC_CONTROL', v.proc2, 'not both', '"virtualize x2APIC mode" and "virtualize APIC accesses" cannot both be 1'),
    'If "virtualize x2APIC mode" is 1, "virtualize APIC accesses" must be 0.'),
  control(EXEC, 'virtual-interrupt-delivery-needs-external-interrupt-exiting', ['SECONDARY_VM_EXEC_CONTROL', 'PIN_BASED_VM_EXEC_CONTROL'],
    (v) => !has(v.proc2, VMX_CONTROL.SECONDARY_EXEC_VIRTUAL_INTR_DELIVERY) || has(v.pin, VMX_CONTROL.PIN_BASED_EXT_INTR_MASK) ||
      fail('PIN_BASED_VM_EXEC_CONTROL', v.pin, '"external-interrupt exiting" = 1', '"virtual-interrupt delivery" needs "external-interrupt exiting"'),
    'If "virtual-interrupt delivery" is 1, "external-interrupt exiting" must be 1.'),
  control(EXEC, 'posted-interrupts-prerequisites', ['PIN_BASED_VM_EXEC_CONTROL', 'SECONDARY_VM_EXEC_CONTROL', 'VM_EXIT_CONTROLS'], (v) => {
    if (!has(v.pin, VMX_CONTROL.PIN_BASED_POSTED_INTR)) return true;
    if (!has(v.proc2, VMX_CONTROL.SECONDARY_EXEC_VIRTUAL_INTR_DELIVERY)) return fail('SECONDARY_VM_EXEC_CONTROL', v.proc2, '"virtual-interrupt delivery" = 1', '"process posted interrupts" needs "virtual-interrupt delivery"');
    if (!has(v.exitCtls, VMX_CONTROL.VM_EXIT_ACK_INTR_ON_EXIT)) return fail('VM_EXIT_CONTROLS', v.exitCtls, '"acknowledge interrupt on exit" = 1', '"process posted interrupts" needs "acknowledge interrupt on exit"');
    return true;
  }, 'If "process posted interrupts" is 1, "virtual-interrupt delivery" and the exit control "acknowledge interrupt on exit" must be 1.'),
  control(EXEC, 'posted-interrupt-notification-vector', ['PIN_BASED_VM_EXEC_CONTROL', 'POSTED_INTR_NV'], (v) => {
    if (!has(v.pin, VMX_CONTROL.PIN_BASED_POSTED_INTR)) return true;
    const nv = v.u32('POSTED_INTR_NV');
    return (nv & 0xff00) === 0 || fail('POSTED_INTR_NV', nv, 'bits 15:8 clear', 'the posted-interrupt notification vector is a vector: bits 15:8 must be 0');
  }, 'With "process posted interrupts", bits 15:8 of the posted-interrupt notification vector must be 0.'),
  control(EXEC, 'posted-interrupt-descriptor-address', ['PIN_BASED_VM_EXEC_CONTROL', 'POSTED_INTR_DESC_ADDR'],
    (v) => !has(v.pin, VMX_CONTROL.PIN_BASED_POSTED_INTR) || physAddress(v, 'POSTED_INTR_DESC_ADDR', 6, 'The posted-interrupt descriptor address'),
    'With "process posted interrupts", the posted-interrupt descriptor address must be 64-byte aligned and within the physical-address width.'),
  control(EXEC, 'virtual-nmis-need-nmi-exiting', ['PIN_BASED_VM_EXEC_CONTROL'],
    (v) => has(v.pin, VMX_CONTROL.PIN_BASED_NMI_EXITING) || !has(v.pin, VMX_CONTROL.PIN_BASED_VIRTUAL_NMIS) ||
      fail('PIN_BASED_VM_EXEC_CONTROL', v.pin, '"NMI exiting" = 1', '"virtual NMIs" = 1 needs "NMI exiting" = 1'),
    'If "NMI exiting" is 0, "virtual NMIs" must be 0.'),
  control(EXEC, 'nmi-window-needs-virtual-nmis', ['PIN_BASED_VM_EXEC_CONTROL', 'CPU_BASED_VM_EXEC_CONTROL'],
    (v) => has(v.pin, VMX_CONTROL.PIN_BASED_VIRTUAL_NMIS) || !has(v.proc, VMX_CONTROL.CPU_BASED_NMI_WINDOW_EXITING) ||
      fail('CPU_BASED_VM_EXEC_CONTROL', v.proc, '"virtual NMIs" = 1', '"NMI-window exiting" = 1 needs "virtual NMIs" = 1'),
    'If "virtual NMIs" is 0, "NMI-window exiting" must be 0.'),
  control(EXEC, 'apic-access-address', ['SECONDARY_VM_EXEC_CONTROL', 'APIC_ACCESS_ADDR'],
    (v) => !has(v.proc2, VMX_CONTROL.SECONDARY_EXEC_VIRTUALIZE_APIC_ACCESSES) || physAddress(v, 'APIC_ACCESS_ADDR', 12, 'The APIC-access address'),
    'With "virtualize APIC accesses" = 1, the APIC-access address must be 4-KByte aligned and within the physical-address width.'),
  control(EXEC, 'vpid-nonzero', ['SECONDARY_VM_EXEC_CONTROL', 'VIRTUAL_PROCESSOR_ID'],
    (v) => !has(v.proc2, VMX_CONTROL.SECONDARY_EXEC_ENABLE_VPID) || v.u32('VIRTUAL_PROCESSOR_ID') !== 0 ||
      fail('VIRTUAL_PROCESSOR_ID', 0, '≠ 0', 'VPID 0 is reserved for VMX root operation'),
    'With "enable VPID" = 1, the VPID must not be 0000H (VPID 0 tags the host\'s own translations).'),
  eptpRule('eptp-memory-type', 'memory-type',
    'EPTP bits 2:0 give the memory type of the EPT paging structures: UC (0) if IA32_VMX_EPT_VPID_CAP[8], WB (6) if bit 14.'),
  eptpRule('eptp-walk-length', 'walk-length',
    'EPTP bits 5:3 hold the page-walk length minus 1: 3 for 4-level EPT (IA32_VMX_EPT_VPID_CAP[6]), 4 for 5-level EPT (bit 7).'),
  eptpRule('eptp-accessed-dirty', 'accessed-dirty',
    'EPTP bit 6 (enable accessed and dirty flags) may be 1 only if IA32_VMX_EPT_VPID_CAP[21] = 1.'),
  eptpRule('eptp-reserved', 'reserved',
    'EPTP bits 11:7 and bits 63:MAXPHYADDR are reserved and must be 0.'),
  control(EXEC, 'pml-needs-ept', ['SECONDARY_VM_EXEC_CONTROL'],
    (v) => !has(v.proc2, VMX_CONTROL.SECONDARY_EXEC_ENABLE_PML) || has(v.proc2, VMX_CONTROL.SECONDARY_EXEC_ENABLE_EPT) ||
      fail('SECONDARY_VM_EXEC_CONTROL', v.proc2, '"enable EPT" = 1', '"enable PML" needs "enable EPT"'),
    'If "enable PML" is 1, "enable EPT" must be 1.'),
  control(EXEC, 'pml-address', ['SECONDARY_VM_EXEC_CONTROL', 'PML_ADDRESS'],
    (v) => !has(v.proc2, VMX_CONTROL.SECONDARY_EXEC_ENABLE_PML) || physAddress(v, 'PML_ADDRESS', 12, 'The PML address'),
    'With "enable PML" = 1, the PML address must be 4-KByte aligned and within the physical-address width.'),
  control(EXEC, 'unrestricted-guest-needs-ept', ['SECONDARY_VM_EXEC_CONTROL'],
    (v) => !has(v.proc2, VMX_CONTROL.SECONDARY_EXEC_UNRESTRICTED_GUEST) || has(v.proc2, VMX_CONTROL.SECONDARY_EXEC_ENABLE_EPT) ||
      fail('SECONDARY_VM_EXEC_CONTROL', v.proc2, '"enable EPT" = 1', '"unrestricted guest" needs "enable EPT": an unpaged guest still needs a guest-physical mapping'),
    'If "unrestricted guest" is 1, "enable EPT" must be 1.'),
  control(EXEC, 'mode-based-ept-exec-needs-ept', ['SECONDARY_VM_EXEC_CONTROL'],
    (v) => !has(v.proc2, VMX_CONTROL.SECONDARY_EXEC_MODE_BASED_EPT_EXEC) || has(v.proc2, VMX_CONTROL.SECONDARY_EXEC_ENABLE_EPT) ||
      fail('SECONDARY_VM_EXEC_CONTROL', v.proc2, '"enable EPT" = 1', '"mode-based execute control for EPT" needs "enable EPT"'),
    'If "mode-based execute control for EPT" is 1, "enable EPT" must be 1.'),
  control(EXEC, 'pt-guest-physical-addresses-prerequisites', ['SECONDARY_VM_EXEC_CONTROL', 'VM_EXIT_CONTROLS', 'VM_ENTRY_CONTROLS'], (v) => {
    if (!has(v.proc2, VMX_CONTROL.SECONDARY_EXEC_PT_USE_GPA)) return true;
    if (!has(v.proc2, VMX_CONTROL.SECONDARY_EXEC_ENABLE_EPT)) return fail('SECONDARY_VM_EXEC_CONTROL', v.proc2, '"enable EPT" = 1', '"Intel PT uses guest physical addresses" needs "enable EPT"');
    if (!has(v.entryCtls, VMX_CONTROL.VM_ENTRY_LOAD_IA32_RTIT_CTL)) return fail('VM_ENTRY_CONTROLS', v.entryCtls, '"load IA32_RTIT_CTL" = 1', '"Intel PT uses guest physical addresses" needs the entry control "load IA32_RTIT_CTL"');
    if (!has(v.exitCtls, VMX_CONTROL.VM_EXIT_CLEAR_IA32_RTIT_CTL)) return fail('VM_EXIT_CONTROLS', v.exitCtls, '"clear IA32_RTIT_CTL" = 1', '"Intel PT uses guest physical addresses" needs the exit control "clear IA32_RTIT_CTL"');
    return true;
  }, 'If "Intel PT uses guest physical addresses" is 1, "enable EPT", the entry control "load IA32_RTIT_CTL" and the exit control "clear IA32_RTIT_CTL" must be 1.'),
  control(EXEC, 'vm-function-controls-allowed', ['SECONDARY_VM_EXEC_CONTROL', 'VM_FUNCTION_CONTROL'], (v) => {
    if (!has(v.proc2, VMX_CONTROL.SECONDARY_EXEC_ENABLE_VMFUNC)) return true;
    const f = v.u64('VM_FUNCTION_CONTROL');
    return (f & ~v.caps.vmfunc) === 0n || fail('VM_FUNCTION_CONTROL', f, `⊆ IA32_VMX_VMFUNC = ${hex(v.caps.vmfunc)}`, 'a VM function is enabled that IA32_VMX_VMFUNC does not allow');
  }, 'With "enable VM functions", each VM-function control bit must be allowed by IA32_VMX_VMFUNC.'),
  control(EXEC, 'eptp-switching-needs-ept', ['SECONDARY_VM_EXEC_CONTROL', 'VM_FUNCTION_CONTROL'], (v) => {
    if (!has(v.proc2, VMX_CONTROL.SECONDARY_EXEC_ENABLE_VMFUNC) || (v.u64('VM_FUNCTION_CONTROL') & 1n) === 0n) return true;
    return has(v.proc2, VMX_CONTROL.SECONDARY_EXEC_ENABLE_EPT) || fail('SECONDARY_VM_EXEC_CONTROL', v.proc2, '"enable EPT" = 1', 'EPTP switching needs "enable EPT"');
  }, 'If EPTP switching (VM function 0) is enabled, "enable EPT" must be 1.'),
  control(EXEC, 'eptp-list-address', ['SECONDARY_VM_EXEC_CONTROL', 'VM_FUNCTION_CONTROL', 'EPTP_LIST_ADDRESS'], (v) => {
    if (!has(v.proc2, VMX_CONTROL.SECONDARY_EXEC_ENABLE_VMFUNC) || (v.u64('VM_FUNCTION_CONTROL') & 1n) === 0n) return true;
    return physAddress(v, 'EPTP_LIST_ADDRESS', 12, 'The EPTP-list address');
  }, 'With EPTP switching enabled, the EPTP-list address must be 4-KByte aligned and within the physical-address width.'),
  control(EXEC, 'vmread-bitmap-address', ['SECONDARY_VM_EXEC_CONTROL', 'VMREAD_BITMAP'],
    (v) => !has(v.proc2, VMX_CONTROL.SECONDARY_EXEC_SHADOW_VMCS) || physAddress(v, 'VMREAD_BITMAP', 12, 'The VMREAD-bitmap address'),
    'With "VMCS shadowing", the VMREAD-bitmap address must be 4-KByte aligned and within the physical-address width.'),
  control(EXEC, 'vmwrite-bitmap-address', ['SECONDARY_VM_EXEC_CONTROL', 'VMWRITE_BITMAP'],
    (v) => !has(v.proc2, VMX_CONTROL.SECONDARY_EXEC_SHADOW_VMCS) || physAddress(v, 'VMWRITE_BITMAP', 12, 'The VMWRITE-bitmap address'),
    'With "VMCS shadowing", the VMWRITE-bitmap address must be 4-KByte aligned and within the physical-address width.'),

  // --- VM-exit control fields ------------------------------------------------------------------------------
  control(EXIT, 'exit-controls-allowed', ['VM_EXIT_CONTROLS'],
    (v) => allowedSettings('VM_EXIT_CONTROLS', v.exitCtls, v.caps.effective.exit, 'IA32_VMX_(TRUE_)EXIT_CTLS'),
    'Reserved VM-exit control bits must hold the values IA32_VMX_EXIT_CTLS (or its TRUE_ MSR) requires.'),
  control(EXIT, 'save-preemption-timer-needs-timer', ['PIN_BASED_VM_EXEC_CONTROL', 'VM_EXIT_CONTROLS'],
    (v) => has(v.pin, VMX_CONTROL.PIN_BASED_VMX_PREEMPTION_TIMER) || !has(v.exitCtls, VMX_CONTROL.VM_EXIT_SAVE_VMX_PREEMPTION_TIMER) ||
      fail('VM_EXIT_CONTROLS', v.exitCtls, '"activate VMX-preemption timer" = 1', 'cannot save a preemption timer that is not active'),
    'If "activate VMX-preemption timer" is 0, "save VMX-preemption-timer value" must be 0.'),
  control(EXIT, 'exit-msr-store-address', ['VM_EXIT_MSR_STORE_COUNT', 'VM_EXIT_MSR_STORE_ADDR'],
    (v) => msrArea(v, 'VM_EXIT_MSR_STORE_COUNT', 'VM_EXIT_MSR_STORE_ADDR', 'The VM-exit MSR-store area'),
    'With a non-zero VM-exit MSR-store count, the area must be 16-byte aligned and lie entirely below 2^MAXPHYADDR.'),
  control(EXIT, 'exit-msr-load-address', ['VM_EXIT_MSR_LOAD_COUNT', 'VM_EXIT_MSR_LOAD_ADDR'],
    (v) => msrArea(v, 'VM_EXIT_MSR_LOAD_COUNT', 'VM_EXIT_MSR_LOAD_ADDR', 'The VM-exit MSR-load area'),
    'With a non-zero VM-exit MSR-load count, the area must be 16-byte aligned and lie entirely below 2^MAXPHYADDR.'),

  // --- VM-entry control fields -----------------------------------------------------------------------------
  control(ENTRY, 'entry-controls-allowed', ['VM_ENTRY_CONTROLS'],
    (v) => allowedSettings('VM_ENTRY_CONTROLS', v.entryCtls, v.caps.effective.entry, 'IA32_VMX_(TRUE_)ENTRY_CTLS'),
    'Reserved VM-entry control bits must hold the values IA32_VMX_ENTRY_CTLS (or its TRUE_ MSR) requires.'),
  control(ENTRY, 'event-injection-type', ['VM_ENTRY_INTR_INFO_FIELD'], (v) => {
    const e = injected(v);
    if (!e.valid) return true;
    if (e.type === INTR_TYPE.RESERVED) return fail('VM_ENTRY_INTR_INFO_FIELD', e.raw, 'type ≠ 1', 'interruption type 1 is reserved');
    if (e.type === INTR_TYPE.OTHER_EVENT && !has(v.caps.effective.proc.allowed1, VMX_CONTROL.CPU_BASED_MONITOR_TRAP_FLAG)) {
      return fail('VM_ENTRY_INTR_INFO_FIELD', e.raw, 'type ≠ 7', 'type 7 (other event) needs a CPU that supports the monitor trap flag');
    }
    return true;
  }, 'An injected event\'s type (bits 10:8) must not be 1, nor 7 (other event) on CPUs without the monitor trap flag.'),
  control(ENTRY, 'event-injection-vector', ['VM_ENTRY_INTR_INFO_FIELD'], (v) => {
    const e = injected(v);
    if (!e.valid) return true;
    if (e.type === INTR_TYPE.NMI && e.vector !== 2) return fail('VM_ENTRY_INTR_INFO_FIELD', e.raw, 'vector 2', 'an NMI must use vector 2');
    if (e.type === INTR_TYPE.HARDWARE_EXCEPTION && e.vector > 31) return fail('VM_ENTRY_INTR_INFO_FIELD', e.raw, 'vector ≤ 31', 'a hardware exception must use vector 0–31');
    if (e.type === INTR_TYPE.OTHER_EVENT && e.vector !== 0) return fail('VM_ENTRY_INTR_INFO_FIELD', e.raw, 'vector 0', 'other event must use vector 0 (pending MTF VM exit)');
    return true;
  }, 'The vector must fit the type: NMI uses 2, hardware exceptions 0–31, other event 0.'),
  control(ENTRY, 'event-injection-deliver-error-code', ['VM_ENTRY_INTR_INFO_FIELD', 'SECONDARY_VM_EXEC_CONTROL', 'GUEST_CR0'], (v) => {
    const e = injected(v);
    if (!e.valid) return true;
    const hw = e.type === INTR_TYPE.HARDWARE_EXCEPTION;
    // "Protected mode" here means: "unrestricted guest" is 0, or the CR0 field has PE set.
    const pe = !v.unrestrictedGuest || (v.u64('GUEST_CR0') & 1n) !== 0n;
    const relaxed = v.caps.basic.noHwErrcodeCheck;
    const pushes = VECTORS_WITH_ERROR_CODE.includes(e.vector);
    if (e.deliverErrorCode && (!hw || !pe)) {
      return fail('VM_ENTRY_INTR_INFO_FIELD', e.raw, 'bit 11 clear', 'an error code can be delivered only with a hardware exception, and not to a real-mode unrestricted guest (CR0.PE = 0)');
    }
    if (!relaxed && hw && pe && e.deliverErrorCode !== pushes) {
      return fail('VM_ENTRY_INTR_INFO_FIELD', e.raw, pushes ? 'bit 11 set' : 'bit 11 clear',
        `vector ${e.vector} ${pushes ? 'pushes' : 'does not push'} an error code, so deliver-error-code must be ${pushes ? 1 : 0}`);
    }
    return true;
  }, 'Deliver-error-code (bit 11) must be 1 exactly for hardware exceptions #DF, #TS, #NP, #SS, #GP, #PF and #AC, unless the guest is an unrestricted guest with CR0.PE = 0 (then 0); with IA32_VMX_BASIC[56] = 1 any hardware exception may have one.'),
  control(ENTRY, 'event-injection-reserved', ['VM_ENTRY_INTR_INFO_FIELD'], (v) => {
    const e = injected(v);
    return !e.valid || (e.raw & INTR_INFO.RESERVED) === 0 || fail('VM_ENTRY_INTR_INFO_FIELD', e.raw, 'bits 30:12 clear', 'reserved bits 30:12 are set');
  }, 'Bits 30:12 of the VM-entry interruption-information field are reserved.'),
  control(ENTRY, 'event-injection-error-code', ['VM_ENTRY_INTR_INFO_FIELD', 'VM_ENTRY_EXCEPTION_ERROR_CODE'], (v) => {
    const e = injected(v);
    if (!e.valid || !e.deliverErrorCode) return true;
    const code = v.u32('VM_ENTRY_EXCEPTION_ERROR_CODE');
    return (code & 0xffff0000) === 0 || fail('VM_ENTRY_EXCEPTION_ERROR_CODE', code, 'bits 31:16 clear', 'an exception error code has only 16 bits');
  }, 'When an error code is delivered, bits 31:16 of the VM-entry exception error code must be 0.'),
  control(ENTRY, 'event-injection-instruction-length', ['VM_ENTRY_INTR_INFO_FIELD', 'VM_ENTRY_INSTRUCTION_LEN'], (v) => {
    const e = injected(v);
    const soft = e.type === INTR_TYPE.SOFTWARE_INTERRUPT || e.type === INTR_TYPE.PRIVILEGED_SOFTWARE_EXCEPTION || e.type === INTR_TYPE.SOFTWARE_EXCEPTION;
    if (!e.valid || !soft) return true;
    const len = v.u32('VM_ENTRY_INSTRUCTION_LEN');
    const min = v.caps.misc.zeroLengthInjection ? 0 : 1;
    return (len >= min && len <= 15) || fail('VM_ENTRY_INSTRUCTION_LEN', len, `${min}–15`, 'software interrupts and exceptions need the length of the instruction that raised them');
  }, 'For software interrupts and (privileged) software exceptions the VM-entry instruction length must be 1–15 (0–15 if IA32_VMX_MISC[30] = 1).'),
  control(ENTRY, 'entry-msr-load-address', ['VM_ENTRY_MSR_LOAD_COUNT', 'VM_ENTRY_MSR_LOAD_ADDR'],
    (v) => msrArea(v, 'VM_ENTRY_MSR_LOAD_COUNT', 'VM_ENTRY_MSR_LOAD_ADDR', 'The VM-entry MSR-load area'),
    'With a non-zero VM-entry MSR-load count, the area must be 16-byte aligned and lie entirely below 2^MAXPHYADDR.'),
  control(ENTRY, 'smm-controls-outside-smm', ['VM_ENTRY_CONTROLS'], (v) => {
    // This emulator never runs in SMM, so both SMM-related entry controls must be 0.
    return !has(v.entryCtls, VMX_CONTROL.VM_ENTRY_SMM | VMX_CONTROL.VM_ENTRY_DEACT_DUAL_MONITOR) ||
      fail('VM_ENTRY_CONTROLS', v.entryCtls, '"entry to SMM" = 0 and "deactivate dual-monitor treatment" = 0', 'the processor is not in SMM');
  }, 'Outside SMM, "entry to SMM" and "deactivate dual-monitor treatment" must both be 0.'),
];

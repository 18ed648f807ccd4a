// VM-entry checks on guest non-register state (activity state, interruptibility state, pending debug exceptions),
// the VMCS link pointer and the PAE PDPTEs. All fail with exit reason 33 ("invalid guest state"); the exit
// qualification is 4 for the link pointer, 2 for the PDPTEs, 3 for the implementation-specific NMI-under-STI rule.
// See SDM Vol. 3C, "Checks on Guest Non-Register State" and "Checks on Guest Page-Directory-Pointer-Table Entries".
import type { StateCheck, CheckResult, StateCheckOutcome } from './rule.ts';
import {
  EXIT_INVALID_GUEST_STATE, EXIT_INVALID_GUEST_STATE_LINK, EXIT_INVALID_GUEST_STATE_NMI_STI, EXIT_INVALID_GUEST_STATE_PDPTE, fail,
} from './rule.ts';
import { hex } from '../../util/hex.ts';
import type { EntryView } from './view.ts';
import { VMX_CONTROL } from '../controls.ts';
import { SHADOW_VMCS_INDICATOR, VMCS_REVISION_ID_MASK } from '../vmcs.ts';
import { INTR_TYPE } from '../transition/interruption-info.ts';
import { ACTIVITY_STATE, INTERRUPTIBILITY, PENDING_DBG } from '../transition/non-register-state.ts';
import { DEBUGCTL } from '../../x86/msr.ts';
import { PDPTE } from '../../x86/paging.ts';
import { GUEST_PDPTR_FIELDS } from '../transition/pdptes.ts';
import { entryInterruptionInfo } from './controls.ts';
import { CR0, CR4 } from '../../x86/control-registers.ts';
import { RFLAGS } from '../../x86/flags.ts';
import { arDpl } from '../../x86/segments.ts';
import type { VmcsFullFieldName } from '../fields.ts';

const NONREG = 'Checks on Guest Non-Register State';
const PDPTES = 'Checks on Guest Page-Directory-Pointer-Table Entries';

function guest(section: string, id: string, fields: readonly VmcsFullFieldName[], check: (v: EntryView) => CheckResult, explain: string,
  outcome: StateCheckOutcome = EXIT_INVALID_GUEST_STATE): StateCheck {
  return { id, group: 'guest-state', section, fields, outcome, check, explain };
}

const has = (value: number, bit: number): boolean => (value & bit) !== 0;
const activity = (v: EntryView): number => v.u32('GUEST_ACTIVITY_STATE');
const intr = (v: EntryView): number => v.u32('GUEST_INTERRUPTIBILITY_INFO');
/** The emulated CPUs implement neither RTM nor SGX. */
const RTM_SUPPORTED: boolean = false;
const SGX_SUPPORTED: boolean = false;
const ACTIVITY_NAMES = ['active', 'HLT', 'shutdown', 'wait-for-SIPI'];

/** The VMCS link pointer value meaning "no link". */
export const VMCS_LINK_POINTER_NONE = 0xffffffffffffffffn;

/** PAE paging is in use: the four PDPTEs are part of the guest's paging state. */
export function guestUsesPaePaging(v: EntryView): boolean {
  const cr0 = v.u64('GUEST_CR0');
  const cr4 = v.u64('GUEST_CR4');
  return (cr0 & BigInt(CR0.PG)) !== 0n && (cr4 & BigInt(CR4.PAE)) !== 0n && !v.ia32eModeGuest;
}

/** The four PDPTEs VM entry will use: from the VMCS with EPT, else from guest memory at CR3[31:5]. */
export function guestPdptes(v: EntryView): { values: bigint[]; fromVmcs: boolean } {
  return { values: [0, 1, 2, 3].map((i) => guestPdpte(v, i)), fromVmcs: has(v.proc2, VMX_CONTROL.SECONDARY_EXEC_ENABLE_EPT) };
}

/** PDPTE `i`: from GUEST_PDPTRi with EPT, else the i-th quadword at guest-physical CR3[31:5]. */
function guestPdpte(v: EntryView, i: number): bigint {
  // See SDM Vol. 3C, "Loading Page-Directory-Pointer-Table Entries".
  if (has(v.proc2, VMX_CONTROL.SECONDARY_EXEC_ENABLE_EPT)) return v.u64(GUEST_PDPTR_FIELDS[i]!);
  return v.readPhys64((v.u64('GUEST_CR3') & 0xffffffe0n) + BigInt(8 * i));
}

function pdpteCheck(i: 0 | 1 | 2 | 3): StateCheck {
  const pdptr = GUEST_PDPTR_FIELDS[i];
  return guest(PDPTES, `guest-pdpte${i}-reserved`, ['GUEST_CR0', 'GUEST_CR4', 'VM_ENTRY_CONTROLS', 'SECONDARY_VM_EXEC_CONTROL', 'GUEST_CR3', pdptr], (v) => {
    if (!guestUsesPaePaging(v)) return true;
    const fromVmcs = has(v.proc2, VMX_CONTROL.SECONDARY_EXEC_ENABLE_EPT);
    const e = guestPdpte(v, i);
    if ((e & PDPTE.P) === 0n) return true;
    const field = fromVmcs ? pdptr : 'GUEST_CR3';
    const where = fromVmcs ? pdptr : `PDPTE ${i} in memory at CR3[31:5]`;
    if ((e & PDPTE.RESERVED_LOW) !== 0n) return fail(field, e, 'bits 2:1 and 8:5 clear', `${where} (${hex(e)}) is present and sets reserved bits 2:1 or 8:5`);
    if (!v.withinPhysWidth(e)) return fail(field, e, `< 2^${v.physAddrWidth}`, `${where} (${hex(e)}) is present and sets bits beyond the physical-address width`);
    return true;
  }, `With PAE paging (CR0.PG = CR4.PAE = 1, not IA-32e mode), a present PDPTE ${i} must not set reserved bits (2:1, 8:5, 63:MAXPHYADDR); with EPT the PDPTE comes from GUEST_PDPTR${i}, otherwise from guest memory.`,
  EXIT_INVALID_GUEST_STATE_PDPTE);
}

export const GUEST_NON_REGISTER_CHECKS: readonly StateCheck[] = [
  // --- Activity state ---------------------------------------------------------------------------------------
  guest(NONREG, 'guest-activity-state-supported', ['GUEST_ACTIVITY_STATE'], (v) => {
    const a = activity(v);
    const m = v.caps.misc;
    const supported = [true, m.activityHlt, m.activityShutdown, m.activityWaitForSipi];
    return (a <= 3 && supported[a]) || fail('GUEST_ACTIVITY_STATE', a, 'an activity state IA32_VMX_MISC[8:6] reports', `activity state ${a} is not supported`);
  }, 'The activity state must be 0 (active), or 1–3 (HLT, shutdown, wait-for-SIPI) if IA32_VMX_MISC bits 6–8 report support.'),
  guest(NONREG, 'guest-activity-hlt-needs-cpl0', ['GUEST_ACTIVITY_STATE', 'GUEST_SS_AR_BYTES'], (v) => {
    if (activity(v) !== ACTIVITY_STATE.HLT) return true;
    const ss = v.u32('GUEST_SS_AR_BYTES');
    return arDpl(ss) === 0 || fail('GUEST_SS_AR_BYTES', ss, 'SS.DPL = 0', 'only CPL 0 can be halted');
  }, 'The activity state must not be HLT unless SS.DPL (the CPL) is 0.'),
  guest(NONREG, 'guest-activity-active-when-blocking', ['GUEST_ACTIVITY_STATE', 'GUEST_INTERRUPTIBILITY_INFO'], (v) => {
    if (activity(v) === ACTIVITY_STATE.ACTIVE) return true;
    const i = intr(v);
    return !has(i, INTERRUPTIBILITY.BLOCKING_BY_STI | INTERRUPTIBILITY.BLOCKING_BY_MOV_SS) ||
      fail('GUEST_ACTIVITY_STATE', activity(v), '0 (active)', 'STI or MOV-SS blocking means the processor is between two instructions, so it must be active');
  }, 'The activity state must be active if the interruptibility state shows blocking by STI or by MOV SS.'),
  guest(NONREG, 'guest-activity-injection', ['GUEST_ACTIVITY_STATE', 'VM_ENTRY_INTR_INFO_FIELD'], (v) => {
    const e = entryInterruptionInfo(v);
    const a = activity(v);
    if (!e.valid || a === ACTIVITY_STATE.ACTIVE) return true;
    const hwExc = (n: number): boolean => e.type === INTR_TYPE.HARDWARE_EXCEPTION && e.vector === n;
    let ok = false;
    if (a === ACTIVITY_STATE.HLT) {
      ok = e.type === INTR_TYPE.EXTERNAL_INTERRUPT || e.type === INTR_TYPE.NMI || hwExc(1) || hwExc(18) ||
        (e.type === INTR_TYPE.OTHER_EVENT && e.vector === 0);
    } else if (a === ACTIVITY_STATE.SHUTDOWN) {
      ok = e.type === INTR_TYPE.NMI || hwExc(18);
    }
    return ok || fail('VM_ENTRY_INTR_INFO_FIELD', e.raw, `an event allowed in the ${ACTIVITY_NAMES[a] ?? a} state`,
      `this event cannot be injected into a guest in the ${ACTIVITY_NAMES[a] ?? a} state`);
  }, 'Injection into a non-active guest is limited: HLT allows external interrupts, NMI, #DB, #MC and pending MTF; shutdown allows NMI and #MC; wait-for-SIPI allows none.'),

  // --- Interruptibility state -------------------------------------------------------------------------------
  guest(NONREG, 'guest-interruptibility-reserved', ['GUEST_INTERRUPTIBILITY_INFO'], (v) => {
    const i = intr(v);
    return (i & INTERRUPTIBILITY.RESERVED) === 0 || fail('GUEST_INTERRUPTIBILITY_INFO', i, 'bits 31:5 clear', 'reserved interruptibility bits are set');
  }, 'Bits 31:5 of the interruptibility state are reserved.'),
  guest(NONREG, 'guest-interruptibility-sti-and-mov-ss', ['GUEST_INTERRUPTIBILITY_INFO'], (v) => {
    const i = intr(v);
    const both = INTERRUPTIBILITY.BLOCKING_BY_STI | INTERRUPTIBILITY.BLOCKING_BY_MOV_SS;
    return (i & both) !== both || fail('GUEST_INTERRUPTIBILITY_INFO', i, 'not both bit 0 and bit 1', 'blocking by STI and by MOV SS cannot both be in effect');
  }, 'Blocking by STI (bit 0) and blocking by MOV SS (bit 1) cannot both be 1.'),
  guest(NONREG, 'guest-interruptibility-sti-needs-if', ['GUEST_INTERRUPTIBILITY_INFO', 'GUEST_RFLAGS'], (v) => {
    const i = intr(v);
    if (!has(i, INTERRUPTIBILITY.BLOCKING_BY_STI)) return true;
    return (v.u64('GUEST_RFLAGS') & BigInt(RFLAGS.IF)) !== 0n ||
      fail('GUEST_INTERRUPTIBILITY_INFO', i, 'bit 0 clear when RFLAGS.IF = 0', 'STI blocking exists only right after STI set IF');
  }, 'Blocking by STI must be 0 if RFLAGS.IF is 0.'),
  guest(NONREG, 'guest-interruptibility-external-interrupt', ['GUEST_INTERRUPTIBILITY_INFO', 'VM_ENTRY_INTR_INFO_FIELD'], (v) => {
    const e = entryInterruptionInfo(v);
    if (!e.valid || e.type !== INTR_TYPE.EXTERNAL_INTERRUPT) return true;
    const i = intr(v);
    return !has(i, INTERRUPTIBILITY.BLOCKING_BY_STI | INTERRUPTIBILITY.BLOCKING_BY_MOV_SS) ||
      fail('GUEST_INTERRUPTIBILITY_INFO', i, 'bits 1:0 clear', 'an external interrupt cannot be injected under STI or MOV-SS blocking');
  }, 'When injecting an external interrupt, blocking by STI and by MOV SS must both be 0.'),
  guest(NONREG, 'guest-interruptibility-nmi-mov-ss', ['GUEST_INTERRUPTIBILITY_INFO', 'VM_ENTRY_INTR_INFO_FIELD'], (v) => {
    const e = entryInterruptionInfo(v);
    if (!e.valid || e.type !== INTR_TYPE.NMI) return true;
    const i = intr(v);
    return !has(i, INTERRUPTIBILITY.BLOCKING_BY_MOV_SS) || fail('GUEST_INTERRUPTIBILITY_INFO', i, 'bit 1 clear', 'an NMI cannot be injected under MOV-SS blocking');
  }, 'When injecting an NMI, blocking by MOV SS must be 0.'),
  guest(NONREG, 'guest-interruptibility-smi', ['GUEST_INTERRUPTIBILITY_INFO'], (v) => {
    const i = intr(v);
    return !has(i, INTERRUPTIBILITY.BLOCKING_BY_SMI) || fail('GUEST_INTERRUPTIBILITY_INFO', i, 'bit 2 clear', 'blocking by SMI is possible only in SMM');
  }, 'Blocking by SMI (bit 2) must be 0: the processor is not in SMM.'),
  guest(NONREG, 'guest-interruptibility-virtual-nmi', ['GUEST_INTERRUPTIBILITY_INFO', 'PIN_BASED_VM_EXEC_CONTROL', 'VM_ENTRY_INTR_INFO_FIELD'], (v) => {
    const e = entryInterruptionInfo(v);
    if (!has(v.pin, VMX_CONTROL.PIN_BASED_VIRTUAL_NMIS) || !e.valid || e.type !== INTR_TYPE.NMI) return true;
    const i = intr(v);
    return !has(i, INTERRUPTIBILITY.BLOCKING_BY_NMI) || fail('GUEST_INTERRUPTIBILITY_INFO', i, 'bit 3 clear', 'a virtual NMI cannot be injected while virtual-NMI blocking is in effect');
  }, 'With "virtual NMIs", injecting an NMI requires blocking by NMI (bit 3) to be 0.'),
  guest(NONREG, 'guest-interruptibility-enclave', ['GUEST_INTERRUPTIBILITY_INFO'], (v) => {
    const i = intr(v);
    if (!has(i, INTERRUPTIBILITY.ENCLAVE_INTERRUPTION)) return true;
    // This emulator does not implement SGX, so an enclave interruption can never be pending.
    if (!SGX_SUPPORTED) return fail('GUEST_INTERRUPTIBILITY_INFO', i, 'bit 4 clear', 'enclave interruption (bit 4) needs SGX, which this CPU does not support');
    return !has(i, INTERRUPTIBILITY.BLOCKING_BY_MOV_SS) ||
      fail('GUEST_INTERRUPTIBILITY_INFO', i, 'bit 4 clear when bit 1 is set', 'an enclave interruption cannot coexist with MOV-SS blocking');
  }, 'Enclave interruption (bit 4) must be 0 if the processor does not support SGX (as here) or if blocking by MOV SS is 1.'),
  guest(NONREG, 'guest-interruptibility-nmi-sti', ['GUEST_INTERRUPTIBILITY_INFO', 'VM_ENTRY_INTR_INFO_FIELD'], (v) => {
    // Implementation-specific: the SDM lets a processor refuse this with exit qualification 3; this one does.
    const e = entryInterruptionInfo(v);
    if (!e.valid || e.type !== INTR_TYPE.NMI) return true;
    const i = intr(v);
    return !has(i, INTERRUPTIBILITY.BLOCKING_BY_STI) || fail('GUEST_INTERRUPTIBILITY_INFO', i, 'bit 0 clear', 'this processor does not inject an NMI under STI blocking');
  }, 'Injecting an NMI while blocking by STI is 1 fails on this processor (an implementation-specific check the SDM reports with exit qualification 3).',
  EXIT_INVALID_GUEST_STATE_NMI_STI),

  // --- Pending debug exceptions -----------------------------------------------------------------------------
  guest(NONREG, 'guest-pending-dbg-reserved', ['GUEST_PENDING_DBG_EXCEPTIONS'], (v) => {
    const p = v.u64('GUEST_PENDING_DBG_EXCEPTIONS');
    return (p & PENDING_DBG.RESERVED) === 0n || fail('GUEST_PENDING_DBG_EXCEPTIONS', p, 'bits 11:4, 13, 15, 63:17 clear', 'reserved pending-debug-exception bits are set');
  }, 'Bits 11:4, 13, 15 and 63:17 of the pending debug exceptions field are reserved.'),
  guest(NONREG, 'guest-pending-dbg-bs', ['GUEST_PENDING_DBG_EXCEPTIONS', 'GUEST_INTERRUPTIBILITY_INFO', 'GUEST_ACTIVITY_STATE', 'GUEST_RFLAGS', 'GUEST_IA32_DEBUGCTL'], (v) => {
    const i = intr(v);
    if (!has(i, INTERRUPTIBILITY.BLOCKING_BY_STI | INTERRUPTIBILITY.BLOCKING_BY_MOV_SS) && activity(v) !== ACTIVITY_STATE.HLT) return true;
    const p = v.u64('GUEST_PENDING_DBG_EXCEPTIONS');
    const bs = (p & PENDING_DBG.BS) !== 0n;
    const tf = (v.u64('GUEST_RFLAGS') & BigInt(RFLAGS.TF)) !== 0n;
    const btf = (v.u64('GUEST_IA32_DEBUGCTL') & DEBUGCTL.BTF) !== 0n;
    const want = tf && !btf;
    return bs === want || fail('GUEST_PENDING_DBG_EXCEPTIONS', p, `BS (bit 14) = ${want ? 1 : 0}`,
      want ? 'single-stepping (TF = 1, BTF = 0) across STI/MOV-SS blocking or HLT leaves a single-step #DB pending: set BS' : 'BS may be set only while single-stepping (TF = 1, BTF = 0)');
  }, 'Under STI/MOV-SS blocking or in HLT, BS (bit 14) must be 1 if RFLAGS.TF = 1 and DEBUGCTL.BTF = 0, and 0 otherwise.'),
  guest(NONREG, 'guest-pending-dbg-rtm', ['GUEST_PENDING_DBG_EXCEPTIONS', 'GUEST_INTERRUPTIBILITY_INFO'], (v) => {
    const p = v.u64('GUEST_PENDING_DBG_EXCEPTIONS');
    if ((p & PENDING_DBG.RTM) === 0n) return true;
    // This emulator does not implement RTM (CPUID.(EAX=07H,ECX=0):EBX.RTM[bit 11] = 0), so bit 16 can never be set.
    if (!RTM_SUPPORTED) return fail('GUEST_PENDING_DBG_EXCEPTIONS', p, 'bit 16 clear', 'this CPU does not support RTM');
    if ((p & ~(PENDING_DBG.RTM | PENDING_DBG.ENABLED_BREAKPOINT)) !== 0n || (p & PENDING_DBG.ENABLED_BREAKPOINT) === 0n) {
      return fail('GUEST_PENDING_DBG_EXCEPTIONS', p, 'exactly bits 16 and 12', 'an RTM debug exception is pending: only bits 16 and 12 may be set');
    }
    return !has(intr(v), INTERRUPTIBILITY.BLOCKING_BY_MOV_SS) || fail('GUEST_INTERRUPTIBILITY_INFO', intr(v), 'bit 1 clear', 'an RTM debug exception cannot be pending under MOV-SS blocking');
  }, 'If bit 16 (RTM) is set: the CPU must support RTM, bit 12 must be 1, all other bits 0, and there must be no MOV-SS blocking.'),

  // --- VMCS link pointer (exit qualification 4) ------------------------------------------------------------
  guest(NONREG, 'guest-vmcs-link-pointer-address', ['VMCS_LINK_POINTER'], (v) => {
    const p = v.u64('VMCS_LINK_POINTER');
    if (p === VMCS_LINK_POINTER_NONE) return true;
    if ((p & 0xfffn) !== 0n) return fail('VMCS_LINK_POINTER', p, `FFFFFFFF_FFFFFFFFH, or 4-KByte aligned`, 'set the link pointer to ~0 unless you use VMCS shadowing');
    return v.withinPhysWidth(p) || fail('VMCS_LINK_POINTER', p, `FFFFFFFF_FFFFFFFFH, or < 2^${v.physAddrWidth}`, 'the link pointer sets bits beyond the physical-address width');
  }, 'A VMCS link pointer other than FFFFFFFF_FFFFFFFFH must be 4-KByte aligned and within the physical-address width.',
  EXIT_INVALID_GUEST_STATE_LINK),
  guest(NONREG, 'guest-vmcs-link-pointer-revision', ['VMCS_LINK_POINTER'], (v) => {
    const p = v.u64('VMCS_LINK_POINTER');
    if (p === VMCS_LINK_POINTER_NONE) return true;
    const first = v.readPhys32(p);
    const want = v.caps.basic.revisionId;
    return (first & VMCS_REVISION_ID_MASK) === want || fail('VMCS_LINK_POINTER', p, `a VMCS with revision id ${hex(want)}`, `the linked region's revision id is ${hex(first & VMCS_REVISION_ID_MASK)}`);
  }, 'The region the VMCS link pointer names must start with the VMCS revision identifier (IA32_VMX_BASIC[30:0]).',
  EXIT_INVALID_GUEST_STATE_LINK),
  guest(NONREG, 'guest-vmcs-link-pointer-shadow', ['VMCS_LINK_POINTER', 'SECONDARY_VM_EXEC_CONTROL'], (v) => {
    const p = v.u64('VMCS_LINK_POINTER');
    if (p === VMCS_LINK_POINTER_NONE) return true;
    const shadow = (v.readPhys32(p) & SHADOW_VMCS_INDICATOR) !== 0;
    const want = has(v.proc2, VMX_CONTROL.SECONDARY_EXEC_SHADOW_VMCS);
    return shadow === want || fail('VMCS_LINK_POINTER', p, `shadow-VMCS indicator = ${want ? 1 : 0}`, want ? 'with VMCS shadowing the linked VMCS must be a shadow VMCS' : 'without VMCS shadowing the linked VMCS must not be a shadow VMCS');
  }, 'Bit 31 of the linked region\'s first dword (shadow-VMCS indicator) must equal the "VMCS shadowing" control.',
  EXIT_INVALID_GUEST_STATE_LINK),
  // Outside SMM (the CPU never runs in SMM) the link pointer must not name the VMCS being entered: a VMCS
  // cannot be its own shadow.
  guest(NONREG, 'guest-vmcs-link-pointer-current', ['VMCS_LINK_POINTER'], (v) => {
    const p = v.u64('VMCS_LINK_POINTER');
    if (p === VMCS_LINK_POINTER_NONE) return true;
    return p !== v.ctx.vmcsPointer || fail('VMCS_LINK_POINTER', p, `FFFFFFFF_FFFFFFFFH, or a VMCS other than the current one (${hex(v.ctx.vmcsPointer)})`, 'the link pointer names the current VMCS itself');
  }, 'Outside SMM, the VMCS link pointer must not contain the current-VMCS pointer.',
  EXIT_INVALID_GUEST_STATE_LINK),

  // --- PDPTEs (exit qualification 2) -----------------------------------------------------------------------
  pdpteCheck(0), pdpteCheck(1), pdpteCheck(2), pdpteCheck(3),
];

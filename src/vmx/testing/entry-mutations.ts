// Test support (imported only by tests): for every VM-entry rule, a mutation that breaks exactly that rule in a valid
// VMCS from vmcs-fixture.ts, without breaking any rule the processor checks before it.
import fc from 'fast-check';
import type { Fixture } from './vmcs-fixture.ts';
import { nonCanonical, setSegment, validEptp } from './vmcs-fixture.ts';
import { VMX_CONTROL as C } from '../controls.ts';
import { EPT_VPID_CAP } from '../msrs.ts';
import { eptWalkLengths } from '../eptp.ts';
import type { SegmentName } from '../transition/transition-cpu.ts';
import { GUEST_SEGMENT_FIELDS } from '../transition/segment-fields.ts';
import { GUEST_PDPTR_FIELDS } from '../transition/pdptes.ts';
import { CR0, CR4, EFER } from '../../x86/control-registers.ts';
import { RFLAGS } from '../../x86/flags.ts';
import { AR } from '../../x86/segments.ts';
import { MSR_FS_BASE, MSR_GS_BASE, MSR_LSTAR, MSR_STAR } from '../../x86/msr.ts';
import type { VmcsFullFieldName } from '../fields.ts';

/** Random material a mutation may use. */
export interface Rnd { n: number; m: number; b: bigint; pick: boolean }
export const rnd = fc.record({ n: fc.nat(), m: fc.nat(), b: fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }), pick: fc.boolean() });
/** Returns false when the rule cannot be broken on this model (e.g. the control it needs is not supported). */
export type Mutation = (f: Fixture, r: Rnd) => boolean;

const SEGS6 = ['CS', 'SS', 'DS', 'ES', 'FS', 'GS'] as const;
const DATA4 = ['DS', 'ES', 'FS', 'GS'] as const;
const width = (f: Fixture): number => f.cpu.maxPhysAddr();
const lin = (f: Fixture): number => f.cpu.linearAddrWidth();
const pickOf = <T,>(xs: readonly T[], n: number): T => xs[n % xs.length]!;
/** A physical address that is misaligned (for `align` bytes) or beyond MAXPHYADDR. */
const badAddress = (f: Fixture, r: Rnd, align: number): bigint =>
  r.pick ? f.page(9) + BigInt(1 + (r.n % (align - 1))) : f.page(9) | (1n << BigInt(width(f) + (r.n % (64 - width(f)))));
const ctlField = { pin: 'PIN_BASED_VM_EXEC_CONTROL', proc: 'CPU_BASED_VM_EXEC_CONTROL', proc2: 'SECONDARY_VM_EXEC_CONTROL', exit: 'VM_EXIT_CONTROLS', entry: 'VM_ENTRY_CONTROLS' } as const;
type Ctl = keyof typeof ctlField;
/** Set control bits if the model allows them; false otherwise. */
function enable(f: Fixture, ctl: Ctl, mask: number): boolean {
  if (!f.canSet(ctl, mask)) return false;
  if (ctl === 'proc2' && !f.canSet('proc', C.CPU_BASED_ACTIVATE_SECONDARY_CONTROLS)) return false;
  f.or(ctlField[ctl], mask);
  return true;
}
/** Clear control bits unless the model requires them; false if required. */
function disable(f: Fixture, ctl: Ctl, mask: number): boolean {
  const eff = f.caps.effective[ctl === 'proc2' ? 'proc2' : ctl === 'proc' ? 'proc' : ctl === 'pin' ? 'pin' : ctl];
  if ((eff.allowed0 & mask) !== 0) return false;
  f.clear(ctlField[ctl], mask);
  return true;
}
function enableEpt(f: Fixture): boolean {
  if (!enable(f, 'proc2', C.SECONDARY_EXEC_ENABLE_EPT)) return false;
  f.set('EPT_POINTER', validEptp(f.caps, f.page(3)));
  return true;
}
/** Break an allowed-0/allowed-1 rule: clear a must-be-1 bit or set a must-be-0 bit. */
function breakAllowed(f: Fixture, ctl: Ctl, r: Rnd): boolean {
  const eff = f.caps.effective[ctl];
  const must1 = bits(eff.allowed0);
  const must0 = bits(~eff.allowed1 >>> 0);
  const choices = [...must1.map((b) => ['clear', b] as const), ...must0.map((b) => ['set', b] as const)];
  if (choices.length === 0) return false;
  const [op, b] = pickOf(choices, r.n);
  if (op === 'clear') f.clear(ctlField[ctl], 2 ** b); else f.or(ctlField[ctl], 2 ** b);
  return true;
}
const bits = (v: number): number[] => [...Array(32).keys()].filter((b) => ((v >>> b) & 1) === 1);
function inject(f: Fixture, type: number, vector: number, opts: { errorCode?: number; length?: number } = {}): void {
  const info = 2 ** 31 | (type << 8) | vector | (opts.errorCode !== undefined ? 1 << 11 : 0);
  f.set('VM_ENTRY_INTR_INFO_FIELD', info >>> 0);
  if (opts.errorCode !== undefined) f.set('VM_ENTRY_EXCEPTION_ERROR_CODE', opts.errorCode);
  if (opts.length !== undefined) f.set('VM_ENTRY_INSTRUCTION_LEN', opts.length);
}
const ar = (f: Fixture, s: SegmentName): number => Number(f.get(GUEST_SEGMENT_FIELDS[s].ar));
const setAr = (f: Fixture, s: SegmentName, v: number): void => f.set(GUEST_SEGMENT_FIELDS[s].ar, v >>> 0);
const dataAr = (dpl: number): number => 0x3 | AR.S | (dpl << 5) | AR.P | AR.DB | AR.G;
/** Make a data-segment register usable with a valid flat data segment at the guest's CPL. */
function makeUsable(f: Fixture, s: SegmentName): void {
  const cpl = f.choices.cpl;
  setSegment(f.vmcs, s, (9 << 3) | cpl, s === 'FS' || s === 'GS' ? f.get(GUEST_SEGMENT_FIELDS[s].base) : 0n, 0xffffffff, dataAr(cpl));
}
function makeLdtrUsable(f: Fixture): void {
  setSegment(f.vmcs, 'LDTR', 10 << 3, 0x1000n, 0xff, 0x2 | AR.P);
}
/** Set the guest's CPL (RPL of CS/SS and the DPLs), keeping every segment check satisfied. */
function setCpl(f: Fixture, cpl: number): void {
  for (const s of SEGS6) {
    const a = ar(f, s);
    if (a & AR.UNUSABLE) continue;
    f.set(`GUEST_${s}_SELECTOR`, (f.get(`GUEST_${s}_SELECTOR`) & ~3n) | BigInt(cpl));
    setAr(f, s, (a & ~AR.DPL_MASK) | (cpl << 5));
  }
}
/** Virtual-8086 segments: base = selector × 16, limit FFFFH, access rights F3H — for the first `n` of CS..GS. */
function v8086(f: Fixture, n = 6): void {
  f.or('GUEST_RFLAGS', RFLAGS.VM);
  for (const s of SEGS6.slice(0, n)) {
    const sel = f.get(`GUEST_${s}_SELECTOR`) & 0xffffn;
    setSegment(f.vmcs, s, Number(sel), sel << 4n, 0xffff, 0xf3);
  }
}
/** A 32-bit guest with PAE paging (not IA-32e mode). */
function paeGuest(f: Fixture): void {
  f.clear('VM_ENTRY_CONTROLS', C.VM_ENTRY_IA32E_MODE);
  f.set('GUEST_IA32_EFER', 0);
  setAr(f, 'CS', (ar(f, 'CS') & ~AR.L) | AR.DB);
  f.set('GUEST_RIP', f.get('GUEST_RIP') & 0xffffffffn);
  f.clear('GUEST_CR4', CR4.PCIDE);
}
/** Outside IA-32e mode, with a 32-bit host and a 32-bit guest. */
function legacyHost(f: Fixture): boolean {
  if (!disable(f, 'exit', C.VM_EXIT_HOST_ADDR_SPACE_SIZE) || !disable(f, 'entry', C.VM_ENTRY_IA32E_MODE)) return false;
  f.cpu.msrs.set(0xc0000080, 0n);
  disable(f, 'exit', C.VM_EXIT_LOAD_IA32_EFER);
  f.set('HOST_RIP', f.get('HOST_RIP') & 0xffffffffn);
  return true;
}
const msrAreaMutation = (countField: VmcsFullFieldName, addrField: VmcsFullFieldName): Mutation => (f, r) => {
  const count = 1 + (r.n % 8);
  f.set(countField, count);
  f.set(addrField, r.pick ? f.page(9) + BigInt(1 + (r.m % 15)) : (1n << BigInt(width(f))) - BigInt(16 * (count - 1)));
  return true;
};
const fixedBitsMutation = (field: VmcsFullFieldName, fixed0: (f: Fixture) => bigint): Mutation => (f, r) => {
  const must1 = fixed0(f) & ~BigInt(CR0.PE | CR0.PG);
  if (r.pick && must1 !== 0n) {
    const candidates = [...Array(32).keys()].filter((b) => ((must1 >> BigInt(b)) & 1n) === 1n);
    f.clear(field, 1n << BigInt(pickOf(candidates, r.n)));
  } else {
    f.or(field, 1n << BigInt(32 + (r.n % 32)));
  }
  return true;
};
const canonicalMutation = (field: VmcsFullFieldName): Mutation => (f, r) => { f.set(field, nonCanonical(lin(f), r.b)); return true; };
const segField = (s: SegmentName, what: 'selector' | 'base' | 'limit'): VmcsFullFieldName => GUEST_SEGMENT_FIELDS[s][what];

export const M: Record<string, Mutation> = {
  // ------------------------------------------------------------------- VM-execution control fields
  'pin-based-controls-allowed': (f, r) => breakAllowed(f, 'pin', r),
  'proc-based-controls-allowed': (f, r) => breakAllowed(f, 'proc', r),
  'secondary-controls-allowed': (f, r) => f.canSet('proc', C.CPU_BASED_ACTIVATE_SECONDARY_CONTROLS) && breakAllowed(f, 'proc2', r),
  'tertiary-controls-allowed': (f, r) => {
    if (!enable(f, 'proc', C.CPU_BASED_ACTIVATE_TERTIARY_CONTROLS)) return false;
    const allowed = f.caps.procbased3 ?? 0n;
    const bad = [...Array(64).keys()].filter((b) => ((allowed >> BigInt(b)) & 1n) === 0n);
    f.set('TERTIARY_VM_EXEC_CONTROL', 1n << BigInt(pickOf(bad, r.n)));
    return true;
  },
  'cr3-target-count': (f, r) => { f.set('CR3_TARGET_COUNT', f.caps.misc.cr3TargetCount + 1 + (r.n % 100)); return true; },
  'io-bitmap-a-address': (f, r) => { f.or('CPU_BASED_VM_EXEC_CONTROL', C.CPU_BASED_USE_IO_BITMAPS); f.set('IO_BITMAP_B', f.page(2)); f.set('IO_BITMAP_A', badAddress(f, r, 4096)); return true; },
  'io-bitmap-b-address': (f, r) => { f.or('CPU_BASED_VM_EXEC_CONTROL', C.CPU_BASED_USE_IO_BITMAPS); f.set('IO_BITMAP_A', f.page(1)); f.set('IO_BITMAP_B', badAddress(f, r, 4096)); return true; },
  'msr-bitmap-address': (f, r) => enable(f, 'proc', C.CPU_BASED_USE_MSR_BITMAPS) && (f.set('MSR_BITMAP', badAddress(f, r, 4096)), true),
  'virtual-apic-address': (f, r) => enable(f, 'proc', C.CPU_BASED_TPR_SHADOW) && (f.set('VIRTUAL_APIC_PAGE_ADDR', badAddress(f, r, 4096)), true),
  'tpr-threshold-reserved': (f, r) => enable(f, 'proc', C.CPU_BASED_TPR_SHADOW) &&
    (f.set('VIRTUAL_APIC_PAGE_ADDR', f.page(10)), f.set('TPR_THRESHOLD', (16 + (r.n % 0xfffffff0)) >>> 0), true),
  'tpr-threshold-vs-vtpr': (f, r) => {
    if (!enable(f, 'proc', C.CPU_BASED_TPR_SHADOW)) return false;
    const t = 1 + (r.n % 15);
    const vtpr = (r.m % t) << 4; // VTPR[7:4] < threshold
    f.set('VIRTUAL_APIC_PAGE_ADDR', f.page(10));
    f.cpu.writePhysical32(f.page(10) + 0x80n, vtpr | (r.m & 0xf));
    f.set('TPR_THRESHOLD', t);
    return true;
  },
  'apic-virtualization-needs-tpr-shadow': (f, r) => {
    const options = [C.SECONDARY_EXEC_VIRTUALIZE_X2APIC_MODE, C.SECONDARY_EXEC_APIC_REGISTER_VIRT, C.SECONDARY_EXEC_VIRTUAL_INTR_DELIVERY].filter((m) => f.canSet('proc2', m));
    return options.length > 0 && disable(f, 'proc', C.CPU_BASED_TPR_SHADOW) && enable(f, 'proc2', pickOf(options, r.n));
  },
  'x2apic-mode-excludes-apic-accesses': (f) => enable(f, 'proc', C.CPU_BASED_TPR_SHADOW) && (f.set('VIRTUAL_APIC_PAGE_ADDR', f.page(10)), true) &&
    enable(f, 'proc2', C.SECONDARY_EXEC_VIRTUALIZE_X2APIC_MODE) && enable(f, 'proc2', C.SECONDARY_EXEC_VIRTUALIZE_APIC_ACCESSES),
  'virtual-interrupt-delivery-needs-external-interrupt-exiting': (f) => enable(f, 'proc', C.CPU_BASED_TPR_SHADOW) &&
    (f.set('VIRTUAL_APIC_PAGE_ADDR', f.page(10)), true) && disable(f, 'pin', C.PIN_BASED_EXT_INTR_MASK) && enable(f, 'proc2', C.SECONDARY_EXEC_VIRTUAL_INTR_DELIVERY),
  'posted-interrupts-prerequisites': (f, r) => {
    if (!enable(f, 'pin', C.PIN_BASED_POSTED_INTR)) return false;
    if (r.pick) return true; // no virtual-interrupt delivery
    // Virtual-interrupt delivery present, but "acknowledge interrupt on exit" missing.
    return enable(f, 'proc', C.CPU_BASED_TPR_SHADOW) && (f.set('VIRTUAL_APIC_PAGE_ADDR', f.page(10)), true) &&
      enable(f, 'pin', C.PIN_BASED_EXT_INTR_MASK) && enable(f, 'proc2', C.SECONDARY_EXEC_VIRTUAL_INTR_DELIVERY) && disable(f, 'exit', C.VM_EXIT_ACK_INTR_ON_EXIT);
  },
  'posted-interrupt-notification-vector': (f, r) => postedInterrupts(f) && (f.set('POSTED_INTR_NV', 0x100 | (r.n % 0xff00)), true),
  'posted-interrupt-descriptor-address': (f, r) => postedInterrupts(f) && (f.set('POSTED_INTR_DESC_ADDR', badAddress(f, r, 64)), true),
  'virtual-nmis-need-nmi-exiting': (f) => disable(f, 'pin', C.PIN_BASED_NMI_EXITING) && enable(f, 'pin', C.PIN_BASED_VIRTUAL_NMIS),
  'nmi-window-needs-virtual-nmis': (f) => disable(f, 'pin', C.PIN_BASED_VIRTUAL_NMIS) && enable(f, 'proc', C.CPU_BASED_NMI_WINDOW_EXITING),
  'apic-access-address': (f, r) => enable(f, 'proc2', C.SECONDARY_EXEC_VIRTUALIZE_APIC_ACCESSES) && (f.set('APIC_ACCESS_ADDR', badAddress(f, r, 4096)), true),
  'vpid-nonzero': (f) => enable(f, 'proc2', C.SECONDARY_EXEC_ENABLE_VPID) && (f.set('VIRTUAL_PROCESSOR_ID', 0), true),
  'eptp-memory-type': (f, r) => {
    if (!enableEpt(f)) return false;
    const supported = [0n, 6n].filter((t) => (f.caps.eptVpidCap & (t === 0n ? EPT_VPID_CAP.VMX_EPTP_UC_BIT : EPT_VPID_CAP.VMX_EPTP_WB_BIT)) !== 0n);
    const bad = [0n, 1n, 2n, 3n, 4n, 5n, 6n, 7n].filter((t) => !supported.includes(t));
    f.set('EPT_POINTER', (f.get('EPT_POINTER') & ~7n) | pickOf(bad, r.n));
    return true;
  },
  'eptp-walk-length': (f, r) => {
    if (!enableEpt(f)) return false;
    const supported = eptWalkLengths(f.caps);
    const bad = [0n, 1n, 2n, 3n, 4n, 5n, 6n, 7n].filter((x) => !supported.includes(Number(x) + 1));
    f.set('EPT_POINTER', (f.get('EPT_POINTER') & ~0x38n) | (pickOf(bad, r.n) << 3n));
    return true;
  },
  'eptp-accessed-dirty': (f) => (f.caps.eptVpidCap & EPT_VPID_CAP.VMX_EPT_AD_BIT) === 0n && enableEpt(f) && (f.or('EPT_POINTER', 1n << 6n), true),
  'eptp-reserved': (f, r) => enableEpt(f) && (f.or('EPT_POINTER', r.pick ? 1n << BigInt(7 + (r.n % 5)) : 1n << BigInt(width(f) + (r.n % (64 - width(f))))), true),
  'pml-needs-ept': (f) => disable(f, 'proc2', C.SECONDARY_EXEC_ENABLE_EPT) && enable(f, 'proc2', C.SECONDARY_EXEC_ENABLE_PML),
  'pml-address': (f, r) => enableEpt(f) && enable(f, 'proc2', C.SECONDARY_EXEC_ENABLE_PML) && (f.set('PML_ADDRESS', badAddress(f, r, 4096)), true),
  'unrestricted-guest-needs-ept': (f) => disable(f, 'proc2', C.SECONDARY_EXEC_ENABLE_EPT) && enable(f, 'proc2', C.SECONDARY_EXEC_UNRESTRICTED_GUEST),
  'mode-based-ept-exec-needs-ept': (f) => disable(f, 'proc2', C.SECONDARY_EXEC_ENABLE_EPT) && enable(f, 'proc2', C.SECONDARY_EXEC_MODE_BASED_EPT_EXEC),
  'pt-guest-physical-addresses-prerequisites': (f, r) => {
    if (!enable(f, 'proc2', C.SECONDARY_EXEC_PT_USE_GPA)) return false;
    const k = r.n % 3;
    if (k === 0) return disable(f, 'proc2', C.SECONDARY_EXEC_ENABLE_EPT);
    if (!enableEpt(f)) return false;
    if (k === 1) return disable(f, 'entry', C.VM_ENTRY_LOAD_IA32_RTIT_CTL);
    return (f.canSet('entry', C.VM_ENTRY_LOAD_IA32_RTIT_CTL) ? enable(f, 'entry', C.VM_ENTRY_LOAD_IA32_RTIT_CTL) : true) &&
      disable(f, 'exit', C.VM_EXIT_CLEAR_IA32_RTIT_CTL) && f.canSet('entry', C.VM_ENTRY_LOAD_IA32_RTIT_CTL);
  },
  'vm-function-controls-allowed': (f, r) => {
    if (!enable(f, 'proc2', C.SECONDARY_EXEC_ENABLE_VMFUNC)) return false;
    const bad = [...Array(64).keys()].filter((b) => ((f.caps.vmfunc >> BigInt(b)) & 1n) === 0n);
    f.set('VM_FUNCTION_CONTROL', 1n << BigInt(pickOf(bad, r.n)));
    return true;
  },
  'eptp-switching-needs-ept': (f) => disable(f, 'proc2', C.SECONDARY_EXEC_ENABLE_EPT) && enable(f, 'proc2', C.SECONDARY_EXEC_ENABLE_VMFUNC) &&
    (f.caps.vmfunc & 1n) === 1n && (f.set('VM_FUNCTION_CONTROL', 1), true),
  'eptp-list-address': (f, r) => enableEpt(f) && enable(f, 'proc2', C.SECONDARY_EXEC_ENABLE_VMFUNC) && (f.caps.vmfunc & 1n) === 1n &&
    (f.set('VM_FUNCTION_CONTROL', 1), f.set('EPTP_LIST_ADDRESS', badAddress(f, r, 4096)), true),
  'vmread-bitmap-address': (f, r) => enable(f, 'proc2', C.SECONDARY_EXEC_SHADOW_VMCS) && (f.set('VMREAD_BITMAP', badAddress(f, r, 4096)), f.set('VMWRITE_BITMAP', f.page(11)), true),
  'vmwrite-bitmap-address': (f, r) => enable(f, 'proc2', C.SECONDARY_EXEC_SHADOW_VMCS) && (f.set('VMREAD_BITMAP', f.page(11)), f.set('VMWRITE_BITMAP', badAddress(f, r, 4096)), true),
  // ------------------------------------------------------------------- VM-exit control fields
  'exit-controls-allowed': (f, r) => breakAllowed(f, 'exit', r),
  'save-preemption-timer-needs-timer': (f) => disable(f, 'pin', C.PIN_BASED_VMX_PREEMPTION_TIMER) && enable(f, 'exit', C.VM_EXIT_SAVE_VMX_PREEMPTION_TIMER),
  'exit-msr-store-address': msrAreaMutation('VM_EXIT_MSR_STORE_COUNT', 'VM_EXIT_MSR_STORE_ADDR'),
  'exit-msr-load-address': msrAreaMutation('VM_EXIT_MSR_LOAD_COUNT', 'VM_EXIT_MSR_LOAD_ADDR'),
  // ------------------------------------------------------------------- VM-entry control fields
  'entry-controls-allowed': (f, r) => breakAllowed(f, 'entry', r),
  'event-injection-type': (f, r) => {
    const mtf = f.canSet('proc', C.CPU_BASED_MONITOR_TRAP_FLAG);
    inject(f, !mtf && r.pick ? 7 : 1, mtf || !r.pick ? r.n % 256 : 0);
    return true;
  },
  'event-injection-vector': (f, r) => {
    const mtf = f.canSet('proc', C.CPU_BASED_MONITOR_TRAP_FLAG);
    const kinds = ['nmi', 'hw', ...(mtf ? ['other'] : [])];
    const k = pickOf(kinds, r.n);
    if (k === 'nmi') inject(f, 2, [0, 1, 3, 255][r.m % 4]!);
    else if (k === 'hw') inject(f, 3, 32 + (r.m % 224));
    else inject(f, 7, 1 + (r.m % 255));
    return true;
  },
  'event-injection-deliver-error-code': (f, r) => {
    const relaxed = f.caps.basic.noHwErrcodeCheck;
    const k = r.n % 3;
    if (k === 0) inject(f, 0, 32 + (r.m % 200), { errorCode: 0 }); // external interrupt with an error code
    else if (k === 1 || relaxed) inject(f, 2, 2, { errorCode: 0 }); // NMI with an error code
    else inject(f, 3, pickOf([8, 10, 11, 12, 13, 14, 17], r.m)); // #GP & co. without one
    return true;
  },
  'event-injection-reserved': (f, r) => { inject(f, 3, 6); f.or('VM_ENTRY_INTR_INFO_FIELD', 1 << (12 + (r.n % 19))); return true; },
  'event-injection-error-code': (f, r) => { inject(f, 3, 13, { errorCode: ((1 + (r.n % 0xffff)) << 16) >>> 0 }); return true; },
  'event-injection-instruction-length': (f, r) => {
    const zeroOk = f.caps.misc.zeroLengthInjection;
    inject(f, pickOf([4, 5, 6], r.n), r.n % 256, { length: zeroOk || r.pick ? 16 + (r.m % 1000) : 0 });
    return true;
  },
  'entry-msr-load-address': msrAreaMutation('VM_ENTRY_MSR_LOAD_COUNT', 'VM_ENTRY_MSR_LOAD_ADDR'),
  'smm-controls-outside-smm': (f, r) => enable(f, 'entry', r.pick ? C.VM_ENTRY_SMM : C.VM_ENTRY_DEACT_DUAL_MONITOR),
  // ------------------------------------------------------------------- host state
  'host-cr0-fixed-bits': fixedBitsMutation('HOST_CR0', (f) => f.caps.cr0Fixed0),
  'host-cr4-fixed-bits': fixedBitsMutation('HOST_CR4', (f) => f.caps.cr4Fixed0),
  'host-cr3-width': (f, r) => { f.or('HOST_CR3', 1n << BigInt(width(f) + (r.n % (64 - width(f))))); return true; },
  'host-sysenter-esp-canonical': canonicalMutation('HOST_IA32_SYSENTER_ESP'),
  'host-sysenter-eip-canonical': canonicalMutation('HOST_IA32_SYSENTER_EIP'),
  'host-pat': (f, r) => enable(f, 'exit', C.VM_EXIT_LOAD_IA32_PAT) && (f.set('HOST_IA32_PAT', badPat(f.get('HOST_IA32_PAT'), r)), true),
  'host-efer-reserved': (f, r) => enable(f, 'exit', C.VM_EXIT_LOAD_IA32_EFER) && (f.or('HOST_IA32_EFER', 1n << BigInt(pickOf([1, 2, 3, 4, 5, 6, 7, 9, 12, 13, 20, 40, 63], r.n))), true),
  'host-efer-lma-lme': (f, r) => enable(f, 'exit', C.VM_EXIT_LOAD_IA32_EFER) && (f.clear('HOST_IA32_EFER', r.pick ? EFER.LMA : EFER.LME), true),
  ...Object.fromEntries((['ES', 'CS', 'SS', 'DS', 'FS', 'GS', 'TR'] as const).map((s) => [`host-${s.toLowerCase()}-selector-rpl-ti`,
    ((f, r) => { f.set(`HOST_${s}_SELECTOR`, (f.get(`HOST_${s}_SELECTOR`) & ~7n) | BigInt(8 + 1 + (r.n % 7))); return true; }) as Mutation])),
  'host-cs-selector-not-null': (f) => { f.set('HOST_CS_SELECTOR', 0); return true; },
  'host-tr-selector-not-null': (f) => { f.set('HOST_TR_SELECTOR', 0); return true; },
  'host-ss-selector-not-null': (f) => legacyHost(f) && (f.set('HOST_SS_SELECTOR', 0), true),
  ...Object.fromEntries((['FS', 'GS', 'GDTR', 'IDTR', 'TR'] as const).map((s) => [`host-${s.toLowerCase()}-base-canonical`, canonicalMutation(`HOST_${s}_BASE`)])),
  'host-outside-ia32e-mode': (f, r) => {
    f.cpu.msrs.set(0xc0000080, 0n); // the LP runs outside IA-32e mode
    if (r.pick) return true; // but asks for a 64-bit guest and host
    return disable(f, 'entry', C.VM_ENTRY_IA32E_MODE); // 32-bit guest, still a 64-bit host
  },
  'host-inside-ia32e-mode': (f) => disable(f, 'exit', C.VM_EXIT_LOAD_IA32_EFER) && disable(f, 'exit', C.VM_EXIT_HOST_ADDR_SPACE_SIZE),
  'host-32-bit-no-pcide': (f) => legacyHost(f) && (f.caps.cr4Fixed1 & BigInt(CR4.PCIDE)) !== 0n && (f.or('HOST_CR4', CR4.PCIDE), true),
  'host-32-bit-rip': (f, r) => legacyHost(f) && (f.or('HOST_RIP', BigInt(1 + (r.n % 0xffff)) << 32n), true),
  'host-64-bit-pae': (f) => (f.caps.cr4Fixed0 & BigInt(CR4.PAE)) === 0n && (f.clear('HOST_CR4', CR4.PAE), true),
  'host-64-bit-rip-canonical': canonicalMutation('HOST_RIP'),
  // ------------------------------------------------------------------- guest control registers, DRs, MSRs
  'guest-cr0-fixed-bits': (f, r) => {
    const must1 = f.caps.cr0Fixed0 & ~BigInt(CR0.PE | CR0.PG | CR0.NW | CR0.CD);
    if (r.pick && must1 !== 0n) f.clear('GUEST_CR0', must1 & -must1);
    else f.or('GUEST_CR0', 1n << BigInt(32 + (r.n % 32)));
    return true;
  },
  'guest-cr0-pg-needs-pe': (f) => enableEpt(f) && enable(f, 'proc2', C.SECONDARY_EXEC_UNRESTRICTED_GUEST) && (f.clear('GUEST_CR0', CR0.PE), true),
  'guest-cr4-fixed-bits': fixedBitsMutation('GUEST_CR4', (f) => f.caps.cr4Fixed0),
  'guest-debugctl-reserved': (f, r) => enable(f, 'entry', C.VM_ENTRY_LOAD_DEBUG_CONTROLS) &&
    (f.or('GUEST_IA32_DEBUGCTL', 1n << BigInt(pickOf([2, 3, 4, 5, 16, 31, 32, 63], r.n))), true),
  'guest-ia32e-needs-paging': (f, r) => {
    if (r.pick && enableEpt(f) && enable(f, 'proc2', C.SECONDARY_EXEC_UNRESTRICTED_GUEST)) f.clear('GUEST_CR0', CR0.PG);
    else f.clear('GUEST_CR4', CR4.PAE);
    return true;
  },
  'guest-pcide-needs-ia32e': (f) => (f.caps.cr4Fixed1 & BigInt(CR4.PCIDE)) !== 0n && (paeGuest(f), f.or('GUEST_CR4', CR4.PCIDE), true),
  'guest-cr3-width': (f, r) => { f.or('GUEST_CR3', 1n << BigInt(width(f) + (r.n % (64 - width(f))))); return true; },
  'guest-dr7-high': (f, r) => enable(f, 'entry', C.VM_ENTRY_LOAD_DEBUG_CONTROLS) && (f.or('GUEST_DR7', 1n << BigInt(32 + (r.n % 32))), true),
  'guest-sysenter-esp-canonical': canonicalMutation('GUEST_SYSENTER_ESP'),
  'guest-sysenter-eip-canonical': canonicalMutation('GUEST_SYSENTER_EIP'),
  'guest-pat': (f, r) => enable(f, 'entry', C.VM_ENTRY_LOAD_IA32_PAT) && (f.set('GUEST_IA32_PAT', badPat(f.get('GUEST_IA32_PAT'), r)), true),
  'guest-efer-reserved': (f, r) => enable(f, 'entry', C.VM_ENTRY_LOAD_IA32_EFER) && (f.or('GUEST_IA32_EFER', 1n << BigInt(pickOf([1, 2, 3, 7, 9, 12, 20, 63], r.n))), true),
  'guest-efer-lma': (f) => enable(f, 'entry', C.VM_ENTRY_LOAD_IA32_EFER) && (f.clear('GUEST_IA32_EFER', EFER.LMA), true),
  'guest-efer-lme': (f) => enable(f, 'entry', C.VM_ENTRY_LOAD_IA32_EFER) && (f.clear('GUEST_IA32_EFER', EFER.LME), true),
  'guest-bndcfgs': (f, r) => enable(f, 'entry', C.VM_ENTRY_LOAD_BNDCFGS) &&
    (f.set('GUEST_BNDCFGS', r.pick ? 1n << BigInt(2 + (r.n % 10)) : nonCanonical(lin(f), r.b) & ~0xfffn), true),
  // ------------------------------------------------------------------- guest segment registers
  'guest-tr-selector-ti': (f) => { f.or('GUEST_TR_SELECTOR', 4); return true; },
  'guest-ldtr-selector-ti': (f) => { makeLdtrUsable(f); f.or('GUEST_LDTR_SELECTOR', 4); return true; },
  'guest-ss-selector-rpl': (f, r) => { f.set('GUEST_SS_SELECTOR', (f.get('GUEST_SS_SELECTOR') & ~3n) | BigInt((f.choices.cpl + 1 + (r.n % 3)) % 4)); return true; },
  ...Object.fromEntries(SEGS6.map((s, i) => [`guest-${s.toLowerCase()}-base-v8086`, ((f, r) => {
    v8086(f, i); // earlier registers are right
    f.or('GUEST_RFLAGS', RFLAGS.VM);
    const sel = f.get(segField(s, 'selector')) & 0xffffn;
    f.set(segField(s, 'base'), (sel << 4n) ^ BigInt(1 + (r.n % 0xffff)));
    return true;
  }) as Mutation])),
  ...Object.fromEntries((['TR', 'FS', 'GS'] as const).map((s) => [`guest-${s.toLowerCase()}-base-canonical`, canonicalMutation(segField(s, 'base'))])),
  'guest-ldtr-base-canonical': (f, r) => { makeLdtrUsable(f); f.set('GUEST_LDTR_BASE', nonCanonical(lin(f), r.b)); return true; },
  ...Object.fromEntries((['CS', 'SS', 'DS', 'ES'] as const).map((s) => [`guest-${s.toLowerCase()}-base-high`, ((f, r) => {
    if (s === 'DS' || s === 'ES') makeUsable(f, s);
    f.set(segField(s, 'base'), (BigInt(1 + (r.n % 0xffff)) << 32n) | BigInt(r.m >>> 0));
    return true;
  }) as Mutation])),
  ...Object.fromEntries(SEGS6.map((s, i) => [`guest-${s.toLowerCase()}-limit-v8086`, ((f, r) => {
    v8086(f);
    for (const t of SEGS6.slice(i)) f.set(segField(t, 'limit'), 0xffff);
    f.set(segField(s, 'limit'), (0xffff ^ (1 + (r.n % 0xfffffffe))) >>> 0);
    return true;
  }) as Mutation])),
  ...Object.fromEntries(SEGS6.map((s) => [`guest-${s.toLowerCase()}-ar-v8086`, ((f, r) => {
    v8086(f);
    setAr(f, s, (0xf3 ^ (1 + (r.n % 0x1fffe))) >>> 0);
    return true;
  }) as Mutation])),
  'guest-cs-ar-type': (f, r) => { setAr(f, 'CS', (ar(f, 'CS') & ~0xf) | pickOf([0, 1, 2, 3, 4, 5, 6, 7, 8, 10, 12, 14], r.n)); return true; },
  'guest-ss-ar-type': (f, r) => { setAr(f, 'SS', (ar(f, 'SS') & ~0xf) | pickOf([0, 1, 2, 4, 5, 6, 8, 9, 10, 11, 12, 13, 14, 15], r.n)); return true; },
  ...Object.fromEntries(DATA4.map((s) => [`guest-${s.toLowerCase()}-ar-type`, ((f, r) => {
    makeUsable(f, s);
    setAr(f, s, (ar(f, s) & ~0xf) | pickOf([0, 2, 4, 6, 8, 10, 12, 14, 9, 13], r.n)); // not accessed, or execute-only code
    return true;
  }) as Mutation])),
  ...Object.fromEntries(SEGS6.map((s) => [`guest-${s.toLowerCase()}-ar-s`, ((f) => {
    if (s !== 'CS' && s !== 'SS') makeUsable(f, s);
    setAr(f, s, ar(f, s) & ~AR.S);
    return true;
  }) as Mutation])),
  'guest-cs-ar-dpl': (f, r) => {
    const ss = (ar(f, 'SS') >> 5) & 3;
    if (r.pick || ss === 3) setAr(f, 'CS', (ar(f, 'CS') & ~AR.DPL_MASK) | (((ss + 1 + (r.n % 3)) % 4) << 5)); // non-conforming: DPL ≠ SS.DPL
    else setAr(f, 'CS', (ar(f, 'CS') & ~(AR.DPL_MASK | 0xf)) | 0xf | ((ss + 1 + (r.n % (3 - ss))) << 5)); // conforming: DPL > SS.DPL
    return true;
  },
  'guest-ss-ar-dpl': (f, r) => {
    const rpl = Number(f.get('GUEST_SS_SELECTOR') & 3n);
    // CS conforming with DPL 0 keeps the CS DPL rule satisfied for any SS.DPL.
    setAr(f, 'CS', (ar(f, 'CS') & ~(AR.DPL_MASK | 0xf)) | 0xf);
    setAr(f, 'SS', (ar(f, 'SS') & ~AR.DPL_MASK) | (((rpl + 1 + (r.n % 3)) % 4) << 5));
    return true;
  },
  ...Object.fromEntries(DATA4.map((s) => [`guest-${s.toLowerCase()}-ar-dpl`, ((f, r) => {
    makeUsable(f, s);
    f.set(segField(s, 'selector'), (f.get(segField(s, 'selector')) & ~3n) | 3n);
    setAr(f, s, (ar(f, s) & ~AR.DPL_MASK) | ((r.n % 3) << 5));
    return true;
  }) as Mutation])),
  ...Object.fromEntries(SEGS6.map((s) => [`guest-${s.toLowerCase()}-ar-present`, ((f) => {
    if (s !== 'CS' && s !== 'SS') makeUsable(f, s);
    setAr(f, s, ar(f, s) & ~AR.P);
    return true;
  }) as Mutation])),
  ...Object.fromEntries(SEGS6.map((s) => [`guest-${s.toLowerCase()}-ar-reserved-11-8`, ((f, r) => {
    if (s !== 'CS' && s !== 'SS') makeUsable(f, s);
    setAr(f, s, ar(f, s) | ((1 + (r.n % 15)) << 8));
    return true;
  }) as Mutation])),
  'guest-cs-ar-db-long-mode': (f) => { setAr(f, 'CS', ar(f, 'CS') | AR.L | AR.DB); return true; },
  ...Object.fromEntries(SEGS6.map((s) => [`guest-${s.toLowerCase()}-ar-granularity`, ((f, r) => granularityMutation(f, s, r)) as Mutation])),
  ...Object.fromEntries(SEGS6.map((s) => [`guest-${s.toLowerCase()}-ar-reserved-31-17`, ((f, r) => {
    if (s !== 'CS' && s !== 'SS') makeUsable(f, s);
    setAr(f, s, ar(f, s) | 2 ** (17 + (r.n % 15)));
    return true;
  }) as Mutation])),
  'guest-tr-ar-type': (f, r) => { setAr(f, 'TR', (ar(f, 'TR') & ~0xf) | pickOf([0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 12, 13, 14, 15], r.n)); return true; },
  'guest-tr-ar-s': (f) => { setAr(f, 'TR', ar(f, 'TR') | AR.S); return true; },
  'guest-tr-ar-present': (f) => { setAr(f, 'TR', ar(f, 'TR') & ~AR.P); return true; },
  'guest-tr-ar-reserved-11-8': (f, r) => { setAr(f, 'TR', ar(f, 'TR') | ((1 + (r.n % 15)) << 8)); return true; },
  'guest-tr-ar-granularity': (f, r) => granularityMutation(f, 'TR', r),
  'guest-tr-ar-usable': (f) => { setAr(f, 'TR', ar(f, 'TR') | AR.UNUSABLE); return true; },
  'guest-tr-ar-reserved-31-17': (f, r) => { setAr(f, 'TR', ar(f, 'TR') | 2 ** (17 + (r.n % 15))); return true; },
  'guest-ldtr-ar-type': (f, r) => { makeLdtrUsable(f); setAr(f, 'LDTR', (ar(f, 'LDTR') & ~0xf) | pickOf([0, 1, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15], r.n)); return true; },
  'guest-ldtr-ar-s': (f) => { makeLdtrUsable(f); setAr(f, 'LDTR', ar(f, 'LDTR') | AR.S); return true; },
  'guest-ldtr-ar-present': (f) => { makeLdtrUsable(f); setAr(f, 'LDTR', ar(f, 'LDTR') & ~AR.P); return true; },
  'guest-ldtr-ar-reserved-11-8': (f, r) => { makeLdtrUsable(f); setAr(f, 'LDTR', ar(f, 'LDTR') | ((1 + (r.n % 15)) << 8)); return true; },
  'guest-ldtr-ar-granularity': (f, r) => { makeLdtrUsable(f); return granularityMutation(f, 'LDTR', r); },
  'guest-ldtr-ar-reserved-31-17': (f, r) => { makeLdtrUsable(f); setAr(f, 'LDTR', ar(f, 'LDTR') | 2 ** (17 + (r.n % 15))); return true; },
  // ------------------------------------------------------------------- descriptor tables, RIP, RFLAGS
  'guest-gdtr-base-canonical': canonicalMutation('GUEST_GDTR_BASE'),
  'guest-gdtr-limit': (f, r) => { f.set('GUEST_GDTR_LIMIT', (0x10000 + (r.n % 0xffff0000)) >>> 0); return true; },
  'guest-idtr-base-canonical': canonicalMutation('GUEST_IDTR_BASE'),
  'guest-idtr-limit': (f, r) => { f.set('GUEST_IDTR_LIMIT', (0x10000 + (r.n % 0xffff0000)) >>> 0); return true; },
  'guest-rip-high': (f, r) => {
    setAr(f, 'CS', (ar(f, 'CS') & ~AR.L) | AR.DB); // compatibility mode
    f.set('GUEST_RIP', (BigInt(1 + (r.n % 0xffff)) << 32n) | BigInt(r.m >>> 0));
    return true;
  },
  'guest-rip-canonical': canonicalMutation('GUEST_RIP'),
  'guest-rflags-reserved': (f, r) => {
    if (r.pick) f.clear('GUEST_RFLAGS', RFLAGS.FIXED1);
    else f.or('GUEST_RFLAGS', 1n << BigInt(pickOf([3, 5, 15, 22, 23, 31, 32, 63], r.n)));
    return true;
  },
  'guest-rflags-vm': (f) => {
    v8086(f); // every virtual-8086 segment rule holds
    f.set('GUEST_RIP', f.get('GUEST_RIP') & 0xffffffffn);
    return true; // ... but the guest is in IA-32e mode
  },
  'guest-rflags-if-for-external-interrupt': (f, r) => { f.clear('GUEST_RFLAGS', RFLAGS.IF); inject(f, 0, 32 + (r.n % 224)); return true; },
  // ------------------------------------------------------------------- non-register state
  'guest-activity-state-supported': (f, r) => {
    const m = f.caps.misc;
    const bad = [4, 5, 7, 100, 0xffffffff, ...(!m.activityShutdown ? [2] : []), ...(!m.activityWaitForSipi ? [3] : [])];
    f.set('GUEST_ACTIVITY_STATE', pickOf(bad, r.n));
    return true;
  },
  'guest-activity-hlt-needs-cpl0': (f, r) => { setCpl(f, 1 + (r.n % 3)); f.set('GUEST_ACTIVITY_STATE', 1); return f.caps.misc.activityHlt; },
  'guest-activity-active-when-blocking': (f, r) => {
    setCpl(f, 0);
    const states = [1, ...(f.caps.misc.activityShutdown ? [2] : []), ...(f.caps.misc.activityWaitForSipi ? [3] : [])];
    f.set('GUEST_ACTIVITY_STATE', pickOf(states, r.n));
    f.or('GUEST_RFLAGS', RFLAGS.IF);
    f.set('GUEST_INTERRUPTIBILITY_INFO', r.pick ? 1 : 2);
    return f.caps.misc.activityHlt;
  },
  'guest-activity-injection': (f, r) => {
    setCpl(f, 0);
    const options: [number, () => void][] = [
      [1, () => inject(f, 6, 3, { length: 1 })], // #BP into HLT
      [1, () => inject(f, 3, 6)], // #UD into HLT
      ...(f.caps.misc.activityShutdown ? [[2, () => { f.or('GUEST_RFLAGS', RFLAGS.IF); inject(f, 0, 0x30); }] as [number, () => void]] : []),
      ...(f.caps.misc.activityWaitForSipi ? [[3, () => inject(f, 2, 2)] as [number, () => void]] : []),
    ];
    const [state, injectIt] = pickOf(options, r.n);
    f.set('GUEST_ACTIVITY_STATE', state);
    injectIt();
    return f.caps.misc.activityHlt;
  },
  'guest-interruptibility-reserved': (f, r) => { f.set('GUEST_INTERRUPTIBILITY_INFO', 2 ** (5 + (r.n % 27))); return true; },
  'guest-interruptibility-sti-and-mov-ss': (f) => { f.or('GUEST_RFLAGS', RFLAGS.IF); f.set('GUEST_INTERRUPTIBILITY_INFO', 3); return true; },
  'guest-interruptibility-sti-needs-if': (f) => { f.clear('GUEST_RFLAGS', RFLAGS.IF); f.set('GUEST_INTERRUPTIBILITY_INFO', 1); return true; },
  'guest-interruptibility-external-interrupt': (f, r) => { f.or('GUEST_RFLAGS', RFLAGS.IF); f.set('GUEST_INTERRUPTIBILITY_INFO', r.pick ? 1 : 2); inject(f, 0, 32 + (r.n % 224)); return true; },
  'guest-interruptibility-nmi-mov-ss': (f) => { f.set('GUEST_INTERRUPTIBILITY_INFO', 2); inject(f, 2, 2); return true; },
  'guest-interruptibility-smi': (f) => { f.set('GUEST_INTERRUPTIBILITY_INFO', 4); return true; },
  'guest-interruptibility-virtual-nmi': (f) => enable(f, 'pin', C.PIN_BASED_NMI_EXITING | C.PIN_BASED_VIRTUAL_NMIS) && (f.set('GUEST_INTERRUPTIBILITY_INFO', 8), inject(f, 2, 2), true),
  'guest-interruptibility-enclave': (f, r) => { f.set('GUEST_INTERRUPTIBILITY_INFO', r.pick ? 0x12 : 0x10); return true; },
  'guest-interruptibility-nmi-sti': (f) => { f.or('GUEST_RFLAGS', RFLAGS.IF); f.set('GUEST_INTERRUPTIBILITY_INFO', 1); inject(f, 2, 2); return true; },
  'guest-pending-dbg-reserved': (f, r) => { f.set('GUEST_PENDING_DBG_EXCEPTIONS', 1n << BigInt(pickOf([4, 5, 8, 11, 13, 15, 17, 40, 63], r.n))); return true; },
  'guest-pending-dbg-bs': (f, r) => {
    f.or('GUEST_RFLAGS', RFLAGS.IF);
    f.set('GUEST_INTERRUPTIBILITY_INFO', 1);
    if (r.pick) { f.or('GUEST_RFLAGS', RFLAGS.TF); f.set('GUEST_PENDING_DBG_EXCEPTIONS', 0); } // single-stepping, BS missing
    else { f.clear('GUEST_RFLAGS', RFLAGS.TF); f.set('GUEST_PENDING_DBG_EXCEPTIONS', 1n << 14n); } // BS without TF
    return true;
  },
  'guest-pending-dbg-rtm': (f) => { f.set('GUEST_PENDING_DBG_EXCEPTIONS', (1n << 16n) | (1n << 12n)); return true; },
  'guest-vmcs-link-pointer-address': (f, r) => { f.set('VMCS_LINK_POINTER', badAddress(f, r, 4096)); return true; },
  'guest-vmcs-link-pointer-revision': (f, r) => {
    const p = f.page(11);
    f.cpu.writePhysical32(p, (f.caps.basic.revisionId ^ (1 + (r.n % 0x7ffffffe))) & 0x7fffffff);
    f.set('VMCS_LINK_POINTER', p);
    return true;
  },
  'guest-vmcs-link-pointer-shadow': (f) => {
    const p = f.page(11);
    f.cpu.writePhysical32(p, (f.caps.basic.revisionId | 2 ** 31) >>> 0);
    f.set('VMCS_LINK_POINTER', p);
    return true;
  },
  'guest-vmcs-link-pointer-current': (f) => {
    // The current VMCS passes the address, revision and shadow-indicator checks, so only this rule breaks.
    if (f.has('proc2', C.SECONDARY_EXEC_SHADOW_VMCS)) return false;
    f.set('VMCS_LINK_POINTER', f.ctx.vmcsPointer);
    return true;
  },
  ...Object.fromEntries([0, 1, 2, 3].map((i) => [`guest-pdpte${i}-reserved`, ((f, r) => {
    paeGuest(f);
    const bad = 1n | (r.pick ? 1n << BigInt(pickOf([1, 2, 5, 6, 7, 8], r.n)) : 1n << BigInt(width(f) + (r.n % (64 - width(f)))));
    const good = (k: number): bigint => (r.m >> k) & 1 ? (f.page(k) | 1n) : 0n;
    if (f.has('proc2', C.SECONDARY_EXEC_ENABLE_EPT)) {
      GUEST_PDPTR_FIELDS.forEach((field, k) => f.set(field, k === i ? bad : good(k)));
    } else {
      const base = f.get('GUEST_CR3') & 0xffffffe0n;
      for (let k = 0; k < 4; k++) f.cpu.writePhysical64(base + BigInt(8 * k), k === i ? bad : good(k));
    }
    return true;
  }) as Mutation])),
};

function postedInterrupts(f: Fixture): boolean {
  return enable(f, 'pin', C.PIN_BASED_POSTED_INTR | C.PIN_BASED_EXT_INTR_MASK) && enable(f, 'proc', C.CPU_BASED_TPR_SHADOW) &&
    (f.set('VIRTUAL_APIC_PAGE_ADDR', f.page(10)), true) && enable(f, 'proc2', C.SECONDARY_EXEC_VIRTUAL_INTR_DELIVERY) &&
    enable(f, 'exit', C.VM_EXIT_ACK_INTR_ON_EXIT) && (f.set('POSTED_INTR_DESC_ADDR', f.page(10) + 0x40n), f.set('POSTED_INTR_NV', 0xf2), true);
}
function badPat(pat: bigint, r: Rnd): bigint {
  const i = BigInt(8 * (r.n % 8));
  return (pat & ~(0xffn << i)) | (BigInt(pickOf([2, 3, 8, 0x10, 0xff], r.m)) << i);
}
function granularityMutation(f: Fixture, s: SegmentName, r: Rnd): boolean {
  if (s !== 'CS' && s !== 'SS' && s !== 'TR' && s !== 'LDTR') makeUsable(f, s);
  if (r.pick) {
    setAr(f, s, ar(f, s) | AR.G);
    f.set(segField(s, 'limit'), (r.n & 0xfffff000 | ((r.m % 0xfff) & 0xffe)) >>> 0); // some bit of 11:0 clear
  } else {
    setAr(f, s, ar(f, s) & ~AR.G);
    f.set(segField(s, 'limit'), (0x100000 | r.n) >>> 0); // a bit of 31:20 set
  }
  return true;
}

// MSR-loading rules: entry `bad` (1-based) of `count` is broken; the others load fine.
export const MSR_BREAKS: Record<string, (f: Fixture, r: Rnd) => [number, number, bigint]> = {
  'msr-load-entry-reserved': (_f, r) => [MSR_STAR, 1 + (r.n % 0xfffffffe), 0n],
  'msr-load-fs-gs-base': (_f, r) => [r.pick ? MSR_FS_BASE : MSR_GS_BASE, 0, 0n],
  'msr-load-x2apic': (_f, r) => [0x800 + (r.n % 0x100), 0, 0n],
  'msr-load-smm-only': () => [0x9b, 0, 0n],
  'msr-load-wrmsr': (f, r) => (r.pick ? [0x12345 + (r.n % 0x1000), 0, 0n] : [MSR_LSTAR, 0, nonCanonical(lin(f), r.b)]),
};

/** Rules the SDM states but that an earlier rule always catches first on a real processor. */
export const SHADOWED: Record<string, string> = {
  'host-32-bit-no-ia32e-guest': 'with "host address-space size" = 0, either host-inside-ia32e-mode (LP in IA-32e mode) or host-outside-ia32e-mode (LP outside it) fails first',
};


// Test support for VM entry/exit (imported only by tests): a generator of valid VMCSs — 64-bit host, 64-bit
// guest, built from a CPU model's capabilities — and small helpers to break them.
import { capabilitiesOf } from '../emulated-msrs.ts';
import fc from 'fast-check';
import type { VmxCapabilities } from '../capabilities.ts';
import { decodeCapabilities } from '../capabilities.ts';
import type { CpuModel } from '../../machine/cpu-model.ts';
import { VMX_CONTROL } from '../controls.ts';
import { EPT_VPID_CAP } from '../msrs.ts';
import { ActiveVmcs } from '../vmcs.ts';
import type { EntryContext } from '../entry/context.ts';
import { vmEntry } from '../entry/index.ts';
import type { VmcsAccess } from '../transition/vmcs-access.ts';
import { vmcsAccessOf } from '../transition/vmcs-access.ts';
import type { SegmentName } from '../transition/transition-cpu.ts';
import { GUEST_SEGMENT_FIELDS } from '../transition/segment-fields.ts';
import type { VmcsFullFieldName } from '../fields.ts';
import { FakeTransitionCpu } from './fake-transition-cpu.ts';
import { CR0, CR4, EFER } from '../../x86/control-registers.ts';
import { RFLAGS } from '../../x86/flags.ts';
import { AR } from '../../x86/segments.ts';
import { MSR_LSTAR, MSR_STAR, MSR_SYSCALL_MASK } from '../../x86/msr.ts';

const U64 = 0xffffffffffffffffn;

/** Random choices a valid VMCS is built from. */
export interface VmcsChoices {
  cpl: 0 | 3;
  ept: boolean;
  vpid: number;
  msrBitmaps: boolean;
  ioBitmaps: boolean;
  loadEfer: boolean;
  loadPat: boolean;
  saveEferPat: boolean;
  dsEsUsable: boolean;
  fsGsUsable: boolean;
  ldtrUsable: boolean;
  interruptsEnabled: boolean;
  /** Low 48 bits are used; sign-extended to a canonical address for the model's linear width. */
  addresses: bigint[];
  pages: bigint[];
  selectorIndexes: number[];
  limits: number[];
  msrLoadCount: number;
}

export const U = (n: number): bigint => BigInt(n);

export function vmcsChoices(): fc.Arbitrary<VmcsChoices> {
  return fc.record({
    cpl: fc.constantFrom(0 as const, 3 as const),
    ept: fc.boolean(),
    vpid: fc.integer({ min: 1, max: 0xffff }),
    msrBitmaps: fc.boolean(),
    ioBitmaps: fc.boolean(),
    loadEfer: fc.boolean(),
    loadPat: fc.boolean(),
    saveEferPat: fc.boolean(),
    dsEsUsable: fc.boolean(),
    fsGsUsable: fc.boolean(),
    ldtrUsable: fc.boolean(),
    interruptsEnabled: fc.boolean(),
    addresses: fc.array(fc.bigInt({ min: 0n, max: U64 }), { minLength: 16, maxLength: 16 }),
    pages: fc.array(fc.bigInt({ min: 1n, max: (1n << 24n) - 1n }), { minLength: 12, maxLength: 12 }),
    selectorIndexes: fc.array(fc.integer({ min: 1, max: 0x1fff }), { minLength: 8, maxLength: 8 }),
    limits: fc.array(fc.integer({ min: 0, max: 0xffff }), { minLength: 4, maxLength: 4 }),
    msrLoadCount: fc.integer({ min: 0, max: 3 }),
  });
}

/** A canonical address for a `width`-bit linear-address space, from any 64-bit value. */
export function canonicalFrom(v: bigint, width: number): bigint {
  const low = v & ((1n << BigInt(width)) - 1n);
  const sign = 1n << BigInt(width - 1);
  return (low & sign) !== 0n ? (low | ~((1n << BigInt(width)) - 1n)) & U64 : low;
}
/** A non-canonical address: bit width-1 set, the bits above it clear (plus `salt` in the low bits). */
export function nonCanonical(width: number, salt: bigint): bigint {
  return (1n << BigInt(width - 1)) | (salt & 0xfffffn);
}

export interface Fixture {
  caps: VmxCapabilities;
  cpu: FakeTransitionCpu;
  active: ActiveVmcs;
  vmcs: VmcsAccess;
  ctx: EntryContext;
  choices: VmcsChoices;
  /** Physical page addresses the builder handed out (bitmaps, EPT, MSR area, scratch). */
  page(i: number): bigint;
  get(name: VmcsFullFieldName): bigint;
  set(name: VmcsFullFieldName, v: bigint | number): void;
  or(name: VmcsFullFieldName, bits: bigint | number): void;
  clear(name: VmcsFullFieldName, bits: bigint | number): void;
  has(ctl: 'pin' | 'proc' | 'proc2' | 'exit' | 'entry', mask: number): boolean;
  canSet(ctl: 'pin' | 'proc' | 'proc2' | 'exit' | 'entry', mask: number): boolean;
}

export const VMCS_POINTER = 0x1000n;
const CONTROL_FIELD = { pin: 'PIN_BASED_VM_EXEC_CONTROL', proc: 'CPU_BASED_VM_EXEC_CONTROL', proc2: 'SECONDARY_VM_EXEC_CONTROL', exit: 'VM_EXIT_CONTROLS', entry: 'VM_ENTRY_CONTROLS' } as const;

export function capsOf(model: CpuModel): VmxCapabilities {
  return capabilitiesOf(model);
}

/** Build a VMCS that passes every VM-entry check on `model`, plus a fake LP in 64-bit mode to enter it from. */
export function buildValidVmcs(model: CpuModel, c: VmcsChoices): Fixture {
  const caps = capsOf(model);
  const width = model.maxPhysAddr;
  const lin = model.linearAddrBits;
  const cpu = new FakeTransitionCpu(caps, width, lin);
  const active = new ActiveVmcs(VMCS_POINTER);
  const vmcs = vmcsAccessOf(active);
  cpu.writePhysical32(VMCS_POINTER, caps.basic.revisionId);
  // Distinct 4-KByte pages below 2^min(width, 36).
  const page = (i: number): bigint => ((c.pages[i % c.pages.length]! % (1n << BigInt(Math.min(width, 36) - 12 - 4))) * 16n + BigInt(i)) << 12n;
  const addr = (i: number): bigint => canonicalFrom(c.addresses[i % c.addresses.length]!, lin);
  const sel = (i: number, rpl = 0): number => (c.selectorIndexes[i]! << 3) | rpl;
  const set = (name: VmcsFullFieldName, v: bigint | number): void => vmcs.write(name, BigInt(v) & U64);
  const get = (name: VmcsFullFieldName): bigint => vmcs.read(name);
  const eff = caps.effective;
  const canSet = (ctl: keyof typeof CONTROL_FIELD, mask: number): boolean =>
    ((ctl === 'pin' ? eff.pin : ctl === 'proc' ? eff.proc : ctl === 'proc2' ? eff.proc2 : ctl === 'exit' ? eff.exit : eff.entry).allowed1 & mask) >>> 0 === mask >>> 0;

  // --- Controls: the allowed-0 (must-be-1) bits, plus the features chosen and available.
  let proc = eff.proc.allowed0;
  let proc2 = eff.proc2.allowed0;
  const secondary = canSet('proc', VMX_CONTROL.CPU_BASED_ACTIVATE_SECONDARY_CONTROLS);
  if (secondary) proc |= VMX_CONTROL.CPU_BASED_ACTIVATE_SECONDARY_CONTROLS;
  if (c.msrBitmaps && canSet('proc', VMX_CONTROL.CPU_BASED_USE_MSR_BITMAPS)) {
    proc |= VMX_CONTROL.CPU_BASED_USE_MSR_BITMAPS;
    set('MSR_BITMAP', page(0));
  }
  if (c.ioBitmaps) {
    proc |= VMX_CONTROL.CPU_BASED_USE_IO_BITMAPS;
    set('IO_BITMAP_A', page(1));
    set('IO_BITMAP_B', page(2));
  }
  if (secondary && c.ept && canSet('proc2', VMX_CONTROL.SECONDARY_EXEC_ENABLE_EPT)) {
    proc2 |= VMX_CONTROL.SECONDARY_EXEC_ENABLE_EPT;
    set('EPT_POINTER', validEptp(caps, page(3)));
  }
  if (secondary && canSet('proc2', VMX_CONTROL.SECONDARY_EXEC_ENABLE_VPID)) {
    proc2 |= VMX_CONTROL.SECONDARY_EXEC_ENABLE_VPID;
    set('VIRTUAL_PROCESSOR_ID', c.vpid);
  }
  let exit = eff.exit.allowed0 | VMX_CONTROL.VM_EXIT_HOST_ADDR_SPACE_SIZE;
  let entry = eff.entry.allowed0 | VMX_CONTROL.VM_ENTRY_IA32E_MODE;
  if (c.loadEfer && canSet('exit', VMX_CONTROL.VM_EXIT_LOAD_IA32_EFER)) exit |= VMX_CONTROL.VM_EXIT_LOAD_IA32_EFER;
  if (c.loadEfer && canSet('entry', VMX_CONTROL.VM_ENTRY_LOAD_IA32_EFER)) entry |= VMX_CONTROL.VM_ENTRY_LOAD_IA32_EFER;
  if (c.loadPat && canSet('exit', VMX_CONTROL.VM_EXIT_LOAD_IA32_PAT)) exit |= VMX_CONTROL.VM_EXIT_LOAD_IA32_PAT;
  if (c.loadPat && canSet('entry', VMX_CONTROL.VM_ENTRY_LOAD_IA32_PAT)) entry |= VMX_CONTROL.VM_ENTRY_LOAD_IA32_PAT;
  if (c.saveEferPat) {
    for (const m of [VMX_CONTROL.VM_EXIT_SAVE_IA32_EFER, VMX_CONTROL.VM_EXIT_SAVE_IA32_PAT, VMX_CONTROL.VM_EXIT_SAVE_DEBUG_CONTROLS]) {
      if (canSet('exit', m)) exit |= m;
    }
  }
  set('PIN_BASED_VM_EXEC_CONTROL', eff.pin.allowed0);
  set('CPU_BASED_VM_EXEC_CONTROL', proc >>> 0);
  set('SECONDARY_VM_EXEC_CONTROL', proc2 >>> 0);
  set('VM_EXIT_CONTROLS', exit >>> 0);
  set('VM_ENTRY_CONTROLS', entry >>> 0);
  set('CR3_TARGET_COUNT', 0);

  // --- Host state: a 64-bit kernel.
  const cr0 = (caps.cr0Fixed0 | U(CR0.PE | CR0.NE | CR0.PG | CR0.WP)) & caps.cr0Fixed1;
  const cr4 = (caps.cr4Fixed0 | U(CR4.PAE)) & caps.cr4Fixed1;
  set('HOST_CR0', cr0);
  set('HOST_CR3', page(4));
  set('HOST_CR4', cr4);
  set('HOST_CS_SELECTOR', sel(0));
  set('HOST_SS_SELECTOR', sel(1));
  set('HOST_DS_SELECTOR', c.dsEsUsable ? sel(1) : 0);
  set('HOST_ES_SELECTOR', c.dsEsUsable ? sel(1) : 0);
  set('HOST_FS_SELECTOR', 0);
  set('HOST_GS_SELECTOR', 0);
  set('HOST_TR_SELECTOR', sel(2));
  set('HOST_FS_BASE', addr(0));
  set('HOST_GS_BASE', addr(1));
  set('HOST_TR_BASE', addr(2));
  set('HOST_GDTR_BASE', addr(3));
  set('HOST_IDTR_BASE', addr(4));
  set('HOST_IA32_SYSENTER_CS', sel(0));
  set('HOST_IA32_SYSENTER_ESP', addr(5));
  set('HOST_IA32_SYSENTER_EIP', addr(6));
  set('HOST_IA32_EFER', EFER.SCE | EFER.LME | EFER.LMA | EFER.NXE);
  set('HOST_IA32_PAT', 0x0007040600070406n);
  set('HOST_RSP', addr(7));
  set('HOST_RIP', addr(8));

  // --- Guest state: a 64-bit guest at CPL `c.cpl`.
  set('GUEST_CR0', cr0);
  set('GUEST_CR3', page(5));
  set('GUEST_CR4', cr4);
  set('GUEST_DR7', 0x400);
  set('GUEST_IA32_DEBUGCTL', 0);
  set('GUEST_SYSENTER_CS', sel(3));
  set('GUEST_SYSENTER_ESP', addr(9));
  set('GUEST_SYSENTER_EIP', addr(10));
  set('GUEST_IA32_EFER', EFER.LME | EFER.LMA | EFER.SCE);
  set('GUEST_IA32_PAT', 0x0007010600070106n);
  const dpl = c.cpl << AR.DPL_SHIFT;
  const data = 0x3 | AR.S | dpl | AR.P | AR.DB | AR.G;
  setSegment(vmcs, 'CS', sel(4, c.cpl), 0n, 0xffffffff, 0xb | AR.S | dpl | AR.P | AR.L | AR.G);
  setSegment(vmcs, 'SS', sel(5, c.cpl), 0n, 0xffffffff, data);
  for (const s of ['DS', 'ES'] as const) {
    if (c.dsEsUsable) setSegment(vmcs, s, sel(5, c.cpl), 0n, 0xffffffff, data);
    else setSegment(vmcs, s, 0, 0n, 0, AR.UNUSABLE);
  }
  setSegment(vmcs, 'FS', c.fsGsUsable ? sel(5, c.cpl) : 0, addr(11), c.fsGsUsable ? 0xffffffff : 0, c.fsGsUsable ? data : AR.UNUSABLE);
  setSegment(vmcs, 'GS', c.fsGsUsable ? sel(5, c.cpl) : 0, addr(12), c.fsGsUsable ? 0xffffffff : 0, c.fsGsUsable ? data : AR.UNUSABLE);
  if (c.ldtrUsable) setSegment(vmcs, 'LDTR', sel(6), addr(13), c.limits[0]!, 0x2 | AR.P);
  else setSegment(vmcs, 'LDTR', 0, 0n, 0, AR.UNUSABLE);
  setSegment(vmcs, 'TR', sel(7), addr(14), 0x67, 0xb | AR.P);
  set('GUEST_GDTR_BASE', addr(15));
  set('GUEST_GDTR_LIMIT', c.limits[1]!);
  set('GUEST_IDTR_BASE', addr(2) ^ 0x1000n);
  set('GUEST_IDTR_LIMIT', c.limits[2]!);
  set('GUEST_RIP', addr(5) ^ 0x10n);
  set('GUEST_RSP', c.addresses[6]!);
  set('GUEST_RFLAGS', RFLAGS.FIXED1 | (c.interruptsEnabled ? RFLAGS.IF : 0));
  set('GUEST_ACTIVITY_STATE', 0);
  set('GUEST_INTERRUPTIBILITY_INFO', 0);
  set('GUEST_PENDING_DBG_EXCEPTIONS', 0);
  set('VMCS_LINK_POINTER', U64);
  set('VM_ENTRY_INTR_INFO_FIELD', 0);

  // --- MSR-load area: a few syscall MSRs.
  const msrArea = page(6);
  const msrs: [number, bigint][] = [[MSR_STAR, 0x0023001000000000n], [MSR_LSTAR, addr(7)], [MSR_SYSCALL_MASK, 0x47700n]];
  for (let i = 0; i < c.msrLoadCount; i++) writeMsrEntry(cpu, msrArea, i, msrs[i]![0], 0, msrs[i]![1]);
  set('VM_ENTRY_MSR_LOAD_ADDR', msrArea);
  set('VM_ENTRY_MSR_LOAD_COUNT', c.msrLoadCount);
  set('VM_EXIT_MSR_STORE_ADDR', page(7));
  set('VM_EXIT_MSR_STORE_COUNT', 0);
  set('VM_EXIT_MSR_LOAD_ADDR', page(8));
  set('VM_EXIT_MSR_LOAD_COUNT', 0);

  const ctx: EntryContext = { cpu, vmcs, caps, instruction: 'VMLAUNCH', vmcsPointer: VMCS_POINTER };
  const fieldOf = (ctl: keyof typeof CONTROL_FIELD): VmcsFullFieldName => CONTROL_FIELD[ctl];
  return {
    caps, cpu, active, vmcs, ctx, choices: c, page, get, set,
    or: (name, bits) => set(name, get(name) | BigInt(bits)),
    clear: (name, bits) => set(name, get(name) & ~BigInt(bits)),
    has: (ctl, mask) => (Number(get(fieldOf(ctl)) & 0xffffffffn) & mask) !== 0,
    canSet,
  };
}

/** A valid VMCS on `model`, entered: the fake LP now holds the guest's state, as if the guest were running. */
export function enterValidGuest(model: CpuModel, c: VmcsChoices): Fixture {
  const f = buildValidVmcs(model, c);
  const outcome = vmEntry(f.ctx);
  if (outcome.kind !== 'entered') throw new Error(`VM entry of a valid VMCS on ${model.name} failed: ${outcome.diagnosis.message}`);
  return f;
}

export function setSegment(vmcs: VmcsAccess, s: SegmentName, selector: number, base: bigint, limit: number, ar: number): void {
  const f = GUEST_SEGMENT_FIELDS[s];
  vmcs.write(f.selector, BigInt(selector));
  vmcs.write(f.base, base & U64);
  vmcs.write(f.limit, BigInt(limit >>> 0));
  vmcs.write(f.ar, BigInt(ar >>> 0));
}

export function writeMsrEntry(cpu: FakeTransitionCpu, area: bigint, i: number, index: number, reserved: number, value: bigint): void {
  const at = area + BigInt(16 * i);
  cpu.writePhysical32(at, index);
  cpu.writePhysical32(at + 4n, reserved);
  cpu.writePhysical64(at + 8n, value);
}

/** An EPTP the model accepts: WB if supported (else UC), 4-level walk, no A/D. */
export function validEptp(caps: VmxCapabilities, pml4: bigint): bigint {
  const type = (caps.eptVpidCap & EPT_VPID_CAP.VMX_EPTP_WB_BIT) !== 0n ? 6n : 0n;
  return pml4 | type | (3n << 3n);
}

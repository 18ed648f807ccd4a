// The direct register transfer of the real LP (./lp-transfer.ts) against the general path (the same code through
// the VmTransitionCpu methods, LpVmxCpu.directTransfer = false): over random LP states and random VMCS contents,
// saving guest state, loading host state and loading guest state leave the same VMCS and the same LP.
import { describe, expect, test } from 'vitest';
import fc from 'fast-check';
import { bootHost } from '../kernel/boot-host.ts';
import type { LogicalProcessor } from '../machine/lp.ts';
import { MSR_EFER, MSR_IA32_CR_PAT, MSR_IA32_DEBUGCTLMSR, MSR_IA32_SYSENTER_CS, MSR_IA32_SYSENTER_EIP, MSR_IA32_SYSENTER_ESP } from '../x86/msr.ts';
import { RSP } from '../x86/registers.ts';
import { VMX_CONTROL } from './controls.ts';
import { saveGuestState } from './exit/save-guest.ts';
import { loadGuestState } from './entry/load-guest.ts';
import { EntryView } from './entry/view.ts';
import { loadHostState } from './transition/load-host.ts';
import { vmcsAccessOf } from './transition/vmcs-access.ts';
import { ActiveVmcs, SLOT, VMCS_SLOT_COUNT } from './vmcs.ts';
import type { LpVmxCpu } from './lp-cpu.ts';

const SEGMENTS = ['es', 'cs', 'ss', 'ds', 'fs', 'gs', 'ldtr', 'tr'] as const;
const MSRS = [MSR_IA32_SYSENTER_CS, MSR_IA32_SYSENTER_ESP, MSR_IA32_SYSENTER_EIP, MSR_IA32_DEBUGCTLMSR, MSR_IA32_CR_PAT, MSR_EFER];
const U64 = (1n << 64n) - 1n;

/** 64-bit values with the interesting cases weighted in: small, 32-bit, canonical-high (negative), anything. */
const u64 = fc.oneof(
  fc.bigInt({ min: 0n, max: 0xffffn }),
  fc.bigInt({ min: 0n, max: 0xffffffffn }),
  fc.bigInt({ min: 0xffff800000000000n, max: U64 }),
  fc.bigInt({ min: 0n, max: U64 }),
);
const u32 = fc.oneof(fc.integer({ min: 0, max: 0xffff }), fc.integer({ min: 0, max: 0xffffffff }));
/** Control fields: random, or with the bits that choose a path (host size, EFER/PAT/debug controls) set or clear. */
const controlBits = VMX_CONTROL.VM_EXIT_HOST_ADDR_SPACE_SIZE | VMX_CONTROL.VM_EXIT_LOAD_IA32_EFER | VMX_CONTROL.VM_EXIT_SAVE_IA32_EFER |
  VMX_CONTROL.VM_EXIT_SAVE_IA32_PAT | VMX_CONTROL.VM_EXIT_LOAD_IA32_PAT | VMX_CONTROL.VM_EXIT_SAVE_DEBUG_CONTROLS | VMX_CONTROL.VM_EXIT_CLEAR_BNDCFGS;
const entryBits = VMX_CONTROL.VM_ENTRY_IA32E_MODE | VMX_CONTROL.VM_ENTRY_LOAD_IA32_EFER | VMX_CONTROL.VM_ENTRY_LOAD_IA32_PAT |
  VMX_CONTROL.VM_ENTRY_LOAD_DEBUG_CONTROLS | VMX_CONTROL.VM_ENTRY_LOAD_BNDCFGS;

const world = fc.record({
  cr0: u32, cr3: u64, cr4: u32, efer: u32,
  segments: fc.array(fc.record({ selector: u32, base: u64, limit: u32, ar: u32 }), { minLength: 8, maxLength: 8 }),
  gdtr: fc.record({ base: u64, limit: u32 }), idtr: fc.record({ base: u64, limit: u32 }),
  rip: u64, rsp: u64, rflags: u32, msrs: fc.array(u64, { minLength: MSRS.length, maxLength: MSRS.length }),
  activity: fc.integer({ min: 0, max: 3 }), interruptibility: fc.integer({ min: 0, max: 15 }),
  vmcs: fc.array(u64, { minLength: VMCS_SLOT_COUNT, maxLength: VMCS_SLOT_COUNT }),
  exitCtls: fc.oneof(u32, fc.integer({ min: 0, max: 0xffffffff }).map((r) => (r & controlBits) >>> 0)),
  entryCtls: fc.oneof(u32, fc.integer({ min: 0, max: 0xffffffff }).map((r) => (r & entryBits) >>> 0)),
  guestRip: fc.option(u64, { nil: undefined }),
});
type World = typeof world extends fc.Arbitrary<infer T> ? T : never;

/** A real LP with VMX, in the state `w` describes, and a cached VMCS with `w`'s contents. */
function setUp(w: World, direct: boolean): { cpu: LpVmxCpu; vmcs: ActiveVmcs } {
  const host = bootHost({ model: 'skylake-i5-6300u' });
  const cpu = host.vmx[0]!.cpu;
  cpu.directTransfer = direct;
  const lp = cpu.lp;
  for (let i = 0; i < MSRS.length; i++) {
    try {
      lp.wrmsr(MSRS[i]!, w.msrs[i]!);
    } catch {
      // a value this MSR refuses: it keeps its value, on both sides
    }
  }
  lp.cr0 = w.cr0; lp.cr3 = Number(w.cr3); lp.cr4 = w.cr4; lp.efer = w.efer;
  SEGMENTS.forEach((s, i) => lp.setSegment(s, w.segments[i]!));
  lp.lgdt(w.gdtr.base, w.gdtr.limit);
  lp.lidt(w.idtr.base, w.idtr.limit);
  lp.setReg('rip', w.rip);
  lp.setGpr(RSP, w.rsp);
  lp.setRflags(w.rflags);
  lp.updateMode();
  cpu.setActivityState(w.activity);
  cpu.setInterruptibility(w.interruptibility);
  const vmcs = new ActiveVmcs(0x1000n);
  w.vmcs.forEach((v, slot) => vmcs.write(slot, v));
  vmcs.writeLow(SLOT.VM_EXIT_CONTROLS, w.exitCtls);
  vmcs.writeLow(SLOT.VM_ENTRY_CONTROLS, w.entryCtls);
  return { cpu, vmcs };
}

/** Everything a transition may have changed on the LP. */
function lpState(lp: LogicalProcessor): unknown {
  const msrs = MSRS.map((m) => {
    try {
      return lp.rdmsr(m);
    } catch {
      return null;
    }
  });
  return {
    ...lp.snapshot(), regLo: [...lp.regLo], regHi: [...lp.regHi], segSel: [...lp.segSel], segBase: [...lp.segBase],
    segLimit: [...lp.segLimit], segAr: [...lp.segAr], segEffBase: [...lp.segEffBase], bits: lp.bits, user: lp.user,
    rawCr0: lp.cr0, rawCr3: lp.cr3, rawCr4: lp.cr4, rawEfer: lp.efer, checkHostEntry: lp.checkHostEntry,
    nmiBlocked: lp.nmiBlocked, shadowAt: lp.shadowAt, shadowKind: lp.shadowKind, tlb: lp.tlb.current, msrs,
  };
}

/** Run `step` on a direct and a general LP built from the same world; both must end the same. */
function samePaths(step: (cpu: LpVmxCpu, vmcs: ActiveVmcs, w: World) => void): void {
  fc.assert(
    fc.property(world, (w) => {
      const a = setUp(w, true);
      const b = setUp(w, false);
      step(a.cpu, a.vmcs, w);
      step(b.cpu, b.vmcs, w);
      expect(Array.from(a.vmcs.data)).toEqual(Array.from(b.vmcs.data));
      expect(lpState(a.cpu.lp)).toEqual(lpState(b.cpu.lp));
    }),
    { seed: 0x1f7a, numRuns: 150 },
  );
}

describe('the LP\'s direct register transfer is the general path', () => {
  test('saving guest state (VM exit)', () => {
    samePaths((cpu, vmcs, w) => saveGuestState(vmcsAccessOf(vmcs), cpu, w.guestRip));
  });
  test('loading host state (VM exit, VM-entry failure)', () => {
    samePaths((cpu, vmcs) => loadHostState(vmcsAccessOf(vmcs), cpu));
  });
  test('loading guest state (VM entry)', () => {
    samePaths((cpu, vmcs) => {
      const access = vmcsAccessOf(vmcs);
      loadGuestState(new EntryView({ cpu, vmcs: access, caps: cpu.caps, instruction: 'VMRESUME', vmcsPointer: vmcs.pa }), cpu);
    });
  });
  test('the direct path is the one taken by default', () => {
    const a = setUp(fc.sample(world, { seed: 1, numRuns: 1 })[0]!, true);
    let calls = 0;
    const original = a.cpu.saveGuestRegistersDirect.bind(a.cpu);
    a.cpu.saveGuestRegistersDirect = (v, rip) => (calls++, original(v, rip));
    saveGuestState(vmcsAccessOf(a.vmcs), a.cpu);
    expect(calls).toBe(1);
  });
});

import { describe, expect, test } from 'vitest';
import fc from 'fast-check';
import { adjustControls, controlMsr, type AdjustResult, type ControlError, type ControlKind } from '#impl/03-capabilities/adjust-controls';
import { decodeCapabilities, type AllowedSettings } from '#src/vmx/capabilities';
import { CONTROL_BITS } from '#src/vmx/controls';
import {
  CONTROL_MSR, IA32_VMX_BASIC, IA32_VMX_PROCBASED_CTLS, IA32_VMX_PROCBASED_CTLS2, KINDS, arbCapabilityMsrs, hex,
  realModel, realModels, type FakeMsrs,
} from './fixtures.ts';

// Control bits used below, written out from SDM Vol. 3C, "VM-Execution Control Fields", "VM-Exit Control
// Fields" and "VM-Entry Control Fields".
const bit = (n: number) => 2 ** n;
const PIN_NMI_EXITING = bit(3);
const PIN_VIRTUAL_NMIS = bit(5);
const PIN_PREEMPTION_TIMER = bit(6);
const PROC_HLT_EXITING = bit(7);
const PROC_CR3_LOAD_EXITING = bit(15);
const PROC_CR3_STORE_EXITING = bit(16);
const PROC_USE_MSR_BITMAPS = bit(28);
const PROC_ACTIVATE_SECONDARY = bit(31);
const PROC2_ENABLE_EPT = bit(1);
const PROC2_UNRESTRICTED_GUEST = bit(7);
const EXIT_SAVE_DEBUG_CONTROLS = bit(2);
const EXIT_HOST_ADDR_SPACE_SIZE = bit(9);
const EXIT_SAVE_EFER = bit(20);
const EXIT_LOAD_EFER = bit(21);

function describeResult(r: AdjustResult): string {
  return r.ok ? `{ ok: true, value: ${hex(r.value)} }` : `{ ok: false, errors: ${JSON.stringify(r.errors)} }`;
}

function noFaults(m: FakeMsrs): void {
  if (m.faults.length === 0) return;
  expect(m.faults.map(hex), `${m.name}: your code read MSR(s) this processor does not implement — real hardware raises #GP and the kernel oopses`).toEqual([]);
}

/** What the emulator's own decoder (src/vmx/capabilities.ts) says VM entry will check for `kind`. */
const decoded = new WeakMap<ReadonlyMap<number, bigint>, ReturnType<typeof decodeCapabilities>>();
function oracle(m: FakeMsrs, kind: ControlKind): { allowed: AllowedSettings; msr: number } {
  let caps = decoded.get(m.msrs);
  if (caps === undefined) decoded.set(m.msrs, (caps = decodeCapabilities(m.msrs)));
  if (kind === 'proc2') {
    const available = caps.procbased2 !== null;
    return { allowed: caps.effective.proc2, msr: available ? IA32_VMX_PROCBASED_CTLS2 : IA32_VMX_PROCBASED_CTLS };
  }
  const msr = caps.basic.trueCtls ? (CONTROL_MSR[kind].true as number) : CONTROL_MSR[kind].plain;
  return { allowed: caps.effective[kind], msr };
}

/** The result adjustControls must return, computed from the oracle's allowed settings. */
function expectedResult(m: FakeMsrs, kind: ControlKind, wanted: number, unwanted: number): AdjustResult {
  const { allowed, msr } = oracle(m, kind);
  const cannotSet = (wanted & ~allowed.allowed1) >>> 0;
  const cannotClear = (unwanted & allowed.allowed0) >>> 0;
  if (cannotSet === 0 && cannotClear === 0) return { ok: true, value: (wanted | allowed.allowed0) >>> 0 };
  const errors: ControlError[] = [];
  for (let b = 0; b < 32; b++) {
    const reason: ControlError['reason'] | null = (cannotSet >>> b) & 1 ? 'not allowed to be 1' : (cannotClear >>> b) & 1 ? 'must be 1' : null;
    if (reason === null) continue;
    const name = CONTROL_BITS.find((c) => c.field === kind && c.bit === b)?.name;
    errors.push(name === undefined ? { bit: b, msr, reason } : { bit: b, name, msr, reason });
  }
  return { ok: false, errors };
}

/** Compare one adjustControls call with the independent expectation; explain the first difference. */
function check(m: FakeMsrs, kind: ControlKind, wanted: number, unwanted: number): void {
  const r = adjustControls(m.rdmsr, kind, wanted, unwanted);
  noFaults(m);
  const expected = expectedResult(m, kind, wanted, unwanted);
  if (describeResult(r) === describeResult(expected)) return; // the common case, kept cheap
  const { allowed, msr } = oracle(m, kind);
  const where = `${m.name}, ${kind}: wanted ${hex(wanted)}, unwanted ${hex(unwanted)} (allowed-0 ${hex(allowed.allowed0 >>> 0)}, allowed-1 ${hex(allowed.allowed1 >>> 0)} from MSR ${hex(msr)})`;
  if (expected.ok) {
    expect(r.ok, `${where}: every request can be met, expected ok; got ${describeResult(r)}`).toBe(true);
    if (!r.ok) return;
    expect(r.value, `${where}: the value must be an unsigned 32-bit number`).toBe(r.value >>> 0);
    expect(hex((r.value & allowed.allowed0) >>> 0), `${where}: every must-be-1 (allowed-0) bit must be set`).toBe(hex(allowed.allowed0 >>> 0));
    expect(hex((r.value & ~allowed.allowed1) >>> 0), `${where}: no bit outside allowed-1 may be set`).toBe('0x0');
    expect(hex((r.value & wanted) >>> 0), `${where}: every wanted bit must be set`).toBe(hex(wanted >>> 0));
    expect(hex((r.value & unwanted) >>> 0), `${where}: no unwanted bit may be set`).toBe('0x0');
    expect(hex(r.value), `${where}: exactly the wanted bits plus the must-be-1 bits`).toBe(hex(expected.value));
  } else {
    expect(r.ok, `${where}: some request cannot be met, expected ok: false with errors; got ${describeResult(r)}`).toBe(false);
    if (r.ok) return;
    expect(r.errors, `${where}: one error per offending bit, in bit order, naming the bit, the control and the MSR`).toEqual(expected.errors);
  }
  expect(r, where).toEqual(expected);
}

const arbRequest = fc.tuple(fc.integer({ min: 0, max: 0xffffffff }), fc.integer({ min: 0, max: 0xffffffff }))
  .map(([w, u]) => ({ wanted: w >>> 0, unwanted: (u & ~w) >>> 0 }));

describe('controlMsr: which capability MSR to trust', () => {
  test('a CPU with IA32_VMX_BASIC[55] = 1 (Skylake i5-6300U) uses the TRUE_* MSRs for pin, proc, exit, entry', () => {
    const m = realModel('skylake-i5-6300u');
    expect([controlMsr(m.rdmsr, 'pin'), controlMsr(m.rdmsr, 'proc'), controlMsr(m.rdmsr, 'exit'), controlMsr(m.rdmsr, 'entry')].map(hex), 'IA32_VMX_BASIC = 00DA0400_00000004: bit 55 = 1, so pin, proc, exit, entry use IA32_VMX_TRUE_*_CTLS (48DH–490H)')
      .toEqual(['0x48d', '0x48e', '0x48f', '0x490']);
    expect(hex(controlMsr(m.rdmsr, 'proc2')), 'the secondary controls have no TRUE variant').toBe('0x48b');
    noFaults(m);
  });
  test('a CPU with IA32_VMX_BASIC[55] = 0 (Core 2 Duo T9600) has no TRUE_* MSRs: use 481H–484H', () => {
    const m = realModel('penryn-core2-duo-t9600');
    expect([controlMsr(m.rdmsr, 'pin'), controlMsr(m.rdmsr, 'proc'), controlMsr(m.rdmsr, 'exit'), controlMsr(m.rdmsr, 'entry')].map(hex), 'IA32_VMX_BASIC bit 55 = 0: the TRUE_* MSRs do not exist, use IA32_VMX_PINBASED/PROCBASED/EXIT/ENTRY_CTLS (481H–484H)')
      .toEqual(['0x481', '0x482', '0x483', '0x484']);
    expect(hex(controlMsr(m.rdmsr, 'proc2')), 'the secondary controls are always IA32_VMX_PROCBASED_CTLS2 (48BH)').toBe('0x48b');
    noFaults(m);
  });
  test('agrees with BASIC[55] on every model, real and generated', () => {
    const one = (m: FakeMsrs) => {
      const trueCtls = ((m.msrs.get(IA32_VMX_BASIC) ?? 0n) >> 55n) & 1n;
      for (const kind of KINDS) {
        const expected = kind === 'proc2' ? IA32_VMX_PROCBASED_CTLS2 : trueCtls ? CONTROL_MSR[kind].true : CONTROL_MSR[kind].plain;
        expect(hex(controlMsr(m.rdmsr, kind)), `${m.name}, ${kind} (BASIC[55] = ${trueCtls})`).toBe(hex(expected ?? -1));
      }
      noFaults(m);
    };
    for (const m of realModels()) one(m);
    fc.assert(fc.property(arbCapabilityMsrs(), one));
  });
});

describe('adjustControls on real processors (hand-checked)', () => {
  test('pin-based: NMI exiting is bit 3, virtual NMIs bit 5, the preemption timer bit 6 (Skylake has all three)', () => {
    const m = realModel('skylake-i5-6300u');
    // TRUE_PINBASED allowed-0 = 0x16 (bits 1, 2, 4 are default1 and must stay 1) | 0x08 | 0x20 | 0x40.
    expect(describeResult(adjustControls(m.rdmsr, 'pin', PIN_NMI_EXITING | PIN_VIRTUAL_NMIS | PIN_PREEMPTION_TIMER)), 'wanted bits 3, 5, 6 (0x68) plus TRUE_PINBASED allowed-0 0x16')
      .toBe(describeResult({ ok: true, value: 0x7e }));
    noFaults(m);
  });
  test('pin-based: a Core 2 (Penryn) has no VMX-preemption timer — the request fails, naming bit 6', () => {
    const m = realModel('penryn-core2-duo-t9600');
    const r = adjustControls(m.rdmsr, 'pin', PIN_NMI_EXITING | PIN_VIRTUAL_NMIS | PIN_PREEMPTION_TIMER);
    expect(r, 'IA32_VMX_PINBASED_CTLS = 0000003F_00000016: allowed-1 has no bit 6, so asking for the preemption timer is an error — never drop it silently').toEqual({ ok: false, errors: [{ bit: 6, name: 'PIN_BASED_VMX_PREEMPTION_TIMER', msr: 0x481, reason: 'not allowed to be 1' }] });
    noFaults(m);
  });
  test('CR3-load/store exiting are default1: clearable with the TRUE MSR (Skylake) ...', () => {
    const m = realModel('skylake-i5-6300u');
    const r = adjustControls(m.rdmsr, 'proc', PROC_HLT_EXITING | PROC_USE_MSR_BITMAPS | PROC_ACTIVATE_SECONDARY,
      PROC_CR3_LOAD_EXITING | PROC_CR3_STORE_EXITING);
    // TRUE_PROCBASED allowed-0 = 0x04006172; plus HLT exiting, MSR bitmaps, activate secondary controls.
    expect(describeResult(r), 'BASIC[55] = 1: use IA32_VMX_TRUE_PROCBASED_CTLS (48EH), whose allowed-0 lets bits 15 and 16 be 0').toBe(describeResult({ ok: true, value: 0x940061f2 }));
    noFaults(m);
  });
  test('... but must be 1 on a CPU without TRUE MSRs (Penryn): report it, do not pretend', () => {
    const m = realModel('penryn-core2-duo-t9600');
    const r = adjustControls(m.rdmsr, 'proc', PROC_HLT_EXITING, PROC_CR3_LOAD_EXITING | PROC_CR3_STORE_EXITING);
    expect(r, 'BASIC[55] = 0: IA32_VMX_PROCBASED_CTLS (0401E172H allowed-0) is the truth, and it forces bits 15 and 16 to 1').toEqual({
      ok: false,
      errors: [
        { bit: 15, name: 'CPU_BASED_CR3_LOAD_EXITING', msr: 0x482, reason: 'must be 1' },
        { bit: 16, name: 'CPU_BASED_CR3_STORE_EXITING', msr: 0x482, reason: 'must be 1' },
      ],
    });
    noFaults(m);
  });
  test('default1 bits you did not mention are set silently (Penryn: CR3-load/store exiting stay on)', () => {
    const m = realModel('penryn-core2-duo-t9600');
    // PROCBASED_CTLS allowed-0 = 0x0401e172 (includes bits 15 and 16) | HLT exiting.
    expect(describeResult(adjustControls(m.rdmsr, 'proc', PROC_HLT_EXITING)), 'HLT exiting (bit 7, 0x80) plus PROCBASED_CTLS allowed-0 0x0401e172').toBe(describeResult({ ok: true, value: 0x0401e1f2 }));
    noFaults(m);
  });
  test('VM-exit controls: Penryn must save debug controls and cannot save/load IA32_EFER', () => {
    const wanted = EXIT_HOST_ADDR_SPACE_SIZE | EXIT_SAVE_EFER | EXIT_LOAD_EFER;
    const sky = realModel('skylake-i5-6300u');
    // TRUE_EXIT allowed-0 = 0x36dfb (bit 2 clear) | bits 9, 20, 21.
    expect(describeResult(adjustControls(sky.rdmsr, 'exit', wanted, EXIT_SAVE_DEBUG_CONTROLS)), 'Skylake: IA32_VMX_TRUE_EXIT_CTLS allows "save debug controls" (bit 2) to be 0').toBe(describeResult({ ok: true, value: 0x336ffb }));
    const pen = realModel('penryn-core2-duo-t9600');
    expect(adjustControls(pen.rdmsr, 'exit', wanted, EXIT_SAVE_DEBUG_CONTROLS), 'Penryn: IA32_VMX_EXIT_CTLS = 0003FFFF_00036DFF').toEqual({
      ok: false,
      errors: [
        { bit: 2, name: 'VM_EXIT_SAVE_DEBUG_CONTROLS', msr: 0x483, reason: 'must be 1' },
        { bit: 20, name: 'VM_EXIT_SAVE_IA32_EFER', msr: 0x483, reason: 'not allowed to be 1' },
        { bit: 21, name: 'VM_EXIT_LOAD_IA32_EFER', msr: 0x483, reason: 'not allowed to be 1' },
      ],
    });
    noFaults(sky);
    noFaults(pen);
  });
  test('secondary controls: Penryn has no EPT; Nehalem has EPT but no unrestricted guest; Ivy Bridge has both', () => {
    const pen = realModel('penryn-core2-duo-t9600');
    expect(adjustControls(pen.rdmsr, 'proc2', PROC2_ENABLE_EPT), 'Penryn: IA32_VMX_PROCBASED_CTLS2 = 00000041_00000000 (no bit 1)').toEqual({
      ok: false, errors: [{ bit: 1, name: 'SECONDARY_EXEC_ENABLE_EPT', msr: 0x48b, reason: 'not allowed to be 1' }],
    });
    const neh = realModel('nehalem-lynnfield-i7-870');
    expect(adjustControls(neh.rdmsr, 'proc2', PROC2_ENABLE_EPT | PROC2_UNRESTRICTED_GUEST), 'Nehalem: IA32_VMX_PROCBASED_CTLS2 = 0000007F_00000000 (no bit 7)').toEqual({
      ok: false, errors: [{ bit: 7, name: 'SECONDARY_EXEC_UNRESTRICTED_GUEST', msr: 0x48b, reason: 'not allowed to be 1' }],
    });
    const ivb = realModel('ivybridge-i5-3320m');
    expect(describeResult(adjustControls(ivb.rdmsr, 'proc2', PROC2_ENABLE_EPT | PROC2_UNRESTRICTED_GUEST)), 'Ivy Bridge: IA32_VMX_PROCBASED_CTLS2 allows bits 1 (EPT) and 7 (unrestricted guest)').toBe(describeResult({ ok: true, value: 0x82 }));
    for (const m of [pen, neh, ivb]) noFaults(m);
  });
  test('asking for nothing gives exactly the must-be-1 bits', () => {
    const m = realModel('skylake-i5-6300u');
    expect(describeResult(adjustControls(m.rdmsr, 'entry', 0)), 'Skylake: IA32_VMX_TRUE_ENTRY_CTLS allowed-0 = 11FBH').toBe(describeResult({ ok: true, value: 0x11fb }));
    expect(describeResult(adjustControls(m.rdmsr, 'proc2', 0)), 'IA32_VMX_PROCBASED_CTLS2 allowed-0 is 0: no secondary control must be 1').toBe(describeResult({ ok: true, value: 0 }));
    noFaults(m);
  });
});

describe('adjustControls on every CPU model (differential against the emulator\'s decoder)', () => {
  for (const kind of KINDS) {
    test(`${kind}: random requests`, () => {
      for (const m of realModels()) {
        fc.assert(fc.property(arbRequest, ({ wanted, unwanted }) => check(m, kind, wanted, unwanted)), { numRuns: 20 });
      }
    });
    test(`${kind}: requests the processor can meet always succeed`, () => {
      for (const m of realModels()) {
        const { allowed } = oracle(m, kind);
        fc.assert(fc.property(arbRequest, ({ wanted, unwanted }) => {
          const w = (wanted & allowed.allowed1) >>> 0;
          const u = (unwanted & ~allowed.allowed0 & ~w) >>> 0;
          check(m, kind, w, u);
        }), { numRuns: 20 });
      }
    });
  }
  test('each single control bit, wanted and unwanted, on every model', () => {
    // Models with identical capability MSRs are checked once.
    const seen = new Set<string>();
    for (const m of realModels()) {
      const key = [...m.msrs].filter(([i]) => i >= 0x480 && i <= 0x491).map(([i, v]) => `${i}:${v}`).join(',');
      if (seen.has(key)) continue;
      seen.add(key);
      for (const kind of KINDS) {
        for (let b = 0; b < 32; b++) {
          check(m, kind, bit(b), 0);
          check(m, kind, 0, bit(b));
        }
      }
    }
  });
});

describe('adjustControls on generated processors you have never seen', () => {
  for (const [label, opts] of [
    ['with TRUE MSRs and secondary controls', { trueCtls: true, secondary: true }],
    ['without TRUE MSRs (BASIC[55] = 0)', { trueCtls: false }],
    ['without secondary controls (PROCBASED_CTLS bit 63 = 0)', { secondary: false }],
  ] as const) {
    test(label, () => {
      fc.assert(fc.property(arbCapabilityMsrs(opts), fc.constantFrom(...KINDS), arbRequest, fc.boolean(), (m, kind, req, feasible) => {
        if (!feasible) return check(m, kind, req.wanted, req.unwanted);
        const { allowed } = oracle(m, kind);
        const w = (req.wanted & allowed.allowed1) >>> 0;
        check(m, kind, w, (req.unwanted & ~allowed.allowed0 & ~w) >>> 0);
      }), { numRuns: 300 });
    });
  }
});

import { describe, expect, test } from 'vitest';
import fc from 'fast-check';
import { adjustCr0, adjustCr4, checkCr0, checkCr4, type FixedBitViolation } from '#impl/03-capabilities/fixed-bits';
import { decodeCapabilities } from '#src/vmx/capabilities';
import {
  IA32_VMX_CR0_FIXED0, IA32_VMX_CR0_FIXED1, IA32_VMX_CR4_FIXED0, IA32_VMX_CR4_FIXED1, arbCapabilityMsrs, hex,
  realModel, realModels, type FakeMsrs,
} from './fixtures.ts';

// CR bits, from SDM Vol. 3A, "Control Registers".
const PE = 1n << 0n, MP = 1n << 1n, ET = 1n << 4n, NE = 1n << 5n, WP = 1n << 16n, AM = 1n << 18n, PG = 1n << 31n;
const PAE = 1n << 5n, PGE = 1n << 7n, OSFXSR = 1n << 9n, OSXMMEXCPT = 1n << 10n, UMIP = 1n << 11n, VMXE = 1n << 13n;
const PKE = 1n << 22n;
/** A typical Linux x86-64 CR0: PG | AM | WP | NE | ET | MP | PE. */
const LINUX_CR0 = PG | AM | WP | NE | ET | MP | PE;
const UNRESTRICTED = { unrestrictedGuest: true } as const;
const U64 = (1n << 64n) - 1n;
const arbU64 = fc.bigInt({ min: 0n, max: U64 });

function noFaults(m: FakeMsrs): void {
  if (m.faults.length === 0) return;
  expect(m.faults.map(hex), `${m.name}: your code read MSR(s) this processor does not implement (#GP on hardware)`).toEqual([]);
}

const decoded = new WeakMap<ReadonlyMap<number, bigint>, ReturnType<typeof decodeCapabilities>>();
/** FIXED0/FIXED1 as the emulator's decoder (src/vmx/capabilities.ts) reads them. */
function fixed(m: FakeMsrs, reg: 'CR0' | 'CR4'): { f0: bigint; f1: bigint } {
  let caps = decoded.get(m.msrs);
  if (caps === undefined) decoded.set(m.msrs, (caps = decodeCapabilities(m.msrs)));
  return reg === 'CR0' ? { f0: caps.cr0Fixed0, f1: caps.cr0Fixed1 } : { f0: caps.cr4Fixed0, f1: caps.cr4Fixed1 };
}

function expectedViolations(m: FakeMsrs, reg: 'CR0' | 'CR4', value: bigint, exempt: bigint): { bit: number; reason: string; msr: number; register: string }[] {
  const { f0, f1 } = fixed(m, reg);
  const out = [];
  for (let bit = 0; bit < 64; bit++) {
    const b = 1n << BigInt(bit);
    if ((exempt & b) !== 0n) continue;
    if ((f0 & b) !== 0n && (value & b) === 0n) out.push({ register: reg, bit, reason: 'must be 1', msr: reg === 'CR0' ? IA32_VMX_CR0_FIXED0 : IA32_VMX_CR4_FIXED0 });
    else if ((f1 & b) === 0n && (value & b) !== 0n) out.push({ register: reg, bit, reason: 'must be 0', msr: reg === 'CR0' ? IA32_VMX_CR0_FIXED1 : IA32_VMX_CR4_FIXED1 });
  }
  return out;
}

const NAME = /^(CR[04])(?:\.([A-Z0-9_]+)| bit (\d+))$/;
function checkName(v: FixedBitViolation): void {
  const m = NAME.exec(v.name);
  if (m !== null && m[1] === v.register && (m[3] === undefined || Number(m[3]) === v.bit)) return;
  expect(m, `name '${v.name}' should look like 'CR0.PE' or 'CR4 bit 15'`).not.toBeNull();
  if (m === null) return;
  expect(m[1], `name '${v.name}' names the wrong register`).toBe(v.register);
  if (m[3] !== undefined) expect(Number(m[3]), `name '${v.name}' names the wrong bit`).toBe(v.bit);
}

const strip = (vs: readonly FixedBitViolation[]) => vs.map(({ register, bit, reason, msr }) => ({ register, bit, reason, msr }));
const same = (a: unknown, b: unknown) => JSON.stringify(a) === JSON.stringify(b);

/** Everything the fixed-bit rule says about one value, on one model. */
function checkAll(m: FakeMsrs, cr0: bigint, cr4: bigint, unrestricted: boolean): void {
  const opts = unrestricted ? UNRESTRICTED : {};
  const exempt = unrestricted ? PE | PG : 0n;
  const c0 = fixed(m, 'CR0');
  const c4 = fixed(m, 'CR4');

  const a0 = adjustCr0(m.rdmsr, cr0, opts);
  const a4 = adjustCr4(m.rdmsr, cr4);
  const v0 = checkCr0(m.rdmsr, cr0, opts);
  const v4 = checkCr4(m.rdmsr, cr4);
  const r0 = checkCr0(m.rdmsr, a0, opts);
  const r4 = checkCr4(m.rdmsr, a4);
  noFaults(m);
  const expected0 = (((cr0 | c0.f0) & c0.f1) & ~exempt) | (cr0 & exempt);
  const expected4 = (cr4 | c4.f0) & c4.f1;
  const ev0 = expectedViolations(m, 'CR0', cr0, exempt);
  const ev4 = expectedViolations(m, 'CR4', cr4, 0n);
  for (const v of [...v0, ...v4]) checkName(v);
  // The common case stays cheap; on a difference, say which rule was broken.
  if (a0 === expected0 && a4 === expected4 && same(strip(v0), ev0) && same(strip(v4), ev4) && r0.length === 0 && r4.length === 0) return;

  const where = `${m.name}: CR0 FIXED0 ${hex(c0.f0)} FIXED1 ${hex(c0.f1)}, CR4 FIXED0 ${hex(c4.f0)} FIXED1 ${hex(c4.f1)}`;
  const ug = unrestricted ? ', unrestricted guest' : '';
  expect(hex(a0), `${where}: adjustCr0(${hex(cr0)}${ug}) — set what FIXED0 requires, clear what FIXED1 forbids, keep the rest${unrestricted ? ' (PE and PG are not checked: keep them as given)' : ''}`).toBe(hex(expected0));
  expect(hex(a4), `${where}: adjustCr4(${hex(cr4)}) — set what FIXED0 requires (VMXE!), clear what FIXED1 forbids, keep the rest`).toBe(hex(expected4));
  expect(strip(v0), `${where}: checkCr0(${hex(cr0)}${ug}) — one violation per offending bit, in bit order`).toEqual(ev0);
  expect(strip(v4), `${where}: checkCr4(${hex(cr4)}) — one violation per offending bit, in bit order`).toEqual(ev4);
  expect(r0, `${where}: checkCr0(adjustCr0(${hex(cr0)})${ug}) should be empty`).toEqual([]);
  expect(r4, `${where}: checkCr4(adjustCr4(${hex(cr4)})) should be empty`).toEqual([]);
}

describe('adjustCr0 / adjustCr4 (hand-checked, Skylake i5-6300U: CR0 FIXED0 80000021H, CR4 FIXED0 2000H)', () => {
  test('CR0 = 0 becomes PG | NE | PE; CR4 = 0 becomes VMXE', () => {
    const m = realModel('skylake-i5-6300u');
    expect(hex(adjustCr0(m.rdmsr, 0n)), 'adjustCr0(0): IA32_VMX_CR0_FIXED0 = 80000021H forces PG, NE and PE to 1').toBe('0x80000021');
    expect(hex(adjustCr4(m.rdmsr, 0n)), 'adjustCr4(0): IA32_VMX_CR4_FIXED0 = 2000H forces VMXE (bit 13) to 1').toBe('0x2000');
    noFaults(m);
  });
  test('with "unrestricted guest", PE and PG are left alone: a real-mode guest CR0 of 0 only gains NE', () => {
    const m = realModel('skylake-i5-6300u');
    expect(hex(adjustCr0(m.rdmsr, 0n, UNRESTRICTED)), 'adjustCr0(0, unrestricted guest): PE and PG are exempt, only NE (bit 5) is forced').toBe('0x20');
    expect(hex(adjustCr0(m.rdmsr, PG | PE, UNRESTRICTED)), 'adjustCr0(PG | PE, unrestricted guest): PE and PG are kept as given, NE is forced').toBe('0x80000021');
    noFaults(m);
  });
  test('a typical Linux CR0 (80050033H) is already legal on every model', () => {
    for (const m of realModels()) {
      expect(hex(adjustCr0(m.rdmsr, LINUX_CR0)), m.name).toBe('0x80050033');
      expect(checkCr0(m.rdmsr, LINUX_CR0), m.name).toEqual([]);
      noFaults(m);
    }
  });
  test('bits 63:32 of CR0 are cleared (FIXED1 is FFFFFFFFH)', () => {
    const m = realModel('skylake-i5-6300u');
    expect(hex(adjustCr0(m.rdmsr, (1n << 40n) | LINUX_CR0)), 'adjustCr0(0x10080050033): bit 40 is 0 in IA32_VMX_CR0_FIXED1 (FFFFFFFFH), so it is cleared').toBe('0x80050033');
    noFaults(m);
  });
});

describe('checkCr0 / checkCr4 (hand-checked)', () => {
  test('CR4 without VMXE: VMXON would #GP — the checker names CR4.VMXE and IA32_VMX_CR4_FIXED0', () => {
    const m = realModel('skylake-i5-6300u');
    expect(checkCr4(m.rdmsr, PAE | PGE | OSFXSR | OSXMMEXCPT), 'checkCr4(0x6a0): VMXE (bit 13) is 1 in IA32_VMX_CR4_FIXED0 (488H) but 0 here').toEqual([
      { register: 'CR4', bit: 13, name: 'CR4.VMXE', reason: 'must be 1', msr: 0x488 },
    ]);
    noFaults(m);
  });
  test('Skylake CR4 FIXED1 (3767FFH) has no UMIP and no PKE', () => {
    const m = realModel('skylake-i5-6300u');
    expect(checkCr4(m.rdmsr, VMXE | PAE | UMIP | PKE), 'checkCr4(0x402820): bits 11 (UMIP) and 22 (PKE) are 0 in IA32_VMX_CR4_FIXED1 (489H) = 3767FFH').toEqual([
      { register: 'CR4', bit: 11, name: 'CR4.UMIP', reason: 'must be 0', msr: 0x489 },
      { register: 'CR4', bit: 22, name: 'CR4.PKE', reason: 'must be 0', msr: 0x489 },
    ]);
    noFaults(m);
  });
  test('CR0 with paging off: PG and PE must be 1 — unless the guest is unrestricted', () => {
    const m = realModel('skylake-i5-6300u');
    expect(checkCr0(m.rdmsr, NE | ET), 'checkCr0(0x30): PE (bit 0) and PG (bit 31) are 1 in IA32_VMX_CR0_FIXED0 (486H) = 80000021H').toEqual([
      { register: 'CR0', bit: 0, name: 'CR0.PE', reason: 'must be 1', msr: 0x486 },
      { register: 'CR0', bit: 31, name: 'CR0.PG', reason: 'must be 1', msr: 0x486 },
    ]);
    expect(checkCr0(m.rdmsr, ET), 'checkCr0(0x10): PE, NE and PG are all missing, in bit order').toEqual([
      { register: 'CR0', bit: 0, name: 'CR0.PE', reason: 'must be 1', msr: 0x486 },
      { register: 'CR0', bit: 5, name: 'CR0.NE', reason: 'must be 1', msr: 0x486 },
      { register: 'CR0', bit: 31, name: 'CR0.PG', reason: 'must be 1', msr: 0x486 },
    ]);
    expect(checkCr0(m.rdmsr, NE | ET, UNRESTRICTED), 'checkCr0(0x30, unrestricted guest): PE and PG are exempt, NE is set').toEqual([]);
    expect(checkCr0(m.rdmsr, ET, UNRESTRICTED), 'checkCr0(0x10, unrestricted guest): only NE is missing').toEqual([
      { register: 'CR0', bit: 5, name: 'CR0.NE', reason: 'must be 1', msr: 0x486 },
    ]);
    noFaults(m);
  });
  test('CR0 bit 40 is reserved: must be 0, named by number', () => {
    const m = realModel('penryn-core2-duo-t9600');
    expect(checkCr0(m.rdmsr, LINUX_CR0 | (1n << 40n)), 'checkCr0(0x10080050033): bit 40 has no name, and is 0 in IA32_VMX_CR0_FIXED1 (487H) = FFFFFFFFH').toEqual([
      { register: 'CR0', bit: 40, name: 'CR0 bit 40', reason: 'must be 0', msr: 0x487 },
    ]);
    noFaults(m);
  });
});

describe('the fixed-bit rule on every CPU model and on generated ones', () => {
  test('every real model, random CR0/CR4 values, with and without "unrestricted guest"', () => {
    for (const m of realModels()) {
      fc.assert(fc.property(arbU64, arbU64, fc.boolean(), (cr0, cr4, u) => checkAll(m, cr0, cr4, u)), { numRuns: 30 });
      // Values close to the boundary: only the fixed bits, or everything.
      for (const u of [false, true]) {
        checkAll(m, 0n, 0n, u);
        checkAll(m, U64, U64, u);
        checkAll(m, fixed(m, 'CR0').f0, fixed(m, 'CR4').f0, u);
        checkAll(m, fixed(m, 'CR0').f1, fixed(m, 'CR4').f1, u);
      }
    }
  });
  test('generated models (FIXED0 ⊆ FIXED1, random flexible bits)', () => {
    fc.assert(fc.property(arbCapabilityMsrs(), arbU64, arbU64, fc.boolean(), (m, cr0, cr4, u) => checkAll(m, cr0, cr4, u)), { numRuns: 300 });
  });
  test('generated models, values near legal (a few bits away from the adjusted value)', () => {
    fc.assert(fc.property(arbCapabilityMsrs(), arbU64, fc.integer({ min: 0, max: 63 }), fc.integer({ min: 0, max: 63 }), fc.boolean(), (m, x, i, j, u) => {
      const c0 = fixed(m, 'CR0');
      const c4 = fixed(m, 'CR4');
      const legal0 = (x | c0.f0) & c0.f1;
      const legal4 = (x | c4.f0) & c4.f1;
      checkAll(m, legal0 ^ (1n << BigInt(i)), legal4 ^ (1n << BigInt(j)), u);
    }), { numRuns: 300 });
  });
});

// Valid guests other than 64-bit ones must enter too: a real-mode guest with "unrestricted guest", a
// virtual-8086 guest, and a 32-bit PAE guest whose PDPTEs come from memory. These catch rules that are too strict.
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { CPU_MODELS } from '../../machine/cpu-model.ts';
import { vmEntry } from './index.ts';
import { buildValidVmcs, setSegment, validEptp, vmcsChoices, type Fixture } from '../testing/vmcs-fixture.ts';
import { VMX_CONTROL as C } from '../controls.ts';
import { CR0, CR4 } from '../../x86/control-registers.ts';
import { RFLAGS } from '../../x86/flags.ts';
import { AR } from '../../x86/segments.ts';

const SEGS6 = ['CS', 'SS', 'DS', 'ES', 'FS', 'GS'] as const;
const byName = (n: string) => CPU_MODELS.find((m) => m.name === n)!;
const describeOut = (o: ReturnType<typeof vmEntry>): string => (o.kind === 'entered' ? 'entered' : `${o.kind}: ${o.diagnosis.rule} — ${o.diagnosis.message}`);

/** Leave IA-32e mode: "IA-32e mode guest" 0, EFER (if loaded) 0, RIP within 32 bits. */
function legacyGuest(f: Fixture, rip: bigint): void {
  f.clear('VM_ENTRY_CONTROLS', C.VM_ENTRY_IA32E_MODE);
  f.set('GUEST_IA32_EFER', 0);
  f.set('GUEST_RIP', rip);
  f.clear('GUEST_CR4', CR4.PCIDE);
}

describe('valid guests outside 64-bit mode', () => {
  const ugModels = CPU_MODELS.filter((m) => {
    const f = buildValidVmcs(m, fc.sample(vmcsChoices(), { seed: 1, numRuns: 1 })[0]!);
    return f.canSet('proc2', C.SECONDARY_EXEC_UNRESTRICTED_GUEST | C.SECONDARY_EXEC_ENABLE_EPT) && f.canSet('proc', C.CPU_BASED_ACTIVATE_SECONDARY_CONTROLS);
  }).map((m) => m.name);

  it('a real-mode guest with "unrestricted guest" (CR0.PE = PG = 0, CS type 3) enters', () => {
    expect(ugModels.length).toBeGreaterThan(5);
    fc.assert(fc.property(fc.constantFrom(...ugModels), vmcsChoices(), fc.integer({ min: 0, max: 0xffff }), (name, c, seg) => {
      const f = buildValidVmcs(byName(name), c);
      f.or('SECONDARY_VM_EXEC_CONTROL', C.SECONDARY_EXEC_ENABLE_EPT | C.SECONDARY_EXEC_UNRESTRICTED_GUEST);
      f.set('EPT_POINTER', validEptp(f.caps, f.page(3)));
      legacyGuest(f, 0xfff0n);
      f.clear('GUEST_CR0', CR0.PE | CR0.PG);
      f.clear('GUEST_CR4', CR4.PAE);
      for (const s of SEGS6) setSegment(f.vmcs, s, s === 'CS' ? 0xf000 : seg, BigInt(s === 'CS' ? 0xf000 : seg) << 4n, 0xffff, 0x93);
      setSegment(f.vmcs, 'TR', 0, 0n, 0xffff, 0x8b);
      f.set('GUEST_RFLAGS', RFLAGS.FIXED1);
      const out = vmEntry(f.ctx);
      expect(out.kind, describeOut(out)).toBe('entered');
      expect(f.cpu.cr0 & BigInt(CR0.PE)).toBe(0n);
    }), { seed: 61, numRuns: 60 });
  });

  it('a virtual-8086 guest (RFLAGS.VM = 1, segments base = selector × 16, limit FFFFH, F3H) enters', () => {
    fc.assert(fc.property(fc.constantFrom(...CPU_MODELS.map((m) => m.name)), vmcsChoices(), fc.array(fc.integer({ min: 0, max: 0xffff }), { minLength: 6, maxLength: 6 }), (name, c, sels) => {
      const f = buildValidVmcs(byName(name), c);
      legacyGuest(f, 0x1234n);
      f.clear('GUEST_CR4', CR4.PAE); // 32-bit paging
      SEGS6.forEach((s, i) => setSegment(f.vmcs, s, sels[i]!, BigInt(sels[i]!) << 4n, 0xffff, 0xf3));
      f.set('GUEST_RFLAGS', RFLAGS.FIXED1 | RFLAGS.VM | RFLAGS.IF);
      const out = vmEntry(f.ctx);
      expect(out.kind, describeOut(out)).toBe('entered');
    }), { seed: 62, numRuns: 60 });
  });

  it('a 32-bit PAE guest without EPT enters and gets its PDPTEs from memory at CR3[31:5]', () => {
    fc.assert(fc.property(fc.constantFrom(...CPU_MODELS.map((m) => m.name)), vmcsChoices(), fc.array(fc.boolean(), { minLength: 4, maxLength: 4 }), (name, c, present) => {
      const f = buildValidVmcs(byName(name), { ...c, ept: false });
      f.clear('SECONDARY_VM_EXEC_CONTROL', C.SECONDARY_EXEC_ENABLE_EPT);
      legacyGuest(f, 0x401000n);
      setSegment(f.vmcs, 'CS', Number(f.get('GUEST_CS_SELECTOR')), 0n, 0xffffffff, (Number(f.get('GUEST_CS_AR_BYTES')) & ~AR.L) | AR.DB);
      const cr3 = f.page(9) | 0x20n;
      f.set('GUEST_CR3', cr3);
      const pdptes = present.map((p, i) => (p ? f.page(i) | 1n : 0n));
      pdptes.forEach((e, i) => f.cpu.writePhysical64((cr3 & 0xffffffe0n) + BigInt(8 * i), e));
      const out = vmEntry(f.ctx);
      expect(out.kind, describeOut(out)).toBe('entered');
      expect(f.cpu.pdptes).toEqual(pdptes);
    }), { seed: 63, numRuns: 60 });
  });
});

describe('event injection and the deliver-error-code bit', () => {
  it('#GP into a real-mode unrestricted guest must not deliver an error code; into a protected-mode guest it must', () => {
    const name = 'skylake-i5-6300u';
    const make = (): Fixture => {
      const f = buildValidVmcs(byName(name), fc.sample(vmcsChoices(), { seed: 4, numRuns: 1 })[0]!);
      f.or('SECONDARY_VM_EXEC_CONTROL', C.SECONDARY_EXEC_ENABLE_EPT | C.SECONDARY_EXEC_UNRESTRICTED_GUEST);
      f.set('EPT_POINTER', validEptp(f.caps, f.page(3)));
      legacyGuest(f, 0x7c00n);
      f.clear('GUEST_CR0', CR0.PE | CR0.PG);
      f.clear('GUEST_CR4', CR4.PAE);
      for (const s of SEGS6) setSegment(f.vmcs, s, 0, 0n, 0xffff, 0x93);
      setSegment(f.vmcs, 'TR', 0, 0n, 0xffff, 0x8b);
      f.set('GUEST_RFLAGS', RFLAGS.FIXED1);
      return f;
    };
    const withCode = make();
    withCode.set('VM_ENTRY_INTR_INFO_FIELD', (2 ** 31 | (3 << 8) | (1 << 11) | 13) >>> 0);
    const a = vmEntry(withCode.ctx);
    expect(a.kind === 'VMfailValid' && [a.error, a.diagnosis.rule]).toEqual([7, 'event-injection-deliver-error-code']);
    const without = make();
    without.set('VM_ENTRY_INTR_INFO_FIELD', (2 ** 31 | (3 << 8) | 13) >>> 0);
    expect(vmEntry(without.ctx).kind).toBe('entered');
    // Without "unrestricted guest" the guest counts as protected mode even if the CR0 field says otherwise: #GP
    // needs its error code, and the CR0 field then fails the guest-state checks instead.
    const restricted = make();
    restricted.clear('SECONDARY_VM_EXEC_CONTROL', C.SECONDARY_EXEC_UNRESTRICTED_GUEST);
    restricted.set('VM_ENTRY_INTR_INFO_FIELD', (2 ** 31 | (3 << 8) | (1 << 11) | 13) >>> 0);
    const c = vmEntry(restricted.ctx);
    expect(c.kind === 'entry-failure-exit' && [c.reason, c.diagnosis.rule]).toEqual([33, 'guest-cr0-fixed-bits']);
  });
});

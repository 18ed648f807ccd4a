// Loading guest state on a successful VM entry, field by field, and what a failed VM entry does and does not
// touch. Expected values are derived here from the SDM text, not from the loader.
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { CPU_MODELS, getCpuModel } from '../../machine/cpu-model.ts';
import { vmEntry } from './index.ts';
import { buildValidVmcs, setSegment, validEptp, vmcsChoices, type Fixture } from '../testing/vmcs-fixture.ts';
import { VMX_CONTROL as C } from '../controls.ts';
import { CR0, CR4, EFER } from '../../x86/control-registers.ts';
import { RFLAGS } from '../../x86/flags.ts';
import { AR } from '../../x86/segments.ts';
import { MSR_EFER, MSR_IA32_CR_PAT, MSR_IA32_DEBUGCTLMSR, MSR_IA32_SYSENTER_CS, MSR_IA32_SYSENTER_EIP, MSR_IA32_SYSENTER_ESP, MSR_LSTAR, MSR_STAR } from '../../x86/msr.ts';
import type { VmcsFullFieldName } from '../fields.ts';
import { GUEST_PDPTR_FIELDS } from '../transition/pdptes.ts';
import { GUEST_SEGMENT_FIELDS } from '../transition/segment-fields.ts';

const SEGS = ['ES', 'CS', 'SS', 'DS', 'FS', 'GS', 'LDTR', 'TR'] as const;
const names = CPU_MODELS.map((m) => m.name);
const modelOf = (n: string) => getCpuModel(n)!;
/** CR0 bits VM entry/exit load: PE, MP, EM, TS, NE, WP, AM, PG (ET, NW, CD and reserved bits are kept). */
const CR0_LOADED = BigInt(CR0.PE | CR0.MP | CR0.EM | CR0.TS | CR0.NE | CR0.WP | CR0.AM | CR0.PG);

describe('loading guest state', () => {
  it('loads every guest-state field the SDM lists, on every model', () => {
    fc.assert(fc.property(fc.constantFrom(...names), vmcsChoices(), fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }), (name, c, junk) => {
      const f = buildValidVmcs(modelOf(name), c);
      // State the LP had in root operation, to see what entry keeps.
      f.cpu.cr0 = f.get('HOST_CR0') | BigInt(CR0.ET | CR0.CD | CR0.NW);
      f.cpu.msrs.set(MSR_EFER, BigInt(EFER.LME | EFER.LMA | EFER.NXE));
      f.cpu.msrs.set(MSR_IA32_CR_PAT, 0x0606060606060606n);
      f.cpu.dr7 = 0x400n | 0x3n;
      f.set('GUEST_DR7', 0x400n | (junk & 0xffn));
      f.set('GUEST_RSP', junk);
      const pendingBefore = f.cpu.pendingDbg;
      void pendingBefore;
      const out = vmEntry(f.ctx);
      expect(out.kind).toBe('entered');
      const cpu = f.cpu;
      expect(cpu.cr0).toBe((f.get('GUEST_CR0') & CR0_LOADED) | (BigInt(CR0.ET | CR0.CD | CR0.NW) | (f.get('HOST_CR0') & ~CR0_LOADED)));
      expect(cpu.cr3).toBe(f.get('GUEST_CR3'));
      expect(cpu.cr4).toBe(f.get('GUEST_CR4'));
      const loadDebug = f.has('entry', C.VM_ENTRY_LOAD_DEBUG_CONTROLS);
      expect(cpu.dr7).toBe(loadDebug ? f.get('GUEST_DR7') : 0x403n);
      if (loadDebug) expect(cpu.msrs.get(MSR_IA32_DEBUGCTLMSR)).toBe(f.get('GUEST_IA32_DEBUGCTL'));
      expect(cpu.msrs.get(MSR_IA32_SYSENTER_CS)).toBe(f.get('GUEST_SYSENTER_CS'));
      expect(cpu.msrs.get(MSR_IA32_SYSENTER_ESP)).toBe(f.get('GUEST_SYSENTER_ESP'));
      expect(cpu.msrs.get(MSR_IA32_SYSENTER_EIP)).toBe(f.get('GUEST_SYSENTER_EIP'));
      expect(cpu.msrs.get(MSR_IA32_CR_PAT)).toBe(f.has('entry', C.VM_ENTRY_LOAD_IA32_PAT) ? f.get('GUEST_IA32_PAT') : 0x0606060606060606n);
      // Without "load IA32_EFER", only LMA/LME change (to "IA-32e mode guest" = 1 here); NXE stays.
      expect(cpu.msrs.get(MSR_EFER)).toBe(f.has('entry', C.VM_ENTRY_LOAD_IA32_EFER) ? f.get('GUEST_IA32_EFER') : BigInt(EFER.LME | EFER.LMA | EFER.NXE));
      for (const s of SEGS) {
        expect(cpu.segments[s], s).toEqual({
          selector: Number(f.get(`GUEST_${s}_SELECTOR`)), base: f.get(`GUEST_${s}_BASE`),
          limit: Number(f.get(`GUEST_${s}_LIMIT`)), ar: Number(f.get(`GUEST_${s}_AR_BYTES`)),
        });
      }
      expect(cpu.gdtr).toEqual({ base: f.get('GUEST_GDTR_BASE'), limit: Number(f.get('GUEST_GDTR_LIMIT')) });
      expect(cpu.idtr).toEqual({ base: f.get('GUEST_IDTR_BASE'), limit: Number(f.get('GUEST_IDTR_LIMIT')) });
      expect(cpu.rip).toBe(f.get('GUEST_RIP'));
      expect(cpu.gprs[4]).toBe(junk);
      expect(BigInt(cpu.rflags)).toBe(f.get('GUEST_RFLAGS'));
      expect(cpu.activity).toBe(0);
      expect(cpu.interruptibilityState).toBe(0);
      expect(cpu.pendingDbg).toBe(0n);
      expect(cpu.pdptes).toBeNull(); // IA-32e mode: no PDPTEs
      // The MSR-load area was processed in order.
      const expected: [number, bigint][] = [[MSR_STAR, 0x0023001000000000n], [MSR_LSTAR, f.cpu.readPhysical64(f.page(6) + 16n + 8n)]];
      for (let i = 0; i < Math.min(c.msrLoadCount, 2); i++) expect(cpu.msrs.get(expected[i]![0])).toBe(expected[i]![1]);
    }), { seed: 21, numRuns: 150 });
  });

  it('loads activity state, interruptibility and pending debug exceptions', () => {
    const f = buildValidVmcs(modelOf('skylake-i5-6300u'), fc.sample(vmcsChoices(), { seed: 3, numRuns: 1 })[0]!);
    f.or('GUEST_RFLAGS', RFLAGS.IF | RFLAGS.TF);
    f.set('GUEST_INTERRUPTIBILITY_INFO', 1 | 8); // STI blocking + NMI blocking
    f.set('GUEST_PENDING_DBG_EXCEPTIONS', (1n << 14n) | 0x5n); // single-step pending, B0 and B2
    const out = vmEntry(f.ctx);
    expect(out.kind).toBe('entered');
    expect(f.cpu.interruptibilityState).toBe(9);
    expect(f.cpu.pendingDbg).toBe((1n << 14n) | 5n);
    expect(f.cpu.rflags & (RFLAGS.IF | RFLAGS.TF)).toBe(RFLAGS.IF | RFLAGS.TF);
  });

  it('HLT activity state is loaded', () => {
    const f = buildValidVmcs(modelOf('skylake-i5-6300u'), { ...fc.sample(vmcsChoices(), { seed: 5, numRuns: 1 })[0]!, cpl: 0 });
    f.set('GUEST_ACTIVITY_STATE', 1);
    expect(vmEntry(f.ctx).kind).toBe('entered');
    expect(f.cpu.activity).toBe(1);
  });

  it('a 32-bit PAE guest with EPT gets its PDPTEs from GUEST_PDPTR0–3; without "load IA32_EFER" LMA and LME are cleared', () => {
    const c = { ...fc.sample(vmcsChoices(), { seed: 8, numRuns: 1 })[0]!, ept: true, loadEfer: false };
    const f = buildValidVmcs(modelOf('skylake-i5-6300u'), c);
    f.or('SECONDARY_VM_EXEC_CONTROL', C.SECONDARY_EXEC_ENABLE_EPT);
    f.set('EPT_POINTER', validEptp(f.caps, f.page(3)));
    f.clear('VM_ENTRY_CONTROLS', C.VM_ENTRY_IA32E_MODE);
    setSegment(f.vmcs, 'CS', Number(f.get('GUEST_CS_SELECTOR')), 0n, 0xffffffff, (Number(f.get('GUEST_CS_AR_BYTES')) & ~AR.L) | AR.DB);
    f.set('GUEST_RIP', 0x401000n);
    const pdptes = [0x1001n, 0n, 0x3001n, 0x4000n];
    pdptes.forEach((p, i) => f.set(GUEST_PDPTR_FIELDS[i]!, p));
    f.cpu.msrs.set(MSR_EFER, BigInt(EFER.LME | EFER.LMA | EFER.SCE));
    expect(vmEntry(f.ctx).kind).toBe('entered');
    expect(f.cpu.pdptes).toEqual(pdptes);
    expect(f.cpu.msrs.get(MSR_EFER)).toBe(BigInt(EFER.SCE));
    expect((f.cpu.cr4 & BigInt(CR4.PAE)) !== 0n).toBe(true);
  });
});

describe('a failed VM entry', () => {
  function snapshotGuest(f: Fixture): Map<VmcsFullFieldName, bigint> {
    const m = new Map<VmcsFullFieldName, bigint>();
    for (const n of ['GUEST_CR0', 'GUEST_CR3', 'GUEST_CR4', 'GUEST_RIP', 'GUEST_RSP', 'GUEST_RFLAGS', 'GUEST_ACTIVITY_STATE',
      'GUEST_INTERRUPTIBILITY_INFO', 'VM_ENTRY_CONTROLS', ...SEGS.flatMap((s) => Object.values(GUEST_SEGMENT_FIELDS[s]))] as const) {
      m.set(n, f.get(n));
    }
    return m;
  }

  it('VMfailValid changes no processor state and no exit-information field', () => {
    fc.assert(fc.property(fc.constantFrom(...names), vmcsChoices(), (name, c) => {
      const f = buildValidVmcs(modelOf(name), c);
      f.set('HOST_TR_SELECTOR', 0); // error 8
      f.set('VM_EXIT_REASON', 0x1234);
      const before = JSON.stringify(f.cpu, (_k, v) => (typeof v === 'bigint' ? v.toString() : v instanceof Map ? [...v] : v));
      const out = vmEntry(f.ctx);
      expect(out.kind === 'VMfailValid' && out.error).toBe(8);
      expect(JSON.stringify(f.cpu, (_k, v) => (typeof v === 'bigint' ? v.toString() : v instanceof Map ? [...v] : v))).toBe(before);
      expect(f.get('VM_EXIT_REASON')).toBe(0x1234n);
    }), { seed: 22, numRuns: 40 });
  });

  it('exit 33 loads host state, records only reason and qualification, keeps the guest-state area, the injected event and NMI blocking', () => {
    fc.assert(fc.property(fc.constantFrom(...names), vmcsChoices(), (name, c) => {
      const f = buildValidVmcs(modelOf(name), c);
      f.or('GUEST_RFLAGS', RFLAGS.IF);
      f.set('VM_ENTRY_INTR_INFO_FIELD', (2 ** 31 | 0x30) >>> 0); // external interrupt 30H
      f.or('GUEST_TR_SELECTOR', 4); // invalid guest state
      f.set('VM_EXIT_INSTRUCTION_LEN', 0x77);
      f.set('VM_EXIT_MSR_STORE_COUNT', 1);
      f.cpu.writePhysical32(f.page(7), MSR_STAR);
      f.cpu.interruptibilityState = 8; // blocking by NMI in root operation
      const guest = snapshotGuest(f);
      const out = vmEntry(f.ctx);
      expect(out.kind).toBe('entry-failure-exit');
      if (out.kind !== 'entry-failure-exit') return;
      expect(out.then).toEqual({ kind: 'host', rip: f.get('HOST_RIP') });
      expect(f.get('VM_EXIT_REASON')).toBe(0x80000021n);
      expect(f.get('EXIT_QUALIFICATION')).toBe(0n);
      expect(f.get('VM_EXIT_INSTRUCTION_LEN')).toBe(0x77n);
      expect(f.get('VM_ENTRY_INTR_INFO_FIELD')).toBe(BigInt((2 ** 31 | 0x30) >>> 0));
      for (const [n, v] of guest) expect(f.get(n), n).toBe(v);
      expect(f.cpu.readPhysical64(f.page(7) + 8n)).toBe(0n); // no MSR stored
      expect(f.cpu.rip).toBe(f.get('HOST_RIP'));
      expect(f.cpu.cr3).toBe(f.get('HOST_CR3'));
      expect(f.cpu.interruptibilityState).toBe(8);
    }), { seed: 23, numRuns: 40 });
  });

  it('exit 34 restores NMI blocking to its value before VM entry, and MSRs loaded before the bad entry stay loaded', () => {
    const f = buildValidVmcs(modelOf('icelake-i5-1035g1'), { ...fc.sample(vmcsChoices(), { seed: 9, numRuns: 1 })[0]!, msrLoadCount: 1 });
    f.set('GUEST_INTERRUPTIBILITY_INFO', 8);
    f.cpu.writePhysical32(f.page(6) + 16n, 0x800 + 0x30); // x2APIC TPR: not loadable
    f.set('VM_ENTRY_MSR_LOAD_COUNT', 2);
    f.cpu.interruptibilityState = 0;
    const out = vmEntry(f.ctx);
    expect(out.kind === 'entry-failure-exit' && [out.reason, out.qualification]).toEqual([34, 2]);
    expect(f.cpu.interruptibilityState & 8).toBe(0);
    expect(f.cpu.msrs.get(MSR_STAR)).toBe(0x0023001000000000n);
  });
});

describe('an MSR-load list longer than the recommended maximum', () => {
  it('is taken as a machine check during VM entry: exit reason 41, without reading the list', () => {
    fc.assert(fc.property(fc.constantFrom(...names), vmcsChoices(), fc.nat({ max: 1000 }), (name, c, extra) => {
      const f = buildValidVmcs(modelOf(name), c);
      const max = f.caps.misc.maxMsrListEntries;
      f.set('VM_ENTRY_MSR_LOAD_ADDR', 0x10000n);
      f.set('VM_ENTRY_MSR_LOAD_COUNT', max + 1 + extra);
      const out = vmEntry(f.ctx);
      expect(out.kind === 'entry-failure-exit' && [out.reason, out.qualification, out.diagnosis.rule]).toEqual([41, 0, 'msr-list-exceeds-recommended-maximum']);
      expect(f.get('VM_EXIT_REASON')).toBe(BigInt((41 | 2 ** 31) >>> 0));
      // Exactly the maximum is fine (all entries are MSR 0, which this fake CPU lacks: exit 34 at entry 1).
      const g = buildValidVmcs(modelOf(name), c);
      g.set('VM_ENTRY_MSR_LOAD_ADDR', 0x10000n);
      g.set('VM_ENTRY_MSR_LOAD_COUNT', max);
      const out2 = vmEntry(g.ctx);
      expect(out2.kind === 'entry-failure-exit' && [out2.reason, out2.qualification]).toEqual([34, 1]);
    }), { seed: 24, numRuns: 30 });
  });
});

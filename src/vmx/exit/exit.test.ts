// First-cut VM exits: exit information (with poison for what the SDM leaves undefined), guest state saved,
// host state loaded field by field, the MSR-store/load areas, VMX aborts. Expected values come from the SDM text.
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { CPU_MODELS, getCpuModel } from '../../machine/cpu-model.ts';
import { enterValidGuest, vmcsChoices, writeMsrEntry, VMCS_POINTER, type Fixture } from '../testing/vmcs-fixture.ts';
import { vmExit, UNDEFINED_32, UNDEFINED_64, type ExitContext } from './index.ts';
import { cpuidExit, hltExit, tripleFaultExit, vmcallExit } from '../nonroot/causes.ts';
import { VMX_CONTROL as C } from '../controls.ts';
import { EXIT_REASON } from '../exit-reasons.ts';
import { VMCS_ABORT_OFFSET } from '../vmcs.ts';
import { CR0, CR4, EFER } from '../../x86/control-registers.ts';
import { RFLAGS } from '../../x86/flags.ts';
import { AR } from '../../x86/segments.ts';
import {
  MSR_EFER, MSR_IA32_CR_PAT, MSR_IA32_DEBUGCTLMSR, MSR_IA32_SYSENTER_CS, MSR_IA32_SYSENTER_EIP, MSR_IA32_SYSENTER_ESP,
  MSR_LSTAR, MSR_STAR,
} from '../../x86/msr.ts';

const names = CPU_MODELS.map((m) => m.name);
/** Where a VMX abort writes its indicator: the VMX-abort field of the current VMCS region. */
const ABORT_INDICATOR = VMCS_POINTER + BigInt(VMCS_ABORT_OFFSET);
const SEGS = ['ES', 'CS', 'SS', 'DS', 'FS', 'GS', 'LDTR', 'TR'] as const;
const CR0_LOADED = BigInt(CR0.PE | CR0.MP | CR0.EM | CR0.TS | CR0.NE | CR0.WP | CR0.AM | CR0.PG);

/** Enter the guest, then let the "guest" change its state as it runs. */
function enteredGuest(name: string, c: Parameters<typeof enterValidGuest>[1], r: bigint): { f: Fixture; ctx: ExitContext } {
  const f = enterValidGuest(getCpuModel(name)!, c);
  const cpu = f.cpu;
  cpu.rip = (f.get('GUEST_RIP') + 0x20n) & ((1n << 64n) - 1n);
  cpu.gprs[4] = r;
  cpu.gprs[0] = 0x1234n;
  cpu.rflags = RFLAGS.FIXED1 | RFLAGS.ZF | RFLAGS.IF;
  cpu.cr3 = f.page(9);
  cpu.cr0 |= BigInt(CR0.TS);
  cpu.segments.DS = { selector: 0x2b, base: 0n, limit: 0xffffffff, ar: 0xc0f3 };
  cpu.segments.FS = { selector: 0, base: r & 0x00007fffffffffffn, limit: 0, ar: AR.UNUSABLE };
  cpu.gdtr = { base: 0xffff800000001000n, limit: 0x7f };
  cpu.interruptibilityState = 1;
  cpu.pendingDbg = 1n << 14n;
  cpu.msrs.set(MSR_IA32_SYSENTER_ESP, 0xffff800000002000n);
  cpu.msrs.set(MSR_IA32_CR_PAT, 0x0007040600070406n);
  return { f, ctx: { cpu, vmcs: f.vmcs, vmcsPointer: VMCS_POINTER } };
}

describe('VM exit information', () => {
  it('HLT, CPUID, VMCALL: reason, instruction length, qualification 0; undefined fields poisoned; entry event valid bit cleared', () => {
    fc.assert(fc.property(fc.constantFrom(...names), vmcsChoices(), fc.integer({ min: 1, max: 15 }), fc.constantFrom('hlt', 'cpuid', 'vmcall'), (name, c, len, kind) => {
      const { f, ctx } = enteredGuest(name, c, 0n);
      f.set('VM_ENTRY_INTR_INFO_FIELD', (2 ** 31 | 0x30) >>> 0);
      const rip = f.cpu.rip;
      const cause = kind === 'hlt' ? hltExit(len) : kind === 'cpuid' ? cpuidExit(len) : vmcallExit(len, rip - BigInt(len));
      expect(vmExit(ctx, cause)).toEqual({ kind: 'host', rip: f.get('HOST_RIP') });
      expect(f.get('VM_EXIT_REASON')).toBe(BigInt(kind === 'hlt' ? 12 : kind === 'cpuid' ? 10 : 18));
      expect(f.get('EXIT_QUALIFICATION')).toBe(0n);
      expect(f.get('VM_EXIT_INSTRUCTION_LEN')).toBe(BigInt(len));
      expect(f.get('VMX_INSTRUCTION_INFO')).toBe(BigInt(UNDEFINED_32));
      expect(f.get('GUEST_LINEAR_ADDRESS')).toBe(UNDEFINED_64);
      expect(f.get('VM_EXIT_INTR_INFO') >> 31n).toBe(0n);
      expect(f.get('IDT_VECTORING_INFO_FIELD') >> 31n).toBe(0n);
      expect(f.get('VM_ENTRY_INTR_INFO_FIELD')).toBe(0x30n);
      expect(f.get('GUEST_RIP')).toBe(kind === 'vmcall' ? rip - BigInt(len) : rip);
    }), { seed: 31, numRuns: 60 });
  });

  it('triple fault: reason 2, and the instruction length is undefined (poisoned)', () => {
    const { f, ctx } = enteredGuest('skylake-i5-6300u', fc.sample(vmcsChoices(), { seed: 1, numRuns: 1 })[0]!, 5n);
    vmExit(ctx, tripleFaultExit());
    expect(f.get('VM_EXIT_REASON')).toBe(BigInt(EXIT_REASON.EXIT_REASON_TRIPLE_FAULT));
    expect(f.get('VM_EXIT_INSTRUCTION_LEN')).toBe(BigInt(UNDEFINED_32));
  });
});

describe('saving guest state', () => {
  it('stores the guest\'s registers, segments, descriptor tables and non-register state', () => {
    fc.assert(fc.property(fc.constantFrom(...names), vmcsChoices(), fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }), (name, c, r) => {
      const { f, ctx } = enteredGuest(name, c, r);
      const cpu = f.cpu;
      const guest = { cr0: cpu.cr0, cr3: cpu.cr3, cr4: cpu.cr4, rip: cpu.rip, segs: structuredClone(cpu.segments), gdtr: { ...cpu.gdtr }, idtr: { ...cpu.idtr }, efer: cpu.msrs.get(MSR_EFER)!, pat: cpu.msrs.get(MSR_IA32_CR_PAT)! };
      vmExit(ctx, hltExit(1));
      expect(f.get('GUEST_CR0')).toBe(guest.cr0);
      expect(f.get('GUEST_CR3')).toBe(guest.cr3);
      expect(f.get('GUEST_CR4')).toBe(guest.cr4);
      expect(f.get('GUEST_RIP')).toBe(guest.rip);
      expect(f.get('GUEST_RSP')).toBe(r);
      expect(f.get('GUEST_RFLAGS')).toBe(BigInt(RFLAGS.FIXED1 | RFLAGS.ZF | RFLAGS.IF));
      for (const s of SEGS) {
        expect([f.get(`GUEST_${s}_SELECTOR`), f.get(`GUEST_${s}_BASE`), f.get(`GUEST_${s}_LIMIT`), f.get(`GUEST_${s}_AR_BYTES`)], s)
          .toEqual([BigInt(guest.segs[s].selector), guest.segs[s].base, BigInt(guest.segs[s].limit), BigInt(guest.segs[s].ar)]);
      }
      expect([f.get('GUEST_GDTR_BASE'), f.get('GUEST_GDTR_LIMIT')]).toEqual([guest.gdtr.base, BigInt(guest.gdtr.limit)]);
      expect([f.get('GUEST_IDTR_BASE'), f.get('GUEST_IDTR_LIMIT')]).toEqual([guest.idtr.base, BigInt(guest.idtr.limit)]);
      expect(f.get('GUEST_SYSENTER_ESP')).toBe(0xffff800000002000n);
      expect(f.get('GUEST_INTERRUPTIBILITY_INFO')).toBe(1n);
      expect(f.get('GUEST_PENDING_DBG_EXCEPTIONS')).toBe(1n << 14n);
      expect(f.get('GUEST_ACTIVITY_STATE')).toBe(0n);
      if (f.has('exit', C.VM_EXIT_SAVE_IA32_EFER)) expect(f.get('GUEST_IA32_EFER')).toBe(guest.efer);
      if (f.has('exit', C.VM_EXIT_SAVE_IA32_PAT)) expect(f.get('GUEST_IA32_PAT')).toBe(guest.pat);
      // General-purpose registers other than RSP stay as the guest left them.
      expect(cpu.gprs[0]).toBe(0x1234n);
    }), { seed: 32, numRuns: 80 });
  });

  it('stores IA32_EFER.LMA into the "IA-32e mode guest" entry control', () => {
    const { f, ctx } = enteredGuest('skylake-i5-6300u', fc.sample(vmcsChoices(), { seed: 2, numRuns: 1 })[0]!, 0n);
    f.cpu.msrs.set(MSR_EFER, 0n); // the guest left IA-32e mode
    vmExit(ctx, hltExit(1));
    expect(f.get('VM_ENTRY_CONTROLS') & BigInt(C.VM_ENTRY_IA32E_MODE)).toBe(0n);
  });
});

describe('loading host state', () => {
  it('loads every host-state field with the fixed attributes the SDM gives', () => {
    fc.assert(fc.property(fc.constantFrom(...names), vmcsChoices(), fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }), (name, c, r) => {
      const { f, ctx } = enteredGuest(name, c, r);
      const cpu = f.cpu;
      const cr0Before = cpu.cr0;
      const pat = cpu.msrs.get(MSR_IA32_CR_PAT);
      cpu.msrs.set(MSR_EFER, cpu.msrs.get(MSR_EFER)! | BigInt(EFER.NXE));
      cpu.dr7 = 0x4ffn;
      cpu.msrs.set(MSR_IA32_DEBUGCTLMSR, 3n);
      expect(vmExit(ctx, cpuidExit(2))).toEqual({ kind: 'host', rip: f.get('HOST_RIP') });
      expect(cpu.cr0).toBe((f.get('HOST_CR0') & CR0_LOADED) | (cr0Before & ~CR0_LOADED));
      expect(cpu.cr3).toBe(f.get('HOST_CR3'));
      expect(cpu.cr4).toBe(f.get('HOST_CR4') | BigInt(CR4.PAE));
      expect(cpu.dr7).toBe(0x400n);
      expect(cpu.msrs.get(MSR_IA32_DEBUGCTLMSR)).toBe(0n);
      expect(cpu.msrs.get(MSR_IA32_SYSENTER_CS)).toBe(f.get('HOST_IA32_SYSENTER_CS'));
      expect(cpu.msrs.get(MSR_IA32_SYSENTER_ESP)).toBe(f.get('HOST_IA32_SYSENTER_ESP'));
      expect(cpu.msrs.get(MSR_IA32_SYSENTER_EIP)).toBe(f.get('HOST_IA32_SYSENTER_EIP'));
      expect(cpu.msrs.get(MSR_IA32_CR_PAT)).toBe(f.has('exit', C.VM_EXIT_LOAD_IA32_PAT) ? f.get('HOST_IA32_PAT') : pat);
      const efer = f.has('exit', C.VM_EXIT_LOAD_IA32_EFER) ? f.get('HOST_IA32_EFER') : (cpu.msrs.get(MSR_EFER)! | BigInt(EFER.LMA | EFER.LME));
      expect(cpu.msrs.get(MSR_EFER)).toBe(efer);
      // CS: 64-bit code, type 11, S, DPL 0, P, L, G; base 0, limit 4 GBytes.
      expect(cpu.segments.CS).toEqual({ selector: Number(f.get('HOST_CS_SELECTOR')), base: 0n, limit: 0xffffffff, ar: 0xb | 0x10 | 0x80 | 0x2000 | 0x8000 });
      for (const s of ['SS', 'DS', 'ES', 'FS', 'GS'] as const) {
        const sel = Number(f.get(`HOST_${s}_SELECTOR`));
        const base = s === 'FS' || s === 'GS' ? f.get(`HOST_${s}_BASE`) : 0n;
        // Type 3, S, DPL 0, P, D/B, G — and unusable when the selector is null.
        expect(cpu.segments[s], s).toEqual({ selector: sel, base, limit: 0xffffffff, ar: 0x3 | 0x10 | 0x80 | 0x4000 | 0x8000 | (sel === 0 ? 0x10000 : 0) });
      }
      expect(cpu.segments.TR).toEqual({ selector: Number(f.get('HOST_TR_SELECTOR')), base: f.get('HOST_TR_BASE'), limit: 0x67, ar: 0x8b });
      expect(cpu.segments.LDTR.selector).toBe(0);
      expect(cpu.segments.LDTR.ar & 0x10000).toBe(0x10000);
      expect(cpu.gdtr).toEqual({ base: f.get('HOST_GDTR_BASE'), limit: 0xffff });
      expect(cpu.idtr).toEqual({ base: f.get('HOST_IDTR_BASE'), limit: 0xffff });
      expect(cpu.rip).toBe(f.get('HOST_RIP'));
      expect(cpu.gprs[4]).toBe(f.get('HOST_RSP'));
      expect(cpu.rflags).toBe(2);
      expect(cpu.interruptibilityState).toBe(0);
      expect(cpu.pendingDbg).toBe(0n);
      expect(cpu.activity).toBe(0);
    }), { seed: 33, numRuns: 80 });
  });
});

describe('VM-exit MSR areas and VMX aborts', () => {
  it('stores guest MSRs into the MSR-store area and loads host MSRs from the MSR-load area', () => {
    const { f, ctx } = enteredGuest('skylake-i5-6300u', fc.sample(vmcsChoices(), { seed: 4, numRuns: 1 })[0]!, 0n);
    f.cpu.msrs.set(MSR_STAR, 0x1111n);
    f.cpu.msrs.set(MSR_LSTAR, 0xffff800000003000n);
    writeMsrEntry(f.cpu, f.page(7), 0, MSR_STAR, 0, 0n);
    writeMsrEntry(f.cpu, f.page(7), 1, MSR_LSTAR, 0, 0n);
    f.set('VM_EXIT_MSR_STORE_COUNT', 2);
    writeMsrEntry(f.cpu, f.page(8), 0, MSR_STAR, 0, 0x2222n);
    f.set('VM_EXIT_MSR_LOAD_COUNT', 1);
    expect(vmExit(ctx, hltExit(1)).kind).toBe('host');
    expect(f.cpu.readPhysical64(f.page(7) + 8n)).toBe(0x1111n);
    expect(f.cpu.readPhysical64(f.page(7) + 24n)).toBe(0xffff800000003000n);
    expect(f.cpu.msrs.get(MSR_STAR)).toBe(0x2222n);
  });

  it('a bad MSR-store entry is a VMX abort with indicator 1; a bad MSR-load entry one with indicator 4', () => {
    fc.assert(fc.property(fc.constantFrom('store', 'load'), fc.constantFrom(0x9e, 0x808, 0x12345), (area, msr) => {
      const { f, ctx } = enteredGuest('skylake-i5-6300u', fc.sample(vmcsChoices(), { seed: 5, numRuns: 1 })[0]!, 0n);
      writeMsrEntry(f.cpu, f.page(area === 'store' ? 7 : 8), 0, msr, 0, 0n);
      f.set(area === 'store' ? 'VM_EXIT_MSR_STORE_COUNT' : 'VM_EXIT_MSR_LOAD_COUNT', 1);
      const out = vmExit(ctx, hltExit(1));
      const indicator = area === 'store' ? 1 : 4;
      expect(out.kind === 'vmx-abort' && out.indicator).toBe(indicator);
      expect(f.cpu.readPhysical32(ABORT_INDICATOR)).toBe(indicator);
      expect(f.cpu.activity).toBe(2);
    }), { seed: 34, numRuns: 20 });
  });

  it('an MSR list longer than the recommended maximum is a machine check during the VM exit: VMX abort 5', () => {
    fc.assert(fc.property(fc.constantFrom('VM_EXIT_MSR_STORE_COUNT', 'VM_EXIT_MSR_LOAD_COUNT'), fc.nat({ max: 0xffff }), (field, extra) => {
      const { f, ctx } = enteredGuest('skylake-i5-6300u', fc.sample(vmcsChoices(), { seed: 6, numRuns: 1 })[0]!, 0n);
      f.set(field, f.caps.misc.maxMsrListEntries + 1 + extra);
      const out = vmExit(ctx, hltExit(1));
      expect(out.kind === 'vmx-abort' && out.indicator).toBe(5);
      expect(f.cpu.readPhysical32(ABORT_INDICATOR)).toBe(5);
    }), { seed: 35, numRuns: 10 });
  });

  it('a 32-bit PAE host gets its PDPTEs from memory at HOST_CR3; a bad one is a VMX abort with indicator 2', () => {
    fc.assert(fc.property(fc.boolean(), fc.constantFrom(1, 2, 5, 6, 7, 8, 40), (bad, bit) => {
      const { f, ctx } = enteredGuest('skylake-i5-6300u', fc.sample(vmcsChoices(), { seed: 7, numRuns: 1 })[0]!, 0n);
      // The next VM exit returns to a 32-bit host with PAE paging.
      f.clear('VM_EXIT_CONTROLS', C.VM_EXIT_HOST_ADDR_SPACE_SIZE | C.VM_EXIT_LOAD_IA32_EFER);
      const cr3 = f.page(10) | 0x40n;
      f.set('HOST_CR3', cr3);
      const pdptes = [f.page(0) | 1n, 0n, f.page(2) | 1n, bad ? (f.page(3) | 1n | (1n << BigInt(bit))) : 0n];
      pdptes.forEach((e, i) => f.cpu.writePhysical64((cr3 & 0xffffffe0n) + BigInt(8 * i), e));
      const out = vmExit(ctx, hltExit(1));
      if (bad) {
        expect(out.kind === 'vmx-abort' && out.indicator).toBe(2);
        expect(f.cpu.readPhysical32(ABORT_INDICATOR)).toBe(2);
      } else {
        expect(out.kind).toBe('host');
        expect(f.cpu.pdptes).toEqual(pdptes);
        expect(f.cpu.msrs.get(MSR_EFER)! & BigInt(EFER.LMA | EFER.LME)).toBe(0n);
        expect(f.cpu.segments.CS.ar & (AR.L | AR.DB)).toBe(AR.DB);
      }
    }), { seed: 36, numRuns: 20 });
  });
});

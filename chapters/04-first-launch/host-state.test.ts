// Exercise 4.1 — the host-state area, copied from the CPU the module runs on. Every field is compared with the
// logical processor's own registers (not with a formula), and a VM exit must land in a working kernel context.
import { describe, expect, test } from 'vitest';
import fc from 'fast-check';
import { systemSegmentBase, writeHostState } from '#impl/04-first-launch/host-state';
import { CPU_MODELS } from '../../src/machine/cpu-model.ts';
import { GDT_ENTRY_TSS_SELECTOR } from '../../src/kernel/boot.ts';
import { decodeSelector } from '../../src/x86/segments.ts';
import { MSR_IA32_SYSENTER_CS, MSR_IA32_SYSENTER_EIP, MSR_IA32_SYSENTER_ESP } from '../../src/x86/msr.ts';
import type { HostCpu } from '../../src/kernel/host-cpu.ts';
import type { VmcsFieldName } from '../../src/vmx/fields.ts';
import {
  bootHost, enterVmx, explain, read, runGuests, writeReferenceControls, writeReferenceGuestState, buildReferenceGuest, type Host,
} from './support.ts';

const EXIT_REASON_CPUID = 10;

/** Run `fn` on CPU `id` of a multi-CPU host (with preemption disabled, as an IPI handler runs). */
function onCpu(host: Host, id: number, fn: (cpu: HostCpu) => void): void {
  host.kernel.on_each_cpu((c) => {
    if (c === id) fn(host.kernel.cpu());
  });
}

/** The host-state fields, as the CPU's own registers say they must be. */
function expectedHostState(host: Host, cpu: HostCpu, rip: bigint, rsp: bigint): Partial<Record<VmcsFieldName, bigint>> {
  const s = cpu.lp.snapshot();
  const sel = (v: number): bigint => BigInt(decodeSelector(v).index << 3);
  return {
    HOST_CR0: cpu.lp.readCr0(),
    // The kernel's page tables (init_mm), which outlive any process and any module.
    HOST_CR3: BigInt(host.kernel.cr3),
    HOST_CR4: cpu.lp.readCr4(),
    HOST_CS_SELECTOR: sel(s.segments.cs.selector),
    HOST_SS_SELECTOR: sel(s.segments.ss.selector),
    HOST_DS_SELECTOR: sel(s.segments.ds.selector),
    HOST_ES_SELECTOR: sel(s.segments.es.selector),
    HOST_FS_SELECTOR: sel(s.segments.fs.selector),
    HOST_GS_SELECTOR: sel(s.segments.gs.selector),
    HOST_TR_SELECTOR: sel(s.segments.tr.selector),
    HOST_FS_BASE: s.segments.fs.base,
    HOST_GS_BASE: s.segments.gs.base,
    // The hidden part of TR: what LTR loaded from this CPU's TSS descriptor.
    HOST_TR_BASE: s.segments.tr.base,
    HOST_GDTR_BASE: s.gdtr.base,
    HOST_IDTR_BASE: s.idtr.base,
    HOST_IA32_SYSENTER_CS: cpu.lp.rdmsr(MSR_IA32_SYSENTER_CS) & 0xffffffffn,
    HOST_IA32_SYSENTER_ESP: cpu.lp.rdmsr(MSR_IA32_SYSENTER_ESP),
    HOST_IA32_SYSENTER_EIP: cpu.lp.rdmsr(MSR_IA32_SYSENTER_EIP),
    HOST_RSP: rsp,
    HOST_RIP: rip,
  };
}

function readAll(cpu: HostCpu, names: readonly VmcsFieldName[]): Record<string, bigint> {
  return Object.fromEntries(names.map((n) => [n, read(cpu, n)]));
}

const hex = (r: Record<string, bigint>): Record<string, string> => Object.fromEntries(Object.entries(r).map(([k, v]) => [k, `0x${v.toString(16)}`]));

describe('writeHostState', () => {
  test.each(CPU_MODELS.map((m) => [m.name]))('%s: every host field from CPU 1 of two, and a VM exit lands in the kernel', (model) => {
    const host = bootHost({ model, cpus: 2, ramMiB: 64 });
    const k = host.kernel;
    const exits: { reason: bigint; cr3: bigint; gdtr: bigint; tr: number; gs: bigint }[] = [];
    const rip = k.hostEntry('test_vmexit', (_k, c) => {
      exits.push({ reason: read(c, 'VM_EXIT_REASON'), cr3: c.readCr3(), gdtr: c.sgdt().base, tr: c.str(), gs: c.readGsBase() });
    });
    let before: (typeof exits)[number] | null = null;
    onCpu(host, 1, (cpu) => {
      enterVmx(host, cpu);
      before = { reason: BigInt(EXIT_REASON_CPUID), cr3: BigInt(k.cr3), gdtr: cpu.sgdt().base, tr: cpu.str(), gs: cpu.readGsBase() };
      const rsp = k.kernelStackTop(1);
      const r = writeHostState(k, cpu, { rip, rsp });
      const want = expectedHostState(host, cpu, rip, rsp);
      expect(r, explain(host, 'writeHostState returned a VMX error')).toEqual({ ok: true, value: undefined });
      const got = readAll(cpu, Object.keys(want) as VmcsFieldName[]);
      expect(hex(got), explain(host, 'host-state fields (left: yours) vs the running CPU 1')).toEqual(hex(want));

      // Now launch a reference guest with it: the entry must pass every host-state check, and the exit must
      // come back to this CPU's kernel context.
      writeReferenceControls(host, cpu);
      writeReferenceGuestState(host, cpu, buildReferenceGuest(k));
      cpu.vmlaunch();
      expect(cpu.lp.vmx?.nonRoot, explain(host, 'VMLAUNCH with your host state did not enter the guest')).toBe(true);
    });
    runGuests(host, 10_000);
    expect(exits.map((e) => e.reason), explain(host, 'exit reasons seen at HOST_RIP')).toEqual([BigInt(EXIT_REASON_CPUID)]);
    // At HOST_RIP the CPU is back in CPU 1's kernel context: its page tables, GDT, TSS and per-CPU GS base.
    expect(exits[0], explain(host, 'CPU state at HOST_RIP vs CPU 1 before VMLAUNCH')).toEqual(before);
    expect(before!.tr, explain(host)).toBe(GDT_ENTRY_TSS_SELECTOR);
  });

  test('HOST_CR3 is the kernel\'s page tables even when the module is loaded from a process with its own CR3', () => {
    const host = bootHost({ ramMiB: 64 });
    const k = host.kernel;
    const cpu = k.cpu();
    enterVmx(host);
    // insmod runs in the context of a user process: its PGD shares the kernel half but is its own page.
    const pgd = k.get_zeroed_page();
    for (let i = 0n; i < 512n; i++) k.write64(pgd + 8n * i, k.read64(k.phys_to_virt(BigInt(k.cr3)) + 8n * i));
    cpu.writeCr3(k.virt_to_phys(pgd));
    const r = writeHostState(k, cpu, { rip: 0xffffffff81000000n, rsp: k.kernelStackTop(0) });
    // The process exits; its PGD goes back to the page allocator.
    cpu.writeCr3(BigInt(k.cr3));
    k.free_page(pgd);
    expect(r.ok, explain(host)).toBe(true);
    expect(`0x${read(cpu, 'HOST_CR3').toString(16)}`, explain(host, 'HOST_CR3 is loaded at every VM exit, long after insmod\'s process is gone: use the kernel\'s own page tables (init_mm), not the current CR3')).toBe(`0x${k.cr3.toString(16)}`);
  });

  test('selectors keep their index and lose only RPL and TI (mask with ~7, not 0xF8)', () => {
    const host = bootHost({ ramMiB: 64 });
    const k = host.kernel;
    const cpu = k.cpu();
    enterVmx(host);
    const saved = (['ds', 'es', 'fs', 'gs'] as const).map((s) => [s, cpu.lp.getSegment(s)] as const);
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 0, max: 0xffff }), { minLength: 4, maxLength: 4 }), (sels) => {
        // Only the selector part of DS/ES/FS/GS is changed; bases and attributes stay the kernel's.
        saved.forEach(([s, st], i) => cpu.lp.setSegment(s, { ...st, selector: sels[i]! }));
        const r = writeHostState(k, cpu, { rip: 0xffffffff81000000n, rsp: k.kernelStackTop(0) });
        saved.forEach(([s, st]) => cpu.lp.setSegment(s, st));
        expect(r.ok, explain(host)).toBe(true);
        const got = (['DS', 'ES', 'FS', 'GS'] as const).map((s) => Number(read(cpu, `HOST_${s}_SELECTOR`)));
        const want = sels.map((v) => decodeSelector(v).index << 3);
        expect(got, explain(host, `selectors ${sels.map((v) => v.toString(16)).join(', ')}H: yours vs index << 3`)).toEqual(want);
      }),
      { numRuns: 25, seed: 41 },
    );
  });

  test('systemSegmentBase reads a 16-byte TSS descriptor, including base bits 63:32', () => {
    const host = bootHost({ ramMiB: 64 });
    const k = host.kernel;
    const gdt = k.cpu().sgdt();
    fc.assert(
      fc.property(fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }), fc.integer({ min: 4, max: 14 }), (base, slot) => {
        const at = gdt.base + BigInt(slot * 8);
        // An available 64-bit TSS, limit 67H. See SDM Vol. 3A, "TSS Descriptor in 64-bit mode".
        const low = 0x67n | ((base & 0xffffffn) << 16n) | (0x89n << 40n) | (((base >> 24n) & 0xffn) << 56n);
        const saved = [k.read64(at), k.read64(at + 8n)];
        k.write64(at, low);
        k.write64(at + 8n, base >> 32n);
        const got = systemSegmentBase(k, gdt.base, slot * 8);
        k.write64(at, saved[0]!);
        k.write64(at + 8n, saved[1]!);
        expect(`0x${got.toString(16)}`, explain(host, `TSS descriptor in GDT slot ${slot}, base 0x${base.toString(16)}`)).toBe(`0x${base.toString(16)}`);
      }),
      { numRuns: 50, seed: 42 },
    );
  });
});

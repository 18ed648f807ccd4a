import { describe, expect, test } from 'vitest';
import { allocVmcs, currentVmcs, freeVmcs, loadVmcs } from '#impl/02-vmcs/vmcs-region';
import { CPU_MODELS } from '../../src/machine/cpu-model.ts';
import { MSR_IA32_VMX_BASIC } from '../../src/vmx/msrs.ts';
import { explain, hostInVmxOperation } from '../lib/vmx-setup.ts';

const NO_VMCS = 0xffffffffffffffffn;
const CF = 1n, ZF = 1n << 6n;

describe('allocVmcs', () => {
  test.each(CPU_MODELS.map((m) => [m.name]))('on %s: aligned, revision id written, shadow bit clear', (name) => {
    const host = hostInVmxOperation({ model: name });
    const k = host.kernel;
    const v = allocVmcs(k)!;
    expect(v.pa % 4096n).toBe(0n);
    expect(k.virt_to_phys(v.va)).toBe(v.pa);
    expect(k.read32(v.va)).toBe(Number(k.cpu().rdmsr(MSR_IA32_VMX_BASIC) & 0x7fffffffn));
    const free = k.pages.freeCount();
    freeVmcs(k, v);
    expect(k.pages.freeCount()).toBe(free + 1);
  });
});

describe('loadVmcs and currentVmcs', () => {
  test('make the VMCS current, with launch state clear (so VMRESUME fails with error 5)', () => {
    const host = hostInVmxOperation();
    const cpu = host.kernel.cpu();
    expect(currentVmcs(cpu)).toBeNull();
    const v = allocVmcs(host.kernel)!;
    expect(loadVmcs(cpu, v), explain(host)).toEqual({ ok: true, value: undefined });
    expect(cpu.vmptrst()).toBe(v.pa);
    expect(currentVmcs(cpu)).toBe(v.pa);
    cpu.vmresume();
    expect(cpu.rflags() & ZF).toBe(ZF);
    expect(cpu.vmread(0x4400)).toBe(5n); // VMRESUME with non-launched VMCS
  });

  test('a region with the wrong revision id: VMPTRLD fails, and the failure is reported, not ignored', () => {
    const host = hostInVmxOperation();
    const k = host.kernel;
    const v = allocVmcs(k)!;
    k.write32(v.va, k.read32(v.va) ^ 1); // corrupt the revision id
    const r = loadVmcs(k.cpu(), v);
    expect(r.ok).toBe(false);
    // No current VMCS yet, so VMfail(11) shows as VMfailInvalid.
    if (!r.ok) expect(r.error.kind).toBe('VMfailInvalid');
    expect(k.cpu().rflags() & CF).toBe(CF);
  });

  test('with another VMCS current, the same mistake is VMfailValid(11), with its name', () => {
    const host = hostInVmxOperation();
    const k = host.kernel;
    const good = allocVmcs(k)!;
    expect(loadVmcs(k.cpu(), good).ok).toBe(true);
    const bad = allocVmcs(k)!;
    k.write32(bad.va, 0x7fffffff);
    const r = loadVmcs(k.cpu(), bad);
    expect(r).toMatchObject({ ok: false, error: { kind: 'VMfailValid', number: 11 } });
    if (!r.ok && r.error.kind === 'VMfailValid') expect(r.error.name).toMatch(/VMXERR_VMPTRLD_INCORRECT_VMCS_REVISION_ID/);
  });

  test('loading the VMXON region as a VMCS is refused (VMCLEAR with the VMXON pointer: error 3)', () => {
    const host = hostInVmxOperation();
    const k = host.kernel;
    expect(loadVmcs(k.cpu(), allocVmcs(k)!).ok).toBe(true);
    const r = loadVmcs(k.cpu(), { va: k.phys_to_virt(host.vmxonRegion), pa: host.vmxonRegion });
    expect(r).toMatchObject({ ok: false, error: { kind: 'VMfailValid', number: 3 } });
  });

  test('two VMCSs: the last one loaded is current; VMPTRST says so', () => {
    const host = hostInVmxOperation();
    const k = host.kernel;
    const a = allocVmcs(k)!, b = allocVmcs(k)!;
    loadVmcs(k.cpu(), a);
    loadVmcs(k.cpu(), b);
    expect(currentVmcs(k.cpu())).toBe(b.pa);
    expect(k.cpu().vmptrst()).not.toBe(NO_VMCS);
  });
});

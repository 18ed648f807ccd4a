import { describe, expect, test } from 'vitest';
import { allocVmcs, currentVmcs, freeVmcs, loadVmcs } from '#impl/02-vmcs/vmcs-region';
import { CPU_MODELS } from '../../src/machine/cpu-model.ts';
import { MSR_IA32_VMX_BASIC } from '../../src/vmx/msrs.ts';
import { explain, hostInVmxOperation } from '../lib/vmx-setup.ts';
import { hex, showRflags } from '../lib/show.ts';

const NO_VMCS = 0xffffffffffffffffn;
const CF = 1n, ZF = 1n << 6n;

describe('allocVmcs', () => {
  test.each(CPU_MODELS.map((m) => [m.name]))('on %s: aligned, revision id written, shadow bit clear', (name) => {
    const host = hostInVmxOperation({ model: name });
    const k = host.kernel;
    const v = allocVmcs(k);
    expect(v, `${name}: allocVmcs returned null`).not.toBeNull();
    expect(v!.pa % 4096n, `${name}: VMCS at physical ${hex(v!.pa)}: it must be 4-KByte aligned`).toBe(0n);
    const pa = k.virt_to_phys(v!.va);
    expect(pa, `${name}: VMCS va ${hex(v!.va)}, pa ${hex(v!.pa)}, but virt_to_phys(va) = ${hex(pa)}: use physically contiguous memory`).toBe(v!.pa);
    const rev = k.cpu().rdmsr(MSR_IA32_VMX_BASIC) & 0x7fffffffn;
    const first = k.read32(v!.va);
    expect(hex(first), `${name}: the first dword must be the revision id IA32_VMX_BASIC[30:0] = ${hex(rev)}, bit 31 (shadow-VMCS indicator) clear`).toBe(hex(rev));
    const free = k.pages.freeCount();
    freeVmcs(k, v!);
    expect(k.pages.freeCount(), `${name}: freeVmcs must give back the VMCS page`).toBe(free + 1);
  });
});

describe('loadVmcs and currentVmcs', () => {
  test('make the VMCS current, with launch state clear (so VMRESUME fails with error 5)', () => {
    const host = hostInVmxOperation();
    const cpu = host.kernel.cpu();
    const none = currentVmcs(cpu);
    expect(none, `right after VMXON there is no current VMCS (VMPTRST stores all ones), so null; got ${hex(none)}`).toBeNull();
    const v = allocVmcs(host.kernel)!;
    expect(loadVmcs(cpu, v), `loadVmcs(VMCS at ${hex(v.pa)}) should succeed\n${explain(host)}`).toEqual({ ok: true, value: undefined });
    const ptr = cpu.vmptrst();
    expect(ptr, `VMPTRST = ${hex(ptr)}: loadVmcs must VMPTRLD the VMCS at ${hex(v.pa)}`).toBe(v.pa);
    const cur = currentVmcs(cpu);
    expect(cur, `currentVmcs = ${hex(cur)}, VMPTRST says ${hex(ptr)}`).toBe(v.pa);
    cpu.vmresume();
    const rflags = cpu.rflags();
    expect(rflags & ZF, `RFLAGS after VMRESUME = ${showRflags(rflags)}: a VMCS made current by VMCLEAR + VMPTRLD is not launched, so VMfailValid (ZF)`).toBe(ZF);
    const error = cpu.vmread(0x4400);
    expect(error, `VM_INSTRUCTION_ERROR = ${error}: 5 is "VMRESUME with non-launched VMCS" — did loadVmcs VMCLEAR first?`).toBe(5n);
  });

  test('a region with the wrong revision id: VMPTRLD fails, and the failure is reported, not ignored', () => {
    const host = hostInVmxOperation();
    const k = host.kernel;
    const v = allocVmcs(k)!;
    k.write32(v.va, k.read32(v.va) ^ 1); // corrupt the revision id
    const r = loadVmcs(k.cpu(), v);
    expect(r.ok, `the region's revision id is ${hex(k.read32(v.va))}, not IA32_VMX_BASIC[30:0]: VMPTRLD fails, and loadVmcs must say so`).toBe(false);
    // No current VMCS yet, so VMfail(11) shows as VMfailInvalid.
    if (!r.ok) expect(r.error.kind, 'no VMCS is current, so VMfail(11) shows as VMfailInvalid (CF = 1), with no error number').toBe('VMfailInvalid');
    const rflags = k.cpu().rflags();
    expect(rflags & CF, `RFLAGS = ${showRflags(rflags)} after the failed VMPTRLD: VMfailInvalid sets CF`).toBe(CF);
  });

  test('with another VMCS current, the same mistake is VMfailValid(11), with its name', () => {
    const host = hostInVmxOperation();
    const k = host.kernel;
    const good = allocVmcs(k)!;
    expect(loadVmcs(k.cpu(), good).ok, `loading a good VMCS failed\n${explain(host)}`).toBe(true);
    const bad = allocVmcs(k)!;
    k.write32(bad.va, 0x7fffffff);
    const r = loadVmcs(k.cpu(), bad);
    expect(r, 'revision id 0x7fffffff is wrong, and a VMCS is current: VMfailValid with error 11 (VMPTRLD with incorrect VMCS revision identifier)').toMatchObject({ ok: false, error: { kind: 'VMfailValid', number: 11 } });
    if (!r.ok && r.error.kind === 'VMfailValid') expect(r.error.name, 'error 11 by its Linux name').toMatch(/VMXERR_VMPTRLD_INCORRECT_VMCS_REVISION_ID/);
  });

  test('loading the VMXON region as a VMCS is refused (VMCLEAR with the VMXON pointer: error 3)', () => {
    const host = hostInVmxOperation();
    const k = host.kernel;
    expect(loadVmcs(k.cpu(), allocVmcs(k)!).ok, `loading a good VMCS failed\n${explain(host)}`).toBe(true);
    const r = loadVmcs(k.cpu(), { va: k.phys_to_virt(host.vmxonRegion), pa: host.vmxonRegion });
    expect(r, `the VMXON region is at ${hex(host.vmxonRegion)}: VMCLEAR of it fails with VMfailValid(3), "VMCLEAR with VMXON pointer" — report it`).toMatchObject({ ok: false, error: { kind: 'VMfailValid', number: 3 } });
  });

  test('two VMCSs: the last one loaded is current; VMPTRST says so', () => {
    const host = hostInVmxOperation();
    const k = host.kernel;
    const a = allocVmcs(k)!, b = allocVmcs(k)!;
    loadVmcs(k.cpu(), a);
    loadVmcs(k.cpu(), b);
    const cur = currentVmcs(k.cpu());
    expect(cur, `VMCS a at ${hex(a.pa)}, then b at ${hex(b.pa)}: currentVmcs = ${hex(cur)}, expected b`).toBe(b.pa);
    expect(k.cpu().vmptrst(), 'VMPTRST stores all ones only when no VMCS is current').not.toBe(NO_VMCS);
  });
});

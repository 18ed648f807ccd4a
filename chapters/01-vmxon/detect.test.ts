import { describe, expect, test } from 'vitest';
import { cpuHasVmx, enableFeatureControl } from '#impl/01-vmxon/detect';
import { bootHost } from '../../src/kernel/boot-host.ts';
import { CPU_MODELS } from '../../src/machine/cpu-model.ts';
import { MSR_IA32_FEATURE_CONTROL } from '../../src/vmx/msrs.ts';
import { hex } from '../lib/show.ts';

// SDM Vol. 3C, "Enabling and Entering VMX Operation": bit 0 lock, bit 2 "enable VMX outside SMX".
const LOCK = 1n, OUTSIDE_SMX = 4n;

describe('cpuHasVmx', () => {
  test.each(CPU_MODELS.map((m) => [m.name]))('%s reports VMX in CPUID.1:ECX[5]', (name) => {
    const { kernel } = bootHost({ model: name });
    const ecx = kernel.cpu().cpuid(1).ecx >>> 0;
    expect(cpuHasVmx(kernel.cpu()), `${name}: CPUID.1:ECX = ${hex(ecx)}, bit 5 (VMX) is 1, so VMX is there`).toBe(true);
  });
  test('a CPU whose CPUID hides VMX is detected as such', () => {
    const { kernel } = bootHost({ hideVmx: true });
    const ecx = kernel.cpu().cpuid(1).ecx >>> 0;
    expect(cpuHasVmx(kernel.cpu()), `CPUID.1:ECX = ${hex(ecx)}, bit 5 (VMX) is 0: no VMX`).toBe(false);
  });
});

describe('enableFeatureControl', () => {
  test('unlocked by the firmware: enables VMX outside SMX and locks the MSR', () => {
    const { kernel } = bootHost({ featureControl: 'unlocked' });
    const cpu = kernel.cpu();
    const before = cpu.rdmsr(MSR_IA32_FEATURE_CONTROL);
    expect(enableFeatureControl(cpu), `IA32_FEATURE_CONTROL (3AH) was ${hex(before)}: unlocked, so you enable VMX and lock it yourself (alreadyLocked: false)`).toEqual({ ok: true, alreadyLocked: false });
    const fc = cpu.rdmsr(MSR_IA32_FEATURE_CONTROL);
    expect(hex(fc & (LOCK | OUTSIDE_SMX)), `IA32_FEATURE_CONTROL is now ${hex(fc)}: bit 0 (lock) and bit 2 (enable VMX outside SMX) must both be 1`).toBe(hex(LOCK | OUTSIDE_SMX));
  });
  test('keeps other bits the firmware set (e.g. SENTER enables, bits 14:8)', () => {
    const { kernel } = bootHost({ featureControl: 'unlocked' });
    const cpu = kernel.cpu();
    cpu.wrmsr(MSR_IA32_FEATURE_CONTROL, 0x7f00n);
    enableFeatureControl(cpu);
    const fc = cpu.rdmsr(MSR_IA32_FEATURE_CONTROL);
    expect(hex(fc), `IA32_FEATURE_CONTROL was 0x7f00; after yours it is ${hex(fc)}: OR in bits 0 and 2, keep the rest`).toBe(hex(0x7f00n | LOCK | OUTSIDE_SMX));
  });
  test('locked with VMX enabled: nothing to write (a WRMSR would #GP)', () => {
    const { kernel } = bootHost({ featureControl: 'locked-enabled' });
    const fc = kernel.cpu().rdmsr(MSR_IA32_FEATURE_CONTROL);
    expect(enableFeatureControl(kernel.cpu()), `IA32_FEATURE_CONTROL = ${hex(fc)}: locked (bit 0) with bit 2 set — VMX is allowed, and a WRMSR would #GP`).toEqual({ ok: true, alreadyLocked: true });
  });
  test('locked with VMX disabled: a clear error, not an oops', () => {
    const { kernel } = bootHost({ featureControl: 'locked-disabled' });
    const fc = kernel.cpu().rdmsr(MSR_IA32_FEATURE_CONTROL);
    const r = enableFeatureControl(kernel.cpu());
    expect(r.ok, `IA32_FEATURE_CONTROL = ${hex(fc)}: locked with bit 2 clear, VMX is disabled in the firmware`).toBe(false);
    if (!r.ok) expect(r.reason, 'the reason should tell the learner the BIOS/firmware disabled VMX').toMatch(/BIOS|firmware|disabled/i);
  });
  test('IA32_FEATURE_CONTROL is per CPU: enabling it on CPU 0 leaves CPU 1 unlocked', () => {
    const { kernel } = bootHost({ cpus: 2, featureControl: 'unlocked' });
    enableFeatureControl(kernel.allCpus()[0]!);
    const fc1 = kernel.allCpus()[1]!.rdmsr(MSR_IA32_FEATURE_CONTROL);
    expect(hex(fc1 & LOCK), `CPU 1's IA32_FEATURE_CONTROL = ${hex(fc1)}: enableFeatureControl(cpu 0) must write CPU 0's MSR only`).toBe('0x0');
  });
});

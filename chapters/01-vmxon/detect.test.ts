import { describe, expect, test } from 'vitest';
import { cpuHasVmx, enableFeatureControl } from '#impl/01-vmxon/detect';
import { bootHost } from '../../src/kernel/boot-host.ts';
import { CPU_MODELS } from '../../src/machine/cpu-model.ts';
import { MSR_IA32_FEATURE_CONTROL } from '../../src/vmx/msrs.ts';

// SDM Vol. 3C, "Enabling and Entering VMX Operation": bit 0 lock, bit 2 "enable VMX outside SMX".
const LOCK = 1n, OUTSIDE_SMX = 4n;

describe('cpuHasVmx', () => {
  test.each(CPU_MODELS.map((m) => [m.name]))('%s reports VMX in CPUID.1:ECX[5]', (name) => {
    const { kernel } = bootHost({ model: name });
    expect(cpuHasVmx(kernel.cpu())).toBe(true);
  });
  test('a CPU whose CPUID hides VMX is detected as such', () => {
    const { kernel } = bootHost({ hideVmx: true });
    expect(cpuHasVmx(kernel.cpu())).toBe(false);
  });
});

describe('enableFeatureControl', () => {
  test('unlocked by the firmware: enables VMX outside SMX and locks the MSR', () => {
    const { kernel } = bootHost({ featureControl: 'unlocked' });
    const cpu = kernel.cpu();
    expect(enableFeatureControl(cpu)).toEqual({ ok: true, alreadyLocked: false });
    const fc = cpu.rdmsr(MSR_IA32_FEATURE_CONTROL);
    expect(fc & (LOCK | OUTSIDE_SMX)).toBe(LOCK | OUTSIDE_SMX);
  });
  test('keeps other bits the firmware set (e.g. SENTER enables, bits 14:8)', () => {
    const { kernel } = bootHost({ featureControl: 'unlocked' });
    const cpu = kernel.cpu();
    cpu.wrmsr(MSR_IA32_FEATURE_CONTROL, 0x7f00n);
    enableFeatureControl(cpu);
    expect(cpu.rdmsr(MSR_IA32_FEATURE_CONTROL)).toBe(0x7f00n | LOCK | OUTSIDE_SMX);
  });
  test('locked with VMX enabled: nothing to write (a WRMSR would #GP)', () => {
    const { kernel } = bootHost({ featureControl: 'locked-enabled' });
    expect(enableFeatureControl(kernel.cpu())).toEqual({ ok: true, alreadyLocked: true });
  });
  test('locked with VMX disabled: a clear error, not an oops', () => {
    const { kernel } = bootHost({ featureControl: 'locked-disabled' });
    const r = enableFeatureControl(kernel.cpu());
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.reason).toMatch(/BIOS|firmware|disabled/i);
  });
  test('IA32_FEATURE_CONTROL is per CPU: enabling it on CPU 0 leaves CPU 1 unlocked', () => {
    const { kernel } = bootHost({ cpus: 2, featureControl: 'unlocked' });
    enableFeatureControl(kernel.allCpus()[0]!);
    expect(kernel.allCpus()[1]!.rdmsr(MSR_IA32_FEATURE_CONTROL) & LOCK).toBe(0n);
  });
});

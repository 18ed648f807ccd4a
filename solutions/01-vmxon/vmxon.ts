// Entering and leaving VMX operation on the current CPU, putting exercises 1.1–1.3 together.
// See SDM Vol. 3C, "Enabling and Entering VMX Operation", "VMXON—Enter VMX Operation" and
// "VMXOFF—Leave VMX Operation".
import type { Kernel } from '../../src/kernel/kernel.ts';
import { cpuHasVmx, enableFeatureControl } from './detect.ts';
import { X86_CR4_VMXE, enterVmxCrState } from './fixed-bits.ts';
import { allocVmxonRegion, freeVmxRegion, type VmxRegion } from './vmxon-region.ts';

const RFLAGS_CF = 1n << 0n;
const RFLAGS_ZF = 1n << 6n;

export type VmxOnResult = { ok: true; region: VmxRegion } | { ok: false; error: string };

/** Run on one CPU with preemption disabled (the VMXON region belongs to this CPU). */
export function vmxOn(k: Kernel): VmxOnResult {
  const cpu = k.cpu();
  if (!cpuHasVmx(cpu)) return { ok: false, error: 'this CPU does not support VMX (CPUID.1:ECX.VMX = 0)' };
  const fc = enableFeatureControl(cpu);
  if (!fc.ok) return { ok: false, error: fc.reason };
  // Remember whether VMXE was already set (say, VMX is already on): then it is not ours to clear,
  // and clearing it in VMX operation would even #GP (VMXE is a fixed-1 bit there).
  const hadVmxe = (cpu.readCr4() & X86_CR4_VMXE) !== 0n;
  enterVmxCrState(cpu);
  const region = allocVmxonRegion(k);
  if (region === null) return { ok: false, error: 'could not allocate the VMXON region' };
  cpu.vmxon(region.pa);
  const rflags = cpu.rflags();
  // VMXON has no current VMCS to report an error number into: failure is VMfailInvalid (CF = 1).
  if ((rflags & (RFLAGS_CF | RFLAGS_ZF)) !== 0n) {
    freeVmxRegion(k, region);
    if (!hadVmxe) cpu.writeCr4(cpu.readCr4() & ~X86_CR4_VMXE);
    return { ok: false, error: `VMXON failed (${(rflags & RFLAGS_CF) !== 0n ? 'VMfailInvalid' : 'VMfailValid'})` };
  }
  k.printk(`vmxlab: cpu ${cpu.id}: VMX on, VMXON region at ${region.pa.toString(16)}`);
  return { ok: true, region };
}

/** Leave VMX operation, clear CR4.VMXE and free the region (after VMXOFF, never before). */
export function vmxOff(k: Kernel, region: VmxRegion): void {
  const cpu = k.cpu();
  cpu.vmxoff();
  cpu.writeCr4(cpu.readCr4() & ~X86_CR4_VMXE);
  freeVmxRegion(k, region);
}

// Test support for chapters after chapter 1: put a CPU into VMX operation with the kit's own short
// sequence, so a chapter's tests grade that chapter's exercises and not the learner's earlier code.
// (The learner's exercises still build on their own earlier code.)
import { bootHost, type Host, type HostOptions } from '../../src/kernel/boot-host.ts';
import type { Kernel } from '../../src/kernel/kernel.ts';
import {
  MSR_IA32_FEATURE_CONTROL, MSR_IA32_VMX_BASIC, MSR_IA32_VMX_CR0_FIXED0, MSR_IA32_VMX_CR0_FIXED1,
  MSR_IA32_VMX_CR4_FIXED0, MSR_IA32_VMX_CR4_FIXED1,
} from '../../src/vmx/msrs.ts';

/** Boot a host and enter VMX operation on CPU 0 (or fail loudly: that is a kit bug, not the learner's). */
export function hostInVmxOperation(opts: HostOptions = {}): Host & { vmxonRegion: bigint } {
  const host = bootHost(opts);
  const vmxonRegion = kitVmxOn(host.kernel);
  return { ...host, vmxonRegion };
}

export function kitVmxOn(k: Kernel): bigint {
  const cpu = k.cpu();
  const fc = cpu.rdmsr(MSR_IA32_FEATURE_CONTROL);
  if ((fc & 1n) === 0n) cpu.wrmsr(MSR_IA32_FEATURE_CONTROL, fc | 5n);
  cpu.writeCr4(((cpu.readCr4() | (1n << 13n)) | cpu.rdmsr(MSR_IA32_VMX_CR4_FIXED0)) & cpu.rdmsr(MSR_IA32_VMX_CR4_FIXED1));
  cpu.writeCr0((cpu.readCr0() | cpu.rdmsr(MSR_IA32_VMX_CR0_FIXED0)) & cpu.rdmsr(MSR_IA32_VMX_CR0_FIXED1));
  const va = k.get_zeroed_page();
  k.write32(va, Number(cpu.rdmsr(MSR_IA32_VMX_BASIC) & 0x7fffffffn));
  const pa = k.virt_to_phys(va);
  cpu.vmxon(pa);
  if ((cpu.rflags() & 0x41n) !== 0n) throw new Error('kit setup: VMXON failed (this is a VMX Lab bug)');
  return pa;
}

/** A fresh, VMCLEARed, zeroed VMCS region with the right revision id, made current. Returns its address. */
export function kitCurrentVmcs(k: Kernel): bigint {
  const cpu = k.cpu();
  const va = k.get_zeroed_page();
  k.write32(va, Number(cpu.rdmsr(MSR_IA32_VMX_BASIC) & 0x7fffffffn));
  const pa = k.virt_to_phys(va);
  cpu.vmclear(pa);
  cpu.vmptrld(pa);
  if ((cpu.rflags() & 0x41n) !== 0n) throw new Error('kit setup: VMPTRLD failed (this is a VMX Lab bug)');
  return pa;
}

/** The emulator's explanation of the last VMX failure on CPU 0, for failure messages. */
export function explain(host: Host): string {
  const d = host.vmx[0]?.lastDiagnosis();
  if (d == null) return `(no VMX diagnosis)\n${host.kernel.dmesg()}`;
  return `${JSON.stringify(d, (_k, v) => (typeof v === 'bigint' ? `0x${v.toString(16)}` : v), 2)}\n${host.kernel.dmesg()}`;
}

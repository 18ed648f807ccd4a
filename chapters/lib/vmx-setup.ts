// Test support for chapters after chapter 1: put a CPU into VMX operation with the kit's own short
// sequence, so a chapter's tests grade that chapter's exercises and not the learner's earlier code.
// (The learner's exercises still build on their own earlier code.) Also the failure-message helper
// every chapter test uses.
import { bootHost, type Host, type HostOptions } from '../../src/kernel/boot-host.ts';
import type { HostCpu } from '../../src/kernel/host-cpu.ts';
import type { Kernel } from '../../src/kernel/kernel.ts';
import { formatDiagnosis } from '../../src/vmx/diagnosis.ts';
import {
  MSR_IA32_FEATURE_CONTROL, MSR_IA32_VMX_BASIC, MSR_IA32_VMX_CR0_FIXED0, MSR_IA32_VMX_CR0_FIXED1,
  MSR_IA32_VMX_CR4_FIXED0, MSR_IA32_VMX_CR4_FIXED1,
} from '../../src/vmx/msrs.ts';

const CF_ZF = 0x41n;

/** Boot a host and enter VMX operation on CPU 0 (or fail loudly: that is a kit bug, not the learner's). */
export function hostInVmxOperation(opts: HostOptions = {}): Host & { vmxonRegion: bigint } {
  const host = bootHost(opts);
  const vmxonRegion = kitVmxOn(host.kernel);
  return { ...host, vmxonRegion };
}

/** IA32_FEATURE_CONTROL, CR0/CR4 fixed bits with VMXE, a VMXON region, VMXON — on `cpu`. Returns the region's address. */
export function kitVmxOn(k: Kernel, cpu: HostCpu = k.cpu()): bigint {
  const fc = cpu.rdmsr(MSR_IA32_FEATURE_CONTROL);
  if ((fc & 1n) === 0n) cpu.wrmsr(MSR_IA32_FEATURE_CONTROL, fc | 5n);
  cpu.writeCr4(((cpu.readCr4() | (1n << 13n)) | cpu.rdmsr(MSR_IA32_VMX_CR4_FIXED0)) & cpu.rdmsr(MSR_IA32_VMX_CR4_FIXED1));
  cpu.writeCr0((cpu.readCr0() | cpu.rdmsr(MSR_IA32_VMX_CR0_FIXED0)) & cpu.rdmsr(MSR_IA32_VMX_CR0_FIXED1));
  const pa = kitRegion(k, cpu);
  cpu.vmxon(pa);
  if ((cpu.rflags() & CF_ZF) !== 0n) throw new Error('kit setup: VMXON failed (this is a VMX Lab bug)');
  return pa;
}

/** A fresh, VMCLEARed, zeroed VMCS region with the right revision id, made current on `cpu`. Returns its address. */
export function kitCurrentVmcs(k: Kernel, cpu: HostCpu = k.cpu()): bigint {
  const pa = kitRegion(k, cpu);
  cpu.vmclear(pa);
  cpu.vmptrld(pa);
  if ((cpu.rflags() & CF_ZF) !== 0n) throw new Error('kit setup: VMPTRLD failed (this is a VMX Lab bug)');
  return pa;
}

/** A zeroed page starting with the VMCS revision identifier (for a VMXON region or a VMCS). */
function kitRegion(k: Kernel, cpu: HostCpu): bigint {
  const va = k.get_zeroed_page();
  k.write32(va, Number(cpu.rdmsr(MSR_IA32_VMX_BASIC) & 0x7fffffffn));
  return k.virt_to_phys(va);
}

/** What a failing test prints: the VMX diagnosis of every CPU (rule, SDM section, field, value), dmesg, guest output. */
export function explain(host: Host, extra = ''): string {
  const lines: string[] = [];
  if (extra !== '') lines.push(extra);
  host.vmx.forEach((u, i) => {
    const d = u.lastDiagnosis();
    if (d !== null) lines.push(`VMX diagnosis (cpu ${i}):\n${formatDiagnosis(d)}`);
  });
  lines.push(`dmesg:\n${host.kernel.dmesg()}`);
  if (host.console.text() !== '') lines.push(`guest console (port E9H):\n${host.console.text()}`);
  return lines.join('\n');
}

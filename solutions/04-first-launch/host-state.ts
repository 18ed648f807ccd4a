// The host-state area: what a VM exit loads into the processor so that the hypervisor continues at HOST_RIP
// in a sane kernel context. Everything here is copied from the CPU we run on — once, at setup — so it must be
// state that is still valid at every later VM exit.
// See SDM Vol. 3C, "Host-State Area", "Checks on VMX Controls and Host-State Area" and "Loading Host State".
import type { HostCpu } from '../../src/kernel/host-cpu.ts';
import type { Kernel } from '../../src/kernel/kernel.ts';
import { MSR_IA32_SYSENTER_CS, MSR_IA32_SYSENTER_EIP, MSR_IA32_SYSENTER_ESP } from '../../src/x86/msr.ts';
import { decodeDescriptor } from '../00-machine/descriptor.ts';
import { hostSelector } from '../00-machine/selector.ts';
import { vmwrite, type VmxResult } from '../02-vmcs/vmx-access.ts';

/** Where the CPU goes on a VM exit: a kernel-text address from `k.hostEntry()` and a kernel stack. */
export interface HostEntryPoint {
  readonly rip: bigint;
  readonly rsp: bigint;
}

const SELECTOR_INDEX_SHIFT = 3;

/**
 * The base of the segment that `selector` names in the GDT at `gdtBase`. A TSS descriptor in IA-32e mode is
 * 16 bytes: the second 8 bytes hold base bits 63:32. See SDM Vol. 3A, "TSS Descriptor in 64-bit mode".
 */
export function systemSegmentBase(k: Kernel, gdtBase: bigint, selector: number): bigint {
  const at = gdtBase + BigInt((selector >> SELECTOR_INDEX_SHIFT) * 8);
  const low = decodeDescriptor(k.read64(at));
  const high = k.read32(at + 8n);
  return BigInt(low.base >>> 0) | (BigInt(high >>> 0) << 32n);
}

/**
 * Fill the host-state area of the current VMCS from the running CPU. Returns the first VMWRITE that failed.
 * Call with preemption disabled: GDT, TSS and the per-CPU GS base belong to this CPU.
 */
export function writeHostState(k: Kernel, cpu: HostCpu, entry: HostEntryPoint): VmxResult<void> {
  const gdtr = cpu.sgdt();
  const idtr = cpu.sidt();
  const tr = cpu.str();
  const writes: (() => VmxResult<void>)[] = [
    // Control registers. CR3: the kernel's own page tables (init_mm), not whatever process happens to be
    // current — a VM exit loads HOST_CR3 long after that process may have exited.
    () => vmwrite(cpu, 'HOST_CR0', cpu.readCr0()),
    () => vmwrite(cpu, 'HOST_CR3', BigInt(k.cr3)),
    () => vmwrite(cpu, 'HOST_CR4', cpu.readCr4()),

    // Selectors: VM entry requires RPL = 0 and TI = 0 (mask with ~7, never 0xF8), CS and TR not null.
    // See SDM Vol. 3C, "Checks on Host Segment and Descriptor-Table Registers".
    () => vmwrite(cpu, 'HOST_CS_SELECTOR', hostSelector(cpu.readSelector('cs'))),
    () => vmwrite(cpu, 'HOST_SS_SELECTOR', hostSelector(cpu.readSelector('ss'))),
    () => vmwrite(cpu, 'HOST_DS_SELECTOR', hostSelector(cpu.readSelector('ds'))),
    () => vmwrite(cpu, 'HOST_ES_SELECTOR', hostSelector(cpu.readSelector('es'))),
    () => vmwrite(cpu, 'HOST_FS_SELECTOR', hostSelector(cpu.readSelector('fs'))),
    () => vmwrite(cpu, 'HOST_GS_SELECTOR', hostSelector(cpu.readSelector('gs'))),
    () => vmwrite(cpu, 'HOST_TR_SELECTOR', hostSelector(tr)),

    // Bases. There is no host CS/SS/DS/ES base (a 64-bit host uses 0); FS and GS bases come from the
    // CPU (Linux keeps the per-CPU area in GS), TR's from its descriptor in this CPU's GDT.
    () => vmwrite(cpu, 'HOST_FS_BASE', cpu.readFsBase()),
    () => vmwrite(cpu, 'HOST_GS_BASE', cpu.readGsBase()),
    () => vmwrite(cpu, 'HOST_TR_BASE', systemSegmentBase(k, gdtr.base, tr)),
    // Only the bases: a VM exit sets both limits to FFFFH. See SDM Vol. 3C, "Loading Host Segment and
    // Descriptor-Table Registers".
    () => vmwrite(cpu, 'HOST_GDTR_BASE', gdtr.base),
    () => vmwrite(cpu, 'HOST_IDTR_BASE', idtr.base),

    // SYSENTER MSRs are always loaded on VM exit. See SDM Vol. 3C, "Loading Host Control Registers, Debug
    // Registers, MSRs".
    () => vmwrite(cpu, 'HOST_IA32_SYSENTER_CS', Number(cpu.rdmsr(MSR_IA32_SYSENTER_CS) & 0xffffffffn)),
    () => vmwrite(cpu, 'HOST_IA32_SYSENTER_ESP', cpu.rdmsr(MSR_IA32_SYSENTER_ESP)),
    () => vmwrite(cpu, 'HOST_IA32_SYSENTER_EIP', cpu.rdmsr(MSR_IA32_SYSENTER_EIP)),

    () => vmwrite(cpu, 'HOST_RSP', entry.rsp),
    () => vmwrite(cpu, 'HOST_RIP', entry.rip),
  ];
  for (const write of writes) {
    const r = write();
    if (!r.ok) return r;
  }
  return { ok: true, value: undefined };
}

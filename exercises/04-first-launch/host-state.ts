// Exercise 4.1 — the host-state area: what a VM exit loads into the processor so that your handler at HOST_RIP
// runs in a sane kernel context. Read chapters/04-first-launch/README.md, section "The host-state area".
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

/**
 * The 64-bit base of the system segment (a TSS) that `selector` names in the GDT at `gdtBase` (a kernel virtual
 * address: read it with k.read64/k.read32). In IA-32e mode a TSS descriptor is 16 bytes: the first 8 are an
 * ordinary descriptor (base bits 31:0), the next 4 hold base bits 63:32.
 * See SDM Vol. 3A, "TSS Descriptor in 64-bit mode".
 */
export function systemSegmentBase(k: Kernel, gdtBase: bigint, selector: number): bigint {
  // TODO: the descriptor is at gdtBase + index * 8 (index = selector >> 3); use decodeDescriptor for bits 31:0.
  throw new Error('TODO: systemSegmentBase');
}

/**
 * Fill the host-state area of the current VMCS from the running CPU, and return the first VMWRITE that failed
 * (or { ok: true }). Fields: HOST_CR0/CR3/CR4; HOST_{CS,SS,DS,ES,FS,GS,TR}_SELECTOR; HOST_{FS,GS,TR,GDTR,IDTR}_BASE;
 * HOST_IA32_SYSENTER_{CS,ESP,EIP}; HOST_RSP and HOST_RIP from `entry`.
 * Careful: selectors with RPL and TI cleared; CR3 must name page tables that outlive the module (k.cr3, the
 * kernel's init_mm page tables — not cpu.readCr3(), which belongs to whatever process ran insmod).
 */
export function writeHostState(k: Kernel, cpu: HostCpu, entry: HostEntryPoint): VmxResult<void> {
  // TODO
  throw new Error('TODO: writeHostState');
}

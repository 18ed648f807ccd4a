// Test support for chapter 6 (imported by the tests only, never by learner code):
//  - the CPU models with and without EPT (a model without "enable EPT" allowed-1 cannot run these parts: the tests
//    skip it, and check instead that your code refuses it with a clear message);
//  - inspect: what a fresh walk of an EPT finds for one guest-physical address (src/vmx/ept/inspect.ts), with the
//    processor's own capability MSR and MAXPHYADDR, as text for failure messages;
//  - chapter 5's runPart (one of your parts on the kit's hypervisor), re-exported.
import { bootHost, type Host } from '../../src/kernel/testing/reference-vm.ts';
import { CPU_MODELS } from '../../src/machine/cpu-model.ts';
import { canSet } from '../../src/vmx/capabilities.ts';
import { VMX_CONTROL } from '../../src/vmx/controls.ts';
import { capabilitiesOf } from '../../src/vmx/emulated-msrs.ts';
import { eptpProblem } from '../../src/vmx/eptp.ts';
import { formatEptInspection, inspectGpa, type EptInspection } from '../../src/vmx/ept/inspect.ts';

export { bootHost, type Host };
export { runPart, type PartRun } from '../05-exits/support.ts';
export { CPU_MODELS };

/** Models whose VMX allows "enable EPT" (secondary control bit 1). */
export const EPT_MODELS = CPU_MODELS.filter((m) => canSet(capabilitiesOf(m), 'proc2', VMX_CONTROL.SECONDARY_EXEC_ENABLE_EPT)).map((m) => m.name);
/** Models without EPT: skipped by the EPT tests, used to check that your code refuses them. */
export const NO_EPT_MODELS = CPU_MODELS.map((m) => m.name).filter((n) => !EPT_MODELS.includes(n));

export const hex = (v: bigint | number): string => `0x${v.toString(16)}`;

/** The model's IA32_VMX_EPT_VPID_CAP and MAXPHYADDR, as a booted host reports them. */
export function eptFacts(host: Host): { cap: bigint; maxPhysAddr: number } {
  return { cap: host.vmx[0]!.caps.eptVpidCap, maxPhysAddr: host.machine.cpus[0]!.maxPhysAddr };
}

/** A fresh walk of `eptp` for `gpa` (no accessed/dirty update, no cached mapping), and the same as text. */
export function inspect(host: Host, eptp: bigint, gpa: bigint): { result: EptInspection; text: string } {
  const lp = host.machine.cpus[0]!;
  const result = inspectGpa({
    eptp, gpa, caps: { eptVpidCap: host.vmx[0]!.caps.eptVpidCap }, maxPhysAddr: lp.maxPhysAddr, mbec: false,
    readPhys64: (pa) => lp.memory.read64(Number(pa)),
  });
  return { result, text: formatEptInspection(gpa, result) };
}

/** Null if VM entry would accept `eptp` on this host, else what it would say. */
export function eptpRefusal(host: Host, eptp: bigint): string | null {
  const p = eptpProblem(eptp, host.vmx[0]!.caps, host.machine.cpus[0]!.maxPhysAddr);
  return p === null ? null : `${p.message} (expected ${p.expected})`;
}

export const EPTP_RULE = 'SDM Vol. 3C, "Extended-Page-Table Pointer (EPTP)": bits 2:0 memory type (6 WB if IA32_VMX_EPT_VPID_CAP[14], else 0 UC if bit 8), ' +
  'bits 5:3 page-walk length − 1 (3, if bit 6), bit 6 accessed/dirty flags (only if bit 21), bits 11:7 reserved, bits N−1:12 the PML4 address';

/** JSON with bigints in hex (failure messages). */
export function show(v: unknown): string {
  return JSON.stringify(v, (_k, x: unknown) => (typeof x === 'bigint' ? hex(x) : x)) ?? String(v);
}

/**
 * The kit's own identity map (so a test of one exercise does not grade another): guest-physical [0, bytes) →
 * the same host-physical addresses, RWX, WB, with 1-GByte or 2-MByte pages; tables from get_zeroed_page.
 */
export function kitIdentityMap(k: Host['kernel'], pageSize: bigint, bytes: bigint): { pml4: bigint; pages: bigint[] } {
  const RWX = 7n, WB = 6n << 3n, PS = 1n << 7n;
  const page = (): bigint => {
    const va = k.get_zeroed_page();
    if (va === 0n) throw new Error('kit: out of memory');
    pages.push(va);
    return va;
  };
  const pages: bigint[] = [];
  const pml4 = page(), pdpt = page();
  k.write64(pml4, k.virt_to_phys(pdpt) | RWX);
  for (let g = 0n; g * (1n << 30n) < bytes; g++) {
    if (pageSize === 1n << 30n) {
      k.write64(pdpt + 8n * g, (g << 30n) | RWX | WB | PS);
      continue;
    }
    const pd = page();
    k.write64(pdpt + 8n * g, k.virt_to_phys(pd) | RWX);
    for (let i = 0n; i < 512n; i++) k.write64(pd + 8n * i, (g << 30n) | (i << 21n) | RWX | WB | PS);
  }
  return { pml4: k.virt_to_phys(pml4), pages };
}

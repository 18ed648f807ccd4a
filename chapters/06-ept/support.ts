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

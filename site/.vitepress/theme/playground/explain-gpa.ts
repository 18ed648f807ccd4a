// The playground's "explain a guest-physical address" (chapter 6's debug aid), inside the worker: after a hypervisor
// run, the EPT the module's VMCS names — EPT_POINTER, if "enable EPT" applies — is walked without side effects for
// any address the page asks about (src/vmx/ept/inspect.ts). The host stays in the worker until the next run, so the
// walk reads the module's tables as the run left them.
// See SDM Vol. 3C, "EPT Translation Mechanism" and "Secondary Processor-Based VM-Execution Controls".
import { dumpVmcs, type VmcsDumpSource } from '../../../../src/debug/vmcs-dump.ts';
import type { Host } from '../../../../src/kernel/boot-host.ts';
import { hex } from '../../../../src/util/hex.ts';
import { parseAddress } from '../../../../src/util/parse-address.ts';
import { VMX_CONTROL } from '../../../../src/vmx/controls.ts';
import type { VmcsFieldName } from '../../../../src/vmx/fields.ts';
import { formatEptInspection, inspectGpa } from '../../../../src/vmx/ept/inspect.ts';
import { eptpProblem } from '../../../../src/vmx/eptp.ts';
import type { EptSummary } from './protocol.ts';

interface KeptEpt {
  readonly host: Host;
  readonly eptp: bigint;
  /** Mode-based execute control: the walk reports XU (bit 10) too. */
  readonly mbec: boolean;
}

let kept: KeptEpt | null = null;

/**
 * What the VMCS of the run says about EPT (`vmcs`: the VMCS the page dumps, or null), and keep the host for
 * explainGpa. The secondary controls apply only with "activate secondary controls" (primary bit 31).
 */
export function keepEptOfRun(host: Host, vmcs: VmcsDumpSource | null): EptSummary {
  kept = null;
  const rows = vmcs === null ? null : dumpVmcs(vmcs)?.rows;
  if (rows === undefined || rows === null) return { enabled: false, text: 'No VMCS to read EPT_POINTER from: the module never got as far as a VM entry.' };
  const field = (name: VmcsFieldName): bigint => rows.find((r) => r.name === name)?.value ?? 0n;
  const proc = Number(field('CPU_BASED_VM_EXEC_CONTROL'));
  if ((proc & VMX_CONTROL.CPU_BASED_ACTIVATE_SECONDARY_CONTROLS) === 0) {
    return { enabled: false, text: 'EPT is off in this run: "activate secondary controls" (CPU_BASED_VM_EXEC_CONTROL bit 31) is 0, so "enable EPT" does not apply and guest-physical addresses are host-physical. The example "EPT identity map (chapter 6)" turns EPT on.' };
  }
  const proc2 = Number(field('SECONDARY_VM_EXEC_CONTROL'));
  if ((proc2 & VMX_CONTROL.SECONDARY_EXEC_ENABLE_EPT) === 0) {
    return { enabled: false, text: 'EPT is off in this run: "enable EPT" (SECONDARY_VM_EXEC_CONTROL bit 1) is 0, so guest-physical addresses are host-physical. The example "EPT identity map (chapter 6)" turns EPT on.' };
  }
  const eptp = field('EPT_POINTER');
  const lp = host.machine.cpus[0]!;
  const problem = eptpProblem(eptp, host.vmx[0]!.caps, lp.maxPhysAddr, ['walk-length']);
  if (problem !== null) return { enabled: false, text: `EPT_POINTER ${hex(eptp)} cannot be walked: ${problem.message}.` };
  kept = { host, eptp, mbec: (proc2 & VMX_CONTROL.SECONDARY_EXEC_MODE_BASED_EPT_EXEC) !== 0 };
  return { enabled: true, text: `EPT is on: EPT_POINTER ${hex(eptp)}, read from the VMCS of the run.` };
}

/** The walk of `text` (an address as the learner typed it) under the kept EPTP. */
export function explainGpa(text: string): string {
  if (kept === null) return 'No EPT to walk: run a module that enables EPT first.';
  const gpa = parseAddress(text);
  if (gpa === null) return `'${text}' is not a guest-physical address: give it in hex (0x1000 or 1000H) or decimal.`;
  const { host, eptp, mbec } = kept;
  const lp = host.machine.cpus[0]!;
  const result = inspectGpa({
    eptp, gpa, caps: { eptVpidCap: host.vmx[0]!.caps.eptVpidCap }, maxPhysAddr: lp.maxPhysAddr, mbec,
    readPhys64: (pa) => lp.memory.read64(Number(pa)),
  });
  return formatEptInspection(gpa, result);
}

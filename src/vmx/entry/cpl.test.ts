// CPL after VM entry is SS.DPL, not CS.RPL: an unrestricted guest may be entered with CS.RPL = 3 and
// SS.DPL = 0, and it then runs at CPL 0. See SDM Vol. 3C, "Loading Guest Segment Registers and
// Descriptor-Table Registers" ("SS.DPL … will be the current privilege level (CPL) after the VM entry
// completes") and "Checks on Guest Segment Registers" (CS.RPL = SS.RPL only when "unrestricted guest" is 0).
import { describe, expect, it } from 'vitest';
import { CPU_MODELS } from '../../machine/cpu-model.ts';
import {
  REFERENCE_SEGMENTS, bootHost, enableUnrestrictedGuest, enterVmx, explain, read, runGuests, write, writeReferenceVmcs,
} from '../../kernel/testing/reference-vm.ts';
import { capabilitiesOf } from '../emulated-msrs.ts';
import { VMX_CONTROL } from '../controls.ts';
import { EXIT_REASON } from '../exit-reasons.ts';

const models = CPU_MODELS.filter((m) => (capabilitiesOf(m).effective.proc2.allowed1 & VMX_CONTROL.SECONDARY_EXEC_UNRESTRICTED_GUEST) !== 0);

describe('CPL is architectural state loaded by VM entry', () => {
  it.each(models.map((m) => m.name))('%s: a guest with CS.RPL = 3, SS.DPL = 0 runs at CPL 0', (model) => {
    const host = bootHost({ model });
    const k = host.kernel, cpu = k.cpu();
    enterVmx(host, cpu);
    const seen: { reason: bigint; cpl: number }[] = [];
    const rip = k.hostEntry('record_exit', (_k, c) => {
      seen.push({ reason: read(c, 'VM_EXIT_REASON'), cpl: c.lp.cpl });
    });
    writeReferenceVmcs(host, cpu, rip);
    expect(enableUnrestrictedGuest(host, cpu)).toBe(true);
    write(host, cpu, 'GUEST_CS_SELECTOR', REFERENCE_SEGMENTS.CS.selector | 3); // RPL 3, DPL 0
    cpu.vmlaunch();
    const guestCpl = cpu.lp.cpl; // the LP is in VMX non-root operation now
    const why = explain(host, `model ${model}`);
    expect(cpu.inVmxNonRoot(), `VMLAUNCH failed\n${why}`).toBe(true);
    expect(guestCpl, 'CPL right after VM entry must be SS.DPL (0), not CS.RPL (3)').toBe(0);
    runGuests(host, 10_000);
    // The guest's first instructions (OUT to E9H, CPUID) ran at CPL 0: CPUID exits, no triple fault.
    expect(seen[0]?.reason, `exit reason (2 = triple fault: the guest faulted at CPL 3)\n${why}`).toBe(BigInt(EXIT_REASON.EXIT_REASON_CPUID));
    expect(host.console.text()).toBe('V');
    expect(seen[0]?.cpl, 'the host runs at CPL 0 after the VM exit').toBe(0);
  });
});

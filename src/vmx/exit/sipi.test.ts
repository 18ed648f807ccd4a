// A SIPI to a guest in the wait-for-SIPI activity state causes a VM exit (reason 4, the vector as exit
// qualification); it does not start the logical processor in real mode inside VMX non-root operation.
// See SDM Vol. 3C, "Other Causes of VM Exits" (SIPIs) and "Guest Non-Register State" (activity state 3).
import { describe, expect, it } from 'vitest';
import { CPU_MODELS } from '../../machine/cpu-model.ts';
import { bootHost, enterVmx, explain, read, runGuests, write, writeReferenceVmcs } from '../../kernel/testing/reference-vm.ts';
import { capabilitiesOf } from '../emulated-msrs.ts';
import { EXIT_REASON } from '../exit-reasons.ts';

const models = CPU_MODELS.filter((m) => capabilitiesOf(m).misc.activityWaitForSipi).map((m) => m.name);

describe('SIPI in VMX non-root operation', () => {
  it.each(models)('%s: a guest waiting for SIPI exits with reason 4 and the vector', (model) => {
    const host = bootHost({ model });
    const k = host.kernel, cpu = k.cpu();
    enterVmx(host, cpu);
    const seen: { reason: bigint; qualification: bigint; activity: bigint }[] = [];
    const rip = k.hostEntry('record_exit', (_k, c) => {
      seen.push({ reason: read(c, 'VM_EXIT_REASON'), qualification: read(c, 'EXIT_QUALIFICATION'), activity: read(c, 'GUEST_ACTIVITY_STATE') });
    });
    const g = writeReferenceVmcs(host, cpu, rip);
    write(host, cpu, 'GUEST_ACTIVITY_STATE', 3); // wait-for-SIPI
    cpu.vmlaunch();
    const lp = cpu.lp;
    const why = () => explain(host, `model ${model}`);
    expect(lp.activity, `the guest should be waiting for SIPI\n${why()}`).toBe('wait-for-sipi');
    runGuests(host, 1_000);
    expect(seen, 'nothing happens before the SIPI').toEqual([]);
    lp.startup(0x9a); // a start-up IPI with vector 9AH arrives (the local APIC's delivery path)
    runGuests(host, 1_000);
    expect(seen[0], why()).toEqual({ reason: BigInt(EXIT_REASON.EXIT_REASON_SIPI_SIGNAL), qualification: 0x9an, activity: 3n });
    expect(read(cpu, 'GUEST_RIP'), 'the SIPI did not start the guest at 9A000H').toBe(g.rip);
  });
});

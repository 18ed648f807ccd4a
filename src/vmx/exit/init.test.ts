// INIT signals and VMX. In VMX non-root operation an INIT causes a VM exit (reason 3) and none of its usual effects:
// the guest's registers are saved as they were, the qualification is cleared and the instruction length
// undefined. In VMX root operation, and while the guest waits for SIPI, INIT is blocked: it stays pending. See
// SDM Vol. 3C, "Other Causes of VM Exits" (INIT signals) and "VMX Root Operation".
import { describe, expect, it } from 'vitest';
import { bootHost, enterVmx, explain, read, runGuests, write, writeReferenceVmcs } from '../../kernel/testing/reference-vm.ts';
import { capabilitiesOf } from '../emulated-msrs.ts';
import type { LocalApic } from '../../machine/apic.ts';
import { getCpuModel } from '../../machine/cpu-model.ts';
import { EXIT_REASON } from '../exit-reasons.ts';
import { UNDEFINED_32 } from './info.ts';

const INIT = BigInt(EXIT_REASON.EXIT_REASON_INIT_SIGNAL);
const MODEL = 'skylake-i5-6300u';

/** A guest that counts in RBX forever; the INIT has to interrupt it. */
const SPIN = `
  bits 64
  xor ebx, ebx
spin:
  inc rbx
  jmp spin`;

function launch(opts: { activity?: number } = {}) {
  const host = bootHost({ model: MODEL });
  const k = host.kernel, cpu = k.cpu();
  enterVmx(host, cpu);
  const exits: { reason: bigint; qualification: bigint; length: bigint; rip: bigint; rbx: bigint }[] = [];
  const rip = k.hostEntry('record_exit', (_k, c) => {
    exits.push({ reason: read(c, 'VM_EXIT_REASON'), qualification: read(c, 'EXIT_QUALIFICATION'), length: read(c, 'VM_EXIT_INSTRUCTION_LEN'), rip: read(c, 'GUEST_RIP'), rbx: c.readGpr('rbx') });
  });
  const guest = writeReferenceVmcs(host, cpu, rip, SPIN);
  if (opts.activity !== undefined) write(host, cpu, 'GUEST_ACTIVITY_STATE', opts.activity);
  // An INIT IPI arriving at this CPU's local APIC (what the APIC bus calls on delivery mode INIT).
  const sendInit = (): void => (cpu.lp.apic as LocalApic).onInit!();
  return { host, cpu, guest, exits, sendInit, why: () => explain(host, `exits: ${exits.map((e) => e.reason).join(', ')}`) };
}

describe('INIT in VMX non-root operation', () => {
  it('causes a VM exit (reason 3): registers as they were, qualification 0, length undefined, the LP not reset', () => {
    const t = launch();
    t.cpu.vmlaunch();
    runGuests(t.host, 500);
    expect(t.exits, `the spinning guest runs without exits: ${t.why()}`).toEqual([]);
    t.sendInit();
    runGuests(t.host, 500);
    const e = t.exits[0];
    expect(e?.reason, `exit reason 3 (INIT signal) expected: ${t.why()}`).toBe(INIT);
    expect(e!.qualification, 'EXIT_QUALIFICATION is cleared for INIT exits').toBe(0n);
    expect(e!.length, 'VM_EXIT_INSTRUCTION_LEN is undefined (poisoned): no instruction caused the exit').toBe(BigInt(UNDEFINED_32));
    expect(e!.rbx > 0n, `RBX = ${e!.rbx}: the guest's count survives (an INIT outside VMX would have cleared it)`).toBe(true);
    expect(e!.rip >= t.guest.rip && e!.rip < t.guest.rip + 16n, `GUEST_RIP 0x${e!.rip.toString(16)} is inside the guest's loop, not the reset vector`).toBe(true);
    expect(t.cpu.lp.activity, 'the host CPU runs on after the exit (the INIT did not reset it)').not.toBe('wait-for-sipi');
  });

  it('is blocked in VMX root operation: it stays pending and exits right after the next VM entry', () => {
    const t = launch();
    t.sendInit(); // the host is in VMX root operation (after VMXON, before VMLAUNCH)
    runGuests(t.host, 100);
    expect(t.cpu.lp.initPending, 'INIT is blocked in VMX root operation, so it is still pending').toBe(true);
    expect(t.cpu.lp.activity, 'a blocked INIT does not reset the host CPU').not.toBe('wait-for-sipi');
    t.cpu.vmlaunch();
    runGuests(t.host, 500);
    expect(t.exits[0]?.reason, `the pending INIT exits at the guest's first instruction boundary: ${t.why()}`).toBe(INIT);
    expect(t.exits[0]!.rbx, 'RBX = 0: the guest had not run its first instruction').toBe(0n);
  });

  const waitForSipi = capabilitiesOf(getCpuModel(MODEL)!).misc.activityWaitForSipi;
  it.runIf(waitForSipi)('is blocked while the guest waits for SIPI: no exit, still pending', () => {
    const t = launch({ activity: 3 });
    t.cpu.vmlaunch();
    t.sendInit();
    runGuests(t.host, 500);
    expect(t.exits, `no VM exit for an INIT in wait-for-SIPI: ${t.why()}`).toEqual([]);
    expect(t.cpu.lp.initPending, 'the INIT stays pending').toBe(true);
  });
});

// The VMX unit's observer seam: a successful VM entry, a VMfailValid / VMfailInvalid from VMLAUNCH, VM exits in
// order, and unsubscribing. Observers see what the VMCS and RFLAGS already say; they never change it.
import { describe, expect, test } from 'vitest';
import { bootHost, enterVmx, runGuests, writeReferenceVmcs } from '../kernel/testing/reference-vm.ts';
import { VMXERR } from './errors.ts';
import { EXIT_REASON } from './exit-reasons.ts';
import type { VmEntryEvent, VmEntryFailureEvent, VmExitEvent } from './observe.ts';

function observed() {
  const host = bootHost();
  const k = host.kernel, cpu = k.cpu();
  const setup = enterVmx(host, cpu);
  const g = writeReferenceVmcs(host, cpu, k.hostEntry('stop', () => undefined));
  const events: (['exit', VmExitEvent] | ['entry', VmEntryEvent] | ['fail', VmEntryFailureEvent])[] = [];
  const unsubscribe = host.vmx[0]!.observe({
    onVmExit: (e) => events.push(['exit', e]),
    onVmEntry: (e) => events.push(['entry', e]),
    onVmEntryFailure: (e) => events.push(['fail', e]),
  });
  return { host, cpu, setup, g, events, unsubscribe };
}

describe('VmxUnitImpl.observe', () => {
  test('VMLAUNCH enters (guest RIP), then the CPUID exit; VMLAUNCH of a launched VMCS is VMfailValid(4)', () => {
    const { host, cpu, g, events } = observed();
    cpu.vmlaunch();
    runGuests(host);
    cpu.vmlaunch();
    expect(events.map(([kind]) => kind)).toEqual(['entry', 'exit', 'fail']);
    expect(events[0]![1]).toMatchObject({ lp: 0, instruction: 'VMLAUNCH', guestRip: g.rip });
    expect(events[1]![1]).toMatchObject({ lp: 0, reason: EXIT_REASON.EXIT_REASON_CPUID, name: 'EXIT_REASON_CPUID', entryFailure: false, instructionLength: 2 });
    expect(events[2]![1]).toEqual({ lp: 0, instruction: 'VMLAUNCH', outcome: 'VMfailValid', error: VMXERR.VMXERR_VMLAUNCH_NONCLEAR_VMCS, instructions: cpu.lp.instructions });
  });

  test('VMRESUME without a current VMCS is VMfailInvalid, with no error number', () => {
    const { cpu, setup, events } = observed();
    cpu.vmclear(setup.vmcsPa);
    cpu.vmresume();
    expect(events).toEqual([['fail', { lp: 0, instruction: 'VMRESUME', outcome: 'VMfailInvalid', error: undefined, instructions: cpu.lp.instructions }]]);
  });

  test('after unsubscribing, nothing more is reported', () => {
    const { host, cpu, events, unsubscribe } = observed();
    unsubscribe();
    cpu.vmlaunch();
    expect(runGuests(host).hostCalls, 'the guest ran and exited').toBe(1);
    expect(events).toEqual([]);
  });
});

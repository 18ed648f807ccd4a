// MWAIT from a real guest, against SDM Vol. 3C, "Instructions That Cause VM Exits Conditionally" ("MWAIT
// exiting") and "Basic VM-Exit Information" (bit 0 of the MWAIT exit qualification: the monitor was armed).
import { describe, expect, it } from 'vitest';
import { enableControls, runRecordedGuest } from '../../kernel/testing/reference-vm.ts';
import { VMX_CONTROL as C } from '../controls.ts';
import { EXIT_REASON } from '../exit-reasons.ts';

const MWAIT = EXIT_REASON.EXIT_REASON_MWAIT_INSTRUCTION;

describe('MWAIT with "MWAIT exiting"', () => {
  it('qualification bit 0 tells whether the monitor is armed: not yet, armed by MONITOR, triggered by a store', () => {
    const run = runRecordedGuest({
      source: `
        bits 64
        xor ecx, ecx
        xor edx, edx
      first: mwait               ; no MONITOR yet
        lea rax, [rel line]
        monitor
      second: mwait              ; armed
      third: mwait               ; still armed: the exiting MWAIT did not run
        mov [rax + 8], ecx       ; a store to the monitored line
      fourth: mwait              ; triggered: no longer armed
        cpuid
      align 64
      line: dq 0, 0`,
      resumeOn: [MWAIT],
      setup: (host, cpu) => { expect(enableControls(host, cpu, { proc: C.CPU_BASED_MWAIT_EXITING })).toBe(true); },
    });
    const mwaits = run.exits.filter((e) => e.reason === BigInt(MWAIT));
    const at = (l: string) => BigInt(run.guest.labels.get(l)!);
    expect(mwaits.map((e) => e.guestRip), run.why()).toEqual([at('first'), at('second'), at('third'), at('fourth')]);
    expect(mwaits.map((e) => e.qualification)).toEqual([0n, 1n, 1n, 0n]);
    expect(mwaits.every((e) => e.instructionLength === 3n)).toBe(true);
    expect(run.exits.at(-1)?.reason).toBe(BigInt(EXIT_REASON.EXIT_REASON_CPUID));
  });

  it('without it, MONITOR/MWAIT run natively (MWAIT continues at once)', () => {
    const run = runRecordedGuest({ source: 'bits 64\nlea rax, [rel line]\nxor ecx, ecx\nxor edx, edx\nmonitor\nmwait\ncpuid\nalign 64\nline: dq 0' });
    expect(run.exits[0]?.reason, run.why()).toBe(BigInt(EXIT_REASON.EXIT_REASON_CPUID));
  });
});

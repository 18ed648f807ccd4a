// MOV DR from a real guest, against SDM Vol. 3C, "Instructions That Cause VM Exits Conditionally" (MOV DR: the
// exit has priority over the #GP for CPL > 0 and the #UD for DR4/DR5 with CR4.DE), "Relative Priority of Faults
// and VM Exits" and "Exit Qualification for MOV DR".
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { enableControls, read, runRecordedGuest, write } from '../../kernel/testing/reference-vm.ts';
import { CR4, DR7_GD } from '../../x86/control-registers.ts';
import { VMX_CONTROL as C } from '../controls.ts';
import { EXIT_REASON } from '../exit-reasons.ts';
import { POISON_32, R64 } from './operand-testkit.ts';

const DR_ACCESS = BigInt(EXIT_REASON.EXIT_REASON_DR_ACCESS), CPUID = BigInt(EXIT_REASON.EXIT_REASON_CPUID);
const TRIPLE_FAULT = BigInt(EXIT_REASON.EXIT_REASON_TRIPLE_FAULT);
const movDrExiting = (on: boolean) => (host: Parameters<typeof enableControls>[0], cpu: Parameters<typeof enableControls>[1]) => {
  if (on) expect(enableControls(host, cpu, { proc: C.CPU_BASED_MOV_DR_EXITING })).toBe(true);
};

describe('MOV DR with "MOV-DR exiting"', () => {
  it('exits with DR number (2:0), direction (4: 1 = from DR) and the GPR (11:8); fault-like, with the length', () => {
    fc.assert(fc.property(fc.integer({ min: 0, max: 7 }), fc.integer({ min: 0, max: 15 }), fc.boolean(), (dr, gpr, fromDr) => {
      const insn = fromDr ? `mov ${R64[gpr]}, dr${dr}` : `mov dr${dr}, ${R64[gpr]}`;
      const run = runRecordedGuest({ source: `bits 64\nat: ${insn}\nafter: cpuid`, setup: movDrExiting(true) });
      const e = run.exits[0]!;
      const at = (l: string) => BigInt(run.guest.labels.get(l)!);
      expect(e.reason, `${insn}\n${run.why()}`).toBe(DR_ACCESS);
      expect(e.qualification, insn).toBe(BigInt(dr | ((fromDr ? 1 : 0) << 4) | (gpr << 8)));
      expect(e.guestRip, 'RIP of the MOV').toBe(at('at'));
      expect(e.instructionLength).toBe(at('after') - at('at'));
    }), { seed: 29, numRuns: 40 });
  });

  it('without it, MOV DR runs natively', () => {
    const run = runRecordedGuest({ source: 'bits 64\nmov rax, 0x55\nmov dr0, rax\nmov rbx, dr0\ncpuid', setup: movDrExiting(false) });
    expect(run.exits[0]?.reason, run.why()).toBe(CPUID);
    expect(run.exits[0]?.rbx).toBe(0x55n);
  });

  for (const [what, setup] of [
    ['the #UD for DR4 with CR4.DE = 1', (host: Parameters<typeof write>[0], cpu: Parameters<typeof write>[1]) => write(host, cpu, 'GUEST_CR4', read(cpu, 'GUEST_CR4') | BigInt(CR4.DE))],
    ['the general-detect #DB (DR7.GD = 1)', (host: Parameters<typeof write>[0], cpu: Parameters<typeof write>[1]) => {
      write(host, cpu, 'GUEST_DR7', 0x400 | DR7_GD);
      write(host, cpu, 'VM_ENTRY_CONTROLS', read(cpu, 'VM_ENTRY_CONTROLS') | BigInt(C.VM_ENTRY_LOAD_DEBUG_CONTROLS)); // so VM entry loads DR7
    }],
  ] as const) {
    it(`the VM exit has priority over ${what}; without MOV-DR exiting the fault happens`, () => {
      for (const on of [true, false]) {
        const run = runRecordedGuest({ source: 'bits 64\nmov rax, dr4\ncpuid', setup: (host, cpu) => { setup(host, cpu); movDrExiting(on)(host, cpu); } });
        const e = run.exits[0]!;
        if (on) {
          expect(e.reason, run.why()).toBe(DR_ACCESS);
          expect(e.qualification, 'DR4 as encoded, MOV from DR, RAX').toBe(0x14n);
        } else {
          // The guest has no IDT: the fault becomes a triple fault, an exit not caused by an instruction.
          expect(e.reason, run.why()).toBe(TRIPLE_FAULT);
          expect(e.instructionLength, 'instruction length is undefined for a triple-fault exit').toBe(BigInt(POISON_32));
        }
      }
    });
  }
});

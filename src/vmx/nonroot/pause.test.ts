// PAUSE from a real guest, against SDM Vol. 3C, "Instructions That Cause VM Exits Conditionally" (PAUSE: "PAUSE
// exiting", and "PAUSE-loop exiting" at CPL 0) and "Controls for PAUSE-Loop Exiting". Time for PAUSE-loop exiting
// runs at the TSC rate, which in VMX Lab is one tick per retired instruction (src/machine/lp.ts, readTsc).
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { enableControls, runRecordedGuest, write } from '../../kernel/testing/reference-vm.ts';
import { VMX_CONTROL as C } from '../controls.ts';
import { EXIT_REASON } from '../exit-reasons.ts';

const PAUSE = EXIT_REASON.EXIT_REASON_PAUSE_INSTRUCTION, CPUID = BigInt(EXIT_REASON.EXIT_REASON_CPUID);
const LOOPS = 300;
/** A spin loop of three instructions: consecutive PAUSEs are 3 TSC ticks apart. */
const SPIN = `bits 64\nmov ecx, ${LOOPS}\nspin: pause\ndec ecx\njnz spin\ncpuid`;

function spin(opts: { pauseExiting?: boolean; gap?: number; window?: number; resume?: boolean }) {
  return runRecordedGuest({
    source: SPIN,
    resumeOn: opts.resume ? [PAUSE] : [],
    maxInstructions: 20_000,
    setup: (host, cpu) => {
      if (opts.pauseExiting) expect(enableControls(host, cpu, { proc: C.CPU_BASED_PAUSE_EXITING })).toBe(true);
      if (opts.gap !== undefined) {
        expect(enableControls(host, cpu, { proc2: C.SECONDARY_EXEC_PAUSE_LOOP_EXITING })).toBe(true);
        write(host, cpu, 'PLE_GAP', opts.gap);
        write(host, cpu, 'PLE_WINDOW', opts.window ?? 0);
      }
    },
  });
}

describe('PAUSE', () => {
  it('"PAUSE exiting": the first PAUSE exits (reason 40, length 2, RIP of the PAUSE), even with PAUSE-loop exiting', () => {
    for (const ple of [false, true]) {
      const run = spin({ pauseExiting: true, ...(ple ? { gap: 1000, window: 1000 } : {}) });
      const e = run.exits[0]!;
      expect(e.reason, run.why()).toBe(BigInt(PAUSE));
      expect(e.instructionLength).toBe(2n);
      expect(e.guestRip).toBe(BigInt(run.guest.labels.get('spin')!));
      expect(e.rcx, 'no iteration completed').toBe(BigInt(LOOPS));
    }
  });

  it('without either control, PAUSE runs natively', () => {
    expect(spin({}).exits[0]?.reason).toBe(CPUID);
  });

  it('PAUSE-loop exiting: the first PAUSE more than PLE_Window ticks after the loop began exits', () => {
    fc.assert(fc.property(fc.integer({ min: 0, max: 600 }), (window) => {
      const run = spin({ gap: 10, window });
      // PAUSE k of the loop comes 3k ticks after the first (k = 0): it exits when 3k > PLE_Window.
      const k = Math.floor(window / 3) + 1;
      if (k >= LOOPS) {
        expect(run.exits[0]?.reason, run.why()).toBe(CPUID);
        return;
      }
      const e = run.exits[0]!;
      expect(e.reason, run.why()).toBe(BigInt(PAUSE));
      expect(e.rcx, `window ${window}: PAUSE ${k} exits`).toBe(BigInt(LOOPS - k));
    }), { seed: 40, numRuns: 25 });
  });

  it('a PAUSE more than PLE_Gap ticks after the previous one starts a new loop: spacing 3 > gap 2 never exits', () => {
    expect(spin({ gap: 2, window: 0 }).exits[0]?.reason).toBe(CPUID);
  });

  it('the first PAUSE after VM entry starts a new loop: after VMRESUME it takes another full window to exit', () => {
    const window = 30, k = Math.floor(window / 3) + 1;
    const run = spin({ gap: 10, window, resume: true });
    const pauses = run.exits.filter((e) => e.reason === BigInt(PAUSE));
    expect(pauses.length, run.why()).toBeGreaterThan(2);
    expect(pauses[0]!.rcx).toBe(BigInt(LOOPS - k));
    // The handler skipped the exiting PAUSE; that iteration ends, and the next PAUSE is the first of a new loop
    // (k = 0), so PAUSE k of it exits k + 1 iterations later. Had VM entry not reset the loop, the next PAUSE
    // would exit at once (one iteration later).
    expect(pauses[0]!.rcx - pauses[1]!.rcx).toBe(BigInt(k + 1));
  });
});

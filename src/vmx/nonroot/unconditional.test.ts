// Instructions that exit unconditionally in VMX non-root operation, whatever the controls, and RDTSCP's #UD when
// "enable RDTSCP" is 0. See SDM Vol. 3C, "Instructions That Cause VM Exits Unconditionally" and "Changes to
// Instruction Behavior in VMX Non-Root Operation".
import { describe, expect, it } from 'vitest';
import { CPU_MODELS, getCpuModel } from '../../machine/cpu-model.ts';
import { CR4 } from '../../x86/control-registers.ts';
import { capabilitiesOf } from '../emulated-msrs.ts';
import { UNDEFINED_32 } from '../exit/info.ts';
import { read, runRecordedGuest, write } from '../../kernel/testing/reference-vm.ts';
import { writeIdtGate } from '../../machine/testing/long-mode.ts';
import { EXIT_REASON } from '../exit-reasons.ts';

const models = CPU_MODELS.map((m) => m.name);
const OSXSAVE = BigInt(CR4.OSXSAVE);

describe('unconditional VM exits', () => {
  it.each(models)('%s: CPUID, INVD and XSETBV exit with their reason and instruction length; the qualification is 0', (model) => {
    const xsave = (capabilitiesOf(getCpuModel(model)!).cr4Fixed1 & OSXSAVE) !== 0n;
    const run = runRecordedGuest({
      model,
      source: `
        bits 64
        cpuid              ; 0F A2
        invd               ; 0F 08
        xor ecx, ecx
        xor edx, edx
        mov eax, 1
        xsetbv             ; 0F 01 D1
        hlt`,
      resumeOn: [EXIT_REASON.EXIT_REASON_CPUID, EXIT_REASON.EXIT_REASON_INVD, EXIT_REASON.EXIT_REASON_XSETBV],
      // XSETBV is #UD unless CR4.OSXSAVE = 1, and that fault has priority over the VM exit.
      setup: (host, cpu) => { if (xsave) write(host, cpu, 'GUEST_CR4', read(cpu, 'GUEST_CR4') | OSXSAVE); },
    });
    const got = run.exits.map((e) => [Number(e.reason), Number(e.instructionLength), e.qualification]);
    expect(got.slice(0, 3), run.why()).toEqual([
      [EXIT_REASON.EXIT_REASON_CPUID, 2, 0n],
      [EXIT_REASON.EXIT_REASON_INVD, 2, 0n],
      xsave ? [EXIT_REASON.EXIT_REASON_XSETBV, 3, 0n] : [EXIT_REASON.EXIT_REASON_TRIPLE_FAULT, UNDEFINED_32, 0n],
    ]);
  });
});

describe('RDTSCP in VMX non-root operation', () => {
  it('is #UD when "enable RDTSCP" is 0, even though the CPU has RDTSCP', () => {
    const run = runRecordedGuest({
      source: `
        bits 64
        rdtscp
        hlt
      ud_handler:
        mov ebx, 6
        cpuid`,
      setup: (host, cpu, g) => {
        const idt = Number(g.pa) + 0x6000;
        writeIdtGate(host.machine.memory, idt, 6, g.labels.get('ud_handler')!);
        write(host, cpu, 'GUEST_IDTR_BASE', g.pa + 0x6000n);
        write(host, cpu, 'GUEST_IDTR_LIMIT', 0xfff);
      },
    });
    expect(run.exits[0]?.reason, run.why()).toBe(BigInt(EXIT_REASON.EXIT_REASON_CPUID));
    expect(run.exits[0]?.rbx, 'the #UD handler ran').toBe(6n);
  });
});

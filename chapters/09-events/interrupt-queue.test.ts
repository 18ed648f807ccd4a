// Exercise 9.4 — the interrupt queue with interrupt-window exiting, on every model that allows the control; models
// without it must refuse the part. The guest raises interrupts with VMCALL (RAX = vector) while interrupts are
// disabled, while they are enabled, and in the STI shadow; its IDT handlers log the RIP each interrupt interrupted.
// The expected log follows from the rules alone: an external interrupt is taken only at a boundary where
// RFLAGS.IF = 1 and no STI or MOV-SS blocking holds, in the order raised.
import { describe, expect, test } from 'vitest';
import { canInjectInterrupt, interruptQueuePart } from '#impl/09-events/interrupt-queue';
import fc from 'fast-check';
import { NO_WINDOW_MODELS, WINDOW_MODELS, describeSeen, eventGuest, hex, installIdt, runPart, seen } from './support.ts';

const WINDOW_RULE = 'SDM Vol. 3C, "Interrupt-Window Exiting and Virtual-Interrupt Delivery" and "Checks on Guest Non-Register State": an external interrupt may be injected only if RFLAGS.IF = 1 and GUEST_INTERRUPTIBILITY_INFO has neither blocking by STI (bit 0) nor by MOV SS (bit 1) — else VM entry fails (exit 33); ' +
  'with "interrupt-window exiting" the processor exits (reason 7) at the first boundary where the guest can take one; clear it when nothing is pending';

describe('canInjectInterrupt', () => {
  test('IF = 1 and neither STI nor MOV-SS blocking, whatever the other bits', () => {
    fc.assert(fc.property(fc.bigInt({ min: 0n, max: (1n << 22n) - 1n }), fc.integer({ min: 0, max: 31 }), (rflags, interruptibility) => {
      const want = ((rflags >> 9n) & 1n) === 1n && (interruptibility & 3) === 0;
      expect(canInjectInterrupt(rflags | 2n, interruptibility), `RFLAGS ${hex(rflags | 2n)} (IF ${(rflags >> 9n) & 1n}), interruptibility ${hex(interruptibility)} (STI ${interruptibility & 1}, MOV SS ${(interruptibility >> 1) & 1}, SMI ${(interruptibility >> 2) & 1}, NMI ${(interruptibility >> 3) & 1}). ${WINDOW_RULE}`).toBe(want);
    }));
  });
});

const VECTORS = [0x40, 0x41, 0x42, 0x43];
const GUEST = eventGuest(`
        cli
        mov eax, 0x40
q1:     vmcall                          ; IF = 0: queued, window requested
        mov eax, 0x41
q2:     vmcall                          ; queued behind 40H
        sti
s1:     nop                             ; the STI shadow: still blocked
w1:     nop                             ; the window opens here: 40H, then 41H after its IRET
        mov eax, 0x42
q3:     vmcall                          ; IF = 1, nothing blocks: injected at once
a3:     cli
        mov eax, 0x43
        sti
q4:     vmcall                          ; in the STI shadow: IF = 1, but blocked by STI
a4:     nop
a5:     hlt
`, VECTORS);

describe('interruptQueuePart', () => {
  test.each(WINDOW_MODELS.map((m) => [m]))('%s: interrupts raised with IF = 0, with IF = 1 and in the STI shadow', (model) => {
    const part = interruptQueuePart();
    const run = runPart({ model, part, source: GUEST, before: (h, c, g) => installIdt(h, c, g, VECTORS) });
    const at = (l: string): bigint => BigInt(run.guest.labels.get(l)!);
    expect(run.outcome.kind, run.why(`the guest should reach its HLT (a VM-entry failure here is exit 33: an interrupt injected while IF = 0 or under STI blocking; the budget running out is interrupt-window exiting left on with an empty queue). ${WINDOW_RULE}`)).toBe('halted');
    const got = seen(run);
    const row = (v: number, rip: bigint): string => `vector ${hex(v)} at RIP ${hex(rip)}`;
    expect(got.map((e) => row(e.vector, e.rip)), run.why(`the interrupts the guest took, with the RIP each one interrupted: ${describeSeen(got)}. 40H and 41H wait while IF = 0 and through the STI shadow (s1), and arrive in order at w1; 42H is taken at once after its VMCALL (a3); 43H is raised in the STI shadow, so it waits one more instruction and arrives at a5. ${WINDOW_RULE}`))
      .toEqual([row(0x40, at('w1')), row(0x41, at('w1')), row(0x42, at('a3')), row(0x43, at('a5'))]);
    const windows = run.exits.filter((e) => e.reason === 7).map((e) => hex(e.rip));
    expect(windows, run.why('interrupt-window exits (7): one for 40H and one for 41H at w1, one for 43H at a5 — and none once the queue is empty')).toEqual([at('w1'), at('w1'), at('a5')].map(hex));
  });
  test.each(NO_WINDOW_MODELS.map((m) => [m]))('%s: no interrupt-window exiting — the part\'s control request is refused', (model) => {
    const run = runPart({ model, part: interruptQueuePart(), source: GUEST });
    expect(run.outcome.kind, run.why('this model cannot set "interrupt-window exiting": the part must ask for it (controls.proc.want) so the kit refuses it')).toBe('controls');
  });
});

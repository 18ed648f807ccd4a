// Event injection on the real logical processor: a valid VM-entry interruption-information field is delivered
// through the guest IDT before the guest's first instruction. See SDM Vol. 3C, "Event Injection".
import { describe, expect, it } from 'vitest';
import { CPU_MODELS } from '../../machine/cpu-model.ts';
import { writeIdtGate } from '../../machine/testing/long-mode.ts';
import { runRecordedGuest, write, type Host } from '../../kernel/testing/reference-vm.ts';
import type { HostCpu } from '../../kernel/host-cpu.ts';
import { capabilitiesOf } from '../emulated-msrs.ts';
import { VMX_CONTROL } from '../controls.ts';
import { EXIT_REASON } from '../exit-reasons.ts';

const GUEST = `
bits 64
start:  mov eax, 0x1234        ; without injection the guest starts here and exits on CPUID with RBX = 0
        xor ebx, ebx
        cpuid
        hlt
gp_handler:                    ; #GP pushes an error code, then RIP
        mov rbx, [rsp]
        mov rcx, [rsp + 8]
        mov eax, 1
        cpuid
int80_handler:                 ; INT n pushes no error code
        mov rcx, [rsp]
        mov ebx, 0x80
        mov eax, 2
        cpuid
`;
const IDT = 0x6000;

interface Run { reason: bigint; rbx: bigint; rcx: bigint; entryRip: bigint; guestRip: bigint; why: string }

/** Launch GUEST on `model` with VM_ENTRY_INTR_INFO_FIELD = `info` (and `extra` VMWRITEs); the first exit. */
function launchWith(model: string, info: number, extra: (h: Host, cpu: HostCpu) => void): Run {
  const run = runRecordedGuest({
    model, source: GUEST, maxInstructions: 10_000,
    setup: (host, cpu, g) => {
      const idt = Number(g.pa) + IDT;
      writeIdtGate(host.machine.memory, idt, 13, g.labels.get('gp_handler')!);
      writeIdtGate(host.machine.memory, idt, 0x80, g.labels.get('int80_handler')!);
      write(host, cpu, 'GUEST_IDTR_BASE', g.pa + BigInt(IDT));
      write(host, cpu, 'GUEST_IDTR_LIMIT', 0xfff);
      write(host, cpu, 'VM_ENTRY_INTR_INFO_FIELD', info >>> 0);
      extra(host, cpu);
    },
  });
  const why = `model ${model}\n${run.why()}`;
  const first = run.exits[0];
  expect(first, `no VM exit reached the host (did VMLAUNCH fail?)\n${why}`).toBeDefined();
  return { reason: first!.reason, rbx: first!.rbx, rcx: first!.rcx, entryRip: run.guest.rip, guestRip: first!.guestRip, why };
}

const VALID = 2 ** 31, ERR = 1 << 11;
const models = CPU_MODELS.map((m) => m.name);

describe('event injection on VM entry', () => {
  it.each(models)('%s: a hardware exception with an error code (#GP(18H)) runs the guest handler first', (model) => {
    const r = launchWith(model, VALID | (3 << 8) | ERR | 13, (h, cpu) => write(h, cpu, 'VM_ENTRY_EXCEPTION_ERROR_CODE', 0x18));
    expect(r.reason, r.why).toBe(BigInt(EXIT_REASON.EXIT_REASON_CPUID));
    expect(r.rbx, `the error code the #GP handler found on its stack\n${r.why}`).toBe(0x18n);
    expect(r.rcx, 'a fault returns to the instruction at the entry RIP').toBe(r.entryRip);
  });

  it.each(models)('%s: a software interrupt (INT 80H) returns past the instruction length', (model) => {
    const r = launchWith(model, VALID | (4 << 8) | 0x80, (h, cpu) => write(h, cpu, 'VM_ENTRY_INSTRUCTION_LEN', 2));
    expect(r.reason, r.why).toBe(BigInt(EXIT_REASON.EXIT_REASON_CPUID));
    expect(r.rbx, `the INT 80H handler ran\n${r.why}`).toBe(0x80n);
    expect(r.rcx, 'RIP + VM-entry instruction length is pushed for software interrupts').toBe(r.entryRip + 2n);
  });

  const mtfModels = CPU_MODELS.filter((m) => (capabilitiesOf(m).effective.proc.allowed1 & VMX_CONTROL.CPU_BASED_MONITOR_TRAP_FLAG) !== 0).map((m) => m.name);
  it.each(mtfModels)('%s: "other event" (type 7) gives an MTF VM exit before the first guest instruction', (model) => {
    const r = launchWith(model, VALID | (7 << 8), () => undefined);
    expect(r.reason, r.why).toBe(BigInt(EXIT_REASON.EXIT_REASON_MONITOR_TRAP_FLAG));
    expect(r.guestRip, 'no guest instruction ran').toBe(r.entryRip);
  });
});

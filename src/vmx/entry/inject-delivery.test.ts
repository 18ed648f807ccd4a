// Delivery of an injected event through the guest IDT, every interruption type, on real guests. Expected values
// come from the SDM rules, restated here:
//  - The event is delivered as if it had occurred at GUEST_RIP before any guest instruction. Faults and
//    interrupts push GUEST_RIP; software interrupts and (privileged) software exceptions push GUEST_RIP + the
//    VM-entry instruction length. See SDM Vol. 3C, "Vectored-Event Injection".
//  - The error code is pushed only with deliver-error-code = 1. CR2 is not in the VMCS: a #PF handler finds the CR2
//    the VMM left in the register. See SDM Vol. 3C, "Event Injection".
//  - A fault while delivering the event follows the double-fault rules: benign then anything → serially; contributory
//    then contributory, page fault then contributory or page fault → #DF; a fault delivering #DF → triple fault,
//    which in VMX non-root operation is VM exit 2. See SDM Vol. 3A, "Interrupt 8—Double Fault Exception (#DF)"
//    (table "Conditions for Generating a Double Fault") and SDM Vol. 3C, "Triple Fault".
//  - An exception raised while delivering the injected event that exits through the exception bitmap records the
//    injected event as IDT-vectoring information; a double fault or triple fault "causes the VM exit directly", so
//    then that field is invalid. The EXT bit of the error code is 0 only while delivering INT n, INT3 or INTO.
//    See SDM Vol. 3C, "Information for VM Exits During Event Delivery" and SDM Vol. 3A, "Error Code".
import { describe, expect, it } from 'vitest';
import { CPU_MODELS } from '../../machine/cpu-model.ts';
import { writeIdtGate } from '../../machine/testing/long-mode.ts';
import { read, runRecordedGuest, write, type Host } from '../../kernel/testing/reference-vm.ts';
import type { HostCpu } from '../../kernel/host-cpu.ts';
import { RFLAGS } from '../../x86/flags.ts';
import { EXIT_REASON } from '../exit-reasons.ts';
import { INTR_INFO, INTR_TYPE, VECTORS_WITH_ERROR_CODE } from '../transition/interruption-info.ts';

/** The vectors with a handler; each handler reports its vector in RBX, the pushed RIP in RCX, the error code (or
 *  -1) in RDX and CR2 in RAX, then exits with CPUID. */
const HANDLED = [1, 2, 3, 4, 6, 8, 11, 13, 14, 17, 0x40, 0x80];
const NO_ERROR = 0xffffffffffffffffn;
const GUEST = [
  'bits 64',
  'start:  mov eax, 0x1234        ; without injection the guest exits here with RBX = 0',
  '        xor ebx, ebx',
  '        cpuid',
  '        hlt',
  ...HANDLED.flatMap((v) => {
    const err = VECTORS_WITH_ERROR_CODE.includes(v);
    return [
      `h${v}:`,
      err ? '        mov rdx, [rsp]' : '        mov rdx, -1',
      `        mov rcx, [rsp + ${err ? 8 : 0}]`,
      `        mov ebx, ${v}`,
      '        mov rax, cr2',
      '        cpuid',
    ];
  }),
].join('\n');
const IDT = 0x6000;
const CR2_BEFORE_ENTRY = 0x7777_1000;

interface Run {
  reason: bigint; vector: bigint; pushedRip: bigint; errorCode: bigint; cr2: bigint; entryRip: bigint; guestRip: bigint;
  cpu: HostCpu; why: string;
}

/** Launch GUEST on `model` injecting `info` (error code, length) with the gates of `absent` not present; the first exit. */
function inject(model: string, info: number, opts: { errorCode?: number; length?: number; absent?: readonly number[]; extra?: (h: Host, cpu: HostCpu) => void } = {}): Run {
  const run = runRecordedGuest({
    model, source: GUEST, maxInstructions: 10_000,
    setup: (host, cpu, g) => {
      const idt = Number(g.pa) + IDT;
      for (const v of HANDLED) writeIdtGate(host.machine.memory, idt, v, g.labels.get(`h${v}`)!, { present: !(opts.absent ?? []).includes(v) });
      write(host, cpu, 'GUEST_IDTR_BASE', g.pa + BigInt(IDT));
      write(host, cpu, 'GUEST_IDTR_LIMIT', 0xfff);
      write(host, cpu, 'VM_ENTRY_INTR_INFO_FIELD', info >>> 0);
      if (opts.errorCode !== undefined) write(host, cpu, 'VM_ENTRY_EXCEPTION_ERROR_CODE', opts.errorCode);
      if (opts.length !== undefined) write(host, cpu, 'VM_ENTRY_INSTRUCTION_LEN', opts.length);
      // CR2 is not part of the guest-state area: what the register holds at VM entry is the guest's CR2.
      cpu.lp.cr2 = CR2_BEFORE_ENTRY;
      opts.extra?.(host, cpu);
    },
  });
  const why = `model ${model}\n${run.why()}`;
  const first = run.exits[0];
  expect(first, `no VM exit reached the host (did VMLAUNCH fail?)\n${why}`).toBeDefined();
  return {
    reason: first!.reason, vector: first!.rbx, pushedRip: first!.rcx, errorCode: first!.rdx, cr2: first!.rax,
    entryRip: run.guest.rip, guestRip: first!.guestRip, cpu: run.host.kernel.cpu(), why,
  };
}

const info = (type: number, vector: number, errorCode = false): number =>
  (INTR_INFO.VALID | (type << INTR_INFO.TYPE_SHIFT) | (errorCode ? INTR_INFO.DELIVER_ERROR_CODE : 0) | vector) >>> 0;
/** The error code of a fault on IDT entry `vector` (IDT bit 1; EXT bit 0). See SDM Vol. 3A, "Error Code". */
const idtError = (vector: number, ext: boolean): bigint => BigInt(vector * 8 + 2 + (ext ? 1 : 0));
const CPUID = BigInt(EXIT_REASON.EXIT_REASON_CPUID);
const models = CPU_MODELS.map((m) => m.name);

describe('an injected event is delivered through the guest IDT before the first guest instruction', () => {
  it.each(models)('%s: external interrupt 40H: the handler runs, GUEST_RIP pushed, no error code', (model) => {
    // Injecting an external interrupt needs RFLAGS.IF = 1 (an entry check). See SDM Vol. 3C, "Checks on Guest RIP, RFLAGS, and SSP".
    const r = inject(model, info(INTR_TYPE.EXTERNAL_INTERRUPT, 0x40), { extra: (h, cpu) => write(h, cpu, 'GUEST_RFLAGS', read(cpu, 'GUEST_RFLAGS') | BigInt(RFLAGS.IF)) });
    expect([r.reason, r.vector, r.pushedRip, r.errorCode], r.why).toEqual([CPUID, 0x40n, r.entryRip, NO_ERROR]);
  });

  it.each(models)('%s: NMI: the vector 2 handler runs, and NMIs stay blocked in it (no IRET yet)', (model) => {
    const r = inject(model, info(INTR_TYPE.NMI, 2));
    expect([r.reason, r.vector, r.pushedRip], r.why).toEqual([CPUID, 2n, r.entryRip]);
    // Delivering an NMI blocks NMIs until the next IRET; the exit saves that as blocking by NMI (bit 3).
    // See SDM Vol. 3A, "NMI Handling While Processing an NMI" and SDM Vol. 3C, "Saving Non-Register State".
    expect(read(r.cpu, 'GUEST_INTERRUPTIBILITY_INFO') & 8n, r.why).toBe(8n);
  });

  it.each(models)('%s: hardware exception without an error code (#UD): the fault pushes GUEST_RIP and nothing else', (model) => {
    const r = inject(model, info(INTR_TYPE.HARDWARE_EXCEPTION, 6));
    expect([r.reason, r.vector, r.pushedRip, r.errorCode], r.why).toEqual([CPUID, 6n, r.entryRip, NO_ERROR]);
  });

  it.each(models)('%s: #PF(error code 2): the handler sees the error code and the CR2 the VMM left, not a VMCS field', (model) => {
    const r = inject(model, info(INTR_TYPE.HARDWARE_EXCEPTION, 14, true), { errorCode: 2 });
    expect([r.reason, r.vector, r.pushedRip, r.errorCode], r.why).toEqual([CPUID, 14n, r.entryRip, 2n]);
    expect(r.cr2, `${r.why}\nCR2 must be what the register held at VM entry (an injected #PF does not load CR2)`).toBe(BigInt(CR2_BEFORE_ENTRY));
  });

  it.each(models)('%s: software exception #BP (INT3, length 1): the trap pushes GUEST_RIP + 1', (model) => {
    const r = inject(model, info(INTR_TYPE.SOFTWARE_EXCEPTION, 3), { length: 1 });
    expect([r.reason, r.vector, r.pushedRip, r.errorCode], r.why).toEqual([CPUID, 3n, r.entryRip + 1n, NO_ERROR]);
  });

  it.each(models)('%s: software exception #OF (INTO, length 1): GUEST_RIP + 1', (model) => {
    const r = inject(model, info(INTR_TYPE.SOFTWARE_EXCEPTION, 4), { length: 1 });
    expect([r.reason, r.vector, r.pushedRip], r.why).toEqual([CPUID, 4n, r.entryRip + 1n]);
  });

  it.each(models)('%s: privileged software exception INT1 (length 1): GUEST_RIP + 1', (model) => {
    const r = inject(model, info(INTR_TYPE.PRIVILEGED_SOFTWARE_EXCEPTION, 1), { length: 1 });
    expect([r.reason, r.vector, r.pushedRip, r.errorCode], r.why).toEqual([CPUID, 1n, r.entryRip + 1n, NO_ERROR]);
  });

  it.each(models)('%s: software interrupt INT 80H with length 3 (as if a 3-byte encoding): GUEST_RIP + 3', (model) => {
    const r = inject(model, info(INTR_TYPE.SOFTWARE_INTERRUPT, 0x80), { length: 3 });
    expect([r.reason, r.vector, r.pushedRip], r.why).toEqual([CPUID, 0x80n, r.entryRip + 3n]);
  });
});

describe('a fault while delivering the injected event: the double-fault classes', () => {
  it.each(models)('%s: benign (#UD) then #NP: handled serially, #NP(IDT, EXT = 1) delivered', (model) => {
    const r = inject(model, info(INTR_TYPE.HARDWARE_EXCEPTION, 6), { absent: [6] });
    expect([r.reason, r.vector, r.errorCode, r.pushedRip], r.why).toEqual([CPUID, 11n, idtError(6, true), r.entryRip]);
  });

  it.each(models)('%s: NMI (benign) then #NP: serially', (model) => {
    const r = inject(model, info(INTR_TYPE.NMI, 2), { absent: [2] });
    expect([r.reason, r.vector, r.errorCode], r.why).toEqual([CPUID, 11n, idtError(2, true)]);
  });

  it.each(models)('%s: INT 80H then #NP: serially, EXT = 0, and the fault returns to GUEST_RIP (not past the length)', (model) => {
    const r = inject(model, info(INTR_TYPE.SOFTWARE_INTERRUPT, 0x80), { length: 2, absent: [0x80] });
    expect([r.reason, r.vector, r.errorCode, r.pushedRip], r.why).toEqual([CPUID, 11n, idtError(0x80, false), r.entryRip]);
  });

  it.each(models)('%s: INT1 then #NP: EXT = 1 (INT1 is not INT n/INT3/INTO)', (model) => {
    const r = inject(model, info(INTR_TYPE.PRIVILEGED_SOFTWARE_EXCEPTION, 1), { length: 1, absent: [1] });
    expect([r.reason, r.vector, r.errorCode, r.pushedRip], r.why).toEqual([CPUID, 11n, idtError(1, true), r.entryRip]);
  });

  it.each(models)('%s: contributory (#GP) then contributory (#NP): #DF with error code 0', (model) => {
    const r = inject(model, info(INTR_TYPE.HARDWARE_EXCEPTION, 13, true), { errorCode: 0, absent: [13] });
    expect([r.reason, r.vector, r.errorCode, r.pushedRip], r.why).toEqual([CPUID, 8n, 0n, r.entryRip]);
  });

  it.each(models)('%s: page fault then contributory (#NP): #DF', (model) => {
    const r = inject(model, info(INTR_TYPE.HARDWARE_EXCEPTION, 14, true), { errorCode: 0, absent: [14] });
    expect([r.reason, r.vector, r.errorCode], r.why).toEqual([CPUID, 8n, 0n]);
  });

  it.each(models)('%s: #DF injected with its gate absent: a fault delivering #DF is a triple fault, VM exit 2', (model) => {
    const r = inject(model, info(INTR_TYPE.HARDWARE_EXCEPTION, 8, true), { errorCode: 0, absent: [8] });
    expect(r.reason, r.why).toBe(BigInt(EXIT_REASON.EXIT_REASON_TRIPLE_FAULT));
    expect(read(r.cpu, 'IDT_VECTORING_INFO_FIELD') & BigInt(INTR_INFO.VALID), `${r.why}\na triple fault causes the exit directly`).toBe(0n);
  });

  it.each(models)('%s: #GP then #NP then (#DF gate absent) #NP: triple fault, VM exit 2, GUEST_RIP the entry RIP', (model) => {
    const r = inject(model, info(INTR_TYPE.HARDWARE_EXCEPTION, 13, true), { errorCode: 0, absent: [13, 8] });
    expect(r.reason, r.why).toBe(BigInt(EXIT_REASON.EXIT_REASON_TRIPLE_FAULT));
    expect(r.guestRip, r.why).toBe(r.entryRip);
  });
});

describe('IDT-vectoring information when a fault during delivery of the injected event exits', () => {
  const exitOnNp = (h: Host, cpu: HostCpu): void => write(h, cpu, 'EXCEPTION_BITMAP', 1 << 11);
  const EXCEPTION = BigInt(EXIT_REASON.EXIT_REASON_EXCEPTION_NMI);

  it.each(models)('%s: injected #AC(1234H) (benign), its gate absent, #NP exits: the #AC with its error code is the IDT-vectoring information', (model) => {
    const r = inject(model, info(INTR_TYPE.HARDWARE_EXCEPTION, 17, true), { errorCode: 0x1234, absent: [17], extra: exitOnNp });
    expect(r.reason, r.why).toBe(EXCEPTION);
    expect(read(r.cpu, 'VM_EXIT_INTR_INFO') & ~(1n << 12n), r.why).toBe(BigInt(info(INTR_TYPE.HARDWARE_EXCEPTION, 11, true)));
    expect(read(r.cpu, 'VM_EXIT_INTR_ERROR_CODE'), r.why).toBe(idtError(17, true));
    // Bit 12 of the IDT-vectoring information is undefined; compare the defined bits.
    expect(read(r.cpu, 'IDT_VECTORING_INFO_FIELD') & ~(1n << 12n), r.why).toBe(BigInt(info(INTR_TYPE.HARDWARE_EXCEPTION, 17, true)));
    expect(read(r.cpu, 'IDT_VECTORING_ERROR_CODE'), r.why).toBe(0x1234n);
    expect(r.guestRip, r.why).toBe(r.entryRip);
  });

  it.each(models)('%s: injected INT 80H (length 2), its gate absent, #NP exits: type 4 in the IDT-vectoring information, the length in VM_EXIT_INSTRUCTION_LEN', (model) => {
    const r = inject(model, info(INTR_TYPE.SOFTWARE_INTERRUPT, 0x80), { length: 2, absent: [0x80], extra: exitOnNp });
    expect(r.reason, r.why).toBe(EXCEPTION);
    expect(read(r.cpu, 'IDT_VECTORING_INFO_FIELD') & ~(1n << 12n), r.why).toBe(BigInt(info(INTR_TYPE.SOFTWARE_INTERRUPT, 0x80)));
    expect(read(r.cpu, 'VM_EXIT_INSTRUCTION_LEN'), r.why).toBe(2n);
    expect(read(r.cpu, 'VM_EXIT_INTR_ERROR_CODE'), r.why).toBe(idtError(0x80, false));
    expect(r.guestRip, `${r.why}\nthe fault is on the (virtual) INT instruction at GUEST_RIP`).toBe(r.entryRip);
  });

  it.each(models)('%s: injected NMI, its gate absent, #NP exits: the NMI is the IDT-vectoring information and NMIs are not blocked', (model) => {
    const r = inject(model, info(INTR_TYPE.NMI, 2), { absent: [2], extra: exitOnNp });
    expect(r.reason, r.why).toBe(EXCEPTION);
    expect(read(r.cpu, 'IDT_VECTORING_INFO_FIELD') & ~(1n << 12n), r.why).toBe(BigInt(info(INTR_TYPE.NMI, 2)));
    // The NMI was not delivered, so it did not block NMIs: the VMM re-injects it. See SDM Vol. 3C, "Saving
    // Non-Register State" (blocking by NMI) and "Information for VM Exits During Event Delivery".
    expect(read(r.cpu, 'GUEST_INTERRUPTIBILITY_INFO') & 8n, r.why).toBe(0n);
  });

  it.each(models)('%s: #GP then #NP → #DF, #DF exits: IDT-vectoring invalid (the double fault causes the exit directly)', (model) => {
    const r = inject(model, info(INTR_TYPE.HARDWARE_EXCEPTION, 13, true), { errorCode: 0, absent: [13],
      extra: (h, cpu) => write(h, cpu, 'EXCEPTION_BITMAP', 1 << 8) });
    expect(r.reason, r.why).toBe(EXCEPTION);
    expect(read(r.cpu, 'VM_EXIT_INTR_INFO') & ~(1n << 12n), r.why).toBe(BigInt(info(INTR_TYPE.HARDWARE_EXCEPTION, 8, true)));
    expect(read(r.cpu, 'VM_EXIT_INTR_ERROR_CODE'), r.why).toBe(0n);
    expect(read(r.cpu, 'IDT_VECTORING_INFO_FIELD') & BigInt(INTR_INFO.VALID), r.why).toBe(0n);
  });

  it.each(models)('%s: the exception bitmap does not apply to the injected event itself (#UD injected, bit 6 set)', (model) => {
    const r = inject(model, info(INTR_TYPE.HARDWARE_EXCEPTION, 6), { extra: (h, cpu) => write(h, cpu, 'EXCEPTION_BITMAP', 1 << 6) });
    expect([r.reason, r.vector], r.why).toEqual([CPUID, 6n]);
  });
});

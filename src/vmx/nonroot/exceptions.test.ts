// Exceptions from a real guest, against SDM Vol. 3C, "Exception Bitmap", "Information for VM Exits Due to
// Vectored Events", "Information for VM Exits During Event Delivery", "Exit Qualification for Debug Exceptions"
// and "Saving RIP, RSP, RFLAGS, and SSP", and Vol. 3A, "Conditions for Generating a Double Fault". Expected values
// are computed here from those rules.
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { CPU_MODELS } from '../../machine/cpu-model.ts';
import { writeIdtGate } from '../../machine/testing/long-mode.ts';
import { read, runRecordedGuest, write, type Host, type RecordedRun, type ReferenceGuest } from '../../kernel/testing/reference-vm.ts';
import type { HostCpu } from '../../kernel/host-cpu.ts';
import { CR0 } from '../../x86/control-registers.ts';
import { VMX_CONTROL as C } from '../controls.ts';
import { EXIT_REASON } from '../exit-reasons.ts';

const EXCEPTION = BigInt(EXIT_REASON.EXIT_REASON_EXCEPTION_NMI), TRIPLE_FAULT = BigInt(EXIT_REASON.EXIT_REASON_TRIPLE_FAULT);
const CPUID = BigInt(EXIT_REASON.EXIT_REASON_CPUID);
const VALID = 1n << 31n, ERROR_CODE_VALID = 1n << 11n, BIT12 = 1n << 12n;
const HARDWARE = 3, SOFTWARE_INTERRUPT = 4, PRIVILEGED_SOFTWARE = 5, SOFTWARE = 6;
const GP = 13, DF = 8, PF = 14;
const UNMAPPED = 0x80000000; // the reference guest maps the first GByte only

/** What the guest's exception looks like to the exception bitmap. */
interface GuestException {
  name: string; source: string; vector: number; type: number; errorCode: number | null;
  /** Trap-like (#DB single step): the saved RIP is the next instruction. */
  trap: boolean; qualification: bigint;
}
const FIRST: readonly GuestException[] = [
  { name: '#DE', source: 'xor ecx, ecx\nat:\ndiv ecx\nafter:', vector: 0, type: HARDWARE, errorCode: null, trap: false, qualification: 0n },
  { name: '#DB (single step)', source: 'pushfq\nor qword [rsp], 0x100\npopfq\nat:\nnop\nafter:', vector: 1, type: HARDWARE, errorCode: null, trap: true, qualification: 1n << 14n },
  { name: 'INT1', source: 'at:\nint1\nafter:', vector: 1, type: PRIVILEGED_SOFTWARE, errorCode: null, trap: false, qualification: 0n },
  { name: 'INT3', source: 'at:\nint3\nafter:', vector: 3, type: SOFTWARE, errorCode: null, trap: false, qualification: 0n },
  { name: '#UD', source: 'at:\nud2\nafter:', vector: 6, type: HARDWARE, errorCode: null, trap: false, qualification: 0n },
  { name: '#GP', source: 'mov rax, 0x8000000000000000\nat:\nmov rbx, [rax]\nafter:', vector: GP, type: HARDWARE, errorCode: 0, trap: false, qualification: 0n },
  { name: '#PF', source: `mov eax, ${UNMAPPED}\nat:\nmov rbx, [rax]\nafter:`, vector: PF, type: HARDWARE, errorCode: 0, trap: false, qualification: BigInt(UNMAPPED) },
];

/** Exception classes, SDM Vol. 3A table "Interrupt and Exception Classes". */
const classOf = (vector: number): 'benign' | 'contributory' | 'page-fault' | 'double-fault' =>
  vector === PF ? 'page-fault' : vector === DF ? 'double-fault' : [0, 10, 11, 12, 13].includes(vector) ? 'contributory' : 'benign';
const isSoftware = (type: number): boolean => type === SOFTWARE_INTERRUPT || type === PRIVILEGED_SOFTWARE || type === SOFTWARE;

interface Event { vector: number; type: number; errorCode: number | null }
type Outcome = { kind: 'triple-fault' } | { kind: 'exit'; event: Event; during: Event | null };

/**
 * The SDM's outcome when the guest IDT has limit 0: each delivery attempt raises #GP(vector × 8 + 2 + EXT) (EXT
 * = 0 only for INT n, INT3, INTO); a contributory exception or #PF followed by a contributory one becomes #DF
 * (which "causes the VM exit directly": no IDT-vectoring information); a fault while delivering #DF is a triple
 * fault; otherwise the second exception is handled serially, recording the first as the event in delivery.
 */
function expectedOutcome(first: Event, bitmap: number): Outcome {
  let event = first, during: Event | null = null;
  for (;;) {
    if ((bitmap >>> event.vector) & 1) return { kind: 'exit', event, during };
    if (event.vector === DF && event.type === HARDWARE) return { kind: 'triple-fault' };
    const ext = event.type === SOFTWARE || event.type === SOFTWARE_INTERRUPT ? 0 : 1;
    const gp: Event = { vector: GP, type: HARDWARE, errorCode: event.vector * 8 + 2 + ext };
    const c = event.type === HARDWARE ? classOf(event.vector) : 'benign';
    if (c === 'contributory' || c === 'page-fault') {
      event = { vector: DF, type: HARDWARE, errorCode: 0 };
      during = null;
    } else {
      during = event;
      event = gp;
    }
  }
}

const info = (e: Event): bigint => BigInt(e.vector) | (BigInt(e.type) << 8n) | (e.errorCode !== null ? ERROR_CODE_VALID : 0n) | VALID;

describe('the exception bitmap', () => {
  it('an exception exits iff its bitmap bit is 1; faults during delivery exit with the event in IDT-vectoring, #DF directly, else a triple fault', () => {
    const relevant = [0, 1, 3, 6, DF, GP, PF];
    fc.assert(fc.property(fc.constantFrom(...FIRST), fc.subarray(relevant), (x, bits) => {
      const bitmap = bits.reduce((m, v) => m | (1 << v), 0);
      const run = runRecordedGuest({
        source: `bits 64\n${x.source}\ncpuid`,
        setup: (host, cpu) => write(host, cpu, 'EXCEPTION_BITMAP', bitmap),
      });
      const what = `${x.name}, bitmap ${bitmap.toString(16)}H\n${run.why()}`;
      const want = expectedOutcome(x, bitmap);
      const e = run.exits[0]!;
      if (want.kind === 'triple-fault') {
        expect(e.reason, what).toBe(TRIPLE_FAULT);
        return;
      }
      expect(e.reason, what).toBe(EXCEPTION);
      const cpu = run.host.kernel.cpu();
      const got = read(cpu, 'VM_EXIT_INTR_INFO');
      // Bit 12 (NMI unblocking due to IRET) is undefined with valid IDT-vectoring information and for #DF.
      const bit12Undefined = want.during !== null || want.event.vector === DF;
      expect(bit12Undefined ? got & ~BIT12 : got, what).toBe(info(want.event));
      if (want.event.errorCode !== null) expect(read(cpu, 'VM_EXIT_INTR_ERROR_CODE'), what).toBe(BigInt(want.event.errorCode));
      const vectoring = read(cpu, 'IDT_VECTORING_INFO_FIELD');
      if (want.during === null) expect(vectoring & VALID, `${what}: IDT-vectoring information invalid`).toBe(0n);
      else {
        expect(vectoring & ~BIT12, `${what}: IDT-vectoring information`).toBe(info(want.during)); // bit 12 undefined
        if (want.during.errorCode !== null) expect(read(cpu, 'IDT_VECTORING_ERROR_CODE')).toBe(BigInt(want.during.errorCode));
      }
      // The exception that exits is the first one: its qualification; otherwise #GP/#DF have qualification 0.
      expect(e.qualification, what).toBe(want.event === x ? x.qualification : 0n);
      // Instruction length: defined for software exceptions and for faults during their delivery.
      const software = isSoftware(want.event.type) || (want.during !== null && isSoftware(want.during.type));
      if (software) expect(e.instructionLength, what).toBe(1n);
      // RIP: the INT3/INT1 itself for software exceptions (and faults delivering them), the faulting instruction
      // for faults, the next instruction for the single-step trap (and exceptions delivering it).
      const labels = run.guest.labels;
      expect(e.guestRip, `${what}: guest RIP`).toBe(BigInt(labels.get(x.trap ? 'after' : 'at')!));
    }), { seed: 14, numRuns: 60 });
  }, 60_000);

  it('INT n is not an exception: never exits, even with every bitmap bit 1 (INT 3 encoded CD 03 included)', () => {
    for (const insn of ['int 3', 'int 0x80', 'int 14']) {
      const run = runRecordedGuest({
        source: `bits 64\nint_n:\n${insn}\nhandler:\ncpuid`,
        setup: (host, cpu, g) => {
          guestIdt(host, cpu, g, [[3, 'handler'], [0x80, 'handler'], [14, 'handler']], { dpl: 0 });
          write(host, cpu, 'EXCEPTION_BITMAP', 0xffffffff);
          write(host, cpu, 'PAGE_FAULT_ERROR_CODE_MASK', 0);
          write(host, cpu, 'PAGE_FAULT_ERROR_CODE_MATCH', 0);
        },
      });
      expect(run.exits[0]?.reason, `${insn}\n${run.why()}`).toBe(CPUID);
      expect(run.exits[0]?.guestRip, `${insn}: the guest handler ran`).toBe(BigInt(run.guest.labels.get('handler')!));
    }
  });

  it('a #PF while delivering INT n exits with the INT n in IDT-vectoring, its length, and RIP at the INT n; CR2 is not loaded', () => {
    const rsp = UNMAPPED + 0x1000;
    const run = runRecordedGuest({
      source: `bits 64\nmov rsp, ${rsp}\nat_int:\nint 0x80\nhandler:\ncpuid`,
      setup: (host, cpu, g) => {
        guestIdt(host, cpu, g, [[0x80, 'handler']]);
        write(host, cpu, 'EXCEPTION_BITMAP', 1 << PF);
      },
    });
    const e = run.exits[0]!;
    expect(e.reason, run.why()).toBe(EXCEPTION);
    const cpu = run.host.kernel.cpu();
    const pfec = 2n; // a supervisor write to a not-present page
    expect(read(cpu, 'VM_EXIT_INTR_INFO') & ~BIT12).toBe(info({ vector: PF, type: HARDWARE, errorCode: 2 }));
    expect(read(cpu, 'VM_EXIT_INTR_ERROR_CODE')).toBe(pfec);
    expect(read(cpu, 'IDT_VECTORING_INFO_FIELD') & ~BIT12).toBe(info({ vector: 0x80, type: SOFTWARE_INTERRUPT, errorCode: null }));
    expect(e.qualification, 'the first byte pushed: SS at RSP − 8').toBe(BigInt(rsp - 8));
    expect(e.instructionLength).toBe(2n);
    expect(e.guestRip).toBe(BigInt(run.guest.labels.get('at_int')!));
    expect(cpu.lp.readCr2(), 'CR2 is not loaded by a #PF that exits').not.toBe(BigInt(rsp - 8));
  });
});

describe('exceptions during delivery of an exception', () => {
  it('a #PF while delivering a #GP exits with the #GP and its error code in IDT-vectoring (contributory, then #PF: serial)', () => {
    const rsp = UNMAPPED + 0x1000;
    const run = runRecordedGuest({
      source: `bits 64\nmov rsp, ${rsp}\nmov rax, 0x8000000000000000\nat:\nmov rbx, [rax]\nhandler:\ncpuid`,
      setup: (host, cpu, g) => {
        guestIdt(host, cpu, g, [[GP, 'handler']]);
        write(host, cpu, 'EXCEPTION_BITMAP', 1 << PF);
      },
    });
    const e = run.exits[0]!;
    expect(e.reason, run.why()).toBe(EXCEPTION);
    const cpu = run.host.kernel.cpu();
    expect(read(cpu, 'VM_EXIT_INTR_INFO') & ~BIT12).toBe(info({ vector: PF, type: HARDWARE, errorCode: 2 }));
    expect(read(cpu, 'IDT_VECTORING_INFO_FIELD') & ~BIT12).toBe(info({ vector: GP, type: HARDWARE, errorCode: 0 }));
    expect(read(cpu, 'IDT_VECTORING_ERROR_CODE')).toBe(0n);
    expect(e.qualification).toBe(BigInt(rsp - 8));
    expect(e.guestRip, 'the return pointer of the #GP: the faulting instruction').toBe(BigInt(run.guest.labels.get('at')!));
  });
});

describe('page faults: error-code mask and match', () => {
  // Three ways to fault: read of a not-present page (PFEC 0), write to it (2), write to a read-only page with
  // CR0.WP = 1 (3).
  const faults = [
    { name: 'read, not present', source: `mov eax, ${UNMAPPED}\nat:\nmov rbx, [rax]`, pfec: 0, address: UNMAPPED },
    { name: 'write, not present', source: `mov eax, ${UNMAPPED}\nat:\nmov [rax], rbx`, pfec: 2, address: UNMAPPED },
    { name: 'write, read-only', source: 'mov eax, 0x200000\nat:\nmov [rax], rbx', pfec: 3, address: 0x200000 },
  ] as const;
  it('a #PF exits iff (PFEC & MASK) = MATCH agrees with bit 14 (equal: bit 14 decides; unequal: reversed)', () => {
    const pfecBits = fc.integer({ min: 0, max: 0x1f });
    const word = fc.oneof(pfecBits, fc.integer({ min: 0, max: 0xffffffff }));
    fc.assert(fc.property(fc.constantFrom(...faults), word, word, fc.boolean(), (f, mask, match, bit14) => {
      const run = runRecordedGuest({
        source: `bits 64\n${f.source}\ncpuid`,
        setup: (host, cpu, g) => {
          readOnlySecondLargePage(host, g);
          write(host, cpu, 'GUEST_CR0', read(cpu, 'GUEST_CR0') | BigInt(CR0.WP));
          // #DF too: a #PF that does not exit is delivered through an IDT of limit 0, which raises #GP: a #PF
          // followed by a contributory exception is a double fault.
          write(host, cpu, 'EXCEPTION_BITMAP', (bit14 ? 1 << PF : 0) | (1 << DF));
          write(host, cpu, 'PAGE_FAULT_ERROR_CODE_MASK', mask);
          write(host, cpu, 'PAGE_FAULT_ERROR_CODE_MATCH', match);
        },
      });
      const what = `${f.name}: mask ${mask.toString(16)}H match ${match.toString(16)}H bit 14 ${bit14}\n${run.why()}`;
      const exits = (((f.pfec & mask) >>> 0) === match >>> 0) === bit14;
      const e = run.exits[0]!;
      const cpu = run.host.kernel.cpu();
      expect(e.reason, what).toBe(EXCEPTION);
      expect(e.guestRip, what).toBe(BigInt(run.guest.labels.get('at')!));
      if (exits) {
        expect(read(cpu, 'VM_EXIT_INTR_INFO'), what).toBe(info({ vector: PF, type: HARDWARE, errorCode: f.pfec }));
        expect(read(cpu, 'VM_EXIT_INTR_ERROR_CODE'), what).toBe(BigInt(f.pfec));
        expect(e.qualification, what).toBe(BigInt(f.address));
        expect(read(cpu, 'IDT_VECTORING_INFO_FIELD') & VALID, what).toBe(0n);
        expect(cpu.lp.readCr2(), `${what}: CR2 not loaded`).toBe(0n);
      } else {
        // Delivered: CR2 loaded, then #GP while delivering it, so #DF, which exits directly (no IDT-vectoring).
        expect(read(cpu, 'VM_EXIT_INTR_INFO') & ~BIT12, what).toBe(info({ vector: DF, type: HARDWARE, errorCode: 0 }));
        expect(read(cpu, 'VM_EXIT_INTR_ERROR_CODE'), what).toBe(0n);
        expect(read(cpu, 'IDT_VECTORING_INFO_FIELD') & VALID, what).toBe(0n);
        expect(e.qualification, what).toBe(0n);
        expect(cpu.lp.readCr2(), `${what}: CR2 loaded by the delivery`).toBe(BigInt(f.address));
      }
    }), { seed: 1414, numRuns: 50 });
  }, 60_000);
});

describe('software exceptions and #DB on every model', () => {
  it('INT3 (type 6) and INT1 (type 5) exit with their length and RIP at the instruction; single-step #DB reports BS, DR6 untouched', () => {
    for (const model of CPU_MODELS) {
      for (const x of FIRST.filter((f) => f.vector === 1 || f.vector === 3)) {
        const run = runRecordedGuest({
          model: model.name,
          source: `bits 64\n${x.source}\ncpuid`,
          setup: (host, cpu) => write(host, cpu, 'EXCEPTION_BITMAP', 1 << x.vector),
        });
        const what = `${model.name}: ${x.name}\n${run.why()}`;
        const e = run.exits[0]!;
        const cpu = run.host.kernel.cpu();
        expect(e.reason, what).toBe(EXCEPTION);
        expect(read(cpu, 'VM_EXIT_INTR_INFO'), what).toBe(info(x));
        expect(e.qualification, what).toBe(x.qualification);
        expect(e.guestRip, what).toBe(BigInt(run.guest.labels.get(x.trap ? 'after' : 'at')!));
        if (isSoftware(x.type)) expect(e.instructionLength, what).toBe(1n);
        if (x.trap) expect(cpu.lp.dr[6]! & (1n << 14n), `${what}: DR6.BS is not set by a #DB that exits`).toBe(0n);
      }
    }
  });
});

describe('NMI unblocking due to IRET', () => {
  // IRETQ to a non-canonical RIP: #GP(0) after IRET has unblocked NMIs.
  const IRET_FAULT = `bits 64
    mov rax, rsp
    push 0x10
    push rax
    pushfq
    push 0x08
    mov rbx, 0x8000000000000000
    push rbx
  at:
    iretq
    cpuid`;
  function faultingIret(model: string, nmiBlocked: boolean): RecordedRun {
    return runRecordedGuest({
      model, source: IRET_FAULT,
      setup: (host, cpu) => {
        write(host, cpu, 'GUEST_INTERRUPTIBILITY_INFO', nmiBlocked ? 8 : 0); // blocking by NMI
        write(host, cpu, 'EXCEPTION_BITMAP', 1 << GP);
      },
    });
  }
  it('a fault on an IRET that unblocked NMIs sets bit 12, and the guest is saved without NMI blocking; otherwise bit 12 is 0', () => {
    for (const model of CPU_MODELS) {
      for (const blocked of [true, false]) {
        const run = faultingIret(model.name, blocked);
        const what = `${model.name}, NMIs ${blocked ? '' : 'not '}blocked before IRET\n${run.why()}`;
        expect(run.exits[0]?.reason, what).toBe(EXCEPTION);
        expect(run.exits[0]?.guestRip, what).toBe(BigInt(run.guest.labels.get('at')!));
        const cpu = run.host.kernel.cpu();
        expect(read(cpu, 'VM_EXIT_INTR_INFO'), what).toBe(info({ vector: GP, type: HARDWARE, errorCode: 0 }) | (blocked ? BIT12 : 0n));
        expect(read(cpu, 'GUEST_INTERRUPTIBILITY_INFO') & 8n, what).toBe(0n);
      }
    }
  });
});

/** A guest IDT at guest-physical pa + 6000H with 64-bit interrupt gates to the given labels. */
function guestIdt(host: Host, cpu: HostCpu, g: ReferenceGuest, gates: readonly (readonly [number, string])[], opts: { dpl?: number } = {}): void {
  const idt = Number(g.pa) + 0x6000;
  host.kernel.memset(g.va + 0x6000n, 0, 0x1000);
  for (const [vector, label] of gates) writeIdtGate(host.machine.memory, idt, vector, g.labels.get(label)!, { selector: 0x08, dpl: opts.dpl ?? 0 });
  write(host, cpu, 'GUEST_IDTR_BASE', idt);
  write(host, cpu, 'GUEST_IDTR_LIMIT', 0xfff);
}

/** Make the 2-MByte page at 200000H read-only in the reference guest's page directory. */
function readOnlySecondLargePage(host: Host, g: ReferenceGuest): void {
  const pde = g.va + 0x2000n + 8n;
  host.kernel.write64(pde, host.kernel.read64(pde) & ~2n);
}

import type { Chapter } from '../../src/cli/chapter.ts';

const chapter: Chapter = {
  number: 9,
  slug: '09-events',
  title: 'Events and MTF',
  summary: 'Give the guest its interrupts and exceptions the way the processor would: inject #GP, #UD, #PF with CR2 and #BP with the right interruption type, error code and instruction length; reflect exceptions the bitmap caught; re-inject an event whose delivery a VM exit interrupted; queue interrupts behind interrupt-window exiting; and single-step the guest with the monitor trap flag, for a tracer and for a write monitor that lets one write through at a time.',
  objectives: [
    'Tell faults, traps and aborts apart by where the pushed RIP points, interrupts from exceptions, and INT n from the exception it imitates (no error code pushed).',
    'Build the VM-entry interruption-information field, and pick the interruption type by the SDM rule: #BP and #OF are software exceptions, INT1 is a privileged software exception, every other exception a hardware exception.',
    'Know which exceptions push an error code, when VM_ENTRY_INSTRUCTION_LEN matters, and that CR2 is not in the VMCS.',
    'Read VM_EXIT_INTR_INFO and IDT_VECTORING_INFO_FIELD, give a caught exception back to the guest, and re-inject an event whose delivery an exit interrupted.',
    'Inject an external interrupt only when RFLAGS.IF = 1 and nothing blocks it, and otherwise ask for an interrupt window.',
    'Use the monitor trap flag to single-step the guest, knowing where MTF exits stand in the event priority at an instruction boundary, and never advance RIP on one.',
  ],
  exercises: [
    {
      id: 'inject',
      title: 'An event injector',
      file: 'inject.ts',
      test: 'inject.test.ts',
      points: 20,
      hints: [
        'The field is four parts: vector in bits 7:0, type in 10:8, "deliver error code" in bit 11, valid in bit 31. Build it with shifts and `>>> 0` so bit 31 does not make it negative.',
        'The type table: vectors 3 (#BP) and 4 (#OF) are software exceptions (6); vector 1 is a privileged software exception (5) only when it comes from INT1; everything else is a hardware exception (3). Only 8, 10, 11, 12, 13, 14, 17 and 21 push an error code, and only a hardware exception carries one.',
        'inject writes VM_ENTRY_EXCEPTION_ERROR_CODE and VM_ENTRY_INSTRUCTION_LEN first, then VM_ENTRY_INTR_INFO_FIELD. injectPageFault calls `cpu.writeCr2(address)` before it injects, because the VMCS has no guest CR2. The VMCALL handler returns RESUME in every case. For #BP, the length is the VMCALL\'s VM_EXIT_INSTRUCTION_LEN, so the handler returns to the instruction after it.',
      ],
    },
    {
      id: 'reflect',
      title: 'Reflect exceptions from the exception bitmap',
      file: 'reflect.ts',
      test: 'reflect.test.ts',
      points: 15,
      hints: [
        'interceptExceptions: EXCEPTION_BITMAP gets bit n set for each vector n. Keep the bits that are already set.',
        'caughtEvent reads VM_EXIT_INTR_INFO: the vector and type are in the same places as in the entry field. VM_EXIT_INTR_ERROR_CODE counts only when bit 11 is set. VM_EXIT_INSTRUCTION_LEN counts only for types 5 and 6 (INT1, INT3, INTO).',
        'reflectException: an exit caused by a #PF did not load CR2. The faulting address is the exit qualification, so `cpu.writeCr2(qualification)` first, then inject the same event. The handler returns RESUME, never SKIP.',
      ],
    },
    {
      id: 'reinject',
      title: 'Re-inject from IDT-vectoring information',
      file: 'reinject.ts',
      test: 'reinject.test.ts',
      points: 20,
      hints: [
        'IDT_VECTORING_INFO_FIELD has the same layout as the interruption information. Bit 31 clear means no event was being delivered, so there is nothing to re-inject.',
        'Build the event from its parts (vector, type, error code if bit 11 is set, length for types 4, 5 and 6). Do not copy the raw field: bit 12 is undefined in IDT-vectoring information, and VM entry refuses it in the injection field, where bits 30:12 are reserved.',
        'The guard handler makes the stack page writable (granting needs no INVEPT), then calls reinjectFromIdtVectoring and returns RESUME. VM_EXIT_INSTRUCTION_LEN is defined here only because the exit interrupted the delivery of a software interrupt or exception.',
      ],
    },
    {
      id: 'interrupt-queue',
      title: 'An interrupt queue with interrupt-window exiting',
      file: 'interrupt-queue.ts',
      test: 'interrupt-queue.test.ts',
      points: 15,
      hints: [
        'canInjectInterrupt: RFLAGS bit 9 (IF) set, and GUEST_INTERRUPTIBILITY_INFO bits 0 (blocking by STI) and 1 (blocking by MOV SS) clear.',
        'deliver: when something is pending and the guest can take it, inject the first vector as type 0 with no error code, and drop it from the queue. In every case, end with setInterruptWindow(cpu, pending.length > 0).',
        'VMCALL: queue.raise(EAX), deliver, SKIP. Interrupt window (exit 7): deliver, RESUME. A VMCALL in the STI shadow reports blocking by STI even though IF = 1, so that interrupt waits for the window.',
      ],
    },
    {
      id: 'mtf-tracer',
      title: 'An MTF single-step tracer',
      file: 'mtf-tracer.ts',
      test: 'mtf-tracer.test.ts',
      points: 15,
      hints: [
        'The part asks for CPU_BASED_MONITOR_TRAP_FLAG in its controls, so a model without it refuses the part.',
        'At each MTF exit (37), GUEST_RIP is already the next instruction. Log it and RESUME.',
        'Never SKIP on an MTF exit: it is not caused by an instruction, VM_EXIT_INSTRUCTION_LEN is undefined (the kit refuses the skip), and moving RIP would skip guest instructions.',
      ],
    },
    {
      id: 'mtf-write-monitor',
      title: 'An MTF-assisted write monitor',
      file: 'mtf-write-monitor.ts',
      test: 'mtf-write-monitor.test.ts',
      points: 15,
      hints: [
        'setMonitorTrapFlag is setInterruptWindow with bit 27 (CPU_BASED_MONITOR_TRAP_FLAG) instead of bit 2.',
        'EPT violation on the watched page: remember the write (GUEST_PHYSICAL_ADDRESS, GUEST_RIP), make the PTE RWX, set MTF, RESUME. The write is retried, completes, and the MTF exit follows at the next instruction.',
        'MTF exit: log the write with GUEST_RIP as the re-protect point, make the PTE read/execute again, INVEPT (chapter 6\'s invalidateEpt), clear MTF, RESUME. Without the INVEPT the cached writable translation lets the next write through unseen.',
      ],
    },
  ],
};

export default chapter;

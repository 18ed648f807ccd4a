// Test support for chapter 9 (imported by the tests only, never by learner code):
//  - eventGuest: a guest program with an IDT handler per vector that logs (vector, error code, pushed RIP, CR2) and
//    continues at R14 when R14 is set (a fault's pushed RIP is the faulting instruction: the guest names the fixup);
//  - installIdt: the kit writes the gates and GUEST_IDTR in runPart's `before`, so the IDT is there even for an
//    event injected at VMLAUNCH;
//  - the CPU models that have each control an exercise needs, computed from their capability MSRs;
//  - chapter 5's runPart (one of your parts on the kit's hypervisor), re-exported.
import type { HostCpu } from '../../src/kernel/host-cpu.ts';
import { writeIdtGate } from '../../src/machine/testing/long-mode.ts';
import { canSet } from '../../src/vmx/capabilities.ts';
import { capabilitiesOf } from '../../src/vmx/emulated-msrs.ts';
import { VMX_CONTROL } from '../../src/vmx/controls.ts';
import { write, type Host, type ReferenceGuest } from '../05-exits/support.ts';
import type { PartRun } from '../05-exits/support.ts';
import { CPU_MODELS } from '../../src/machine/cpu-model.ts';

export { runPart, type PartRun, type Host } from '../05-exits/support.ts';
export { EPT_MODELS, NO_EPT_MODELS, hex } from '../06-ept/support.ts';
export const ALL_MODELS = CPU_MODELS.map((m) => m.name);

type Ctl = 'pin' | 'proc' | 'proc2';
const modelsWith = (ctl: Ctl, bit: number): string[] => CPU_MODELS.filter((m) => canSet(capabilitiesOf(m), ctl, bit)).map((m) => m.name);
/** Models whose CPU_BASED_VM_EXEC_CONTROL allows "monitor trap flag" (bit 27) to be 1. */
export const MTF_MODELS = modelsWith('proc', VMX_CONTROL.CPU_BASED_MONITOR_TRAP_FLAG);
export const NO_MTF_MODELS = ALL_MODELS.filter((n) => !MTF_MODELS.includes(n));
/** Models that allow "interrupt-window exiting" (bit 2). */
export const WINDOW_MODELS = modelsWith('proc', VMX_CONTROL.CPU_BASED_INTR_WINDOW_EXITING);
export const NO_WINDOW_MODELS = ALL_MODELS.filter((n) => !WINDOW_MODELS.includes(n));

/** The exceptions that push an error code (SDM Vol. 3A, "Exception and Interrupt Reference"): #DF #TS #NP #SS #GP #PF #AC #CP. */
export const ERROR_CODE_VECTORS: readonly number[] = [8, 10, 11, 12, 13, 14, 17, 21];

/** One event the guest's handler saw. */
export interface Seen {
  readonly vector: number;
  /** The error code the processor pushed, or -1 if it pushed none. */
  readonly errorCode: bigint;
  /** The RIP in the frame: where IRET returns. */
  readonly rip: bigint;
  readonly cr2: bigint;
}

/**
 * `body` (runs first, should end in HLT), then a handler per vector in `vectors` (labels h_<vector>) and the log.
 * A handler of a vector in `withErrorCode` expects the processor to have pushed an error code; the others push -1
 * themselves, so a missing or extra error code shows up as a wrong RIP and error code in the log.
 */
export function eventGuest(body: string, vectors: readonly number[], withErrorCode: readonly number[] = ERROR_CODE_VECTORS, data = ''): string {
  const handlers = vectors.map((v) => `
h_${v}:
${withErrorCode.includes(v) ? '' : '        push -1                         ; no error code: a placeholder'}
        push rax
        push rbx
        mov rbx, [log_n]
        shl rbx, 5
        lea rax, [log]
        add rbx, rax
        mov qword [rbx], ${v}
        mov rax, [rsp + 16]
        mov [rbx + 8], rax              ; error code
        mov rax, [rsp + 24]
        mov [rbx + 16], rax             ; pushed RIP
        mov rax, cr2
        mov [rbx + 24], rax
        inc qword [log_n]
        test r14, r14
        jz hn_${v}
        mov [rsp + 24], r14             ; continue at the fixup
        xor r14d, r14d
hn_${v}:
        pop rbx
        pop rax
        add rsp, 8
        iretq`).join('\n');
  return `
bits 64
default rel
${body}
${handlers}
align 8
log_n:  dq 0
log:    times 32*4 dq 0
${data}
align 16
idt:    times 256*16 db 0
`;
}

/** Write a 64-bit interrupt gate for each vector (handler h_<vector>) into the guest's `idt`, and GUEST_IDTR. */
export function installIdt(host: Host, cpu: HostCpu, g: ReferenceGuest, vectors: readonly number[]): void {
  const idt = g.labels.get('idt');
  if (idt === undefined) throw new Error('test bug: the guest has no idt label');
  for (const v of vectors) {
    const h = g.labels.get(`h_${v}`);
    if (h === undefined) throw new Error(`test bug: no handler h_${v}`);
    writeIdtGate(host.machine.memory, idt, v, h);
  }
  write(host, cpu, 'GUEST_IDTR_BASE', BigInt(idt));
  write(host, cpu, 'GUEST_IDTR_LIMIT', 256 * 16 - 1);
}

/** The events the guest's handlers logged. */
export function seen(run: PartRun): Seen[] {
  const n = Number(run.qword('log_n'));
  const base = BigInt(run.guest.labels.get('log')!);
  const k = run.host.kernel;
  const at = (a: bigint): bigint => k.read64(run.guest.va + (a - run.guest.pa));
  return Array.from({ length: Math.min(n, 32) }, (_x, i) => {
    const e = base + BigInt(32 * i);
    return { vector: Number(at(e)), errorCode: BigInt.asIntN(64, at(e + 8n)), rip: at(e + 16n), cr2: at(e + 24n) };
  });
}

export function describeSeen(s: readonly Seen[]): string {
  return s.length === 0 ? '(no event reached the guest)' : s.map((e) => `vector ${e.vector}, error code ${e.errorCode < 0n ? 'none' : `0x${e.errorCode.toString(16)}`}, pushed RIP 0x${e.rip.toString(16)}, CR2 0x${e.cr2.toString(16)}`).join('; ');
}

export const INJECTION_RULE = 'SDM Vol. 3C, "VM-Entry Controls for Event Injection" and "Event Injection": the interruption-information field is vector (7:0), type (10:8: 0 external interrupt, 2 NMI, 3 hardware exception, 4 software interrupt, 5 privileged software exception, 6 software exception), deliver error code (11), valid (31); ' +
  'the error code is pushed only with bit 11; for types 4, 5 and 6 the pushed RIP is GUEST_RIP + VM_ENTRY_INSTRUCTION_LEN; CR2 is not in the VMCS';

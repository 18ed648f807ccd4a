// Boundary VM exits on real guests: the monitor trap flag (37), the VMX-preemption timer (52), NMI-window (8) and
// interrupt-window (7) exiting, and their order. Expected values come from the SDM rules, restated at each test.
// See SDM Vol. 3C, "Monitor Trap Flag", "VMX-Preemption Timer", "NMI-Window Exiting", "Interrupt-Window Exiting and
// Virtual-Interrupt Delivery" and "Saving Non-Register State".
import { describe, expect, it } from 'vitest';
import { CPU_MODELS, type CpuModel } from '../../machine/cpu-model.ts';
import { writeIdtGate } from '../../machine/testing/long-mode.ts';
import { bootHost, enterVmx, explain, read, runGuests, write, writeReferenceVmcs, type Host, type ReferenceGuest, type RunResult } from '../../kernel/testing/reference-vm.ts';
import type { HostCpu } from '../../kernel/host-cpu.ts';
import type { VmcsFieldName } from '../fields.ts';
import { RFLAGS } from '../../x86/flags.ts';
import { VMX_CONTROL as C } from '../controls.ts';
import { capabilitiesOf } from '../emulated-msrs.ts';
import { EXIT_REASON as R } from '../exit-reasons.ts';

interface Exit { reason: number; rip: number; rcx: bigint; interruptibility: number; timer: bigint; idtVectoring: bigint; pendingDbg: bigint }
interface Trace { exits: Exit[]; guest: ReferenceGuest; label(name: string): number; why: string; run: RunResult }

/**
 * Run `source` on `model`; `setup` adjusts the VMCS before VMLAUNCH. Each exit is recorded; `onExit` returns true to
 * VMRESUME (after adjusting the VMCS, e.g. GUEST_RIP for an instruction exit), false to stop. At most 64 exits.
 */
function trace(model: string, source: string, setup: (h: Host, cpu: HostCpu, g: ReferenceGuest) => void,
  onExit: (e: Exit, h: Host, cpu: HostCpu) => boolean = () => false, quantum?: number): Trace {
  const host = bootHost({ model });
  if (quantum !== undefined) host.machine.quantum = quantum;
  const k = host.kernel, cpu = k.cpu();
  enterVmx(host, cpu);
  const exits: Exit[] = [];
  const rip = k.hostEntry('boundary_exit_handler', (_k, c) => {
    const e: Exit = {
      reason: Number(read(c, 'VM_EXIT_REASON') & 0xffffn), rip: Number(read(c, 'GUEST_RIP')), rcx: c.readGpr('rcx'),
      interruptibility: Number(read(c, 'GUEST_INTERRUPTIBILITY_INFO')),
      timer: has(model, 'pin', C.PIN_BASED_VMX_PREEMPTION_TIMER) ? read(c, 'VMX_PREEMPTION_TIMER_VALUE') : -1n,
      idtVectoring: read(c, 'IDT_VECTORING_INFO_FIELD'), pendingDbg: read(c, 'GUEST_PENDING_DBG_EXCEPTIONS'),
    };
    exits.push(e);
    if (exits.length < 64 && onExit(e, host, c)) c.vmresume();
  });
  const guest = writeReferenceVmcs(host, cpu, rip, source);
  setup(host, cpu, guest);
  cpu.vmlaunch();
  const run = runGuests(host, 50_000);
  const label = (name: string): number => {
    const a = guest.labels.get(name);
    if (a === undefined) throw new Error(`no label ${name}`);
    return a;
  };
  return { exits, guest, label, run, why: `model ${model}\n${explain(host, `exits: ${exits.map((e) => `${e.reason}@${e.rip.toString(16)}`).join(', ')}`)}` };
}

type Ctl = 'pin' | 'proc' | 'exit';
function has(model: string, ctl: Ctl, bit: number): boolean {
  const eff = capabilitiesOf(CPU_MODELS.find((m) => m.name === model)!).effective;
  return (eff[ctl].allowed1 & bit) !== 0;
}
const FIELD: Record<Ctl, VmcsFieldName> = { pin: 'PIN_BASED_VM_EXEC_CONTROL', proc: 'CPU_BASED_VM_EXEC_CONTROL', exit: 'VM_EXIT_CONTROLS' };
function enable(h: Host, cpu: HostCpu, ctl: Ctl, bits: number): void {
  write(h, cpu, FIELD[ctl], read(cpu, FIELD[ctl]) | BigInt(bits));
}
function disable(h: Host, cpu: HostCpu, ctl: Ctl, bits: number): void {
  write(h, cpu, FIELD[ctl], read(cpu, FIELD[ctl]) & ~BigInt(bits));
}
const modelsWith = (ctl: Ctl, bit: number): string[] => CPU_MODELS.map((m: CpuModel) => m.name).filter((n) => has(n, ctl, bit));
/** Resume after an exit caused by a 2-byte instruction (CPUID). */
const skipCpuid = (h: Host, cpu: HostCpu): void => write(h, cpu, 'GUEST_RIP', read(cpu, 'GUEST_RIP') + 2n);
const IDT = 0x6000;
function idtGate(h: Host, cpu: HostCpu, g: ReferenceGuest, vector: number, handler: string): void {
  writeIdtGate(h.machine.memory, Number(g.pa) + IDT, vector, g.labels.get(handler)!);
  write(h, cpu, 'GUEST_IDTR_BASE', g.pa + BigInt(IDT));
  write(h, cpu, 'GUEST_IDTR_LIMIT', 0xfff);
}
const setIf = (h: Host, cpu: HostCpu, on: boolean): void => {
  const f = read(cpu, 'GUEST_RFLAGS');
  write(h, cpu, 'GUEST_RFLAGS', on ? f | BigInt(RFLAGS.IF) : f & ~BigInt(RFLAGS.IF));
};

const MTF = modelsWith('proc', C.CPU_BASED_MONITOR_TRAP_FLAG);
const TIMER = modelsWith('pin', C.PIN_BASED_VMX_PREEMPTION_TIMER).filter((n) => has(n, 'exit', C.VM_EXIT_SAVE_VMX_PREEMPTION_TIMER));
const VNMI = modelsWith('pin', C.PIN_BASED_VIRTUAL_NMIS).filter((n) => has(n, 'proc', C.CPU_BASED_NMI_WINDOW_EXITING));
const INTR_WINDOW = modelsWith('proc', C.CPU_BASED_INTR_WINDOW_EXITING);

describe('monitor trap flag (exit 37)', () => {
  const STEPS = `
bits 64
start:  nop
a1:     xor ecx, ecx
a2:     inc ecx
a3:     inc ecx
a4:     cpuid
a5:     nop
a6:     hlt
`;
  it.each(MTF)('%s: an MTF exit after every instruction, none after one that exits (CPUID), stepping resumes after it', (model) => {
    const t = trace(model, STEPS, (h, cpu) => enable(h, cpu, 'proc', C.CPU_BASED_MONITOR_TRAP_FLAG), (e, h, cpu) => {
      if (e.reason === R.EXIT_REASON_CPUID) skipCpuid(h, cpu);
      return true;
    });
    const got = t.exits.slice(0, 6).map((e) => [e.reason, e.rip]);
    expect(got, t.why).toEqual([
      [R.EXIT_REASON_MONITOR_TRAP_FLAG, t.label('a1')], [R.EXIT_REASON_MONITOR_TRAP_FLAG, t.label('a2')],
      [R.EXIT_REASON_MONITOR_TRAP_FLAG, t.label('a3')], [R.EXIT_REASON_MONITOR_TRAP_FLAG, t.label('a4')],
      // CPUID causes a VM exit: "an MTF VM exit is not pending" after an instruction that causes a VM exit.
      [R.EXIT_REASON_CPUID, t.label('a4')],
      // After VMRESUME the next instruction (NOP) completes, then the MTF exit.
      [R.EXIT_REASON_MONITOR_TRAP_FLAG, t.label('a6')],
    ]);
  });

  const HANDLER = `
bits 64
start:  ud2
        hlt
ud:     mov ecx, 0x66
        cpuid
`;
  it.each(MTF)('%s: a fault delivered through the IDT ends the step: MTF exit at the handler, before its first instruction', (model) => {
    const t = trace(model, HANDLER, (h, cpu, g) => {
      idtGate(h, cpu, g, 6, 'ud');
      enable(h, cpu, 'proc', C.CPU_BASED_MONITOR_TRAP_FLAG);
    });
    expect([t.exits[0]?.reason, t.exits[0]?.rip], t.why).toEqual([R.EXIT_REASON_MONITOR_TRAP_FLAG, t.label('ud')]);
    expect(t.exits[0]!.rcx, `${t.why}\nno handler instruction ran`).not.toBe(0x66n);
  });

  it.each(MTF)('%s: VM entry injecting an event (#UD): the MTF exit is pending before the handler\'s first instruction', (model) => {
    const t = trace(model, HANDLER.replace('start:  ud2', 'start:  nop'), (h, cpu, g) => {
      idtGate(h, cpu, g, 6, 'ud');
      write(h, cpu, 'VM_ENTRY_INTR_INFO_FIELD', 0x80000306n);
      enable(h, cpu, 'proc', C.CPU_BASED_MONITOR_TRAP_FLAG);
    });
    expect([t.exits[0]?.reason, t.exits[0]?.rip], t.why).toEqual([R.EXIT_REASON_MONITOR_TRAP_FLAG, t.label('ud')]);
    // The injected event was delivered: a VM exit clears the valid bit of the VM-entry field, and it is not
    // IDT-vectoring information (the exit did not occur during its delivery).
    expect(t.exits[0]!.idtVectoring >> 31n, t.why).toBe(0n);
  });
});

describe('VMX-preemption timer (exit 52)', () => {
  const LOOP = `
bits 64
start:  xor ecx, ecx
loop:   inc rcx
        jmp loop
`;
  /** Guest instructions retired before the timer exit, from RCX and where in the loop it stopped. */
  const retired = (t: Trace): bigint => 1n + 2n * t.exits[0]!.rcx - (t.exits[0]!.rip === t.label('loop') ? 0n : 1n);
  const timed = (model: string, value: number, save = true): Trace => trace(model, LOOP, (h, cpu) => {
    enable(h, cpu, 'pin', C.PIN_BASED_VMX_PREEMPTION_TIMER);
    if (save) enable(h, cpu, 'exit', C.VM_EXIT_SAVE_VMX_PREEMPTION_TIMER);
    write(h, cpu, 'VMX_PREEMPTION_TIMER_VALUE', value);
  });

  it.each(TIMER)('%s: value 0 at VM entry: the exit happens before any guest instruction, and 0 is saved', (model) => {
    const t = timed(model, 0);
    expect([t.exits[0]?.reason, t.exits[0]?.rip, t.exits[0]?.timer], t.why).toEqual([R.EXIT_REASON_PREEMPTION_TIMER, Number(t.guest.rip), 0n]);
  });

  it.each(TIMER)('%s: each unit of the value is 2^X TSC ticks, X = IA32_VMX_MISC[4:0]; 0 is saved on the timer\'s exit', (model) => {
    const x = capabilitiesOf(CPU_MODELS.find((m) => m.name === model)!).misc.preemptionTimerRate;
    const runs = [3, 4, 6].map((v) => timed(model, v));
    for (const t of runs) expect([t.exits[0]?.reason, t.exits[0]?.timer], t.why).toEqual([R.EXIT_REASON_PREEMPTION_TIMER, 0n]);
    const n = runs.map(retired);
    // From the same TSC at entry, one more unit is exactly 2^X more instructions (the TSC counts instructions).
    expect([n[1]! - n[0]!, n[2]! - n[0]!], runs[0]!.why).toEqual([1n << BigInt(x), 3n << BigInt(x)]);
  });

  it.each(TIMER)('%s: without "save VMX-preemption timer value" the field keeps the value VM entry loaded', (model) => {
    const t = timed(model, 5, false);
    expect([t.exits[0]?.reason, t.exits[0]?.timer], t.why).toEqual([R.EXIT_REASON_PREEMPTION_TIMER, 5n]);
  });

  const CPUID_AFTER = (n: number): string => `bits 64\nstart:  ${'nop\n        '.repeat(n)}cpuid\n        hlt\n`;
  it.each(TIMER)('%s: saved on another exit: the loaded value less the units elapsed; VMRESUME continues from it', (model) => {
    const x = capabilitiesOf(CPU_MODELS.find((m) => m.name === model)!).misc.preemptionTimerRate;
    const unit = 2 ** x, v = 1000;
    const saved = [0, 2].map((extraUnits) => trace(model, CPUID_AFTER(4 + extraUnits * unit), (h, cpu) => {
      enable(h, cpu, 'pin', C.PIN_BASED_VMX_PREEMPTION_TIMER);
      enable(h, cpu, 'exit', C.VM_EXIT_SAVE_VMX_PREEMPTION_TIMER);
      write(h, cpu, 'VMX_PREEMPTION_TIMER_VALUE', v);
    }));
    for (const t of saved) expect(t.exits[0]?.reason, t.why).toBe(R.EXIT_REASON_CPUID);
    const [a, b] = saved.map((t) => t.exits[0]!.timer);
    // Four NOPs and CPUID are at most ⌊5 / 2^X⌋ + 1 changes of TSC bit X.
    expect(a! <= BigInt(v) && a! >= BigInt(v - Math.floor(5 / unit) - 1), `${saved[0]!.why}\nsaved ${a}, loaded ${v}, 2^X = ${unit}`).toBe(true);
    expect(a! - b!, saved[1]!.why).toBe(2n);
  });

  it.each(TIMER.filter((n) => MTF.includes(n)))('%s: MTF before the timer: injection with both, MTF exit at the handler first, then the timer', (model) => {
    const t = trace(model, 'bits 64\nstart:  nop\nud:     nop\n        hlt\n', (h, cpu, g) => {
      idtGate(h, cpu, g, 6, 'ud');
      write(h, cpu, 'VM_ENTRY_INTR_INFO_FIELD', 0x80000306n);
      enable(h, cpu, 'proc', C.CPU_BASED_MONITOR_TRAP_FLAG);
      enable(h, cpu, 'pin', C.PIN_BASED_VMX_PREEMPTION_TIMER);
      enable(h, cpu, 'exit', C.VM_EXIT_SAVE_VMX_PREEMPTION_TIMER);
      write(h, cpu, 'VMX_PREEMPTION_TIMER_VALUE', 0);
    }, (e) => e.reason === R.EXIT_REASON_MONITOR_TRAP_FLAG);
    expect(t.exits.map((e) => [e.reason, e.rip]), t.why).toEqual([
      [R.EXIT_REASON_MONITOR_TRAP_FLAG, t.label('ud')], [R.EXIT_REASON_PREEMPTION_TIMER, t.label('ud')],
    ]);
  });

  it.each(TIMER)('%s: value 0 with an injected event: the event is delivered first, the exit is at the handler', (model) => {
    const t = trace(model, 'bits 64\nstart:  nop\nud:     nop\n        hlt\n', (h, cpu, g) => {
      idtGate(h, cpu, g, 6, 'ud');
      write(h, cpu, 'VM_ENTRY_INTR_INFO_FIELD', 0x80000306n);
      enable(h, cpu, 'pin', C.PIN_BASED_VMX_PREEMPTION_TIMER);
      write(h, cpu, 'VMX_PREEMPTION_TIMER_VALUE', 0);
    });
    expect([t.exits[0]?.reason, t.exits[0]?.rip, t.exits[0]!.idtVectoring >> 31n], t.why).toEqual([R.EXIT_REASON_PREEMPTION_TIMER, t.label('ud'), 0n]);
  });
});

describe('interrupt-window exiting (exit 7)', () => {
  it.each(INTR_WINDOW)('%s: RFLAGS.IF = 1 and no blocking at VM entry: the exit happens before any instruction', (model) => {
    const t = trace(model, 'bits 64\nstart:  nop\n        hlt\n', (h, cpu) => {
      setIf(h, cpu, true);
      enable(h, cpu, 'proc', C.CPU_BASED_INTR_WINDOW_EXITING);
    });
    expect([t.exits[0]?.reason, t.exits[0]?.rip], t.why).toEqual([R.EXIT_REASON_INTERRUPT_WINDOW, Number(t.guest.rip)]);
  });

  it.each(INTR_WINDOW)('%s: STI opens the window one instruction late (STI blocking), and the exit saves no blocking', (model) => {
    const t = trace(model, 'bits 64\nstart:  cli\n        sti\n        nop\nopen:   nop\n        hlt\n', (h, cpu) => {
      setIf(h, cpu, false);
      enable(h, cpu, 'proc', C.CPU_BASED_INTR_WINDOW_EXITING);
    });
    expect([t.exits[0]?.reason, t.exits[0]?.rip, t.exits[0]?.interruptibility], t.why).toEqual([R.EXIT_REASON_INTERRUPT_WINDOW, t.label('open'), 0]);
  });

  it.each(INTR_WINDOW)('%s: blocking by STI or MOV SS in the guest interruptibility state holds the exit off for one instruction', (model) => {
    for (const blocking of [1, 2]) {
      const t = trace(model, 'bits 64\nstart:  nop\nnext:   nop\n        hlt\n', (h, cpu) => {
        setIf(h, cpu, true);
        write(h, cpu, 'GUEST_INTERRUPTIBILITY_INFO', blocking);
        enable(h, cpu, 'proc', C.CPU_BASED_INTR_WINDOW_EXITING);
      });
      expect([t.exits[0]?.reason, t.exits[0]?.rip], `blocking ${blocking}\n${t.why}`).toEqual([R.EXIT_REASON_INTERRUPT_WINDOW, t.label('next')]);
    }
  });

  it.each(INTR_WINDOW)('%s: RFLAGS.IF = 0 keeps the window shut (the guest runs on to CPUID)', (model) => {
    const t = trace(model, 'bits 64\nstart:  nop\n        cpuid\n', (h, cpu) => {
      setIf(h, cpu, false);
      enable(h, cpu, 'proc', C.CPU_BASED_INTR_WINDOW_EXITING);
    });
    expect(t.exits[0]?.reason, t.why).toBe(R.EXIT_REASON_CPUID);
  });

  it.each(INTR_WINDOW.filter((n) => has(n, 'pin', C.PIN_BASED_NMI_EXITING)))('%s: a pending NMI with "NMI exiting" outranks the interrupt window: exit 0 first', (model) => {
    const t = trace(model, 'bits 64\nstart:  nop\n        hlt\n', (h, cpu) => {
      setIf(h, cpu, true);
      enable(h, cpu, 'proc', C.CPU_BASED_INTR_WINDOW_EXITING);
      enable(h, cpu, 'pin', C.PIN_BASED_NMI_EXITING);
      cpu.lp.nmiPending = true;
    }, (e) => e.reason === R.EXIT_REASON_EXCEPTION_NMI);
    expect(t.exits.slice(0, 2).map((e) => [e.reason, e.rip]), t.why).toEqual([
      [R.EXIT_REASON_EXCEPTION_NMI, Number(t.guest.rip)], [R.EXIT_REASON_INTERRUPT_WINDOW, Number(t.guest.rip)],
    ]);
  });
});

describe('NMI-window exiting (exit 8) and virtual NMIs', () => {
  const vnmi = (h: Host, cpu: HostCpu): void => {
    enable(h, cpu, 'pin', C.PIN_BASED_NMI_EXITING | C.PIN_BASED_VIRTUAL_NMIS);
    enable(h, cpu, 'proc', C.CPU_BASED_NMI_WINDOW_EXITING);
  };
  it.each(VNMI)('%s: no virtual-NMI blocking at VM entry: the exit happens before any instruction', (model) => {
    const t = trace(model, 'bits 64\nstart:  nop\n        hlt\n', vnmi);
    expect([t.exits[0]?.reason, t.exits[0]?.rip], t.why).toEqual([R.EXIT_REASON_NMI_WINDOW, Number(t.guest.rip)]);
  });

  it.each(VNMI)('%s: virtual-NMI blocking (bit 3) keeps it shut until the guest\'s IRET; then the exit at the IRET target', (model) => {
    const IRET = `
bits 64
start:  mov rdx, rsp
        xor eax, eax
        mov ax, ss
        push rax
        push rdx
        pushfq
        mov ax, cs
        push rax
        lea rax, [rel after]
        push rax
        iretq
after:  nop
        hlt
`;
    const t = trace(model, IRET, (h, cpu) => {
      vnmi(h, cpu);
      write(h, cpu, 'GUEST_INTERRUPTIBILITY_INFO', 8);
    });
    expect([t.exits[0]?.reason, t.exits[0]?.rip, t.exits[0]!.interruptibility & 8], t.why).toEqual([R.EXIT_REASON_NMI_WINDOW, t.label('after'), 0]);
  });

  it.each(VNMI.filter((n) => INTR_WINDOW.includes(n)))('%s: the NMI window outranks the interrupt window', (model) => {
    const t = trace(model, 'bits 64\nstart:  nop\n        hlt\n', (h, cpu) => {
      vnmi(h, cpu);
      setIf(h, cpu, true);
      enable(h, cpu, 'proc', C.CPU_BASED_INTR_WINDOW_EXITING);
    }, (e, h, cpu) => {
      if (e.reason === R.EXIT_REASON_NMI_WINDOW) disable(h, cpu, 'proc', C.CPU_BASED_NMI_WINDOW_EXITING);
      return e.reason === R.EXIT_REASON_NMI_WINDOW;
    });
    expect(t.exits.map((e) => e.reason), t.why).toEqual([R.EXIT_REASON_NMI_WINDOW, R.EXIT_REASON_INTERRUPT_WINDOW]);
  });
});

describe('pending debug exceptions after VM entry', () => {
  // Handlers report DR6 in RAX and the pushed RIP in RCX.
  const DBG = `
bits 64
start:  nop
second: nop
        cpuid
db:     mov rax, dr6
        mov rcx, [rsp]
db_end: cpuid
ud:     mov rax, dr6
        mov rcx, [rsp]
ud_end: cpuid
`;
  const BS = 1n << 14n, B0 = 1n, ENABLED = 1n << 12n;
  const DR6_BS = 1n << 14n, DR6_B0 = 1n;
  const models = CPU_MODELS.map((m) => m.name);
  interface DbRun { t: Trace; dr6: bigint; pushed: bigint; cpu: HostCpu }
  function withPending(model: string, pending: bigint, extra: (h: Host, cpu: HostCpu, g: ReferenceGuest) => void = () => undefined,
    onExit?: (e: Exit, h: Host, cpu: HostCpu) => boolean): DbRun {
    let hostCpu: HostCpu | null = null;
    const t = trace(model, DBG, (h, cpu, g) => {
      hostCpu = cpu;
      idtGate(h, cpu, g, 1, 'db');
      idtGate(h, cpu, g, 6, 'ud');
      write(h, cpu, 'GUEST_PENDING_DBG_EXCEPTIONS', pending);
      extra(h, cpu, g);
    }, onExit);
    return { t, dr6: hostCpu!.readGpr('rax'), pushed: t.exits[0]!.rcx, cpu: hostCpu! };
  }

  it.each(models)('%s: BS pending, no injection, no blocking: #DB before the first instruction, DR6.BS set', (model) => {
    const r = withPending(model, BS);
    expect([r.t.exits[0]?.reason, r.t.exits[0]?.rip], r.t.why).toEqual([R.EXIT_REASON_CPUID, r.t.label('db_end')]);
    expect([r.pushed, r.dr6 & DR6_BS], r.t.why).toEqual([r.t.guest.rip, DR6_BS]);
    expect(read(r.cpu, 'GUEST_PENDING_DBG_EXCEPTIONS'), `${r.t.why}\nthe delivered #DB is no longer pending`).toBe(0n);
  });

  it.each(models)('%s: with bit 1 of the exception bitmap the pending #DB exits: vector 1, BS in the exit qualification, GUEST_RIP the entry RIP', (model) => {
    const r = withPending(model, BS, (h, cpu) => write(h, cpu, 'EXCEPTION_BITMAP', 1 << 1));
    expect([r.t.exits[0]?.reason, r.t.exits[0]?.rip], r.t.why).toEqual([R.EXIT_REASON_EXCEPTION_NMI, Number(r.t.guest.rip)]);
    expect(read(r.cpu, 'VM_EXIT_INTR_INFO') & ~(1n << 12n), r.t.why).toBe(0x80000301n);
    expect(read(r.cpu, 'EXIT_QUALIFICATION'), r.t.why).toBe(BS);
  });

  it.each(models)('%s: B0 and "enabled breakpoint" under MOV-SS blocking: held for one instruction, then delivered (DR6.B0)', (model) => {
    const r = withPending(model, B0 | ENABLED, (h, cpu) => write(h, cpu, 'GUEST_INTERRUPTIBILITY_INFO', 2));
    expect([r.t.exits[0]?.reason, r.pushed, r.dr6 & DR6_B0], r.t.why).toEqual([R.EXIT_REASON_CPUID, BigInt(r.t.label('second')), DR6_B0]);
  });

  it.each(models)('%s: VM entry injecting an event (#UD): the pending debug exceptions are lost', (model) => {
    const r = withPending(model, BS, (h, cpu) => write(h, cpu, 'VM_ENTRY_INTR_INFO_FIELD', 0x80000306n));
    expect([r.t.exits[0]?.rip, r.dr6 & DR6_BS], r.t.why).toEqual([r.t.label('ud_end'), 0n]);
    expect(read(r.cpu, 'GUEST_PENDING_DBG_EXCEPTIONS'), r.t.why).toBe(0n);
  });

  it.each(MTF)('%s: with MTF: the pending #DB is delivered, then the MTF exit at the #DB handler', (model) => {
    const r = withPending(model, BS, (h, cpu) => enable(h, cpu, 'proc', C.CPU_BASED_MONITOR_TRAP_FLAG));
    expect([r.t.exits[0]?.reason, r.t.exits[0]?.rip], r.t.why).toEqual([R.EXIT_REASON_MONITOR_TRAP_FLAG, r.t.label('db')]);
  });

  it.each(TIMER)('%s: debug traps before the preemption timer: timer 0 and BS pending, the #DB is delivered, the timer exits at its handler', (model) => {
    const r = withPending(model, BS, (h, cpu) => {
      enable(h, cpu, 'pin', C.PIN_BASED_VMX_PREEMPTION_TIMER);
      write(h, cpu, 'VMX_PREEMPTION_TIMER_VALUE', 0);
    });
    expect([r.t.exits[0]?.reason, r.t.exits[0]?.rip], r.t.why).toEqual([R.EXIT_REASON_PREEMPTION_TIMER, r.t.label('db')]);
  });
});

describe('MTF and RFLAGS.TF', () => {
  const TF = `
bits 64
start:  nop
second: nop
        cpuid
db:     mov rax, dr6
        cpuid
`;
  it.each(MTF)('%s: the MTF exit outranks the single-step trap: saved as BS pending; VMRESUME delivers it, then MTF at the #DB handler', (model) => {
    const t = trace(model, TF, (h, cpu, g) => {
      idtGate(h, cpu, g, 1, 'db');
      write(h, cpu, 'GUEST_RFLAGS', read(cpu, 'GUEST_RFLAGS') | BigInt(RFLAGS.TF));
      enable(h, cpu, 'proc', C.CPU_BASED_MONITOR_TRAP_FLAG);
    }, (e) => e.reason === R.EXIT_REASON_MONITOR_TRAP_FLAG);
    const BS = 1n << 14n;
    expect(t.exits.slice(0, 2).map((e) => [e.reason, e.rip, e.pendingDbg]), t.why).toEqual([
      // After NOP: the MTF exit, the single-step #DB not delivered but pending (BS).
      [R.EXIT_REASON_MONITOR_TRAP_FLAG, t.label('second'), BS],
      // VM entry delivers the pending #DB (no blocking); the MTF exit follows its delivery, at the handler.
      [R.EXIT_REASON_MONITOR_TRAP_FLAG, t.label('db'), 0n],
    ]);
  });

  it.each(MTF)('%s: without MTF the single-step trap is delivered right after the instruction (DR6.BS in the handler)', (model) => {
    const t = trace(model, TF, (h, cpu, g) => {
      idtGate(h, cpu, g, 1, 'db');
      write(h, cpu, 'GUEST_RFLAGS', read(cpu, 'GUEST_RFLAGS') | BigInt(RFLAGS.TF));
    });
    expect(t.exits[0]?.reason, t.why).toBe(R.EXIT_REASON_CPUID);
    expect(t.exits[0]?.rip, `${t.why}\nthe #DB handler ran after the first NOP`).toBe(t.label('db') + 3);
  });
});

describe('boundary exits and HLT', () => {
  it.each(MTF)('%s: MTF after HLT: the exit happens in the HLT state and saves activity state 1 (HLT)', (model) => {
    let activity = -1n;
    const t = trace(model, 'bits 64\nstart:  hlt\nafter:  nop\n', (h, cpu) => {
      disable(h, cpu, 'proc', C.CPU_BASED_HLT_EXITING); // the reference controls exit on HLT
      enable(h, cpu, 'proc', C.CPU_BASED_MONITOR_TRAP_FLAG);
    },
      (_e, _h, cpu) => { activity = read(cpu, 'GUEST_ACTIVITY_STATE'); return false; });
    expect([t.exits[0]?.reason, t.exits[0]?.rip, activity], t.why).toEqual([R.EXIT_REASON_MONITOR_TRAP_FLAG, t.label('after'), 1n]);
  });
});

describe('the VMX-preemption timer in the HLT state', () => {
  // The timer "counts down ... in the C-states C0, C1, and C2 ... and in the HLT, shutdown and wait-for-SIPI activity
  // states"; the exit saves activity state 1 (HLT). The TSC runs on while halted (the machine counts the idle turn,
  // as for the APIC timer), so the exit comes when TSC bit X has changed `value` times since VM entry.
  // See SDM Vol. 3C, "VMX-Preemption Timer" and "Saving Non-Register State".
  const HALT = 'bits 64\nstart:  rdtsc\n        hlt\nafter:  rdtsc\n        cpuid\n';
  interface HaltRun { t: Trace; entryTsc: number; exitTsc: number; activity: bigint; resumedTsc: number }
  const halted = (model: string, value: number | null, quantum?: number): HaltRun => {
    let entryTsc = -1, exitTsc = -1, activity = -1n, resumedTsc = -1;
    const t = trace(model, HALT, (h, cpu) => {
      disable(h, cpu, 'proc', C.CPU_BASED_HLT_EXITING | C.CPU_BASED_RDTSC_EXITING | C.CPU_BASED_USE_TSC_OFFSETTING);
      if (value === null) return;
      enable(h, cpu, 'pin', C.PIN_BASED_VMX_PREEMPTION_TIMER);
      write(h, cpu, 'VMX_PREEMPTION_TIMER_VALUE', value);
    }, (e, h, cpu) => {
      const edxEax = (): number => Number((cpu.readGpr('rdx') & 0xffffffffn) << 32n | (cpu.readGpr('rax') & 0xffffffffn));
      if (e.reason === R.EXIT_REASON_PREEMPTION_TIMER) {
        exitTsc = Number(h.machine.cpus[0]!.readTsc());
        activity = read(cpu, 'GUEST_ACTIVITY_STATE');
        entryTsc = edxEax(); // the first RDTSC ran at the TSC of VM entry (no instruction retired before it)
        // Resume the guest awake, without the timer: its second RDTSC shows the TSC after the halt.
        write(h, cpu, 'GUEST_ACTIVITY_STATE', 0);
        disable(h, cpu, 'pin', C.PIN_BASED_VMX_PREEMPTION_TIMER);
        return true;
      }
      if (e.reason === R.EXIT_REASON_CPUID) resumedTsc = edxEax();
      return false;
    }, quantum);
    return { t, entryTsc, exitTsc, activity, resumedTsc };
  };
  const rate = (model: string): number => capabilitiesOf(CPU_MODELS.find((m) => m.name === model)!).misc.preemptionTimerRate;

  it.each(TIMER)('%s: a guest that HLTs with the timer armed exits (52) from HLT, activity state 1 saved, at the TSC value × 2^X implies', (model) => {
    const unit = 2 ** rate(model), value = Math.ceil(3000 / unit); // several idle turns of 1000
    const r = halted(model, value);
    expect([r.t.exits[0]?.reason, r.t.exits[0]?.rip, r.activity], r.t.why).toEqual([R.EXIT_REASON_PREEMPTION_TIMER, r.t.label('after'), 1n]);
    // The timer reaches 0 at the `value`-th change of TSC bit X after the entry TSC.
    expect(r.exitTsc, `${r.t.why}\nentry TSC ${r.entryTsc}, 2^X = ${unit}, value ${value}`).toBe((Math.floor(r.entryTsc / unit) + value) * unit);
    // RDTSC after the halt: the TSC advanced by the idle time (and the host's few instructions of VMRESUME).
    expect(r.resumedTsc >= r.exitTsc && r.resumedTsc - r.exitTsc < 1000, `${r.t.why}\nexit TSC ${r.exitTsc}, RDTSC after ${r.resumedTsc}`).toBe(true);
  });

  it.each(TIMER)('%s: the same exit TSC whatever the machine\'s quantum', (model) => {
    const value = Math.ceil(3000 / 2 ** rate(model));
    const runs = [1000, 7, 256].map((q) => halted(model, value, q));
    const got = runs.map((r) => [r.t.exits[0]?.reason, r.exitTsc - r.entryTsc]);
    expect(got, runs[1]!.t.why).toEqual([got[0], got[0], got[0]]);
  });

  it.each(TIMER)('%s: without the timer a halted guest still stops the machine (all halted), with no exit', (model) => {
    const r = halted(model, null);
    expect([r.t.exits.length, r.t.run.reason, r.t.run.instructions < 50_000], r.t.why).toEqual([0, 'idle', true]);
  });
});

describe('window exits in the HLT state', () => {
  // Interrupt-window exits "wake a logical processor from the same inactive states as would an external interrupt"
  // (HLT, MWAIT); NMI-window exits from those an NMI would (HLT, MWAIT, shutdown). The exit happens in the HLT
  // state, which it saves as the activity state (1). See SDM Vol. 3C, "Interrupt-Window Exiting and
  // Virtual-Interrupt Delivery", "NMI-Window Exiting" and "Saving Non-Register State".
  const saveActivity = (box: { activity: bigint }) => (_e: Exit, _h: Host, cpu: HostCpu): boolean => {
    box.activity = read(cpu, 'GUEST_ACTIVITY_STATE');
    return false;
  };
  const hltEntry = (model: string): boolean => capabilitiesOf(CPU_MODELS.find((m) => m.name === model)!).misc.activityHlt;

  it.each(INTR_WINDOW)('%s: STI; HLT with interrupt-window exiting: the exit (7) comes from HLT, after the STI shadow', (model) => {
    const box = { activity: -1n };
    const t = trace(model, 'bits 64\nstart:  nop\n        sti\n        hlt\nafter:  nop\n', (h, cpu) => {
      disable(h, cpu, 'proc', C.CPU_BASED_HLT_EXITING);
      setIf(h, cpu, false);
      enable(h, cpu, 'proc', C.CPU_BASED_INTR_WINDOW_EXITING);
    }, saveActivity(box));
    expect([t.exits[0]?.reason, t.exits[0]?.rip, box.activity], t.why).toEqual([R.EXIT_REASON_INTERRUPT_WINDOW, t.label('after'), 1n]);
  });

  it.each(INTR_WINDOW)('%s: HLT with IF = 0: the interrupt window stays shut, the halted guest stops the machine', (model) => {
    const t = trace(model, 'bits 64\nstart:  hlt\n', (h, cpu) => {
      disable(h, cpu, 'proc', C.CPU_BASED_HLT_EXITING);
      setIf(h, cpu, false);
      enable(h, cpu, 'proc', C.CPU_BASED_INTR_WINDOW_EXITING);
    });
    expect([t.exits.length, t.run.reason], t.why).toEqual([0, 'idle']);
  });

  it.each(VNMI.filter(hltEntry))('%s: VM entry into the HLT state without virtual-NMI blocking: the NMI-window exit (8) comes from HLT', (model) => {
    const box = { activity: -1n };
    const t = trace(model, 'bits 64\nstart:  nop\n        hlt\n', (h, cpu) => {
      enable(h, cpu, 'pin', C.PIN_BASED_NMI_EXITING | C.PIN_BASED_VIRTUAL_NMIS);
      enable(h, cpu, 'proc', C.CPU_BASED_NMI_WINDOW_EXITING);
      write(h, cpu, 'GUEST_ACTIVITY_STATE', 1);
    }, saveActivity(box));
    expect([t.exits[0]?.reason, t.exits[0]?.rip, box.activity], t.why).toEqual([R.EXIT_REASON_NMI_WINDOW, Number(t.guest.rip), 1n]);
  });
});

describe('virtual NMIs: an injected NMI blocks the NMI window until the guest\'s IRET', () => {
  it.each(VNMI)('%s: NMI injected, NMI-window exiting on: the handler runs (no exit 8 yet), its IRET opens the window at the interrupted RIP', (model) => {
    const GUEST = `
bits 64
start:  nop
        hlt
nmi:    mov ecx, 0x22
        iretq
`;
    const t = trace(model, GUEST, (h, cpu, g) => {
      idtGate(h, cpu, g, 2, 'nmi');
      enable(h, cpu, 'pin', C.PIN_BASED_NMI_EXITING | C.PIN_BASED_VIRTUAL_NMIS);
      enable(h, cpu, 'proc', C.CPU_BASED_NMI_WINDOW_EXITING);
      write(h, cpu, 'VM_ENTRY_INTR_INFO_FIELD', 0x80000202n);
    });
    expect([t.exits[0]?.reason, t.exits[0]?.rip, t.exits[0]?.rcx, t.exits[0]!.interruptibility & 8], t.why)
      .toEqual([R.EXIT_REASON_NMI_WINDOW, Number(t.guest.rip), 0x22n, 0]);
  });
});

describe('virtual-NMI blocking is not NMI blocking', () => {
  // With "virtual NMIs" = 1, bit 3 of the interruptibility state is virtual-NMI blocking: it "does not affect the
  // blocking of NMIs after VM entry. NMIs are not blocked in VMX non-root operation", so a real NMI exits at once
  // (NMI exiting is required); VM exits save virtual-NMI blocking in bit 3, the guest's IRET clears it.
  // See SDM Vol. 3C, "Interruptibility State" (in "Special Features of VM Entry"), "Virtual NMIs" and "Saving
  // Non-Register State".
  const GUEST = 'bits 64\nstart:  nop\n        nop\n        hlt\nnmi:    cpuid\n        iretq\n';
  const run = (model: string, virtualNmis: boolean, setup: (h: Host, cpu: HostCpu, g: ReferenceGuest) => void) => {
    let info = -1n, hostNmiBlocked: boolean | null = null;
    const t = trace(model, GUEST, (h, cpu, g) => {
      enable(h, cpu, 'pin', C.PIN_BASED_NMI_EXITING | (virtualNmis ? C.PIN_BASED_VIRTUAL_NMIS : 0));
      setup(h, cpu, g);
    }, (_e, h, cpu) => {
      info = read(cpu, 'VM_EXIT_INTR_INFO');
      hostNmiBlocked = h.machine.cpus[0]!.nmiBlocked;
      return false;
    });
    return { t, info, hostNmiBlocked };
  };
  const blockedWithNmi = (h: Host, cpu: HostCpu): void => {
    write(h, cpu, 'GUEST_INTERRUPTIBILITY_INFO', 8);
    h.machine.cpus[0]!.nmiPending = true;
  };

  it.each(VNMI)('%s: a real NMI while the guest has virtual-NMI blocking exits (0) at once, and the exit saves bit 3', (model) => {
    const r = run(model, true, blockedWithNmi);
    expect([r.t.exits[0]?.reason, r.t.exits[0]?.rip, r.info, r.t.exits[0]!.interruptibility & 8], r.t.why)
      .toEqual([R.EXIT_REASON_EXCEPTION_NMI, Number(r.t.guest.rip), 0x80000202n, 8]);
    // "VM exits caused directly by non-maskable interrupts (NMIs) cause blocking by NMI" — the host's, not the guest's.
    expect(r.hostNmiBlocked, r.t.why).toBe(true);
  });

  it.each(VNMI)('%s: without virtual NMIs bit 3 is NMI blocking: the same NMI waits (the guest reaches its HLT exit)', (model) => {
    const r = run(model, false, blockedWithNmi);
    expect(r.t.exits[0]?.reason, r.t.why).toBe(R.EXIT_REASON_HLT);
  });

  it.each(VNMI)('%s: an injected virtual NMI: an exit in its handler saves virtual-NMI blocking (bit 3); the host\'s NMIs are not blocked', (model) => {
    const r = run(model, true, (h, cpu, g) => {
      idtGate(h, cpu, g, 2, 'nmi');
      write(h, cpu, 'VM_ENTRY_INTR_INFO_FIELD', 0x80000202n);
    });
    expect([r.t.exits[0]?.reason, r.t.exits[0]?.rip, r.t.exits[0]!.interruptibility & 8, r.hostNmiBlocked], r.t.why)
      .toEqual([R.EXIT_REASON_CPUID, r.t.label('nmi'), 8, false]);
  });

  it.each(VNMI)('%s: an injected virtual NMI whose delivery faults into an exit: virtual-NMI blocking is saved (bit 3)', (model) => {
    // The IDT is too short for vector 2: #GP during delivery, the exception bitmap takes it (exit 0, NMI vectoring).
    const r = run(model, true, (h, cpu, g) => {
      write(h, cpu, 'GUEST_IDTR_BASE', g.pa + BigInt(IDT));
      write(h, cpu, 'GUEST_IDTR_LIMIT', 0xf);
      write(h, cpu, 'EXCEPTION_BITMAP', 1 << 13);
      write(h, cpu, 'VM_ENTRY_INTR_INFO_FIELD', 0x80000202n);
    });
    expect([r.t.exits[0]?.reason, r.info & 0xffn, r.t.exits[0]!.idtVectoring & 0x80000fffn, r.t.exits[0]!.interruptibility & 8], r.t.why)
      .toEqual([R.EXIT_REASON_EXCEPTION_NMI, 13n, 0x80000202n, 8]);
  });
});

describe('MTF and REP string instructions', () => {
  it.each(MTF)('%s: an MTF exit after each iteration: RIP stays at the REP STOSB and RCX counts down', (model) => {
    const t = trace(model, 'bits 64\nstart:  mov ecx, 3\nsetdi:  lea rdi, [rsp - 64]\nrep:    rep stosb\nafter:  nop\n        hlt\n',
      (h, cpu) => enable(h, cpu, 'proc', C.CPU_BASED_MONITOR_TRAP_FLAG), (e) => e.reason === R.EXIT_REASON_MONITOR_TRAP_FLAG);
    expect(t.exits.slice(0, 5).map((e) => [e.reason, e.rip, e.rcx]), t.why).toEqual([
      [R.EXIT_REASON_MONITOR_TRAP_FLAG, t.label('setdi'), 3n],
      [R.EXIT_REASON_MONITOR_TRAP_FLAG, t.label('rep'), 3n],
      [R.EXIT_REASON_MONITOR_TRAP_FLAG, t.label('rep'), 2n],
      [R.EXIT_REASON_MONITOR_TRAP_FLAG, t.label('rep'), 1n],
      [R.EXIT_REASON_MONITOR_TRAP_FLAG, t.label('after'), 0n],
    ]);
  });
});

// `npm run demo`: the reference hypervisor (the solutions of chapters 1–5) on every CPU of an SMP host (two by
// default), each CPU running its own copy of a guest that prints through a virtual 16550 UART and touches every part
// once — CPUID, RDMSR/WRMSR, VMCALL, MOV to CR0 — then a table of their VM exits: how many of each basic reason, and
// how much of the host's time each took.
//
//   npm run demo                         # the default CPU model, 2 CPUs
//   npm run demo -- --model penryn-core2-duo-t9600 --cpus 4 --budget 50000
//
// The demo module starts one hypervisor per CPU, each launched on its own CPU from smp_call_function_single (VMX
// state is per logical processor: see chapter 8). Counts come from the VM-exit trace (src/debug/exit-trace.ts); time
// per exit is measured from the VM exit to the next VM entry on the same CPU through the VMX unit's observer seam
// (src/vmx/observe.ts), so it is the host's time in the exit handler. See SDM Vol. 3C, "VM Exits" and "Basic
// VM-Exit Information".
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { traceExits } from '../src/debug/exit-trace.ts';
import type { KernelModule } from '../src/kernel/kernel.ts';
import { bootHost, explain, runGuests, type Host } from '../src/kernel/testing/reference-vm.ts';
import { CPU_MODELS, DEFAULT_CPU_MODEL, getCpuModel } from '../src/machine/cpu-model.ts';
import { describeLaunch } from '../solutions/04-first-launch/diagnose.ts';
import { cpuidPart } from '../solutions/05-exits/cpuid.ts';
import { crPart } from '../solutions/05-exits/cr-access.ts';
import { createHypervisor } from '../solutions/05-exits/hypervisor.ts';
import { serialPart } from '../solutions/05-exits/io.ts';
import { msrPart } from '../solutions/05-exits/msr.ts';
import { vmcallPart } from '../solutions/05-exits/vmcall.ts';

/** Logical processors of the demo host by default, and the most it takes. */
export const DEMO_CPUS = 2;
export const MAX_DEMO_CPUS = 8;
/** Guest instructions the demo allows by default, for all guests together (one guest needs about 11 000). */
export const DEFAULT_BUDGET = 400_000;

/** The guest's program: 64-bit code, started by chapter 4's guest state with paging identity-mapped. */
export const DEMO_GUEST = `
bits 64
default rel
COM1    equ 0x3f8
THR     equ COM1 + 0            ; transmitter holding register (divisor latch low while LCR.DLAB = 1)
DLM     equ COM1 + 1            ; divisor latch high while LCR.DLAB = 1
FCR     equ COM1 + 2
LCR     equ COM1 + 3
MCR     equ COM1 + 4
LSR     equ COM1 + 5
LSR_THRE equ 0x20               ; THR empty: the UART takes the next byte
MSR_IA32_FEATURE_CONTROL equ 0x3a
MSR_VMXLAB_SCRATCH equ 0x40000000
VMCALL_PING equ 0
VMCALL_WRITE equ 1
VMCALL_EXIT_COUNT equ 2

start:
        ; 115200 baud (divisor 1), 8 data bits, no parity, 1 stop bit; FIFOs on; DTR and RTS: six OUTs.
        mov dx, LCR
        mov al, 0x80
        out dx, al
        mov dx, THR
        mov al, 1
        out dx, al
        mov dx, DLM
        xor al, al
        out dx, al
        mov dx, LCR
        mov al, 0x03
        out dx, al
        mov dx, FCR
        mov al, 0xc7
        out dx, al
        mov dx, MCR
        mov al, 0x03
        out dx, al
        lea rsi, [banner]
        call puts

        ; CPUID 40000000H: the hypervisor's leaf (a VM exit; the CPU part answers).
        mov eax, 0x40000000
        xor ecx, ecx
        cpuid
        mov [signature], ebx
        mov [signature + 4], ecx
        mov [signature + 8], edx
        mov r12, rax
        lea rsi, [s_hv_leaf]
        call puts
        mov rax, r12
        mov ecx, 8
        call put_hex
        lea rsi, [s_signature]
        call puts
        lea rsi, [signature]
        call puts
        lea rsi, [s_quote_nl]
        call puts

        ; CPUID 1: ECX[31] says "hypervisor present", ECX[5] (VMX) is hidden.
        mov eax, 1
        xor ecx, ecx
        cpuid
        mov r12, rcx
        lea rsi, [s_leaf1]
        call puts
        mov rax, r12
        shr rax, 31
        and eax, 1
        call put_dec
        lea rsi, [s_leaf1_vmx]
        call puts
        mov rax, r12
        shr rax, 5
        and eax, 1
        call put_dec
        lea rsi, [s_nl]
        call puts

        ; CPUID 0: the host's vendor string, passed through.
        xor eax, eax
        xor ecx, ecx
        cpuid
        mov [vendor], ebx
        mov [vendor + 4], edx
        mov [vendor + 8], ecx
        lea rsi, [s_vendor]
        call puts
        lea rsi, [vendor]
        call puts
        lea rsi, [s_quote_nl]
        call puts

        ; RDMSR IA32_FEATURE_CONTROL: intercepted; the hypervisor says "locked, VMX off".
        mov ecx, MSR_IA32_FEATURE_CONTROL
        rdmsr
        shl rdx, 32
        or rax, rdx
        lea rsi, [s_feature_control]
        mov ecx, 16
        call put_labeled_hex

        ; WRMSR, then RDMSR, of the hypervisor's scratch MSR (outside the bitmap ranges: both always exit).
        mov ecx, MSR_VMXLAB_SCRATCH
        mov edx, 0x01234567
        mov eax, 0x89abcdef
        wrmsr
        xor eax, eax
        xor edx, edx
        rdmsr
        shl rdx, 32
        or rax, rdx
        lea rsi, [s_scratch]
        mov ecx, 16
        call put_labeled_hex

        ; VMCALL PING: RBX = "VMXLab".
        mov eax, VMCALL_PING
        vmcall
        mov [ping], rbx
        lea rsi, [s_ping]
        call puts
        lea rsi, [ping]
        call puts
        lea rsi, [s_quote_nl]
        call puts

        ; VMCALL WRITE: hand the hypervisor a message (it printk's it; see dmesg).
        mov eax, VMCALL_WRITE
        lea rbx, [hypercall_text]
        mov ecx, hypercall_text_end - hypercall_text
        vmcall
        mov r12, rax
        lea rsi, [s_write]
        call puts
        mov rax, r12
        call put_dec
        lea rsi, [s_write_end]
        call puts

        ; MOV to CR0 that clears NE (host-owned: VMX fixes it to 1): a VM exit; the guest then reads the shadow.
        mov rax, cr0
        btr rax, 5
        mov cr0, rax
        mov rax, cr0
        lea rsi, [s_cr0_clear]
        mov ecx, 8
        call put_labeled_hex
        mov rax, cr0
        bts rax, 5                      ; and set it again: a VM exit too (the shadow says 0)
        mov cr0, rax
        lea rsi, [s_cr0_set]
        mov ecx, 8
        call put_labeled_hex

        ; VMCALL EXIT_COUNT: how many VM exits the hypervisor has handled, this one included.
        mov eax, VMCALL_EXIT_COUNT
        vmcall
        mov r12, rbx
        lea rsi, [s_exits]
        call puts
        mov rax, r12
        call put_dec
        lea rsi, [s_exits_end]
        call puts

        lea rsi, [s_bye]
        call puts
        hlt                             ; the hypervisor's HLT handler stops the guest and turns VMX off
        jmp start

; puts: print the zero-terminated string at RSI.
puts:   push rax
.next:  lodsb
        test al, al
        jz .done
        call putc
        jmp .next
.done:  pop rax
        ret

; putc: wait until the UART's THR is empty (LSR.THRE), then write AL to it. One IN and one OUT per byte.
putc:   push rdx
        push rax
        mov dx, LSR
.wait:  in al, dx
        test al, LSR_THRE
        jz .wait
        pop rax
        mov dx, THR
        out dx, al
        pop rdx
        ret

; put_labeled_hex: the string at RSI, then RAX as ECX hex digits (put_hex), then a newline.
put_labeled_hex:
        call puts
        call put_hex
        lea rsi, [s_nl]
        call puts
        ret

; put_hex: the low ECX hex digits of RAX, most significant first.
put_hex:
        push rbx
        push rcx
        push rdx
        mov rbx, rax
        mov edx, ecx
.next:  mov ecx, edx
        dec ecx
        shl ecx, 2
        mov rax, rbx
        shr rax, cl
        and eax, 0xf
        lea rcx, [hex_digits]
        mov al, [rcx + rax]
        call putc
        dec edx
        jnz .next
        pop rdx
        pop rcx
        pop rbx
        ret

; put_dec: RAX as an unsigned decimal number.
put_dec:
        push rbx
        push rcx
        push rdx
        push rsi
        lea rbx, [decimal_end]
        mov ecx, 10
.next:  xor edx, edx
        div rcx
        add dl, '0'
        dec rbx
        mov [rbx], dl
        test rax, rax
        jnz .next
        mov rsi, rbx
        call puts
        pop rsi
        pop rdx
        pop rcx
        pop rbx
        ret

banner:            db 'Hello from a VMX Lab guest: 64-bit mode, VMX non-root operation.', 10
                   db 'Every byte of this text is an OUT to the 16550 at 3F8H, after an IN polling LSR (3FDH): two VM exits.', 10, 0
s_hv_leaf:         db 'CPUID 40000000H: max leaf ', 0
s_signature:       db 'H, signature "', 0
s_quote_nl:        db '"', 10, 0
s_nl:              db 10, 0
s_leaf1:           db 'CPUID 1: ECX.hypervisor[31] = ', 0
s_leaf1_vmx:       db ', ECX.VMX[5] = ', 0
s_vendor:          db 'CPUID 0: vendor "', 0
s_feature_control: db 'RDMSR IA32_FEATURE_CONTROL (3AH) = ', 0
s_scratch:         db 'WRMSR then RDMSR 40000000H (the scratch MSR) = ', 0
s_ping:            db 'VMCALL PING: "', 0
s_write:           db 'VMCALL WRITE: the hypervisor took ', 0
s_write_end:       db ' bytes (see its dmesg)', 10, 0
s_cr0_clear:       db 'MOV to CR0 without NE, then MOV from CR0 = ', 0
s_cr0_set:         db 'MOV to CR0 with NE again = ', 0
s_exits:           db 'VMCALL EXIT_COUNT: ', 0
s_exits_end:       db ' VM exits so far', 10, 0
s_bye:             db 'Bye: HLT.', 10, 0
hypercall_text:    db 'hello, hypervisor, from the guest'
hypercall_text_end:
hex_digits:        db '0123456789ABCDEF'
align 8
signature:         times 12 db 0
                   db 0
vendor:            times 12 db 0
                   db 0
align 8
ping:              dq 0, 0
decimal:           times 20 db 0
decimal_end:       db 0
`;

/** One row of the summary table: a basic exit reason. */
export interface ExitRow {
  readonly basicReason: number;
  /** Its name in the exit-reason table (src/vmx/exit-reasons.ts), EXIT_REASON_*. */
  readonly name: string;
  readonly count: number;
  /** count / all exits, 0..1. */
  readonly share: number;
  /** Host time from these VM exits to the VM entries after them, in the clock's unit (ms for the default). */
  readonly time: number;
  /** time / host time of all exits, 0..1. */
  readonly timeShare: number;
}

/** One CPU's guest and what it did. */
export interface DemoGuest {
  readonly cpu: number;
  /** What the guest wrote to its UART's THR. */
  readonly guestOutput: string;
  /** What the guest handed over with VMCALL WRITE. */
  readonly hypercallOutput: string;
  /** Basic reasons of its VM exits, in order. */
  readonly exits: readonly number[];
}

export interface DemoSummary {
  readonly model: string;
  readonly cpus: number;
  /** One guest per CPU, by CPU. */
  readonly guests: readonly DemoGuest[];
  /** All guests' exits by reason, most frequent first. */
  readonly rows: readonly ExitRow[];
  readonly totalExits: number;
  readonly totalTime: number;
  /** Guest instructions, all CPUs. */
  readonly instructions: number;
  readonly dmesg: string;
}

export type DemoResult =
  | { readonly ok: true; readonly exitCode: 0; readonly summary: DemoSummary }
  | { readonly ok: false; readonly exitCode: 1; readonly error: string };

export interface DemoOptions {
  /** CPU model name (data/cpu-models); default DEFAULT_CPU_MODEL. */
  readonly model?: string;
  /** Logical processors, 1 to MAX_DEMO_CPUS; default DEMO_CPUS. */
  readonly cpus?: number;
  /** Guest instruction budget, all CPUs together; default DEFAULT_BUDGET. */
  readonly budget?: number;
  /** Where the demo's text goes (default: stdout). */
  readonly write?: (text: string) => void;
  /** The clock time is measured with (default: performance.now, ms). */
  readonly clock?: () => number;
}

/** One CPU's hypervisor (chapter 5's, with all its parts) and the parts whose output the demo shows. */
function hypervisorFor(): { hv: ReturnType<typeof createHypervisor>; serial: ReturnType<typeof serialPart>; hypercalls: ReturnType<typeof vmcallPart> } {
  const serial = serialPart();
  const hypercalls = vmcallPart();
  const hv = createHypervisor({ guest: DEMO_GUEST, parts: [cpuidPart(), msrPart(), serial.part, crPart(), hypercalls.part] });
  return { hv, serial, hypercalls };
}

/**
 * The demo module: chapter 5's hypervisor once per CPU, each init run on its own CPU (smp_call_function_single:
 * preemption off there, so VMXON to VMLAUNCH stays on that CPU). Fails with the first CPU's error.
 */
function smpModule(per: readonly ReturnType<typeof hypervisorFor>[]): KernelModule {
  return {
    name: 'vmx_lab_demo',
    init(k) {
      for (let cpu = 0; cpu < per.length; cpu++) {
        let rc: number | void = 0;
        k.smp_call_function_single(cpu, () => void (rc = per[cpu]!.hv.module.init(k)));
        if (typeof rc === 'number' && rc !== 0) return rc;
      }
      return 0;
    },
  };
}

/** Boot, insmod the hypervisors, run the guests, print the exit table. Never throws for a failing run: says why. */
export function runDemo(opts: DemoOptions = {}): DemoResult {
  const write = opts.write ?? ((t: string) => void process.stdout.write(t));
  const clock = opts.clock ?? (() => performance.now());
  const budget = opts.budget ?? DEFAULT_BUDGET;
  const cpus = opts.cpus ?? DEMO_CPUS;
  const modelName = opts.model ?? DEFAULT_CPU_MODEL.name;
  const fail = (error: string): DemoResult => {
    write(`demo: ${error}\n`);
    return { ok: false, exitCode: 1, error };
  };
  if (getCpuModel(modelName) === undefined) return fail(`unknown CPU model '${modelName}'. Models: ${CPU_MODELS.map((m) => m.name).join(', ')}`);
  if (!Number.isSafeInteger(budget) || budget < 1) return fail(`the budget must be a positive whole number of guest instructions, not ${budget}`);
  if (!Number.isSafeInteger(cpus) || cpus < 1 || cpus > MAX_DEMO_CPUS) return fail(`the demo runs on 1 to ${MAX_DEMO_CPUS} CPUs, not ${cpus}`);

  const host = bootHost({ model: modelName, cpus });
  const per = Array.from({ length: cpus }, () => hypervisorFor());
  const trace = traceExits(host);
  const timing = timeExits(host, clock);
  const streams = per.map((p, cpu) => lineStream(() => p.serial.uart.output(), (line) => write(`  cpu${cpu} com1| ${line}\n`)));
  const stopStream = host.vmx.map((u) => u.observe({ onVmEntry: () => streams.forEach((st) => st.flush()) }));

  write(`VMX Lab demo: the reference hypervisor (solutions of chapters 1-5) on ${modelName}, a guest on each of ${cpus} CPU(s); budget ${budget} guest instructions\n`);
  write('guest output (each CPU\'s virtual 16550 UART at 3F8H), as it arrives:\n');
  const loaded = host.kernel.insmod(smpModule(per));
  const run = loaded.ok ? runGuests(host, budget) : null;
  timing.stop();
  trace.stop();
  stopStream.forEach((st) => st());
  streams.forEach((st) => {
    st.flush();
    st.end();
  });

  const failure = (() => {
    const failed = per.findIndex((p) => p.hv.log.failure !== null);
    if (!loaded.ok) {
      if (loaded.oops !== undefined) return `insmod oopsed:\n${loaded.oops.text}`;
      return `${loaded.message}${failed >= 0 ? ` (cpu ${failed}: ${describeLaunch(per[failed]!.hv.log.failure!)})` : ''}`;
    }
    if (failed >= 0) return `the VM entry failed on cpu ${failed}: ${describeLaunch(per[failed]!.hv.log.failure!)}`;
    const stopped = per.findIndex((p) => p.hv.log.stopped !== null && !p.hv.log.halted);
    if (stopped >= 0) return `the hypervisor on cpu ${stopped} stopped its guest: ${per[stopped]!.hv.log.stopped}`;
    if (per.every((p) => p.hv.log.halted)) return null;
    const running = per.map((p, cpu) => (p.hv.log.halted ? -1 : cpu)).filter((c) => c >= 0).join(', ');
    if (run?.reason === 'budget') return `the guest on cpu ${running} did not reach its HLT within the budget of ${budget} guest instructions (${run.instructions} ran); try a larger --budget`;
    return `the guest on cpu ${running} neither halted nor failed (the run ended: ${run?.reason ?? 'not started'}); the host kernel may have oopsed`;
  })();
  if (failure !== null) return fail(`${failure}\n\n${explain(host, '', trace)}`);

  const summary = summarize(host, {
    modelName, trace: trace.summary(), times: timing.times(), instructions: run?.instructions ?? 0,
    guests: per.map((p, cpu) => ({ cpu, guestOutput: p.serial.uart.output(), hypercallOutput: p.hypercalls.output(), exits: p.hv.log.exits })),
  });
  write(`\n${formatSummary(summary)}\n`);
  return { ok: true, exitCode: 0, summary };
}

/** The exit table, the totals and dmesg, as text. */
export function formatSummary(s: DemoSummary): string {
  const reasonWidth = Math.max('reason'.length, 'total'.length, ...s.rows.map((r) => `${r.basicReason} ${r.name}`.length));
  const pct = (x: number): string => `${(100 * x).toFixed(1)}%`.padStart(7);
  const line = (reason: string, count: string, share: string, time: string): string => `  ${reason.padEnd(reasonWidth)}  ${count.padStart(6)}  ${share}  ${time}`;
  return [
    `VM exits on ${s.cpus === 1 ? 'cpu 0' : `cpus 0-${s.cpus - 1}`}, one guest each, by basic reason (share of time: host time from the VM exit to the next VM entry):`,
    line('reason', 'count', ' exits'.padStart(7), '   time'),
    ...s.rows.map((r) => line(`${r.basicReason} ${r.name}`, String(r.count), pct(r.share), pct(r.timeShare))),
    line('total', String(s.totalExits), pct(1), `${pct(1)}  (${s.totalTime.toFixed(2)} ms in exit handlers)`),
    '',
    `guest instructions: ${s.instructions}`,
    `VM exits: ${s.totalExits} (${s.guests.map((g) => `cpu ${g.cpu}: ${g.exits.length}`).join(', ')})`,
    ...s.guests.map((g) => `cpu ${g.cpu} guest output: ${g.guestOutput.length} bytes on COM1; VMCALL WRITE: ${JSON.stringify(g.hypercallOutput)}`),
    '',
    'host dmesg:',
    s.dmesg,
  ].join('\n');
}

function summarize(host: Host, d: {
  modelName: string; trace: readonly { basicReason: number; name: string; count: number; share: number }[];
  times: ReadonlyMap<number, number>; instructions: number; guests: readonly DemoGuest[];
}): DemoSummary {
  const totalTime = [...d.times.values()].reduce((a, b) => a + b, 0);
  const rows = d.trace.map((r) => {
    const time = d.times.get(r.basicReason) ?? 0;
    return { basicReason: r.basicReason, name: r.name, count: r.count, share: r.share, time, timeShare: totalTime > 0 ? time / totalTime : 0 };
  });
  return {
    model: d.modelName, cpus: host.machine.cpus.length, guests: d.guests, rows,
    totalExits: rows.reduce((a, r) => a + r.count, 0), totalTime, instructions: d.instructions, dmesg: host.kernel.dmesg(),
  };
}

/**
 * Host time per basic exit reason: from each VM exit to the next VM entry on the same CPU (CPUs take turns, so
 * their exits interleave). The last exit of each guest (HLT: its hypervisor turns VMX off) has no entry after it;
 * its time runs until stop().
 */
function timeExits(host: Host, clock: () => number): { times(): ReadonlyMap<number, number>; stop(): void } {
  const times = new Map<number, number>();
  const open = new Map<number, { reason: number; at: number }>();
  const close = (lp: number): void => {
    const o = open.get(lp);
    if (o === undefined) return;
    times.set(o.reason, (times.get(o.reason) ?? 0) + (clock() - o.at));
    open.delete(lp);
  };
  const stops = host.vmx.map((u) => u.observe({
    onVmExit: (e) => {
      close(e.lp);
      open.set(e.lp, { reason: e.basicReason, at: clock() });
    },
    onVmEntry: (e) => close(e.lp),
  }));
  return {
    times: () => times,
    stop: () => {
      for (const lp of [...open.keys()]) close(lp);
      stops.forEach((st) => st());
    },
  };
}

/** Hand complete lines of a growing text to `emit` as they appear; end() emits an unfinished last line. */
function lineStream(text: () => string, emit: (line: string) => void): { flush(): void; end(): void } {
  let done = 0;
  const flush = (): void => {
    const t = text();
    let nl: number;
    while ((nl = t.indexOf('\n', done)) >= 0) {
      emit(t.slice(done, nl));
      done = nl + 1;
    }
  };
  return {
    flush,
    end: () => {
      const t = text();
      if (done < t.length) emit(t.slice(done));
      done = t.length;
    },
  };
}

export const USAGE = `usage: npm run demo -- [--model NAME] [--cpus N] [--budget N]

Runs the reference hypervisor (the solutions of chapters 1-5) on every CPU of an emulated SMP host, each CPU with a
guest that prints through its virtual 16550 UART at 3F8H, then a table of their VM exits: count and share of time
per reason.

  --model NAME   CPU model (default ${DEFAULT_CPU_MODEL.name}); one of:
                 ${CPU_MODELS.map((m) => m.name).join('\n                 ')}
  --cpus N       logical processors, 1 to ${MAX_DEMO_CPUS} (default ${DEMO_CPUS}); one guest on each
  --budget N     guest instructions, all CPUs together, before the demo gives up (default ${DEFAULT_BUDGET})
  --help         this text
`;

/** The command line: parse, run, and return the exit status (2 for a bad command line). */
export function main(argv: readonly string[], write: (text: string) => void = (t) => void process.stdout.write(t)): number {
  let values: { model?: string; cpus?: string; budget?: string; help?: boolean };
  try {
    ({ values } = parseArgs({
      args: [...argv],
      options: { model: { type: 'string' }, cpus: { type: 'string' }, budget: { type: 'string' }, help: { type: 'boolean', short: 'h' } },
      strict: true,
      allowPositionals: false,
    }));
  } catch (e) {
    write(`demo: ${(e as Error).message}\n\n${USAGE}`);
    return 2;
  }
  if (values.help === true) {
    write(USAGE);
    return 0;
  }
  const budget = values.budget === undefined ? undefined : /^\d+$/.test(values.budget) ? Number(values.budget) : NaN;
  if (budget !== undefined && !(budget >= 1)) {
    write(`demo: --budget wants a positive whole number of guest instructions, not '${values.budget}'\n`);
    return 2;
  }
  const cpus = values.cpus === undefined ? undefined : /^\d+$/.test(values.cpus) ? Number(values.cpus) : NaN;
  if (cpus !== undefined && !(cpus >= 1 && cpus <= MAX_DEMO_CPUS)) {
    write(`demo: --cpus wants a whole number from 1 to ${MAX_DEMO_CPUS}, not '${values.cpus}'\n`);
    return 2;
  }
  try {
    return runDemo({ model: values.model, cpus, budget, write }).exitCode;
  } catch (e) {
    // A bug in the kit, not in the run: say so in one line, no stack trace.
    write(`demo: internal error (a VMX Lab bug, please report it): ${(e as Error).message}\n`);
    return 1;
  }
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  process.exitCode = main(process.argv.slice(2));
}

// Exceptions and interrupts (delivery, #DF, triple fault, fault vs trap RIP, IST, privilege change),
// interrupt shadow, single-step, NMI, run-loop budget and turns, bad input, self-modifying code, whole guest
// programs printing to port E9H, and a real-mode → long-mode trampoline.
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { assembleOrThrow } from '../guest/assembler.ts';
import { Machine } from './machine.ts';
import { DebugConsole, DEBUG_CONSOLE_PORT } from './devices/debug-console.ts';
import { enterLongMode, writeIdtGate, LONG_MODE_LAYOUT as L, SELECTORS } from './testing/long-mode.ts';
import { prepareGuest, runGuest } from './testing/run-guest.ts';
import { AR } from '../x86/segments.ts';
import type { InterruptSource } from './lp.ts';
import type { LocalApic } from './apic.ts';
import type { Executor } from './cpu.ts';
import { jitStats } from './jit.ts';

/** An 8-instruction block that jumps back to its own start (the block compiler runs it as a loop); RAX counts. */
const EIGHT_INSN_LOOP = `top:
  inc rax
  add rbx, rax
  xor rcx, rbx
  inc rdx
  add rsi, rdx
  xor rdi, rsi
  dec r8
  jmp top`;

/** Handler that stores the vector in R15, the stack pointer in R14 and halts. */
function handler(m: Machine, at: number, vector: number): void {
  const { bytes } = assembleOrThrow(`bits 64\nmov r15, ${vector}\nmov r14, rsp\nhlt`, { origin: at });
  m.memory.writeBytes(at, bytes);
  writeIdtGate(m.memory, L.idt, vector, at);
}

describe('exception delivery', () => {
  it('#UD is a fault (pushed RIP = the instruction), INT3 a trap (pushed RIP = the next one)', () => {
    const g = prepareGuest('nop\nud2\n');
    handler(g.machine, 0x200000, 6);
    g.machine.run({ maxInstructions: 100 });
    expect(g.lp.getReg('r15')).toBe(6n);
    const rsp = Number(g.lp.getReg('r14'));
    expect(g.machine.memory.read64(rsp)).toBe(BigInt(L.code + 1)); // UD2 is at code + 1
    expect(g.machine.memory.read64(rsp + 8)).toBe(BigInt(SELECTORS.CODE64)); // CS
    expect(rsp).toBe(L.stackTop - 5 * 8); // SS, RSP, RFLAGS, CS, RIP (no error code)

    const h = prepareGuest('int3\nnop\n');
    handler(h.machine, 0x200000, 3);
    h.machine.run({ maxInstructions: 100 });
    expect(h.lp.getReg('r15')).toBe(3n);
    expect(h.machine.memory.read64(Number(h.lp.getReg('r14')))).toBe(BigInt(L.code + 1));
  });

  it('#GP(0) for a non-canonical address pushes error code 0; iretq returns', () => {
    const g = prepareGuest(`
      mov rax, 0x0000800000000000
      mov rbx, [rax]
      mov r12, 0x77
      hlt`);
    // #GP handler: skip the faulting 3-byte instruction, record the error code, iretq.
    const { bytes } = assembleOrThrow('bits 64\npop r13\nadd qword [rsp], 3\niretq', { origin: 0x200000 });
    g.machine.memory.writeBytes(0x200000, bytes);
    writeIdtGate(g.machine.memory, L.idt, 13, 0x200000);
    expect(g.machine.run({ maxInstructions: 100 }).reason).toBe('all-halted');
    expect(g.lp.getReg('r13')).toBe(0n);
    expect(g.lp.getReg('r12')).toBe(0x77n);
    expect(g.lp.getReg('rsp')).toBe(BigInt(L.stackTop));
  });

  it('a fault while delivering INT n is a fault on the INT n: the pushed RIP is the INT instruction itself', () => {
    const g = prepareGuest('int 0x31\nhlt');
    const { bytes } = assembleOrThrow('bits 64\npop r13\nmov r14, [rsp]\nhlt', { origin: 0x200000 });
    g.machine.memory.writeBytes(0x200000, bytes);
    writeIdtGate(g.machine.memory, L.idt, 0x31, 0x300000, { present: false });
    writeIdtGate(g.machine.memory, L.idt, 11, 0x200000);
    expect(g.machine.run({ maxInstructions: 100 }).reason).toBe('all-halted');
    expect(g.lp.getReg('r13')).toBe(BigInt(0x31 * 8 + 2)); // #NP: IDT entry 31H, EXT = 0 for INT n
    expect(g.lp.getReg('r14')).toBe(BigInt(L.code));
  });

  it('#GP whose gate is not present → #NP during delivery → #DF with error code 0', () => {
    const g = prepareGuest('mov rax, 0x0000800000000000\nmov rbx, [rax]\nhlt');
    const { bytes } = assembleOrThrow('bits 64\nmov r15, 8\npop r13\nmov r12, [rsp]\nhlt', { origin: 0x200000 });
    g.machine.memory.writeBytes(0x200000, bytes);
    writeIdtGate(g.machine.memory, L.idt, 8, 0x200000, { ist: 1 });
    expect(g.machine.run({ maxInstructions: 100 }).reason).toBe('all-halted');
    expect(g.lp.getReg('r15')).toBe(8n);
    expect(g.lp.getReg('r13')).toBe(0n); // #DF error code
    expect(g.lp.getReg('r12')).toBe(BigInt(L.code + 10)); // RIP of the faulting MOV (after the 10-byte MOV imm64)
    expect(g.lp.getReg('rsp')).toBeLessThan(BigInt(L.istTop)); // ran on IST1
    expect(g.lp.getReg('rsp')).toBeGreaterThan(BigInt(L.istTop - 64));
  });

  it('a fault with an empty IDT ends in a triple fault → shutdown', () => {
    const g = runGuest('ud2');
    expect(g.result.reason).toBe('shutdown');
    expect(g.result.detail).toMatch(/triple fault/);
    expect(g.lp.activity).toBe('shutdown');
  });

  it('a #PF in the #PF handler\'s stack becomes #DF; a fault in #DF delivery a triple fault', () => {
    const g = prepareGuest('mov rax, 0x7fffffff000\nmov rax, [rax]\nhlt'); // not mapped (beyond 4 GiB)
    writeIdtGate(g.machine.memory, L.idt, 14, 0x200000, { ist: 2 }); // IST2 = 0 in the TSS → stack at 0 - 8 …
    // IST2 slot holds a non-present address: 0x7ffffff0000 (beyond the identity map).
    g.machine.memory.write32(L.tss + 0x2c, 0xffff0000);
    g.machine.memory.write32(L.tss + 0x30, 0x7ff);
    handler(g.machine, 0x201000, 8);
    expect(g.machine.run({ maxInstructions: 100 }).reason).toBe('all-halted');
    expect(g.lp.getReg('r15')).toBe(8n);
    // The same with no #DF gate: triple fault.
    const h = prepareGuest('mov rax, 0x7fffffff000\nmov rax, [rax]\nhlt');
    writeIdtGate(h.machine.memory, L.idt, 14, 0x200000, { ist: 2 });
    h.machine.memory.write32(L.tss + 0x2c, 0xffff0000);
    h.machine.memory.write32(L.tss + 0x30, 0x7ff);
    expect(h.machine.run({ maxInstructions: 100 }).reason).toBe('shutdown');
  });

  it('interrupt from CPL 3 switches to RSP0 and pushes the user SS:RSP', () => {
    const g = prepareGuest('int 0x80', { longMode: { userPages: true } });
    writeIdtGate(g.machine.memory, L.idt, 0x80, 0x200000, { dpl: 3 });
    const { bytes } = assembleOrThrow('bits 64\nmov r15, 0x80\nmov r14, rsp\nhlt', { origin: 0x200000 });
    g.machine.memory.writeBytes(0x200000, bytes);
    const lp = g.lp;
    lp.setSegment('cs', { selector: SELECTORS.USER_CODE64, base: 0n, limit: 0xffffffff, ar: AR.P | AR.S | AR.CODE | AR.RW | AR.L | AR.G | (3 << AR.DPL_SHIFT) });
    lp.setSegment('ss', { selector: SELECTORS.USER_DATA, base: 0n, limit: 0xffffffff, ar: AR.P | AR.S | AR.RW | AR.DB | AR.G | (3 << AR.DPL_SHIFT) });
    lp.setReg('rsp', 0x60000n);
    expect(g.machine.run({ maxInstructions: 100 }).reason).toBe('all-halted');
    const rsp = Number(lp.getReg('r14'));
    expect(rsp).toBe(L.stackTop - 40);
    expect(g.machine.memory.read64(rsp + 24)).toBe(0x60000n); // old RSP
    expect(g.machine.memory.read64(rsp + 32)).toBe(BigInt(SELECTORS.USER_DATA)); // old SS
    expect(lp.cpl).toBe(0);
    // INT n through a DPL-0 gate from CPL 3 is #GP(vector × 8 + 2).
    const h = prepareGuest('int 0x81', { longMode: { userPages: true } });
    writeIdtGate(h.machine.memory, L.idt, 0x81, 0x200000, { dpl: 0 });
    const gpH = assembleOrThrow('bits 64\npop r13\nhlt', { origin: 0x201000 });
    h.machine.memory.writeBytes(0x201000, gpH.bytes);
    writeIdtGate(h.machine.memory, L.idt, 13, 0x201000);
    h.lp.setSegment('cs', { selector: SELECTORS.USER_CODE64, base: 0n, limit: 0xffffffff, ar: AR.P | AR.S | AR.CODE | AR.RW | AR.L | AR.G | (3 << AR.DPL_SHIFT) });
    h.lp.setSegment('ss', { selector: SELECTORS.USER_DATA, base: 0n, limit: 0xffffffff, ar: AR.P | AR.S | AR.RW | AR.DB | AR.G | (3 << AR.DPL_SHIFT) });
    h.machine.run({ maxInstructions: 100 });
    expect(h.lp.getReg('r13')).toBe(BigInt(0x81 * 8 + 2));
  });

  it('privileged instructions at CPL 3 raise #GP(0); unimplemented and invalid opcodes #UD', () => {
    const g = prepareGuest('mov rax, cr0', { longMode: { userPages: true } });
    handler(g.machine, 0x200000, 13);
    g.lp.setSegment('cs', { selector: SELECTORS.USER_CODE64, base: 0n, limit: 0xffffffff, ar: AR.P | AR.S | AR.CODE | AR.RW | AR.L | AR.G | (3 << AR.DPL_SHIFT) });
    g.lp.setSegment('ss', { selector: SELECTORS.USER_DATA, base: 0n, limit: 0xffffffff, ar: AR.P | AR.S | AR.RW | AR.DB | AR.G | (3 << AR.DPL_SHIFT) }); // CPL = SS.DPL = 3
    g.machine.run({ maxInstructions: 100 });
    expect(g.lp.getReg('r15')).toBe(13n);
  });
});

describe('interrupts', () => {
  class Source implements InterruptSource {
    pending: number[] = [];
    acked: number[] = [];
    pendingVector(): number { return this.pending.length ? this.pending[0]! : -1; }
    acknowledge(v: number): void { this.pending.shift(); this.acked.push(v); }
  }
  function withSource(src: string) {
    const g = prepareGuest(src);
    g.lp.apic = null;
    const s = new Source();
    g.lp.interruptSource = s;
    const { bytes } = assembleOrThrow('bits 64\nmov r15, rax\nmov r14, [rsp]\nhlt', { origin: 0x200000 });
    g.machine.memory.writeBytes(0x200000, bytes);
    writeIdtGate(g.machine.memory, L.idt, 0x30, 0x200000);
    return { ...g, s };
  }
  it('STI blocks interrupts for one more instruction (interrupt shadow)', () => {
    const g = withSource('xor eax, eax\nsti\ninc eax\ninc eax\ninc eax\nhlt');
    g.s.pending.push(0x30);
    g.machine.run({ maxInstructions: 100 });
    expect(g.s.acked).toEqual([0x30]);
    expect(g.lp.getReg('r15')).toBe(1n); // exactly one instruction after STI ran
  });
  it('MOV SS blocks interrupts for the next instruction', () => {
    const g = withSource('xor eax, eax\nmov bx, ss\nsti\nnop\nmov ss, bx\ninc eax\ninc eax\nhlt');
    g.machine.run({ maxInstructions: 3 }); // xor, mov, sti
    g.s.pending.push(0x30);
    g.machine.run({ maxInstructions: 100 });
    expect(g.lp.getReg('r15')).toBe(0n); // taken after NOP (the STI shadow ended), before MOV SS
    const h = withSource('xor eax, eax\nmov bx, ss\nsti\nnop\nmov ss, bx\ninc eax\ninc eax\nhlt');
    h.machine.run({ maxInstructions: 5 }); // … nop, mov ss
    h.s.pending.push(0x30);
    h.machine.run({ maxInstructions: 100 });
    expect(h.lp.getReg('r15')).toBe(1n); // MOV SS, then one INC, then the interrupt
  });
  it('HLT wakes on an interrupt; the pushed RIP is after HLT; CLI masks', () => {
    const g = withSource('sti\nhlt\nmov eax, 5\nhlt');
    expect(g.machine.run({ maxInstructions: 100 }).reason).toBe('all-halted');
    expect(g.lp.activity).toBe('hlt');
    g.s.pending.push(0x30);
    g.machine.run({ maxInstructions: 100 });
    expect(g.lp.getReg('r14')).toBe(BigInt(L.code + 2));
    const h = withSource('cli\nmov eax, 9\nhlt');
    h.s.pending.push(0x30);
    h.machine.run({ maxInstructions: 100 });
    expect(h.s.acked).toEqual([]);
  });
  it('CLI; HLT with an interrupt pending in the local APIC ends the run: a blocked interrupt is no progress', () => {
    const g = prepareGuest('cli\nhlt');
    const apic = g.lp.apic as LocalApic;
    apic.writeXapic(0xf0, 0x1ff); // software-enabled
    apic.deliver({ vector: 0x30, deliveryMode: 'fixed', destMode: 'physical', destination: 0, shorthand: 'self', level: true, trigger: 'edge' });
    expect(g.machine.run({ maxInstructions: 1000 }).reason).toBe('all-halted');
    expect(apic.pendingVector()).toBe(0x30);
  });
  it('NMI is taken with IF = 0 and blocks further NMIs until IRET', () => {
    const g = prepareGuest('cli\nmov ecx, 1000\n.l: dec ecx\njnz .l\nhlt');
    const { bytes } = assembleOrThrow('bits 64\ninc r15\niretq', { origin: 0x200000 });
    g.machine.memory.writeBytes(0x200000, bytes);
    writeIdtGate(g.machine.memory, L.idt, 2, 0x200000);
    g.machine.run({ maxInstructions: 10 });
    g.lp.nmiPending = true;
    g.machine.run({ maxInstructions: 1 }); // delivery + first handler instruction
    g.lp.nmiPending = true; // blocked until the handler's IRETQ
    expect(g.machine.run({ maxInstructions: 100000 }).reason).toBe('all-halted');
    expect(g.lp.getReg('r15')).toBe(2n);
  });
  it('RFLAGS.TF single-steps: #DB after each instruction', () => {
    const g = prepareGuest(`
      pushfq
      or qword [rsp], 0x100
      popfq
      nop
      nop
      nop
      mov r14, r15
      hlt`);
    const { bytes } = assembleOrThrow('bits 64\ninc r15\niretq', { origin: 0x200000 });
    g.machine.memory.writeBytes(0x200000, bytes);
    writeIdtGate(g.machine.memory, L.idt, 1, 0x200000);
    g.machine.run({ maxInstructions: 1000 });
    // TF set by POPF traps after the instruction *following* POPF: three NOPs have trapped when MOV runs.
    expect(g.lp.getReg('r14')).toBe(3n);
    expect(g.lp.dr[6]! & 0x4000n).toBe(0x4000n); // DR6.BS
  });
});

describe('run loop', () => {
  it('a runaway loop ends exactly at the budget', () => {
    const g = runGuest('.x: jmp .x', { maxInstructions: 12345 });
    expect(g.result).toEqual({ reason: 'budget', instructions: 12345 });
    const again = g.machine.run({ maxInstructions: 7 });
    expect(again.instructions).toBe(7);
  });
  it('a turn ends at the first block boundary after stopAfter steps, never past its budget', () => {
    const g = prepareGuest(EIGHT_INSN_LOOP);
    const top = g.labels.get('top')!;
    const exec = g.lp.executor as Executor;
    const check = (budget: number, stopAfter: number, steps: number, atTop: boolean): void => {
      expect(exec.run(budget, stopAfter), `run(${budget}, ${stopAfter})`).toBe(steps);
      expect(g.lp.rip === top, `run(${budget}, ${stopAfter}) at the loop start`).toBe(atTop);
    };
    // Interpreted from the block cache: whole blocks, or exactly `budget` when that comes first.
    check(1000, 10, 16, true);
    check(13, 10, 13, false);
    check(1000, 1, 3, true); // the rest of the block
    const compiledBefore = jitStats.compiled;
    check(8 * 60, 8 * 60, 8 * 60, true); // hot: compiled from here on
    expect(jitStats.compiled).toBe(compiledBefore + 1);
    const compiled = g.lp.getReg('rax');
    check(1000, 10, 16, true);
    check(1000, 17, 24, true); // the third iteration had started
    check(13, 13, 13, false); // the budget is exact: one compiled iteration, then 5 interpreted
    check(1000, 1, 3, true);
    expect(g.lp.getReg('rax')).toBe(compiled + 7n);
  });
  it('round-robin turns end at block boundaries and are charged for it; the budget stays exact', () => {
    const m = new Machine({ cpus: 2, quantum: 100 });
    for (const lp of m.cpus) {
      const origin = 0x100000 + lp.id * 0x1000;
      enterLongMode(lp, { rip: origin });
      m.memory.writeBytes(origin, assembleOrThrow(`bits 64\nmov r9, 1\n${EIGHT_INSN_LOOP}`, { origin }).bytes);
    }
    const r = m.run({ maxInstructions: 10_000 });
    expect(r).toEqual({ reason: 'budget', instructions: 10_000 });
    // Each turn overruns by up to 7 (the rest of the 8-instruction block) and the next is shorter by as much, so
    // the two LPs stay within a block of an even share.
    for (const lp of m.cpus) expect(Math.abs(lp.instructions - 5000), `LP ${lp.id}`).toBeLessThan(8);
  });
  it('the APIC timer interrupt lands on the same instruction whatever the quantum, compiled or not', () => {
    const landing = (quantum: number, jit: boolean): [bigint, bigint] => {
      const m = new Machine({ cpus: 2, quantum });
      const [bsp, ap] = m.cpus as [typeof m.cpus[0], typeof m.cpus[0]];
      enterLongMode(bsp, { rip: L.code });
      m.memory.writeBytes(L.code, assembleOrThrow(`bits 64\nsti\n${EIGHT_INSN_LOOP}`, { origin: L.code }).bytes);
      enterLongMode(ap, { rip: L.code + 0x1000 });
      ap.setReg('rsp', BigInt(L.stackTop - 0x1000));
      m.memory.writeBytes(L.code + 0x1000, assembleOrThrow(`bits 64\n${EIGHT_INSN_LOOP}`, { origin: L.code + 0x1000 }).bytes);
      handler(m, 0x200000, 0x40);
      // Software-enabled, divide by 1, a one-shot timer with vector 40H that expires after 3004 instructions.
      const apic = bsp.apic as LocalApic;
      for (const [reg, value] of [[0xf0, 0x1ff], [0x3e0, 0xb], [0x320, 0x40], [0x380, 3004]] as const) apic.write(reg, 4, BigInt(value));
      for (const lp of m.cpus) (lp.executor as Executor).useJit = jit;
      m.run({ maxInstructions: 300_000 }); // the BSP has another turn to take the interrupt in, even at quantum 100 000
      expect(bsp.getReg('r15')).toBe(0x40n);
      return [bsp.getReg('rax'), m.memory.read64(Number(bsp.getReg('r14')))]; // iterations begun, pushed RIP
    };
    // STI and 3003 loop instructions: 375 iterations and the first 3 instructions (3 bytes each) of the 376th.
    const expected: [bigint, bigint] = [376n, BigInt(L.code + 1 + 9)];
    expect(landing(1, false)).toEqual(expected);
    for (const q of [1, 7, 100, 1000, 100_000]) expect(landing(q, true), `quantum ${q}`).toEqual(expected);
    expect(landing(1000, false)).toEqual(expected);
  });
  it('two LPs run deterministically in round robin; all-halted when both halt', () => {
    const m = new Machine({ cpus: 2, quantum: 10 });
    const con = new DebugConsole();
    m.io.register(DEBUG_CONSOLE_PORT, 1, con);
    for (const [i, ch] of [[0, 'A'], [1, 'B']] as const) {
      const lp = m.cpus[i]!;
      const origin = 0x100000 + i * 0x1000;
      enterLongMode(lp, { rip: origin });
      lp.setReg('rsp', BigInt(0x80000 - i * 0x1000));
      const { bytes } = assembleOrThrow(`bits 64\nmov ecx, 3\n.l: mov al, '${ch}'\nout 0xe9, al\nmov ebx, 5\n.d: dec ebx\njnz .d\ndec ecx\njnz .l\nhlt`, { origin });
      m.memory.writeBytes(origin, bytes);
    }
    const r = m.run({ maxInstructions: 10000 });
    expect(r.reason).toBe('all-halted');
    expect([...con.text()].filter((c) => c === 'A').length).toBe(3);
    // Determinism: the same program gives the same interleaving.
    const m2 = new Machine({ cpus: 2, quantum: 10 });
    const con2 = new DebugConsole();
    m2.io.register(DEBUG_CONSOLE_PORT, 1, con2);
    for (const i of [0, 1]) {
      const lp = m2.cpus[i]!;
      const origin = 0x100000 + i * 0x1000;
      enterLongMode(lp, { rip: origin });
      lp.setReg('rsp', BigInt(0x80000 - i * 0x1000));
      m2.memory.writeBytes(origin, m.memory.readBytes(origin, 64));
    }
    m2.run({ maxInstructions: 10000 });
    expect(con2.text()).toBe(con.text());
    expect(con.text()).not.toBe('AAABBB'); // they did interleave
  });
  it('garbage bytes end in an architectural outcome, never a JS exception', () => {
    fc.assert(fc.property(fc.uint8Array({ minLength: 64, maxLength: 64 }), (bytes) => {
      const m = new Machine({ apic: false });
      const lp = m.cpus[0]!;
      enterLongMode(lp);
      m.memory.writeBytes(L.code, bytes);
      for (let v = 0; v < 32; v++) handler(m, 0x200000 + v * 32, v);
      const r = m.run({ maxInstructions: 2000 });
      expect(['all-halted', 'shutdown', 'budget']).toContain(r.reason);
    }), { numRuns: 150, seed: 7 });
  }, 60_000);
  it('a jump into unmapped memory raises #PF with the target in CR2', () => {
    const g = prepareGuest('mov rax, 0x7ff00000000\njmp rax');
    const { bytes } = assembleOrThrow('bits 64\npop r13\nmov r12, cr2\nhlt', { origin: 0x200000 });
    g.machine.memory.writeBytes(0x200000, bytes);
    writeIdtGate(g.machine.memory, L.idt, 14, 0x200000);
    g.machine.run({ maxInstructions: 100 });
    expect(g.lp.getReg('r12')).toBe(0x7ff00000000n);
    expect(g.lp.getReg('r13')).toBe(0x10n); // not present, fetch
  });
  it('self-modifying code runs the new bytes', () => {
    const g = runGuest(`
      mov ecx, 2
    .again:
      mov eax, 1          ; B8 imm32: the immediate is patched below
      lea rbx, [rel .again]
      mov dword [rbx + 1], 42
      dec ecx
      jnz .again
      hlt`);
    expect(g.result.reason).toBe('all-halted');
    expect(g.lp.getReg('rax')).toBe(42n);
  });
});

describe('guest programs', () => {
  it('print to port E9H with calls, loops and string output', () => {
    const g = runGuest(`
      lea rsi, [rel msg]
      call puts
      mov ecx, 3
    .l: mov al, '0'
      add al, cl
      out 0xe9, al
      loop .l
      mov dx, 0xe9
      lea rsi, [rel tail]
      mov ecx, 2
      rep outsb
      hlt
    puts:
      lodsb
      test al, al
      jz .done
      out 0xe9, al
      jmp puts
    .done: ret
    msg: db "Hello, VMX Lab!", 10, 0
    tail: db "!", 10`);
    expect(g.result.reason).toBe('all-halted');
    expect(g.console.text()).toBe('Hello, VMX Lab!\n321!\n');
  });
  it('CPUID, RDMSR/WRMSR, RDTSC and IA32_FEATURE_CONTROL lock semantics', () => {
    const g = prepareGuest(`
      xor eax, eax
      cpuid
      mov r8d, ebx
      mov ecx, 0x3a
      mov eax, 5
      xor edx, edx
      wrmsr
      rdmsr
      mov r9d, eax
      mov eax, 1
      wrmsr            ; locked now: #GP(0)
      hlt`);
    handler(g.machine, 0x200000, 13);
    g.machine.run({ maxInstructions: 100 });
    expect(g.lp.getReg('r8')).toBe(0x756e6547n); // "Genu"
    expect(g.lp.getReg('r9')).toBe(5n);
    expect(g.lp.getReg('r15')).toBe(13n);
    expect(g.lp.rdmsr(0x3a)).toBe(5n);
    expect(() => g.lp.rdmsr(0x12345)).toThrow(/does not implement/);
  });
  it('real mode → protected mode → long mode trampoline (started by INIT/SIPI)', () => {
    const m = new Machine();
    const con = new DebugConsole();
    m.io.register(DEBUG_CONSOLE_PORT, 1, con);
    const lp = m.cpus[0]!;
    enterLongMode(lp); // builds the page tables at L.pml4 …
    lp.init(); // … then back to the reset state (the BSP restarts; make it wait for a SIPI like an AP)
    lp.activity = 'wait-for-sipi';
    const src = `
      bits 16
      org 0x8000
      cli
      xor ax, ax
      mov ds, ax
      mov ss, ax
      mov sp, 0x7000
      lgdt [gdtr]
      mov eax, cr0
      or eax, 1
      mov cr0, eax
      jmp 0x18:pm32
      bits 32
    pm32:
      mov ax, 0x10
      mov ds, ax
      mov ss, ax
      mov eax, cr4
      or eax, 0x20
      mov cr4, eax
      mov eax, ${L.pml4}
      mov cr3, eax
      mov ecx, 0xc0000080
      rdmsr
      or eax, 0x100
      wrmsr
      mov eax, cr0
      or eax, 0x80000000
      mov cr0, eax
      jmp 0x08:lm64
      bits 64
    lm64:
      mov rsp, 0x80000
      mov al, 'L'
      out 0xe9, al
      mov rax, 0x123456789
      hlt
      align 8
    gdt: dq 0, 0x00AF9A000000FFFF, 0x00CF92000000FFFF, 0x00CF9A000000FFFF
    gdtr: dw 31
      dd gdt`;
    const { bytes } = assembleOrThrow(src, { origin: 0x8000, bits: 16 });
    m.memory.writeBytes(0x8000, bytes);
    lp.startup(0x08);
    expect(lp.getSegment('cs').base).toBe(0x8000n);
    const r = m.run({ maxInstructions: 1000 });
    expect(r.reason).toBe('all-halted');
    expect(con.text()).toBe('L');
    expect(lp.bits).toBe(64);
    expect(lp.getReg('rax')).toBe(0x123456789n);
    expect(lp.snapshot().mode).toBe('64-bit');
  });
});

describe('privilege transitions and explanations', () => {
  it('IRETQ to CPL 3, then INT back to CPL 0 through RSP0', () => {
    const g = prepareGuest(`
      push ${SELECTORS.USER_DATA}      ; SS
      push 0x60000                     ; RSP
      pushfq                           ; RFLAGS
      push ${SELECTORS.USER_CODE64}    ; CS
      lea rax, [rel user]
      push rax                         ; RIP
      iretq
    user:
      mov rbx, cs
      int 0x80
    `, { longMode: { userPages: true } });
    const { bytes } = assembleOrThrow('bits 64\nmov r15, rsp\nmov r14, cs\nhlt', { origin: 0x200000 });
    g.machine.memory.writeBytes(0x200000, bytes);
    writeIdtGate(g.machine.memory, L.idt, 0x80, 0x200000, { dpl: 3 });
    expect(g.machine.run({ maxInstructions: 100 }).reason).toBe('all-halted');
    expect(g.lp.getReg('rbx')).toBe(BigInt(SELECTORS.USER_CODE64)); // ran at CPL 3
    expect(g.lp.getReg('r14')).toBe(BigInt(SELECTORS.CODE64)); // handler at CPL 0
    expect(g.lp.getReg('r15')).toBe(BigInt(L.stackTop - 40)); // on RSP0 from the TSS
    expect(g.machine.memory.read64(L.stackTop - 16)).toBe(0x60000n); // user RSP in the frame
  });

  it('#UD explains invalid opcodes vs valid-but-unimplemented ones', () => {
    const ud = (src: string) => {
      const g = prepareGuest(src);
      handler(g.machine, 0x200000, 6);
      g.machine.run({ maxInstructions: 10 });
      expect(g.lp.getReg('r15')).toBe(6n);
      return g.lp.lastFault!.explanation;
    };
    expect(ud('db 0x06')).toMatch(/invalid opcode 06 in 64-bit mode/); // PUSH ES
    expect(ud('db 0x0f, 0xff')).toMatch(/invalid opcode/);
    expect(ud('fld1')).toMatch(/valid x86 but not implemented by VMX Lab/); // x87
    expect(ud('ud2')).toMatch(/UD2/);
  });

  it('a CPU model supplies CPUID and read-only MSRs', async () => {
    const { DEFAULT_CPU_MODEL } = await import('./cpu-model.ts');
    const m = new Machine({ model: DEFAULT_CPU_MODEL });
    const lp = m.cpus[0]!;
    expect(lp.cpuid(1).eax).toBe(DEFAULT_CPU_MODEL.cpuid(1, 0).eax);
    expect(lp.rdmsr(0x480)).toBe(DEFAULT_CPU_MODEL.msrs.get(0x480));
    expect(() => lp.wrmsr(0x480, 0n)).toThrow(/read-only/);
    expect(lp.rdmsr(0x3a)).toBe(0n); // IA32_FEATURE_CONTROL starts unlocked after reset
  });
});

describe('breakpoints and interruptibility', () => {
  it('run() stops at a breakpoint before the instruction, and resumes past it', () => {
    const g = prepareGuest('mov eax, 1\nstop_here: mov ebx, 2\nmov ecx, 3\nhlt');
    const at = g.labels.get('stop_here')!;
    g.machine.addBreakpoint(at);
    const r = g.machine.run({ maxInstructions: 100 });
    expect(r.reason).toBe('breakpoint');
    expect(r.lp).toBe(g.lp);
    expect(g.lp.rip).toBe(at);
    expect(g.lp.getReg('rbx')).not.toBe(2n);
    expect(g.machine.run({ maxInstructions: 100 }).reason).toBe('all-halted');
    expect(g.lp.getReg('rcx')).toBe(3n);
  });
  it('interruptibility reflects the STI shadow and NMI blocking', () => {
    const g = prepareGuest('cli\nsti\nnop\nhlt');
    g.machine.run({ maxInstructions: 2 });
    expect(g.lp.getInterruptibility()).toBe(1);
    g.machine.run({ maxInstructions: 1 });
    expect(g.lp.getInterruptibility()).toBe(0);
    g.lp.setInterruptibility(2 | 8);
    expect(g.lp.getInterruptibility()).toBe(10);
  });
});

describe('real mode', () => {
  it('INT n through the IVT, IRET back; 32-bit OUT of a value ≥ 2^31', () => {
    const m = new Machine();
    const con = new DebugConsole();
    m.io.register(DEBUG_CONSOLE_PORT, 1, con);
    const seen: number[] = [];
    m.io.register(0x80, 4, { name: 'probe', in: () => 0xffffffff, out: (_p, _s, v) => void seen.push(v) });
    const lp = m.cpus[0]!;
    lp.init();
    lp.activity = 'wait-for-sipi';
    const { bytes } = assembleOrThrow(`
      bits 16
      org 0x8000
      xor ax, ax
      mov ds, ax
      mov ss, ax
      mov sp, 0x7000
      mov word [0x10 * 4], handler
      mov word [0x10 * 4 + 2], 0
      mov al, 'a'
      int 0x10
      mov al, 'c'
      out 0xe9, al
      mov eax, 0x89abcdef
      out 0x80, eax
      in eax, 0x80
      mov ebx, eax
      hlt
    handler:
      out 0xe9, al
      mov al, 'b'
      out 0xe9, al
      iret`, { origin: 0x8000, bits: 16 });
    m.memory.writeBytes(0x8000, bytes);
    lp.startup(0x08);
    expect(m.run({ maxInstructions: 1000 }).reason).toBe('all-halted');
    expect(con.text()).toBe('abc');
    expect(seen).toEqual([0x89abcdef]);
    expect(lp.getReg('rbx')).toBe(0xffffffffn);
    expect(lp.getReg('rsp')).toBe(0x7000n);
  });
});

describe('system instructions', () => {
  it('LTR marks the TSS busy, STR reads it back, a second LTR faults; LLDT/SLDT; SGDT/SIDT', () => {
    const g = prepareGuest(`
      xor eax, eax
      ltr ax            ; null selector: #GP(0)
      mov ax, ${SELECTORS.TSS}
      ltr ax
      str rbx
      sgdt [0x9000]
      sidt [0x9010]
      ltr ax            ; now busy: #GP(selector)
      hlt`);
    // #GP handler: record error codes in R12/R13, skip the faulting 3-byte LTR.
    const { bytes } = assembleOrThrow('bits 64\nmov r12, r13\npop r13\nadd qword [rsp], 3\niretq', { origin: 0x200000 });
    g.machine.memory.writeBytes(0x200000, bytes);
    writeIdtGate(g.machine.memory, L.idt, 13, 0x200000);
    g.lp.setReg('r13', 0xffffn);
    // The helper loads TR directly; make the descriptor available again so LTR can load it.
    g.machine.memory.write8(L.gdt + SELECTORS.TSS + 5, 0x89);
    expect(g.machine.run({ maxInstructions: 100 }).reason).toBe('all-halted');
    expect(g.lp.getReg('r12')).toBe(0n); // first #GP: null selector
    expect(g.lp.getReg('r13')).toBe(BigInt(SELECTORS.TSS)); // second: busy TSS
    expect(g.lp.getReg('rbx')).toBe(BigInt(SELECTORS.TSS));
    expect(g.machine.memory.read8(L.gdt + SELECTORS.TSS + 5) & 0xf).toBe(0xb); // busy
    expect(g.machine.memory.read16(0x9000)).toBe(8 * 8 - 1);
    expect(g.machine.memory.read64(0x9002)).toBe(BigInt(L.gdt));
    expect(g.machine.memory.read64(0x9012)).toBe(BigInt(L.idt));
  });
  it('XSETBV needs CR4.OSXSAVE and a valid XCR0; XGETBV reads it', () => {
    const g = prepareGuest(`
      xor ecx, ecx
      xor edx, edx
      mov eax, 3
      xsetbv            ; CR4.OSXSAVE = 0: #UD
      mov rax, cr4
      or eax, 1 << 18
      mov cr4, rax
      mov eax, 5        ; AVX without SSE: #GP
      xsetbv
      mov eax, 3
      xsetbv
      xgetbv
      mov r11, rax
      clflush [0x9000]
      wbinvd
      hlt`);
    const ud = assembleOrThrow('bits 64\ninc r14\nadd qword [rsp], 3\niretq', { origin: 0x200000 });
    const gpH = assembleOrThrow('bits 64\ninc r15\nadd rsp, 8\nadd qword [rsp], 3\niretq', { origin: 0x201000 });
    g.machine.memory.writeBytes(0x200000, ud.bytes);
    g.machine.memory.writeBytes(0x201000, gpH.bytes);
    writeIdtGate(g.machine.memory, L.idt, 6, 0x200000);
    writeIdtGate(g.machine.memory, L.idt, 13, 0x201000);
    g.lp.setReg('r14', 0n);
    g.lp.setReg('r15', 0n);
    expect(g.machine.run({ maxInstructions: 100 }).reason).toBe('all-halted');
    expect([g.lp.getReg('r14'), g.lp.getReg('r15'), g.lp.getReg('r11')]).toEqual([1n, 1n, 3n]);
  });
});

describe('budget with REP', () => {
  it('a rep stosb with a huge RCX still ends near the budget', () => {
    const g = runGuest('mov rdi, 0x400000\nmov rcx, -1\nxor eax, eax\nrep stosb\nhlt', { maxInstructions: 20_000 });
    expect(g.result.reason).toBe('budget');
    // Each iteration was charged: about 20 000 bytes were stored, not 4096 × 20 000.
    const stored = Number(g.lp.getReg('rdi')) - 0x400000;
    expect(stored).toBeGreaterThan(10_000);
    expect(stored).toBeLessThan(30_000);
  });
});

describe('register access from host code (LogicalProcessor.getGpr/setGpr)', () => {
  it('keeps any BigInt modulo 2^64, through the Number fast path below 2^53 and the BigInt path above', () => {
    const lp = new Machine({ cpus: 1, apic: false }).cpus[0]!;
    const edge = fc.constantFrom(0n, 1n, -1n, 2n ** 31n, 2n ** 32n - 1n, 2n ** 32n, 2n ** 53n - 1n, 2n ** 53n, 2n ** 63n, 2n ** 64n - 1n, 2n ** 64n, -(2n ** 63n));
    fc.assert(fc.property(fc.oneof(edge, fc.bigInt({ min: -(2n ** 66n), max: 2n ** 66n }), fc.bigInt({ min: 0n, max: 2n ** 54n })), fc.nat({ max: 15 }), (value, reg) => {
      lp.setGpr(reg, value);
      expect(lp.getGpr(reg)).toBe(BigInt.asUintN(64, value));
      expect(lp.regLo[reg]).toBe(Number(BigInt.asIntN(32, value)));
    }), { seed: 42, numRuns: 500 });
  });
});

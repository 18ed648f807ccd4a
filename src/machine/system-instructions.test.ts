// Bare-metal semantics of the instructions VMX Lab added for the VM-exits chapter: RDRAND/RDSEED, RDPMC,
// MONITOR/MWAIT, INVPCID and the general-detect #DB of MOV DR. Each against its SDM Vol. 2 "Operation" and
// "Exceptions" sections.
import { describe, expect, it } from 'vitest';
import { assembleOrThrow } from '../guest/assembler.ts';
import { getCpuModel } from './cpu-model.ts';
import type { Machine } from './machine.ts';
import { prepareGuest } from './testing/run-guest.ts';
import { writeIdtGate, LONG_MODE_LAYOUT as L, SELECTORS } from './testing/long-mode.ts';
import { AR } from '../x86/segments.ts';
import { DR6, DR7_GD } from '../x86/control-registers.ts';

const SKYLAKE = { machine: { model: getCpuModel('skylake-i5-6300u')! } };
const PENRYN = { machine: { model: getCpuModel('penryn-core2-duo-t9600')! } };
const HANDLER = 0x200000;

/** An exception handler for `vector` that records it in R15 and the error code (if any) in R14, then halts. */
function catchVector(m: Machine, vector: number, errorCode = false): void {
  const { bytes } = assembleOrThrow(`bits 64\nmov r15, ${vector}\n${errorCode ? 'pop r14' : ''}\nhlt`, { origin: HANDLER + vector * 64 });
  m.memory.writeBytes(HANDLER + vector * 64, bytes);
  writeIdtGate(m.memory, L.idt, vector, HANDLER + vector * 64);
}

function run(source: string, opts = SKYLAKE, vectors: number[] = [6, 13]) {
  const g = prepareGuest(source, opts);
  for (const v of vectors) catchVector(g.machine, v, v === 13);
  g.lp.setReg('r15', 0xffn);
  const result = g.machine.run({ maxInstructions: 1000 });
  return { ...g, result, vector: Number(g.lp.getReg('r15')) };
}

describe('RDRAND and RDSEED', () => {
  it('write a random value of the operand size and set CF = 1, clearing OF SF ZF AF PF', () => {
    const g = run(`
      mov rbx, -1
      xor eax, eax      ; ZF = 1, PF = 1
      rdrand rax
      pushfq
      pop r8
      rdseed ebx        ; 32-bit: zero-extends
      mov rcx, -1
      rdrand cx         ; 16-bit: the rest of RCX is kept
      hlt`);
    expect(g.vector, 'no exception').toBe(0xff);
    const flags = Number(g.lp.getReg('r8'));
    expect(flags & 0x8d5, 'CF = 1, OF SF ZF AF PF = 0').toBe(1);
    expect(g.lp.getReg('rbx') >> 32n).toBe(0n);
    expect(g.lp.getReg('rcx') >> 16n).toBe(0xffffffffffffn);
  });

  it('are deterministic: the same machine gives the same numbers; they differ from one draw to the next', () => {
    const src = 'rdrand rax\nrdrand rbx\nhlt';
    const a = run(src), b = run(src);
    expect(a.lp.getReg('rax')).toBe(b.lp.getReg('rax'));
    expect(a.lp.getReg('rbx')).toBe(b.lp.getReg('rbx'));
    expect(a.lp.getReg('rax')).not.toBe(a.lp.getReg('rbx'));
  });

  it('are #UD where CPUID does not report them (Penryn has neither)', () => {
    expect(run('rdrand rax\nhlt', PENRYN).vector).toBe(6);
    expect(run('rdseed rax\nhlt', PENRYN).vector).toBe(6);
  });
});

describe('RDPMC', () => {
  it('is #GP(0) for a counter the processor does not have (CPUID.0AH reports none)', () => {
    const g = run('xor ecx, ecx\nrdpmc\nhlt');
    expect(g.vector).toBe(13);
    expect(g.lp.getReg('r14')).toBe(0n);
    expect(run('mov ecx, 0x40000000\nrdpmc\nhlt').vector, 'fixed-function counter 0').toBe(13);
  });
});

describe('MONITOR and MWAIT', () => {
  /** Arm the monitor on the line holding 7040H, then run `rest`; `armedAt(label)` is the monitor's state there. */
  function monitored(rest: string) {
    const g = prepareGuest(`mov eax, 0x7040\nxor ecx, ecx\nxor edx, edx\nmonitor\n${rest}\nhlt`, SKYLAKE);
    const armedAt = (label: string): boolean => {
      g.machine.addBreakpoint(g.labels.get(label)!);
      g.machine.run({ maxInstructions: 100 });
      g.machine.removeBreakpoint(g.labels.get(label)!);
      return g.lp.monitor.armed;
    };
    return { ...g, armedAt };
  }

  it('MONITOR arms the monitor on the line at DS:RAX; MWAIT continues and disarms it', () => {
    const g = monitored('armed: mwait\nwaited: nop');
    expect(g.armedAt('armed')).toBe(true);
    expect(g.armedAt('waited')).toBe(false);
  });

  it('a store to the monitored line triggers the monitor; a store elsewhere in the page does not', () => {
    const g = monitored(`
      mov byte [0x7000], 1   ; same page, other line
    after_other:
      mov byte [0x707f], 1   ; the last byte of the line
    after_line: nop`);
    expect(g.armedAt('after_other'), 'after a store outside the line').toBe(true);
    expect(g.armedAt('after_line'), 'after a store to the line').toBe(false);
  });

  it('a store by another agent (the host writing memory) triggers it too', () => {
    const g = prepareGuest('mov eax, 0x9000\nxor ecx, ecx\nxor edx, edx\nmonitor\nhlt', SKYLAKE);
    g.machine.run({ maxInstructions: 100 });
    expect(g.lp.monitor.armed).toBe(true);
    g.machine.memory.write32(0x9010, 5);
    expect(g.lp.monitor.armed).toBe(false);
  });

  it('#GP(0) with ECX ≠ 0 (no extensions); #UD at CPL 3', () => {
    expect(run('mov eax, 0x7000\nmov ecx, 1\nxor edx, edx\nmonitor\nhlt').vector).toBe(13);
    expect(run('mov ecx, 1\nmwait\nhlt').vector).toBe(13);
    for (const insn of ['monitor', 'mwait']) {
      const g = prepareGuest(`xor ecx, ecx\n${insn}\nhlt`, { ...SKYLAKE, longMode: { userPages: true } });
      catchVector(g.machine, 6);
      g.lp.setSegment('cs', { selector: SELECTORS.USER_CODE64, base: 0n, limit: 0xffffffff, ar: AR.P | AR.S | AR.CODE | AR.RW | AR.L | AR.G | (3 << AR.DPL_SHIFT) });
      g.lp.setSegment('ss', { selector: SELECTORS.USER_DATA, base: 0n, limit: 0xffffffff, ar: AR.P | AR.S | AR.RW | AR.DB | AR.G | (3 << AR.DPL_SHIFT) });
      g.machine.run({ maxInstructions: 100 });
      expect(g.lp.getReg('r15'), `${insn} at CPL 3`).toBe(6n);
    }
  });
});

describe('INVPCID', () => {
  it('flushes the translation of one address (type 0) and checks its descriptor', () => {
    const g = run(`
      lea rbx, [rel desc]
      xor eax, eax
      invpcid rax, [rbx]
      mov r9, 1
      mov eax, 4
      invpcid rax, [rbx]   ; type 4 does not exist: #GP(0)
      hlt
    align 16
    desc: dq 0, 0x7000`);
    expect(g.lp.getReg('r9')).toBe(1n);
    expect(g.vector).toBe(13);
  });

  it('is #GP(0) for a PCID other than 0 with CR4.PCIDE = 0, and #UD without CPUID.07H:EBX.INVPCID', () => {
    const src = `
      lea rbx, [rel desc]
      mov eax, 1
      invpcid rax, [rbx]
      hlt
    align 16
    desc: dq 5, 0`;
    expect(run(src).vector).toBe(13);
    expect(run(src, PENRYN).vector).toBe(6);
  });
});

describe('MOV DR general detect', () => {
  it('with DR7.GD = 1, MOV DR is a #DB fault with DR6.BD set; delivering it clears GD', () => {
    const g = prepareGuest(`
    at_mov:
      mov rax, dr0
      hlt`, SKYLAKE);
    catchVector(g.machine, 1);
    g.lp.dr[7] = BigInt(DR7_GD) | 0x400n;
    g.machine.run({ maxInstructions: 100 });
    expect(g.lp.getReg('r15')).toBe(1n);
    expect(g.lp.dr[6]! & BigInt(DR6.BD)).toBe(BigInt(DR6.BD));
    expect(g.lp.dr[7]! & BigInt(DR7_GD), 'GD cleared on entry to the handler').toBe(0n);
    const rsp = Number(g.lp.getReg('rsp'));
    expect(g.machine.memory.read64(rsp), 'a fault: the pushed RIP is the MOV').toBe(BigInt(g.labels.get('at_mov')!));
  });
});

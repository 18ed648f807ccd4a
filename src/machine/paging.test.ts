// Paging: permission rules, #PF error codes and CR2, A/D bits, TLB invalidation (MOV CR3, INVLPG).
// The expected outcome is computed from the SDM rules ("Access Rights", "Page-Fault Exception") written out
// independently here.
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { assembleOrThrow } from '../guest/assembler.ts';
import { jitStats } from './jit.ts';
import { Machine } from './machine.ts';
import { enterLongMode, writeIdtGate, LONG_MODE_LAYOUT as L, SELECTORS } from './testing/long-mode.ts';
import { AR } from '../x86/segments.ts';

const TEST_LA = 0x40000000; // first 4-KByte page of the second GiB (mapped through a page table below)
const TEST_PA = 0x30000;
const PT = 0x20000;
const PF_HANDLER = 0x210000;
const UD_HANDLER = 0x210100;

function setup(opts: { wp: boolean; nxe: boolean }) {
  const m = new Machine();
  const lp = m.cpus[0]!;
  enterLongMode(lp, { userPages: true, nxe: opts.nxe });
  if (!opts.wp) lp.cr0 &= ~(1 << 16);
  // PD for the second GiB, entry 0 → a 4-KByte page table.
  m.memory.write32(L.pd + 0x1000, PT | 0x7);
  for (let i = 0; i < 0x1000; i++) m.memory.write8(TEST_PA + i, 0xc3); // RET, for the execute test
  // #PF handler: R14 = error code, R13 = CR2, R15 = 14, halt. #UD handler (the "success" marker): R15 = 0x600D.
  const pf = assembleOrThrow('bits 64\npop r14\nmov r13, cr2\nmov r15, 14\nhlt', { origin: PF_HANDLER });
  const udh = assembleOrThrow('bits 64\nmov r15, 0x600d\nhlt', { origin: UD_HANDLER });
  m.memory.writeBytes(PF_HANDLER, pf.bytes);
  m.memory.writeBytes(UD_HANDLER, udh.bytes);
  writeIdtGate(m.memory, L.idt, 14, PF_HANDLER);
  writeIdtGate(m.memory, L.idt, 6, UD_HANDLER);
  // Test code: access [r8] as read (r9 = 0), write (1) or execute (2), then UD2.
  const code = assembleOrThrow(`bits 64
    cmp r9, 1
    je .w
    cmp r9, 2
    je .x
    mov al, [r8]
    ud2
  .w: mov byte [r8], 1
    ud2
  .x: call r8
    ud2`, { origin: L.code });
  m.memory.writeBytes(L.code, code.bytes);
  return { m, lp };
}

describe('4-level paging permissions and #PF error codes', () => {
  it('matches the SDM rules for P, R/W, U/S, XD, WP, NXE, reserved bits and CPL', () => {
    fc.assert(fc.property(
      fc.record({
        p: fc.boolean(), rw: fc.boolean(), us: fc.boolean(), xd: fc.boolean(), rsvd: fc.boolean(),
        wp: fc.boolean(), nxe: fc.boolean(), user: fc.boolean(), access: fc.constantFrom(0, 1, 2),
        dirty: fc.boolean(),
      }),
      (c) => {
        const { m, lp } = setup({ wp: c.wp, nxe: c.nxe });
        const lo = TEST_PA | (c.p ? 1 : 0) | (c.rw ? 2 : 0) | (c.us ? 4 : 0) | (c.dirty ? 0x40 : 0);
        const hi = (c.xd ? 0x80000000 : 0) | (c.rsvd ? 1 << (40 - 32) : 0); // bit 40 ≥ MAXPHYADDR (39)
        m.memory.write32(PT, lo);
        m.memory.write32(PT + 4, hi >>> 0);
        lp.setReg('r8', BigInt(TEST_LA + 0x10));
        lp.setReg('r9', BigInt(c.access));
        if (c.user) {
          lp.setSegment('cs', { selector: SELECTORS.USER_CODE64, base: 0n, limit: 0xffffffff, ar: AR.P | AR.S | AR.CODE | AR.RW | AR.L | AR.G | (3 << AR.DPL_SHIFT) | AR.ACCESSED });
          lp.setSegment('ss', { selector: SELECTORS.USER_DATA, base: 0n, limit: 0xffffffff, ar: AR.P | AR.S | AR.RW | AR.DB | AR.G | (3 << AR.DPL_SHIFT) | AR.ACCESSED });
          lp.setReg('rsp', 0x70000n);
        }
        const r = m.run({ maxInstructions: 200 });
        expect(r.reason).toBe('all-halted');

        // Independent statement of the rules. See SDM Vol. 3A, "Access Rights" and "Interrupt 14".
        const write = c.access === 1, exec = c.access === 2;
        const xdEffective = c.nxe && c.xd;
        let fault = false, pbit = 0, rsvdBit = 0;
        if (!c.p) fault = true;
        else if (c.rsvd || (c.xd && !c.nxe)) { fault = true; pbit = 1; rsvdBit = 8; }
        else if (c.user && !c.us) { fault = true; pbit = 1; }
        else if (write && !c.rw && (c.user || c.wp)) { fault = true; pbit = 1; }
        else if (exec && xdEffective) { fault = true; pbit = 1; }
        if (fault) {
          const code = pbit | (write ? 2 : 0) | (c.user ? 4 : 0) | rsvdBit | (exec && c.nxe ? 16 : 0);
          expect(lp.getReg('r15')).toBe(14n);
          expect(lp.getReg('r14')).toBe(BigInt(code));
          expect(lp.getReg('r13')).toBe(BigInt(TEST_LA + 0x10));
        } else {
          expect(lp.getReg('r15')).toBe(0x600dn);
          const pte = m.memory.read32(PT);
          expect(pte & 0x20).toBe(0x20); // accessed
          expect((pte & 0x40) !== 0).toBe(c.dirty || write); // dirty only on write
        }
      }), { numRuns: 150, seed: 42 });
  }, 60_000);

  // A read-modify-write reads its operand with write intent: W/R = 1 even when the read is what faults. See SDM
  // Vol. 3A, "Interrupt 14—Page-Fault Exception (#PF)".
  it.each([
    ['add [m], r', 'add [r8], al', true], ['or [m], imm', 'or byte [r8], 1', true], ['inc [m]', 'inc byte [r8]', true],
    ['neg [m]', 'neg byte [r8]', true], ['xchg [m], r', 'xchg [r8], al', true], ['shl [m], 1', 'shl byte [r8], 1', true],
    ['bts [m], imm', 'bts dword [r8], 3', true], ['xadd [m], r', 'xadd [r8], al', true], ['cmpxchg [m], r', 'cmpxchg [r8], cl', true],
    ['shld [m], r, imm', 'shld dword [r8], eax, 3', true],
    ['cmp [m], r', 'cmp [r8], al', false], ['test [m], r', 'test [r8], al', false], ['bt [m], imm', 'bt dword [r8], 3', false],
  ])('%s (%s): W/R = %s on a not-present page and on a read-only one', (_n, insn, rmw) => {
    for (const pte of [0, TEST_PA | 1]) {
      const { m, lp } = setup({ wp: true, nxe: true });
      m.memory.write32(PT, pte);
      m.memory.writeBytes(L.code, assembleOrThrow(`bits 64\n${insn}\nud2`, { origin: L.code }).bytes);
      lp.setReg('r8', BigInt(TEST_LA + 0x10));
      expect(m.run({ maxInstructions: 100 }).reason).toBe('all-halted');
      const present = pte !== 0;
      if (!rmw && present) {
        expect(lp.getReg('r15')).toBe(0x600dn); // a read of a read-only page succeeds
        continue;
      }
      expect(lp.getReg('r15')).toBe(14n);
      expect(lp.getReg('r14')).toBe(BigInt((present ? 1 : 0) | (rmw ? 2 : 0)));
      expect(m.memory.read8(TEST_PA + 0x10)).toBe(0xc3); // nothing written
    }
  });

  it('compiled code: a loop of ADD [m], r that runs into a not-present page faults with W/R = 1', () => {
    const { m, lp } = setup({ wp: true, nxe: true });
    m.memory.write32(PT, TEST_PA | 3); // page 0 read/write, page 1 not present
    const code = assembleOrThrow(`bits 64
      xor ecx, ecx
      mov edx, 1
    top: add [r8 + rcx*8], rdx
      inc ecx
      cmp ecx, 1024
      jne top
      ud2`, { origin: L.code });
    m.memory.writeBytes(L.code, code.bytes);
    lp.setReg('r8', BigInt(TEST_LA));
    const compiledBefore = jitStats.compiled;
    expect(m.run({ maxInstructions: 100_000 }).reason).toBe('all-halted');
    expect(lp.getReg('r15')).toBe(14n);
    expect(lp.getReg('r14')).toBe(2n);
    expect(lp.getReg('r13')).toBe(BigInt(TEST_LA + 0x1000));
    expect(lp.getReg('rcx')).toBe(512n);
    expect(jitStats.compiled).toBeGreaterThan(compiledBefore);
  });

  it('a 2-MByte page: translation, and a write sets D in the PDE', () => {
    const { m, lp } = setup({ wp: true, nxe: true });
    // PDE 3 of the first GiB maps 6 MiB..8 MiB; clear its D bit and write through it.
    m.memory.write32(L.pd + 3 * 8, 0x600000 | 0x83 | 4);
    lp.setReg('r8', 0x600123n);
    lp.setReg('r9', 1n);
    expect(m.run({ maxInstructions: 100 }).reason).toBe('all-halted');
    expect(lp.getReg('r15')).toBe(0x600dn);
    expect(m.memory.read8(0x600123)).toBe(1);
    expect(m.memory.read32(L.pd + 3 * 8) & 0x60).toBe(0x60);
  });

  it('stale TLB entries survive until MOV CR3 or INVLPG', () => {
    const m = new Machine();
    const lp = m.cpus[0]!;
    enterLongMode(lp);
    m.memory.write32(L.pd + 0x1000, PT | 0x3);
    m.memory.write32(PT, 0x30000 | 3);
    m.memory.write32(0x30000, 0x1111);
    m.memory.write32(0x31000, 0x2222);
    const code = assembleOrThrow(`bits 64
      mov eax, [0x40000000]        ; fills the TLB
      mov dword [0x20000], 0x31003 ; remap the page (PTE write through the identity map)
      mov ebx, [0x40000000]        ; still the old translation (no invalidation yet)
      invlpg [0x40000000]
      mov ecx, [0x40000000]        ; the new one
      mov dword [0x20000], 0x30003
      mov rdx, cr3
      mov cr3, rdx
      mov esi, [0x40000000]
      hlt`, { origin: L.code });
    m.memory.writeBytes(L.code, code.bytes);
    expect(m.run({ maxInstructions: 100 }).reason).toBe('all-halted');
    expect(lp.getReg('rax')).toBe(0x1111n);
    expect(lp.getReg('rbx')).toBe(0x1111n);
    expect(lp.getReg('rcx')).toBe(0x2222n);
    expect(lp.getReg('rsi')).toBe(0x1111n);
  });

  it('an instruction crossing into a non-present page faults on the fetch with CR2 = the page start', () => {
    const { m, lp } = setup({ wp: true, nxe: true });
    m.memory.write32(PT, TEST_PA | 3); // page 0 present, page 1 (PT+8) not present
    // mov eax, 0x11223344 (5 bytes) starting 3 bytes before the end of page 0.
    const at = TEST_PA + 0xffd;
    m.memory.writeBytes(at, [0xb8, 0x44, 0x33, 0x22, 0x11]);
    lp.rip = TEST_LA + 0xffd;
    expect(m.run({ maxInstructions: 100 }).reason).toBe('all-halted');
    expect(lp.getReg('r15')).toBe(14n);
    expect(lp.getReg('r13')).toBe(BigInt(TEST_LA + 0x1000));
    expect(lp.getReg('r14')).toBe(0x10n); // not present, read, supervisor, instruction fetch (NXE = 1)
    // The pushed RIP is the faulting instruction's start (fault semantics): at RSP after the error code pop.
    expect(m.memory.read64(Number(lp.getReg('rsp')))).toBe(BigInt(TEST_LA + 0xffd));
  });
});

describe('SMAP and UMIP', () => {
  it('CR4.SMAP: a supervisor read of a user page faults unless RFLAGS.AC = 1', () => {
    // The first GiB (code, stack, IDT) becomes supervisor-only; the test page stays a user page.
    const supervisorLow = (mm: Machine) => mm.memory.write32(L.pdpt, L.pd | 3);
    const { m, lp } = setup({ wp: true, nxe: true });
    supervisorLow(m);
    m.memory.write32(PT, TEST_PA | 7); // user page
    lp.cr4 |= 1 << 21;
    lp.setReg('r8', BigInt(TEST_LA));
    lp.setReg('r9', 0n);
    m.run({ maxInstructions: 100 });
    expect(lp.getReg('r15')).toBe(14n);
    expect(lp.getReg('r14')).toBe(1n); // protection violation, supervisor read
    // Same with AC = 1: allowed.
    const s = setup({ wp: true, nxe: true });
    supervisorLow(s.m);
    s.m.memory.write32(PT, TEST_PA | 7);
    s.lp.cr4 |= 1 << 21;
    s.lp.setReg('r8', BigInt(TEST_LA));
    s.lp.setReg('r9', 0n);
    s.lp.setReg('rflags', 2n | (1n << 18n));
    s.m.run({ maxInstructions: 100 });
    expect(s.lp.getReg('r15')).toBe(0x600dn);
  });
  it('CR4.UMIP: SGDT at CPL 3 raises #GP(0)', () => {
    const { m, lp } = setup({ wp: true, nxe: true });
    const code = assembleOrThrow('bits 64\nsgdt [0x9000]\nud2', { origin: L.code });
    m.memory.writeBytes(L.code, code.bytes);
    const gpH = assembleOrThrow('bits 64\npop r14\nmov r15, 13\nhlt', { origin: 0x211000 });
    m.memory.writeBytes(0x211000, gpH.bytes);
    writeIdtGate(m.memory, L.idt, 13, 0x211000);
    lp.cr4 |= 1 << 11;
    lp.setSegment('cs', { selector: SELECTORS.USER_CODE64, base: 0n, limit: 0xffffffff, ar: AR.P | AR.S | AR.CODE | AR.RW | AR.L | AR.G | (3 << AR.DPL_SHIFT) | AR.ACCESSED });
    lp.setSegment('ss', { selector: SELECTORS.USER_DATA, base: 0n, limit: 0xffffffff, ar: AR.P | AR.S | AR.RW | AR.DB | AR.G | (3 << AR.DPL_SHIFT) }); // CPL = SS.DPL = 3
    lp.setReg('rsp', 0x70000n);
    m.run({ maxInstructions: 100 });
    expect(lp.getReg('r15')).toBe(13n);
    expect(lp.getReg('r14')).toBe(0n);
  });
});

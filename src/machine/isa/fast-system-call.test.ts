// SYSCALL/SYSRET and SYSENTER/SYSEXIT against their SDM Operation sections, rule by rule: the #UD and #GP(0)
// cases, the registers written, RFLAGS masking, the selectors and the fixed flat CS/SS caches, the CPL. See SDM
// Vol. 2B, "SYSCALL—Fast System Call", "SYSRET—Return From Fast System Call", "SYSENTER—Fast System Call" and
// "SYSEXIT—Fast Return from Fast System Call".
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { Code, Decoder, DecoderOptions } from 'iced-x86';
import { decode } from '../decoder.ts';
import { Insn, OP_INVALID } from '../insn.ts';
import { Machine } from '../machine.ts';
import { DEFAULT_CPU_MODEL } from '../cpu-model.ts';
import { enterLongMode, writeIdtGate, LONG_MODE_LAYOUT as L, SELECTORS } from '../testing/long-mode.ts';
import { CPUID_FEATURE, type CpuidFeature } from '../../x86/cpuid.ts';
import { CR0, EFER } from '../../x86/control-registers.ts';
import { AR } from '../../x86/segments.ts';
import { RFLAGS } from '../../x86/flags.ts';
import * as MSR from '../../x86/msr.ts';
import type { LogicalProcessor } from '../lp.ts';
import type { CpuFault } from '../fault.ts';

const HANDLER = 0x200000;
const CODE = 0x100000;
const SYSCALL = [0x0f, 0x05], SYSRET = [0x0f, 0x07], SYSRET64 = [0x48, 0x0f, 0x07];
const SYSENTER = [0x0f, 0x34], SYSEXIT = [0x0f, 0x35], SYSEXIT64 = [0x48, 0x0f, 0x35];
const FLAT = 0xffffffff;
const KERNEL_CS64 = AR.P | AR.S | AR.CODE | AR.RW | AR.ACCESSED | AR.L | AR.G;
const KERNEL_CS32 = AR.P | AR.S | AR.CODE | AR.RW | AR.ACCESSED | AR.DB | AR.G;
const KERNEL_SS = AR.P | AR.S | AR.RW | AR.ACCESSED | AR.DB | AR.G;
const DPL3 = 3 << AR.DPL_SHIFT;
const u64 = fc.bigInt({ min: 0n, max: (1n << 64n) - 1n });
const canonical = fc.oneof(fc.bigInt({ min: 0n, max: (1n << 47n) - 1n }), fc.bigInt({ min: (1n << 64n) - (1n << 47n), max: (1n << 64n) - 1n }));
/** RFLAGS values software can hold in 64-bit mode (status, IF, DF, OF, IOPL, NT, AC, ID; bit 1 set; TF would add a single-step trap). */
const rflagsIn = fc.bigInt({ min: 0n, max: 0x3fffffn }).map((v) => (v & 0x247fd5n & ~BigInt(RFLAGS.VM | RFLAGS.TF)) | 2n);

function machine() {
  const m = new Machine({ model: DEFAULT_CPU_MODEL });
  const lp = m.cpus[0]!;
  enterLongMode(lp, { userPages: true });
  // Every exception vector: an interrupt gate to a HLT, so a fault stops the run at CPL 0.
  for (let v = 0; v < 32; v++) {
    m.memory.writeBytes(HANDLER + v * 16, [0xf4]);
    writeIdtGate(m.memory, L.idt, v, HANDLER + v * 16);
  }
  lp.efer |= EFER.SCE;
  const modelCpuid = lp.cpuidSource!;
  // Each distinct byte sequence gets its own address, so no decoded block is ever stale.
  const placed = new Map<string, number>();
  let nextCode = CODE;
  return {
    m, lp,
    /** Execute the one instruction `bytes` at CODE from the current state; the fault it raised, or null. */
    step(bytes: number[]): { vector: number; errorCode: number } | null {
      let at = placed.get(bytes.join(','));
      if (at === undefined) {
        at = nextCode;
        nextCode += 16;
        m.memory.writeBytes(at, bytes);
        placed.set(bytes.join(','), at);
      }
      lp.rip = at;
      lp.activity = 'active';
      lp.lastFault = null;
      m.run({ maxInstructions: 1 });
      const f = lastFault(lp);
      return f === null ? null : { vector: f.vector, errorCode: f.errorCode };
    },
    user64() {
      lp.setSegment('cs', { selector: SELECTORS.USER_CODE64, base: 0n, limit: FLAT, ar: KERNEL_CS64 | DPL3 });
      lp.setSegment('ss', { selector: SELECTORS.USER_DATA, base: 0n, limit: FLAT, ar: KERNEL_SS | DPL3 });
    },
    kernel(bits: 32 | 64 = 64) {
      lp.setSegment('cs', { selector: bits === 64 ? SELECTORS.CODE64 : SELECTORS.CODE32, base: 0n, limit: FLAT, ar: bits === 64 ? KERNEL_CS64 : KERNEL_CS32 });
      lp.setSegment('ss', { selector: SELECTORS.DATA, base: 0n, limit: FLAT, ar: KERNEL_SS });
    },
    forceCpuid(f: CpuidFeature, on: boolean) {
      lp.cpuidSource = (leaf, subleaf, p) => {
        const r = { ...modelCpuid(leaf, subleaf, p) };
        if (leaf === f.leaf) r[f.reg] = on ? (r[f.reg] | (1 << f.bit)) >>> 0 : (r[f.reg] & ~(1 << f.bit)) >>> 0;
        return r;
      };
    },
  };
}

const seg = (lp: LogicalProcessor, s: 'cs' | 'ss') => {
  const g = lp.getSegment(s);
  return { selector: g.selector, base: g.base, limit: g.limit, ar: g.ar };
};

describe('SYSCALL', () => {
  it('RCX ← next RIP, R11 ← RFLAGS, RFLAGS &= ~IA32_FMASK, RIP ← IA32_LSTAR, flat CS/SS from IA32_STAR[47:32], CPL 0', () => {
    const t = machine();
    fc.assert(fc.property(u64, canonical, u64, rflagsIn, (star, lstar, fmask, flags) => {
      t.user64();
      t.lp.wrmsr(MSR.MSR_STAR, star);
      t.lp.wrmsr(MSR.MSR_LSTAR, lstar);
      t.lp.wrmsr(MSR.MSR_SYSCALL_MASK, fmask);
      t.lp.setReg('rflags', flags);
      expect(t.step(SYSCALL)).toBeNull();
      expect(t.lp.getReg('rcx')).toBe(BigInt(CODE + 2)); // the first sequence placed
      expect(t.lp.getReg('r11')).toBe(flags);
      expect(t.lp.getReg('rflags')).toBe((flags & ~(fmask & 0xffffffffn)) | 2n);
      expect(t.lp.getReg('rip')).toBe(lstar);
      const sel = Number((star >> 32n) & 0xffffn);
      expect(seg(t.lp, 'cs')).toEqual({ selector: sel & 0xfffc, base: 0n, limit: FLAT, ar: KERNEL_CS64 });
      expect(seg(t.lp, 'ss')).toEqual({ selector: (sel + 8) & 0xffff, base: 0n, limit: FLAT, ar: KERNEL_SS });
      expect(t.lp.cpl).toBe(0);
      expect(t.lp.bits).toBe(64);
    }), { numRuns: 100, seed: 5 });
  });
  it('#UD with IA32_EFER.SCE = 0', () => {
    const t = machine();
    t.lp.efer &= ~EFER.SCE;
    expect(t.step(SYSCALL)).toEqual({ vector: 6, errorCode: -1 });
  });
  it('#UD in compatibility mode (Intel: not supported there; IA32_CSTAR is never used)', () => {
    const t = machine();
    t.lp.wrmsr(MSR.MSR_CSTAR, BigInt(CODE + 0x40));
    t.kernel(32);
    expect(t.step(SYSCALL)).toEqual({ vector: 6, errorCode: -1 });
  });
  it('#UD where CPUID.80000001H:EDX.SYSCALL = 0, and with a LOCK prefix', () => {
    const t = machine();
    t.forceCpuid(CPUID_FEATURE.SYSCALL, false);
    expect(t.step(SYSCALL)).toEqual({ vector: 6, errorCode: -1 });
    t.forceCpuid(CPUID_FEATURE.SYSCALL, true);
    expect(t.step([0xf0, ...SYSCALL])).toEqual({ vector: 6, errorCode: -1 });
  });
});

describe('SYSRET', () => {
  for (const to64 of [true, false]) {
    it(`${to64 ? 'REX.W: RIP ← RCX, CS = STAR[63:48] + 16' : 'RIP ← ECX, CS = STAR[63:48] (compatibility mode)'}; SS = STAR[63:48] + 8, RPL 3; RFLAGS ← R11 & 3C7FD7H | 2; CPL 3`, () => {
      const t = machine();
      fc.assert(fc.property(u64, canonical, u64.map((v) => v & ~BigInt(RFLAGS.TF)), (star, rcx, r11) => { // TF: a single-step trap after
        t.kernel();
        t.lp.wrmsr(MSR.MSR_STAR, star);
        t.lp.setReg('rcx', rcx);
        t.lp.setReg('r11', r11);
        expect(t.step(to64 ? SYSRET64 : SYSRET)).toBeNull();
        expect(t.lp.getReg('rip')).toBe(to64 ? rcx : rcx & 0xffffffffn);
        expect(t.lp.getReg('rflags')).toBe((r11 & 0x3c7fd7n) | 2n);
        const base = Number((star >> 48n) & 0xffffn);
        const csAr = (to64 ? KERNEL_CS64 : KERNEL_CS32) | DPL3;
        expect(seg(t.lp, 'cs')).toEqual({ selector: ((to64 ? base + 16 : base) & 0xffff) | 3, base: 0n, limit: FLAT, ar: csAr });
        expect(seg(t.lp, 'ss')).toEqual({ selector: ((base + 8) & 0xffff) | 3, base: 0n, limit: FLAT, ar: KERNEL_SS | DPL3 });
        expect(t.lp.cpl).toBe(3);
        expect(t.lp.bits).toBe(to64 ? 64 : 32);
      }), { numRuns: 100, seed: to64 ? 7 : 8 });
    });
  }
  it('#GP(0) for a non-canonical RCX, taken at CPL 0 with nothing changed', () => {
    const t = machine();
    t.kernel();
    t.lp.setReg('rcx', 0x0000800000000000n);
    t.lp.setReg('r11', 0x202n);
    expect(t.step(SYSRET64)).toEqual({ vector: 13, errorCode: 0 });
    expect(t.lp.getReg('rip')).toBe(BigInt(HANDLER + 13 * 16));
    expect(t.lp.cpl).toBe(0);
    expect(t.lp.getSegment('cs').selector).toBe(SELECTORS.CODE64);
    // Without REX.W only ECX is used: no canonical check.
    t.kernel();
    expect(t.step(SYSRET)).toBeNull();
    expect(t.lp.getReg('rip')).toBe(0n);
  });
  it('#GP(0) at CPL ≠ 0; #UD with SCE = 0 (before the CPL check) and in compatibility mode', () => {
    const t = machine();
    t.user64();
    expect(t.step(SYSRET64)).toEqual({ vector: 13, errorCode: 0 });
    t.user64();
    t.lp.efer &= ~EFER.SCE;
    expect(t.step(SYSRET64)).toEqual({ vector: 6, errorCode: -1 });
    t.lp.efer |= EFER.SCE;
    t.kernel(32);
    expect(t.step(SYSRET)).toEqual({ vector: 6, errorCode: -1 });
  });
});

describe('SYSENTER', () => {
  for (const ia32e of [true, false]) {
    it(`${ia32e ? 'IA-32e mode: 64-bit CS, RIP/RSP ← IA32_SYSENTER_EIP/ESP' : 'protected mode: 32-bit CS, EIP/ESP ← the MSRs\' low halves'}; CS = SYSENTER_CS & FFFCH, SS = CS + 8; VM IF RF cleared; CPL 0`, () => {
      const t = machine();
      fc.assert(fc.property(fc.integer({ min: 4, max: 0xffff }), canonical, canonical, rflagsIn, (cs, eip, esp, flags) => {
        t.user64();
        if (!ia32e) legacyProtectedUser(t.lp);
        t.lp.wrmsr(MSR.MSR_IA32_SYSENTER_CS, BigInt(cs));
        t.lp.wrmsr(MSR.MSR_IA32_SYSENTER_EIP, eip);
        t.lp.wrmsr(MSR.MSR_IA32_SYSENTER_ESP, esp);
        t.lp.setReg('rflags', flags | BigInt(RFLAGS.RF));
        expect(t.step(SYSENTER)).toBeNull();
        expect(t.lp.getReg('rip')).toBe(ia32e ? eip : eip & 0xffffffffn);
        expect(t.lp.getReg('rsp')).toBe(ia32e ? esp : esp & 0xffffffffn);
        expect(t.lp.getReg('rflags')).toBe(flags & ~BigInt(RFLAGS.IF | RFLAGS.VM | RFLAGS.RF));
        expect(seg(t.lp, 'cs')).toEqual({ selector: cs & 0xfffc, base: 0n, limit: FLAT, ar: ia32e ? KERNEL_CS64 : KERNEL_CS32 });
        expect(seg(t.lp, 'ss')).toEqual({ selector: ((cs & 0xfffc) + 8) & 0xffff, base: 0n, limit: FLAT, ar: KERNEL_SS });
        expect(t.lp.cpl).toBe(0);
      }), { numRuns: 60, seed: ia32e ? 11 : 12 });
    });
  }
  it('#GP(0) when IA32_SYSENTER_CS[15:2] = 0; #UD without SEP', () => {
    const t = machine();
    t.user64();
    t.lp.wrmsr(MSR.MSR_IA32_SYSENTER_CS, 3n);
    expect(t.step(SYSENTER)).toEqual({ vector: 13, errorCode: 0 });
    t.lp.wrmsr(MSR.MSR_IA32_SYSENTER_CS, 0x10n);
    t.forceCpuid(CPUID_FEATURE.SEP, false);
    t.user64();
    expect(t.step(SYSENTER)).toEqual({ vector: 6, errorCode: -1 });
  });
});

describe('SYSEXIT', () => {
  for (const to64 of [true, false]) {
    it(`${to64 ? 'REX.W: RIP ← RDX, RSP ← RCX, CS = SYSENTER_CS + 32' : 'EIP ← EDX, ESP ← ECX, CS = SYSENTER_CS + 16'}, RPL 3; SS = CS + 8; RFLAGS unchanged; CPL 3`, () => {
      const t = machine();
      fc.assert(fc.property(fc.integer({ min: 4, max: 0xffff }), canonical, canonical, rflagsIn, (cs, rdx, rcx, flags) => {
        t.kernel();
        t.lp.wrmsr(MSR.MSR_IA32_SYSENTER_CS, BigInt(cs));
        t.lp.setReg('rdx', rdx);
        t.lp.setReg('rcx', rcx);
        t.lp.setReg('rflags', flags);
        expect(t.step(to64 ? SYSEXIT64 : SYSEXIT)).toBeNull();
        expect(t.lp.getReg('rip')).toBe(to64 ? rdx : rdx & 0xffffffffn);
        expect(t.lp.getReg('rsp')).toBe(to64 ? rcx : rcx & 0xffffffffn);
        expect(t.lp.getReg('rflags')).toBe(flags);
        const sel = ((cs + (to64 ? 32 : 16)) & 0xffff) | 3;
        expect(seg(t.lp, 'cs')).toEqual({ selector: sel, base: 0n, limit: FLAT, ar: (to64 ? KERNEL_CS64 : KERNEL_CS32) | DPL3 });
        expect(seg(t.lp, 'ss')).toEqual({ selector: (sel + 8) & 0xffff, base: 0n, limit: FLAT, ar: KERNEL_SS | DPL3 });
        expect(t.lp.cpl).toBe(3);
      }), { numRuns: 60, seed: to64 ? 13 : 14 });
    });
  }
  it('#GP(0) at CPL ≠ 0, when IA32_SYSENTER_CS[15:2] = 0, and (REX.W) for a non-canonical RDX or RCX', () => {
    const t = machine();
    t.lp.wrmsr(MSR.MSR_IA32_SYSENTER_CS, 0x10n);
    t.user64();
    expect(t.step(SYSEXIT64)).toEqual({ vector: 13, errorCode: 0 });
    t.kernel();
    t.lp.wrmsr(MSR.MSR_IA32_SYSENTER_CS, 0n);
    expect(t.step(SYSEXIT64)).toEqual({ vector: 13, errorCode: 0 });
    t.lp.wrmsr(MSR.MSR_IA32_SYSENTER_CS, 0x10n);
    for (const [rdx, rcx] of [[1n << 47n, 0x1000n], [0x1000n, 1n << 63n]] as const) {
      t.kernel();
      t.lp.setReg('rdx', rdx);
      t.lp.setReg('rcx', rcx);
      expect(t.step(SYSEXIT64)).toEqual({ vector: 13, errorCode: 0 });
      expect(t.lp.cpl).toBe(0);
    }
  });
});

describe('decoding against iced-x86', () => {
  // The four encodings, with REX.W and with prefixes that change nothing (66H, REX without W), in each code size.
  const FORMS: { bytes: number[]; code: Code; bits: readonly (16 | 32 | 64)[] }[] = [
    { bytes: SYSCALL, code: Code.Syscall, bits: [16, 32, 64] },
    { bytes: SYSRET, code: Code.Sysretd, bits: [16, 32, 64] },
    { bytes: SYSRET64, code: Code.Sysretq, bits: [64] },
    { bytes: [0x41, 0x0f, 0x07], code: Code.Sysretd, bits: [64] },
    { bytes: SYSENTER, code: Code.Sysenter, bits: [16, 32, 64] },
    { bytes: [0x66, ...SYSENTER], code: Code.Sysenter, bits: [32, 64] },
    { bytes: SYSEXIT, code: Code.Sysexitd, bits: [16, 32, 64] },
    { bytes: SYSEXIT64, code: Code.Sysexitq, bits: [64] },
  ];
  for (const f of FORMS) {
    for (const bits of f.bits) {
      const hex = f.bytes.map((b) => b.toString(16).padStart(2, '0')).join(' ');
      it(`${hex} (${bits}-bit): same length as iced-x86, which names it ${Code[f.code]}; REX.W ↔ 64-bit operand size`, () => {
        const dec = new Decoder(bits, Uint8Array.from(f.bytes), DecoderOptions.None);
        const ins = dec.decode();
        try {
          expect(ins.code).toBe(f.code);
          const ours = new Insn();
          decode(ours, bits, { byte: (i) => f.bytes[i] ?? 0 });
          expect(ours.op).not.toBe(OP_INVALID);
          expect(ours.op).toBe(0x100 + f.bytes[f.bytes.length - 1]!);
          expect(ours.len).toBe(ins.length);
          expect(ours.opSize === 8).toBe(f.code === Code.Sysretq || f.code === Code.Sysexitq);
        } finally {
          ins.free();
          dec.free();
        }
      });
    }
  }
});

describe('real-address mode', () => {
  it('SYSENTER and SYSEXIT raise #GP(0) (the SDM\'s Real-Address Mode Exceptions), SYSCALL and SYSRET #UD', () => {
    for (const [bytes, vector] of [[SYSENTER, 13], [SYSEXIT, 13], [SYSCALL, 6], [SYSRET, 6]] as const) {
      const m = new Machine({ model: DEFAULT_CPU_MODEL });
      const lp = m.cpus[0]!;
      lp.wrmsr(MSR.MSR_IA32_SYSENTER_CS, 0x10n);
      lp.efer |= EFER.SCE;
      expect(lp.cr0 & CR0.PE).toBe(0);
      m.memory.writeBytes(0x7c00, [...bytes]);
      lp.setSegment('cs', { selector: 0, base: 0n, limit: 0xffff, ar: lp.getSegment('cs').ar });
      lp.rip = 0x7c00;
      lp.lastFault = null;
      m.run({ maxInstructions: 1 });
      expect(lastFault(lp)?.vector, bytes.join(' ')).toBe(vector);
    }
  });
});

/** Protected mode without IA-32e (paging off, EFER.LMA = LME = 0), at CPL 3 in a flat 32-bit code segment. */
function legacyProtectedUser(lp: LogicalProcessor): void {
  lp.cr0 &= ~CR0.PG;
  lp.efer &= ~(EFER.LMA | EFER.LME);
  lp.setSegment('cs', { selector: 0x18 | 3, base: 0n, limit: FLAT, ar: KERNEL_CS32 | DPL3 });
  lp.setSegment('ss', { selector: SELECTORS.USER_DATA, base: 0n, limit: FLAT, ar: KERNEL_SS | DPL3 });
  lp.tlb.flushAll();
}

/** The fault the last instruction raised (read through a call: the assignment before the run narrows the field). */
function lastFault(lp: LogicalProcessor): CpuFault | null {
  return lp.lastFault;
}

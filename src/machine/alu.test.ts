// Instruction families with exact flags, against an independent BigInt model of the SDM definitions.
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { assembleOrThrow } from '../guest/assembler.ts';
import { Machine } from './machine.ts';
import { GPR64 } from '../x86/registers.ts';
import { enterLongMode, LONG_MODE_LAYOUT } from './testing/long-mode.ts';

const CF = 1n, PF = 4n, AF = 16n, ZF = 64n, SF = 128n, OF = 2048n;
const STATUS = CF | PF | AF | ZF | SF | OF;

/** One machine; each form is assembled once and run with different register values. */
const machine = new Machine();
const lp = machine.cpus[0]!;
const codeCache = new Map<string, number>();
let nextCode = LONG_MODE_LAYOUT.code;
function run(asm: string, regs: Record<string, bigint>, flags = 0n): { regs: (n: string) => bigint; flags: bigint } {
  let at = codeCache.get(asm);
  if (at === undefined) {
    const { bytes } = assembleOrThrow(`bits 64\n${asm}\nhlt`, { origin: nextCode });
    at = nextCode;
    machine.memory.writeBytes(at, bytes);
    nextCode += 64;
    codeCache.set(asm, at);
  }
  enterLongModeOnce();
  for (const [k, v] of Object.entries(regs)) lp.setReg(k, v);
  lp.setReg('rflags', flags | 2n);
  lp.rip = at;
  lp.activity = 'active';
  const r = machine.run({ maxInstructions: 100_000 });
  expect(r.reason).toBe('all-halted');
  const snap = new Map(GPR64.map((n) => [n as string, lp.getReg(n)]));
  return { regs: (n) => snap.get(n)!, flags: lp.getReg('rflags') };
}
let entered = false;
function enterLongModeOnce(): void {
  if (!entered) enterLongMode(lp);
  entered = true;
}

const mask = (bits: number) => (1n << BigInt(bits)) - 1n;
const sign = (v: bigint, bits: number) => (v >> BigInt(bits - 1)) & 1n;
function parity(v: bigint): bigint {
  let b = Number(v & 0xffn), n = 0;
  while (b) { n += b & 1; b >>= 1; }
  return n % 2 === 0 ? PF : 0n;
}
function szp(r: bigint, bits: number): bigint {
  return (r === 0n ? ZF : 0n) | (sign(r, bits) ? SF : 0n) | parity(r);
}
/** SDM definitions of ADD/ADC and SUB/SBB/CMP flags. */
function addRef(a: bigint, b: bigint, c: bigint, bits: number): { r: bigint; f: bigint } {
  const full = a + b + c;
  const r = full & mask(bits);
  let f = szp(r, bits);
  if (full > mask(bits)) f |= CF;
  if (sign(a, bits) === sign(b, bits) && sign(r, bits) !== sign(a, bits)) f |= OF;
  if (((a ^ b ^ r) & 0x10n) !== 0n) f |= AF;
  return { r, f };
}
function subRef(a: bigint, b: bigint, c: bigint, bits: number): { r: bigint; f: bigint } {
  const r = (a - b - c) & mask(bits);
  let f = szp(r, bits);
  if (a < b + c) f |= CF;
  if (sign(a, bits) !== sign(b, bits) && sign(r, bits) !== sign(a, bits)) f |= OF;
  if (((a ^ b ^ r) & 0x10n) !== 0n) f |= AF;
  return { r, f };
}

const SIZES = [
  { bits: 8, a: 'al', b: 'bl' },
  { bits: 16, a: 'ax', b: 'bx' },
  { bits: 32, a: 'eax', b: 'ebx' },
  { bits: 64, a: 'rax', b: 'rbx' },
] as const;

/** Values that stress carries: random 64-bit plus the edges. */
const val64 = fc.oneof(
  fc.bigInt({ min: 0n, max: mask(64) }),
  fc.constantFrom(0n, 1n, 0x7fn, 0x80n, 0xffn, 0x7fffn, 0x8000n, 0xffffn, 0x7fffffffn, 0x80000000n, 0xffffffffn,
    0x7fffffffffffffffn, 0x8000000000000000n, mask(64)),
);

describe('ADD ADC SUB SBB CMP with exact flags', () => {
  for (const s of SIZES) {
    for (const op of ['add', 'adc', 'sub', 'sbb', 'cmp'] as const) {
      it(`${op} ${s.a}, ${s.b}`, () => {
        fc.assert(fc.property(val64, val64, fc.boolean(), (a, b, cin) => {
          const out = run(`${op} ${s.a}, ${s.b}`, { rax: a, rbx: b }, cin ? CF : 0n);
          const am = a & mask(s.bits), bm = b & mask(s.bits);
          const c = op === 'adc' || op === 'sbb' ? (cin ? 1n : 0n) : 0n;
          const ref = op === 'add' || op === 'adc' ? addRef(am, bm, c, s.bits) : subRef(am, bm, c, s.bits);
          expect(out.flags & STATUS).toBe(ref.f);
          const expected = op === 'cmp' ? a : s.bits === 32 ? ref.r : (a & ~mask(s.bits)) | ref.r;
          expect(out.regs('rax')).toBe(expected);
        }), { numRuns: 150 });
      });
    }
  }
});

describe('logic, INC/DEC, NEG, NOT', () => {
  for (const s of SIZES) {
    it(`and/or/xor/test ${s.a}: CF = OF = 0, SZP from the result`, () => {
      fc.assert(fc.property(val64, val64, fc.constantFrom('and', 'or', 'xor', 'test'), (a, b, op) => {
        const out = run(`${op} ${s.a}, ${s.b}`, { rax: a, rbx: b }, CF | OF);
        const am = a & mask(s.bits), bm = b & mask(s.bits);
        const r = op === 'and' || op === 'test' ? am & bm : op === 'or' ? am | bm : am ^ bm;
        // AF is undefined for logic instructions: compare the defined flags only.
        expect(out.flags & (CF | ZF | SF | OF | PF)).toBe(szp(r, s.bits));
      }), { numRuns: 100 });
    });
    it(`inc/dec ${s.a} keep CF`, () => {
      fc.assert(fc.property(val64, fc.boolean(), fc.boolean(), (a, cin, dec) => {
        const out = run(`${dec ? 'dec' : 'inc'} ${s.a}`, { rax: a }, cin ? CF : 0n);
        const am = a & mask(s.bits);
        const ref = dec ? subRef(am, 1n, 0n, s.bits) : addRef(am, 1n, 0n, s.bits);
        expect(out.flags & STATUS).toBe((ref.f & ~CF) | (cin ? CF : 0n));
      }), { numRuns: 100 });
    });
    it(`neg/not ${s.a}`, () => {
      fc.assert(fc.property(val64, (a) => {
        const am = a & mask(s.bits);
        const out = run(`neg ${s.a}`, { rax: a });
        const ref = subRef(0n, am, 0n, s.bits);
        expect(out.flags & STATUS).toBe((ref.f & ~CF) | (am !== 0n ? CF : 0n));
        const nt = run(`not ${s.a}`, { rax: a }, ZF);
        expect(nt.regs('rax') & mask(s.bits)).toBe(~am & mask(s.bits));
        expect(nt.flags & STATUS).toBe(ZF); // NOT changes no flags
      }), { numRuns: 80 });
    });
  }
});

describe('shifts and rotates', () => {
  for (const s of SIZES) {
    it(`shl/shr/sar ${s.a}, cl: result, CF, and OF for count 1`, () => {
      fc.assert(fc.property(val64, fc.integer({ min: 0, max: 255 }), fc.constantFrom('shl', 'shr', 'sar'), (a, cnt, op) => {
        const out = run(`${op} ${s.a}, cl`, { rax: a, rcx: BigInt(cnt) }, 0n);
        const n = BigInt(cnt & (s.bits === 64 ? 63 : 31));
        const am = a & mask(s.bits);
        const signed = BigInt.asIntN(s.bits, am);
        if (n === 0n) {
          // Count 0 changes nothing, except that a 32-bit destination is still zero-extended in 64-bit mode.
          expect(out.regs('rax')).toBe(s.bits === 32 ? a & mask(32) : a);
          expect(out.flags & STATUS).toBe(0n);
          return;
        }
        let r: bigint, cf: bigint;
        if (op === 'shl') { r = (am << n) & mask(s.bits); cf = (am << n) >> BigInt(s.bits) & 1n; }
        else if (op === 'shr') { r = am >> n; cf = (am >> (n - 1n)) & 1n; }
        else { r = BigInt.asUintN(s.bits, signed >> n); cf = BigInt.asUintN(1, signed >> (n - 1n)); }
        expect(out.regs('rax') & mask(s.bits)).toBe(r);
        expect(out.flags & CF).toBe(cf);
        expect(out.flags & (ZF | SF | PF)).toBe(szp(r, s.bits));
        if (n === 1n) {
          const of = op === 'shl' ? sign(r, s.bits) ^ cf : op === 'shr' ? sign(am, s.bits) : 0n;
          expect((out.flags & OF) !== 0n).toBe(of === 1n);
        }
      }), { numRuns: 150 });
    });
    it(`rol/ror ${s.a}, cl`, () => {
      fc.assert(fc.property(val64, fc.integer({ min: 1, max: 63 }), fc.boolean(), (a, cnt, left) => {
        const n = cnt & (s.bits === 64 ? 63 : 31);
        fc.pre(n !== 0);
        const out = run(`${left ? 'rol' : 'ror'} ${s.a}, cl`, { rax: a, rcx: BigInt(cnt) }, ZF);
        const am = a & mask(s.bits);
        const k = BigInt(n % s.bits);
        const r = left ? ((am << k) | (am >> (BigInt(s.bits) - k))) & mask(s.bits) : ((am >> k) | (am << (BigInt(s.bits) - k))) & mask(s.bits);
        expect(out.regs('rax') & mask(s.bits)).toBe(r);
        expect(out.flags & CF).toBe(left ? r & 1n : sign(r, s.bits));
        expect(out.flags & ZF).toBe(ZF); // rotates leave ZF alone
      }), { numRuns: 100 });
    });
    it(`rcl/rcr ${s.a}, 1 rotate through CF`, () => {
      fc.assert(fc.property(val64, fc.boolean(), fc.boolean(), (a, cin, left) => {
        const out = run(`${left ? 'rcl' : 'rcr'} ${s.a}, 1`, { rax: a }, cin ? CF : 0n);
        const am = a & mask(s.bits);
        const c = cin ? 1n : 0n;
        const r = left ? ((am << 1n) | c) & mask(s.bits) : (am >> 1n) | (c << BigInt(s.bits - 1));
        const cf = left ? sign(am, s.bits) : am & 1n;
        expect(out.regs('rax') & mask(s.bits)).toBe(r);
        expect(out.flags & CF).toBe(cf);
      }), { numRuns: 60 });
    });
  }
});

describe('MUL IMUL DIV IDIV', () => {
  for (const s of SIZES) {
    it(`mul/imul ${s.b}: rDX:rAX and CF = OF`, () => {
      fc.assert(fc.property(val64, val64, fc.boolean(), (a, b, signed) => {
        const out = run(`${signed ? 'imul' : 'mul'} ${s.b}`, { rax: a, rbx: b, rdx: 0n });
        const am = a & mask(s.bits), bm = b & mask(s.bits);
        const p = signed ? BigInt.asIntN(s.bits, am) * BigInt.asIntN(s.bits, bm) : am * bm;
        const lo = BigInt.asUintN(s.bits, p), hi = BigInt.asUintN(s.bits, p >> BigInt(s.bits));
        if (s.bits === 8) expect(out.regs('rax') & 0xffffn).toBe((hi << 8n) | lo);
        else {
          expect(out.regs('rax') & mask(s.bits)).toBe(lo);
          expect(out.regs('rdx') & mask(s.bits)).toBe(hi);
        }
        const over = signed ? BigInt.asIntN(s.bits, lo) !== p : hi !== 0n;
        expect(out.flags & (CF | OF)).toBe(over ? CF | OF : 0n);
      }), { numRuns: 100 });
    });
    it(`div/idiv ${s.b} with #DE on zero and on overflow`, () => {
      // A #DE handler that records the vector and halts.
      fc.assert(fc.property(val64, val64, val64, fc.boolean(), (a, d, b, signed) => {
        const bits = BigInt(s.bits);
        const am = a & mask(s.bits), dm = s.bits === 8 ? 0n : d & mask(s.bits), bm = b & mask(s.bits);
        const dividendU = s.bits === 8 ? a & 0xffffn : (dm << bits) | am;
        const dividend = signed ? BigInt.asIntN(s.bits * 2, dividendU) : dividendU;
        const divisor = signed ? BigInt.asIntN(s.bits, bm) : bm;
        const ok = divisor !== 0n && (() => {
          const q = dividend / divisor;
          return signed ? q >= -(1n << (bits - 1n)) && q < 1n << (bits - 1n) : q < 1n << bits;
        })();
        const vec = deCatcher();
        const out = run(`${signed ? 'idiv' : 'div'} ${s.b}`, { rax: a, rdx: d, rbx: b, r15: 0n });
        if (!ok) {
          expect(out.regs('r15')).toBe(vec); // the #DE handler ran
          return;
        }
        const q = BigInt.asUintN(s.bits, dividend / divisor), r = BigInt.asUintN(s.bits, dividend % divisor);
        expect(out.regs('r15')).toBe(0n);
        if (s.bits === 8) expect(out.regs('rax') & 0xffffn).toBe((r << 8n) | q);
        else {
          expect(out.regs('rax') & mask(s.bits)).toBe(q);
          expect(out.regs('rdx') & mask(s.bits)).toBe(r);
        }
      }), { numRuns: 100 });
    });
  }
  it('imul r64, r/m64, imm32 and imul r32, r/m32', () => {
    fc.assert(fc.property(val64, fc.integer({ min: -(2 ** 31), max: 2 ** 31 - 1 }), (a, imm) => {
      const out = run(`imul rcx, rax, ${imm}`, { rax: a });
      const p = BigInt.asIntN(64, a) * BigInt(imm);
      expect(out.regs('rcx')).toBe(BigInt.asUintN(64, p));
      expect(out.flags & (CF | OF)).toBe(BigInt.asIntN(64, BigInt.asUintN(64, p)) !== p ? CF | OF : 0n);
      const o2 = run('imul ecx, eax', { rax: a, rcx: a >> 7n });
      const p2 = BigInt.asIntN(32, (a >> 7n) & mask(32)) * BigInt.asIntN(32, a & mask(32));
      expect(o2.regs('rcx')).toBe(BigInt.asUintN(32, p2));
      expect(o2.flags & (CF | OF)).toBe(BigInt.asIntN(32, BigInt.asUintN(32, p2)) !== p2 ? CF | OF : 0n);
    }), { numRuns: 150 });
  });
});

/** Install an IDT gate for #DE whose handler sets R15 = 0xDE and halts; returns the marker value. */
let deInstalled = false;
function deCatcher(): bigint {
  if (!deInstalled) {
    const handler = 0x200000;
    const { bytes } = assembleOrThrow('bits 64\nmov r15, 0xde\nhlt', { origin: handler });
    machine.memory.writeBytes(handler, bytes);
    const idt = LONG_MODE_LAYOUT.idt;
    // Interrupt gate, selector 08H, present.
    machine.memory.write32(idt, (handler & 0xffff) | (0x08 << 16));
    machine.memory.write32(idt + 4, (handler & 0xffff0000) | 0x8e00);
    machine.memory.write32(idt + 8, 0);
    deInstalled = true;
  }
  return 0xden;
}

describe('data movement and misc', () => {
  it('movzx/movsx/movsxd, cbw/cwde/cdqe, cwd/cdq/cqo, bswap, xchg', () => {
    fc.assert(fc.property(val64, (a) => {
      expect(run('movzx ecx, al', { rax: a, rcx: mask(64) }).regs('rcx')).toBe(a & 0xffn);
      expect(run('movsx rcx, ax', { rax: a }).regs('rcx')).toBe(BigInt.asUintN(64, BigInt.asIntN(16, a & 0xffffn)));
      expect(run('movsxd rcx, eax', { rax: a }).regs('rcx')).toBe(BigInt.asUintN(64, BigInt.asIntN(32, a & mask(32))));
      expect(run('cdqe', { rax: a }).regs('rax')).toBe(BigInt.asUintN(64, BigInt.asIntN(32, a & mask(32))));
      expect(run('cwde', { rax: a }).regs('rax')).toBe(BigInt.asUintN(32, BigInt.asIntN(16, a & 0xffffn)));
      expect(run('cqo', { rax: a }).regs('rdx')).toBe(sign(a, 64) ? mask(64) : 0n);
      const bs = run('bswap rax', { rax: a }).regs('rax');
      let rev = 0n;
      for (let i = 0n; i < 8n; i++) rev |= ((a >> (8n * i)) & 0xffn) << (8n * (7n - i));
      expect(bs).toBe(rev);
      const x = run('xchg rax, rbx', { rax: a, rbx: 5n });
      expect([x.regs('rax'), x.regs('rbx')]).toEqual([5n, a]);
    }), { numRuns: 60 });
  });
  it('32-bit writes zero-extend; 8/16-bit writes merge; AH..BH without REX', () => {
    const r = run('mov eax, ebx\nmov cx, dx\nmov ah, 0x12', { rax: mask(64), rbx: 0x80000000n, rcx: mask(64), rdx: 0xabcdn });
    expect(r.regs('rax')).toBe(0x80001200n);
    expect(r.regs('rcx')).toBe(0xffffffffffffabcdn);
  });
  it('bt/bts/btr/btc and bsf/bsr', () => {
    fc.assert(fc.property(val64, fc.integer({ min: 0, max: 63 }), (a, n) => {
      const bit = (a >> BigInt(n)) & 1n;
      const o = run('bts rax, rcx', { rax: a, rcx: BigInt(n) });
      expect(o.flags & CF).toBe(bit);
      expect(o.regs('rax')).toBe(a | (1n << BigInt(n)));
      expect(run('btr rax, rcx', { rax: a, rcx: BigInt(n) }).regs('rax')).toBe(a & ~(1n << BigInt(n)));
      expect(run('btc rax, rcx', { rax: a, rcx: BigInt(n) }).regs('rax')).toBe(a ^ (1n << BigInt(n)));
      const f = run('bsf rcx, rax', { rax: a, rcx: 0x77n });
      const b = run('bsr rcx, rax', { rax: a, rcx: 0x77n });
      if (a === 0n) {
        expect(f.flags & ZF).toBe(ZF);
        expect(f.regs('rcx')).toBe(0x77n); // destination unchanged
      } else {
        expect(f.flags & ZF).toBe(0n);
        expect(f.regs('rcx')).toBe(BigInt(a.toString(2).length - a.toString(2).lastIndexOf('1') - 1));
        expect(b.regs('rcx')).toBe(BigInt(a.toString(2).length - 1));
      }
    }), { numRuns: 80 });
  });
  it('setcc and cmovcc agree with the signed/unsigned comparison', () => {
    fc.assert(fc.property(val64, val64, (a, b) => {
      const o = run('cmp rax, rbx\nsetb cl\nsetl dl\nsete r8b\ncmovg r9, rax', { rax: a, rbx: b, rcx: 0n, rdx: 0n, r8: 0n, r9: 7n });
      expect(o.regs('rcx')).toBe(a < b ? 1n : 0n);
      expect(o.regs('rdx')).toBe(BigInt.asIntN(64, a) < BigInt.asIntN(64, b) ? 1n : 0n);
      expect(o.regs('r8')).toBe(a === b ? 1n : 0n);
      expect(o.regs('r9')).toBe(BigInt.asIntN(64, a) > BigInt.asIntN(64, b) ? a : 7n);
    }), { numRuns: 100 });
  });
  it('cmov with a 32-bit operand zero-extends even when the condition is false', () => {
    const o = run('test eax, eax\ncmovnz ecx, ebx', { rax: 0n, rcx: mask(64), rbx: 1n });
    expect(o.regs('rcx')).toBe(0xffffffffn);
  });
  it('pushfq/popfq round-trip status flags; lea computes without memory access', () => {
    const o = run('stc\npushfq\npop rbx\nlea rcx, [rax + rdx*8 - 16]', { rax: 1000n, rdx: 3n });
    expect(o.regs('rbx') & CF).toBe(CF);
    expect(o.regs('rcx')).toBe(1008n);
  });
  it('cmpxchg and xadd', () => {
    const o = run('mov [0x9000], rbx\nlock cmpxchg [0x9000], rcx\nmov r8, [0x9000]', { rax: 5n, rbx: 5n, rcx: 9n });
    expect(o.regs('r8')).toBe(9n);
    expect(o.flags & ZF).toBe(ZF);
    const p = run('mov qword [0x9000], 7\nlock cmpxchg [0x9000], rcx', { rax: 5n, rcx: 9n });
    expect(p.regs('rax')).toBe(7n);
    const x = run('mov qword [0x9000], 7\nxadd [0x9000], rcx\nmov r8, [0x9000]', { rcx: 3n });
    expect([x.regs('rcx'), x.regs('r8')]).toEqual([7n, 10n]);
  });
});

describe('strings with REP', () => {
  it('rep movsb / stosq / lodsb, repe cmpsb, repne scasb', () => {
    const o = run(`
      mov rdi, 0x9000
      mov rcx, 16
      mov rax, 0x4141414141414141
      rep stosq
      mov rsi, 0x9000
      mov rdi, 0xa000
      mov rcx, 128
      rep movsb
      mov rsi, 0x9000
      mov rdi, 0xa000
      mov rcx, 128
      repe cmpsb
      mov r8, rcx
      mov byte [0xa040], 0x42
      mov rdi, 0xa000
      mov al, 0x42
      mov rcx, 200
      repne scasb
      mov r9, rdi`, {});
    expect(o.regs('r8')).toBe(0n);
    expect(o.flags & ZF).toBe(ZF);
    expect(o.regs('r9')).toBe(0xa041n);
    expect(machine.memory.read64(0xa078)).toBe(0x4141414141414141n);
  });
  it('std makes string instructions go down', () => {
    const o = run('std\nmov rdi, 0x9010\nmov al, 0x99\nmov rcx, 4\nrep stosb\ncld', {});
    expect(o.regs('rdi')).toBe(0x900cn);
    expect(machine.memory.read8(0x900d)).toBe(0x99);
  });
});

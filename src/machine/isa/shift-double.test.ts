// SHLD/SHRD against an independent BigInt model of SDM Vol. 2B, "SHLD—Double Precision Shift Left" and
// "SHRD—Double Precision Shift Right": every operand size, both count forms, every count 0–255.
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { harness, NO_EXCEPTION, DATA } from './testing-harness.ts';

const CF = 1n, PF = 4n, AF = 16n, ZF = 64n, SF = 128n, OF = 2048n;
const STATUS = CF | PF | AF | ZF | SF | OF;
const h = harness();

function parity(v: bigint): bigint {
  let n = 0;
  for (let b = Number(v & 0xffn); b; b >>= 1) n += b & 1;
  return n % 2 === 0 ? PF : 0n;
}

/** The SDM's definition; null where it leaves the result undefined (16-bit operand, count > 16). */
function reference(left: boolean, bits: number, dst: bigint, src: bigint, raw: number, flagsIn: bigint): { r: bigint; flags: bigint; ofDefined: boolean } | null {
  const B = BigInt(bits), mask = (1n << B) - 1n;
  const n = BigInt(raw & (bits === 64 ? 63 : 31));
  if (n === 0n) return { r: dst, flags: flagsIn, ofDefined: true };
  if (n > B) return null;
  let r: bigint, cf: bigint;
  if (left) {
    r = (((dst << B) | src) << n >> B) & mask;
    cf = (dst >> (B - n)) & 1n;
  } else {
    r = (((src << B) | dst) >> n) & mask;
    cf = (dst >> (n - 1n)) & 1n;
  }
  const sign = (v: bigint) => (v >> (B - 1n)) & 1n;
  let flags = (r === 0n ? ZF : 0n) | (sign(r) ? SF : 0n) | parity(r) | (cf ? CF : 0n);
  if (n === 1n && sign(r) !== sign(dst)) flags |= OF;
  return { r, flags, ofDefined: n === 1n };
}

const SIZES = [[16, [0x66]], [32, []], [64, [0x48]]] as const;
const OPCODES = [['SHLD imm8', 0xa4, true, true], ['SHLD CL', 0xa5, true, false], ['SHRD imm8', 0xac, false, true], ['SHRD CL', 0xad, false, false]] as const;

describe('SHLD / SHRD', () => {
  for (const [bits, prefix] of SIZES) {
    for (const [name, opcode, left, imm] of OPCODES) {
      it(`${name}, ${bits}-bit register and memory operands match the model for every count`, () => {
        const mask = (1n << BigInt(bits)) - 1n;
        fc.assert(fc.property(
          fc.bigInt({ min: 0n, max: mask }), fc.bigInt({ min: 0n, max: mask }), fc.integer({ min: 0, max: 255 }),
          fc.bigInt({ min: 0n, max: STATUS }), fc.boolean(),
          (dst, src, count, flagsIn, memory) => {
            flagsIn &= STATUS;
            // shld/shrd ebx, edx (ModRM D3) or [rsi], edx (ModRM 16)
            const bytes = [...prefix, 0x0f, opcode, memory ? 0x16 : 0xd3, ...(imm ? [count] : [])];
            const hiBits = 0x5a5a5a5a5a5a5a5an & ~mask; // what a 16-bit write must keep
            if (memory) h.machine.memory.write(DATA, 8, dst | hiBits);
            const v = h.run(bytes, { rbx: dst | (bits === 16 ? hiBits : 0n), rdx: src, rcx: BigInt(count) | 0x100n, rsi: BigInt(DATA) }, { rflags: flagsIn });
            expect(v).toBe(NO_EXCEPTION);
            const got = memory ? h.machine.memory.read(DATA, 8) & mask : h.lp.getReg('rbx') & mask;
            const ref = reference(left, bits, dst, src, count, flagsIn);
            if (ref === null) return; // undefined by the SDM (checked below)
            expect(got).toBe(ref.r);
            const care = ref.ofDefined ? STATUS & ~AF : STATUS & ~AF & ~OF;
            const n = count & (bits === 64 ? 63 : 31);
            expect(h.lp.getReg('rflags') & (n === 0 ? STATUS : care)).toBe(ref.flags & (n === 0 ? STATUS : care));
            if (memory) expect(h.machine.memory.read(DATA, 8) & ~mask, 'bytes beyond the operand').toBe(hiBits);
            else if (bits === 16) expect(h.lp.getReg('rbx') & ~mask, 'RBX[63:16] kept').toBe(hiBits);
            else if (bits === 32) expect(h.lp.getReg('rbx') >> 32n, 'a 32-bit result zero-extends').toBe(0n);
          }), { numRuns: 300, seed: opcode * 100 + bits });
      });
    }
  }

  it('a 16-bit count of 17–31 (undefined in the SDM) shifts destination:source:destination, as documented', () => {
    for (let n = 17; n < 32; n++) {
      const dst = 0x8421n, src = 0x1234n;
      const x = (dst << 32n) | (src << 16n) | dst;
      h.run([0x66, 0x0f, 0xa4, 0xd3, n], { rbx: dst, rdx: src });
      expect(h.lp.getReg('rbx') & 0xffffn, `SHLD by ${n}`).toBe(((x << BigInt(n)) >> 32n) & 0xffffn);
      expect(h.lp.getReg('rflags') & CF, `SHLD CF by ${n}`).toBe((x >> BigInt(48 - n)) & 1n);
      h.run([0x66, 0x0f, 0xac, 0xd3, n], { rbx: dst, rdx: src });
      expect(h.lp.getReg('rbx') & 0xffffn, `SHRD by ${n}`).toBe((x >> BigInt(n)) & 0xffffn);
      expect(h.lp.getReg('rflags') & CF, `SHRD CF by ${n}`).toBe((x >> BigInt(n - 1)) & 1n);
    }
  });

  it('works in 32-bit code (compatibility mode) as 64-bit-by-32 shifts do in __ashldi3', () => {
    // shld edx, eax, cl: EDX:EAX = 0x00000001_80000000 << 4
    expect(h.run([0x0f, 0xa5, 0xc2], { rax: 0x80000000n, rdx: 1n, rcx: 4n }, { compat: true })).toBe(NO_EXCEPTION);
    expect(h.lp.getReg('rdx') & 0xffffffffn).toBe(0x18n);
  });

  it('LOCK SHLD is #UD', () => {
    expect(h.run([0xf0, 0x0f, 0xa4, 0x16, 0x01], { rsi: BigInt(DATA) })).toBe(6);
  });
});

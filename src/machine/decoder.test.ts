// Differential test: for every opcode the decoder supports, random prefixes/ModRM/SIB/displacement/immediate
// bytes must decode to the same length and operands as iced-x86's decoder (an independent implementation).
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { Decoder, DecoderOptions, Code, OpKind, Register } from 'iced-x86';
import { decode, supportedOpcodeKeys, opcodeHasModrm } from './decoder.ts';
import { Insn, OP_INVALID } from './insn.ts';

/** Opcodes whose ModRM.reg is an opcode extension, not a register. */
const REG_IS_EXTENSION = new Set([0x80, 0x81, 0x82, 0x83, 0x8f, 0xc0, 0xc1, 0xc6, 0xc7, 0xd0, 0xd1, 0xd2, 0xd3, 0xf6, 0xf7,
  0xfe, 0xff, 0xd8, 0xd9, 0xda, 0xdb, 0xdc, 0xdd, 0xde, 0xdf, 0x100, 0x101, 0x118, 0x119, 0x11a, 0x11b, 0x11c, 0x11d, 0x11e, 0x11f, 0x1ae, 0x1ba, 0x1c7,
  // SETcc ignores ModRM.reg.
  0x190, 0x191, 0x192, 0x193, 0x194, 0x195, 0x196, 0x197, 0x198, 0x199, 0x19a, 0x19b, 0x19c, 0x19d, 0x19e, 0x19f]);

const GPR_BASE = ['AX', 'CX', 'DX', 'BX', 'SP', 'BP', 'SI', 'DI'];
/** iced register → our number (GPRs 0–15, segment 0–5, CRn/DRn n); null for others. */
function regNumber(r: Register): number | null {
  const name = Register[r] as string;
  let m = /^R(\d+)[DWL]?$/.exec(name);
  if (m) return Number(m[1]);
  m = /^[RE]?([A-Z]{2})$/.exec(name);
  if (m && GPR_BASE.includes(m[1]!)) return GPR_BASE.indexOf(m[1]!);
  if (/^(SP|BP|SI|DI)L$/.test(name)) return GPR_BASE.indexOf(name.slice(0, 2));
  if (['AL', 'CL', 'DL', 'BL'].includes(name)) return ['AL', 'CL', 'DL', 'BL'].indexOf(name);
  if (['AH', 'CH', 'DH', 'BH'].includes(name)) return 4 + ['AH', 'CH', 'DH', 'BH'].indexOf(name);
  const seg = ['ES', 'CS', 'SS', 'DS', 'FS', 'GS'].indexOf(name);
  if (seg >= 0) return seg;
  m = /^(CR|DR)(\d+)$/.exec(name);
  if (m) return Number(m[2]);
  return null;
}

function opcodeBytes(key: number): number[] {
  if (key < 0x100) return [key];
  if (key < 0x200) return [0x0f, key & 0xff];
  if (key < 0x300) return [0x0f, 0x38, key & 0xff];
  return [0x0f, 0x3a, key & 0xff];
}

interface Compared { checked: number; skipped: number }

function compareOne(bits: 16 | 32 | 64, bytes: Uint8Array, stats: Compared): void {
  const ours = new Insn();
  let faulted = false;
  try {
    decode(ours, bits, { byte: (i) => (i < bytes.length ? bytes[i]! : 0) });
  } catch {
    faulted = true; // > 15 bytes: #GP
  }
  const dec = new Decoder(bits, bytes, DecoderOptions.None);
  dec.ip = 0n;
  const ins = dec.decode();
  try {
    // iced-x86 folds WAIT into a following FNINIT/FNSTCW/… (FINIT, FSTCW …); the CPU executes WAIT on its own.
    const waitFolded = ours.op === 0x9b && ins.length > ours.len;
    if (ins.code === Code.INVALID || faulted || ours.op === OP_INVALID || waitFolded) {
      stats.skipped++;
      return;
    }
    stats.checked++;
    const where = `bytes ${Buffer.from(bytes.subarray(0, ins.length || 15)).toString('hex')} (${bits}-bit)`;
    expect(ours.len, `length of ${where}`).toBe(ins.length);
    const regs: number[] = [];
    for (let i = 0; i < ins.opCount; i++) {
      const k = ins.opKind(i);
      if (k === OpKind.Register) {
        const n = regNumber(ins.opRegister(i));
        if (n !== null) regs.push(n);
      } else if (k === OpKind.Memory) {
        expect(ours.mem, `memory operand of ${where}`).toBe(true);
        if (ins.memoryBase === Register.RIP || ins.memoryBase === Register.EIP) {
          expect(ours.ripRel, where).toBe(true);
          expect(BigInt.asUintN(bits === 64 && ours.addrSize === 8 ? 64 : 32, BigInt(ours.len + ours.disp)), `rip-relative target of ${where}`)
            .toBe(BigInt.asUintN(ours.addrSize === 8 ? 64 : 32, ins.memoryDisplacement));
        } else if (ours.op < 0xa0 || ours.op > 0xa3) {
          const base = ins.memoryBase === Register.None ? -1 : regNumber(ins.memoryBase);
          const index = ins.memoryIndex === Register.None ? -1 : regNumber(ins.memoryIndex);
          expect(ours.base, `base of ${where}`).toBe(base);
          expect(ours.index, `index of ${where}`).toBe(index);
          if (index !== -1) expect(1 << ours.scale, `scale of ${where}`).toBe(ins.memoryIndexScale);
          const w = ours.addrSize * 8;
          expect(BigInt.asUintN(w, BigInt(ours.disp)), `displacement of ${where}`).toBe(BigInt.asUintN(w, ins.memoryDisplacement));
        } else {
          const off = ours.addrSize === 8 ? (BigInt(ours.immHi >>> 0) << 32n) | BigInt(ours.disp >>> 0) : BigInt(ours.disp >>> 0);
          expect(off, `moffs of ${where}`).toBe(BigInt.asUintN(64, ins.memoryDisplacement));
        }
      } else if (k >= OpKind.Immediate8 && k <= OpKind.Immediate32to64 && k !== OpKind.Immediate8_2nd && ours.op !== 0xd0 && ours.op !== 0xd1) {
        // (D0/D1 "shift by 1": iced shows the implicit 1 as an immediate operand.)
        const v = ins.immediate(i);
        const width = k === OpKind.Immediate8 ? 8 : k === OpKind.Immediate16 ? 16 : k === OpKind.Immediate64 || k === OpKind.Immediate32to64 || k === OpKind.Immediate8to64 ? 64 : 32;
        const mine = width === 64 ? (BigInt(ours.immHi >>> 0) << 32n) | BigInt(ours.imm >>> 0) : BigInt(ours.imm >>> 0);
        expect(BigInt.asUintN(width, mine), `immediate of ${where}`).toBe(BigInt.asUintN(width, v));
      } else if (k === OpKind.NearBranch64 || k === OpKind.NearBranch32 || k === OpKind.NearBranch16) {
        const target = k === OpKind.NearBranch64 ? ins.nearBranch64 : BigInt(k === OpKind.NearBranch32 ? ins.nearBranch32 : ins.nearBranch16);
        const w = k === OpKind.NearBranch64 ? 64 : k === OpKind.NearBranch32 ? 32 : 16;
        expect(BigInt.asUintN(w, BigInt(ours.len + ours.imm)), `branch target of ${where}`).toBe(BigInt.asUintN(w, target));
      } else if (k === OpKind.FarBranch16 || k === OpKind.FarBranch32) {
        expect(ours.imm2, `far selector of ${where}`).toBe(ins.farBranchSelector);
        expect(ours.imm >>> 0, `far offset of ${where}`).toBe(k === OpKind.FarBranch16 ? ins.farBranch16 : ins.farBranch32);
      }
    }
    // Explicit register operands from ModRM.
    if (opcodeHasModrm(ours.op)) {
      const explicit: number[] = [];
      // MOV Sreg ignores REX.R (the segment is reg & 7).
      if (!REG_IS_EXTENSION.has(ours.op)) explicit.push(ours.op === 0x8c || ours.op === 0x8e ? ours.reg & 7 : ours.reg);
      // 0F 01 with mod = 3 encodes VMCALL/VMLAUNCH/… in rm: no register, except SMSW/LMSW.
      // x87 register forms name ST(i) (or nothing) in rm.
      const rmIsOpcode = (ours.op === 0x101 && (ours.reg & 7) !== 4 && (ours.reg & 7) !== 6) || ours.op === 0x1ae || (ours.op >= 0xd8 && ours.op <= 0xdf);
      if (!ours.mem && !rmIsOpcode) explicit.push(ours.rm);
      for (const r of explicit) expect(regs, `register operands of ${where}`).toContain(r);
    }
  } finally {
    ins.free();
    dec.free();
  }
}

const PREFIXES = [0x66, 0x67, 0xf0, 0x2e, 0x3e, 0x26, 0x36, 0x64, 0x65, 0xf2, 0xf3];

describe('decoder vs iced-x86', () => {
  for (const bits of [64, 32, 16] as const) {
    it(`every supported opcode, ${bits}-bit mode`, () => {
      const stats: Compared = { checked: 0, skipped: 0 };
      for (const key of supportedOpcodeKeys()) {
        fc.assert(fc.property(
          fc.subarray(PREFIXES, { maxLength: 3 }),
          fc.option(fc.integer({ min: 0x40, max: 0x4f }), { nil: undefined }),
          fc.uint8Array({ minLength: 12, maxLength: 12 }),
          (prefixes, rex, tail) => {
            // F2/F3 select different instructions for many 0F opcodes (POPCNT, TZCNT …): only legacy opcodes get them.
            const pre = key >= 0x100 ? prefixes.filter((p) => p !== 0xf2 && p !== 0xf3 && p !== 0x66) : prefixes;
            const bytes = new Uint8Array([...pre, ...(bits === 64 && rex !== undefined ? [rex] : []), ...opcodeBytes(key), ...tail]);
            compareOne(bits, bytes, stats);
          }), { numRuns: bits === 64 ? 60 : 25, seed: key * 7919 + bits });
      }
      // The test must actually compare most forms, not skip them.
      expect(stats.checked).toBeGreaterThan(stats.skipped);
    }, 60_000);
  }
  it('decodes RDPMC, MONITOR, MWAIT, RDRAND, RDSEED and INVPCID as iced-x86 does (mnemonic, length, operands)', () => {
    const forms: [string, number[], 16 | 32 | 64][] = [
      ['RDPMC', [0x0f, 0x33], 64], ['MONITOR', [0x0f, 0x01, 0xc8], 64], ['MWAIT', [0x0f, 0x01, 0xc9], 64],
      ['MONITOR', [0x0f, 0x01, 0xc8], 32], ['RDRAND', [0x48, 0x0f, 0xc7, 0xf0], 64], ['RDRAND', [0x66, 0x0f, 0xc7, 0xf1], 64],
      ['RDSEED', [0x41, 0x0f, 0xc7, 0xf9], 64], ['RDSEED', [0x0f, 0xc7, 0xfa], 32], ['INVPCID', [0x66, 0x0f, 0x38, 0x82, 0x03], 64],
      ['INVPCID', [0x66, 0x44, 0x0f, 0x38, 0x82, 0x44, 0x8b, 0x10], 64], ['INVPCID', [0x66, 0x0f, 0x38, 0x82, 0x0b], 32],
    ];
    for (const [name, b, bits] of forms) {
      const d = new Insn();
      decode(d, bits, { byte: (i) => b[i] ?? 0x90 });
      expect(d.op, `${name} ${Buffer.from(b).toString('hex')}`).not.toBe(OP_INVALID);
      const dec = new Decoder(bits, new Uint8Array(b), DecoderOptions.None);
      const ins = dec.decode();
      expect(Code[ins.code]!.toUpperCase().startsWith(name), `iced says ${Code[ins.code]}`).toBe(true);
      ins.free();
      dec.free();
      compareOne(bits, new Uint8Array([...b, 0x90, 0x90, 0x90]), { checked: 0, skipped: 0 });
    }
    // F3H turns the register forms of 0F C7 /6 and /7 into other instructions (SENDUIPI, RDPID): not RDRAND/RDSEED.
    const d = new Insn();
    decode(d, 64, { byte: (i) => [0xf3, 0x0f, 0xc7, 0xf8][i] ?? 0x90 });
    expect(d.op).toBe(OP_INVALID);
    expect(d.invalidKind).toBe('unimplemented');
  });

  it('decodes every VMX instruction form', () => {
    const forms: [string, number[]][] = [
      ['VMXON [rax]', [0xf3, 0x0f, 0xc7, 0x30]], ['VMCLEAR [rax]', [0x66, 0x0f, 0xc7, 0x30]], ['VMPTRLD [rax]', [0x0f, 0xc7, 0x30]],
      ['VMPTRST [rax]', [0x0f, 0xc7, 0x38]], ['VMREAD rax, rcx', [0x0f, 0x78, 0xc8]], ['VMWRITE rcx, rax', [0x0f, 0x79, 0xc8]],
      ['VMLAUNCH', [0x0f, 0x01, 0xc2]], ['VMRESUME', [0x0f, 0x01, 0xc3]], ['VMXOFF', [0x0f, 0x01, 0xc4]], ['VMCALL', [0x0f, 0x01, 0xc1]],
      ['VMFUNC', [0x0f, 0x01, 0xd4]], ['INVEPT rax, [rcx]', [0x66, 0x0f, 0x38, 0x80, 0x01]], ['INVVPID rax, [rcx]', [0x66, 0x0f, 0x38, 0x81, 0x01]],
    ];
    for (const [name, b] of forms) {
      const d = new Insn();
      decode(d, 64, { byte: (i) => b[i] ?? 0x90 });
      expect(d.op, name).not.toBe(OP_INVALID);
      const dec = new Decoder(64, new Uint8Array(b), DecoderOptions.None);
      const ins = dec.decode();
      expect(d.len, name).toBe(ins.length);
      ins.free();
      dec.free();
    }
  });
});

describe('decoder vs iced-x86: the instructions freestanding gcc kernels need', () => {
  // Mnemonic (prefix of iced's Code name), bytes, mode. Each must decode (not OP_INVALID) with iced's length and operands.
  const forms: [string, number[], 16 | 32 | 64][] = [
    ['SHLD', [0x0f, 0xa4, 0xc1, 0x05], 64], ['SHLD', [0x66, 0x0f, 0xa5, 0xc8], 32], ['SHLD', [0x48, 0x0f, 0xa4, 0x10, 0x3f], 64],
    ['SHRD', [0x48, 0x0f, 0xac, 0x10, 0x07], 64], ['SHRD', [0x0f, 0xad, 0xd0], 32], ['SHRD', [0x0f, 0xad, 0x44, 0x08], 16],
    ['TZCNT', [0xf3, 0x0f, 0xbc, 0xc1], 64], ['TZCNT', [0xf3, 0x48, 0x0f, 0xbc, 0x00], 64], ['LZCNT', [0xf3, 0x0f, 0xbd, 0x44, 0x24, 0x04], 32],
    ['CMPXCHG8B', [0x0f, 0xc7, 0x0e], 32], ['CMPXCHG8B', [0xf0, 0x0f, 0xc7, 0x0e], 32], ['CMPXCHG8B', [0xf0, 0x0f, 0xc7, 0x4c, 0x24, 0x10], 64],
    ['CMPXCHG16B', [0x48, 0x0f, 0xc7, 0x0f], 64], ['CMPXCHG16B', [0xf0, 0x49, 0x0f, 0xc7, 0x08], 64],
    ['PUSHA', [0x60], 32], ['PUSHA', [0x66, 0x60], 32], ['POPA', [0x61], 16], ['POPA', [0x61], 32],
    ['SAHF', [0x9e], 64], ['LAHF', [0x9f], 32], ['ENTER', [0xc8, 0x10, 0x00, 0x00], 64], ['ENTER', [0xc8, 0x08, 0x00, 0x02], 32],
    ['ENTER', [0x66, 0xc8, 0x34, 0x12, 0x01], 16],
    ['FNINIT', [0xdb, 0xe3], 32], ['FNCLEX', [0xdb, 0xe2], 64], ['FNSTCW', [0xd9, 0x7c, 0x24, 0x0e], 32], ['FLDCW', [0xd9, 0x6c, 0x24, 0x0e], 64],
    ['FNSTSW', [0xdf, 0xe0], 32], ['FNSTSW', [0xdd, 0x38], 64], ['FNOP', [0xd9, 0xd0], 32], ['WAIT', [0x9b], 32],
    ['FXSAVE', [0x0f, 0xae, 0x00], 32], ['FXRSTOR', [0x0f, 0xae, 0x4d, 0x10], 64], ['FXSAVE64', [0x48, 0x0f, 0xae, 0x07], 64],
    ['FXRSTOR64', [0x49, 0x0f, 0xae, 0x0c, 0x24], 64],
    ['LDMXCSR', [0x0f, 0xae, 0x16], 64], ['STMXCSR', [0x0f, 0xae, 0x5c, 0x24, 0x04], 32],
    ['XSAVE', [0x0f, 0xae, 0x26], 64], ['XRSTOR', [0x0f, 0xae, 0x6e, 0x40], 32], ['XSAVE64', [0x48, 0x0f, 0xae, 0x27], 64],
    ['XRSTOR64', [0x49, 0x0f, 0xae, 0x2f], 64],
    ['POPCNT', [0xf3, 0x0f, 0xb8, 0xc1], 32], ['POPCNT', [0xf3, 0x0f, 0xb8, 0x07], 16], ['POPCNT', [0xf3, 0x4c, 0x0f, 0xb8, 0x44, 0x24, 0x08], 64],
  ];
  it('decodes each form as iced-x86 does (mnemonic, length, operands)', () => {
    for (const [name, b, bits] of forms) {
      const where = `${name} ${Buffer.from(b).toString('hex')} (${bits}-bit)`;
      const d = new Insn();
      decode(d, bits, { byte: (i) => b[i] ?? 0x90 });
      expect(d.op, `${where}: ${d.invalidReason}`).not.toBe(OP_INVALID);
      expect(d.len, where).toBe(b.length);
      const dec = new Decoder(bits, new Uint8Array([...b, 0x90]), DecoderOptions.None);
      const ins = dec.decode();
      expect(Code[ins.code]!.toUpperCase().startsWith(name), `${where}: iced says ${Code[ins.code]}`).toBe(true);
      expect(ins.length, where).toBe(b.length);
      ins.free();
      dec.free();
      const stats = { checked: 0, skipped: 0 };
      compareOne(bits, new Uint8Array([...b, 0x90, 0x90, 0x90]), stats);
      expect(stats.checked, where).toBe(1);
    }
  });

  it('random operands of SHLD/SHRD, CMPXCHG8B/16B, ENTER and the x87 escapes agree with iced-x86, with F3H and LOCK too', () => {
    const stats: Compared = { checked: 0, skipped: 0 };
    for (const bits of [64, 32, 16] as const) {
      for (const opcode of [[0x0f, 0xa4], [0x0f, 0xa5], [0x0f, 0xac], [0x0f, 0xad], [0x0f, 0xbc], [0x0f, 0xbd], [0x0f, 0xc7], [0x0f, 0xae], [0x0f, 0xb8], [0xc8], [0x60], [0x61], [0x9e], [0x9f],
        [0xd8], [0xd9], [0xda], [0xdb], [0xdc], [0xdd], [0xde], [0xdf]]) {
        fc.assert(fc.property(
          fc.subarray([0xf3, 0xf0, 0x66, 0x67], { maxLength: 2 }),
          fc.option(fc.integer({ min: 0x40, max: 0x4f }), { nil: undefined }),
          fc.uint8Array({ minLength: 12, maxLength: 12 }),
          (prefixes, rex, tail) => {
            compareOne(bits, new Uint8Array([...prefixes, ...(bits === 64 && rex !== undefined ? [rex] : []), ...opcode, ...tail]), stats);
          }), { numRuns: 80, seed: opcode[opcode.length - 1]! * 31 + bits });
      }
    }
    expect(stats.checked).toBeGreaterThan(stats.skipped / 4);
  });

  it('refuses what the SDM makes #UD: register CMPXCHG8B, PUSHA/POPA in 64-bit mode, LOCK on SHLD; x87 arithmetic is "not implemented"', () => {
    const cases: [number[], 16 | 32 | 64, 'invalid' | 'unimplemented'][] = [
      [[0x0f, 0xc7, 0xc8], 32, 'invalid'], [[0x60], 64, 'invalid'], [[0x61], 64, 'invalid'], [[0xf0, 0x0f, 0xa4, 0x00, 0x01], 32, 'invalid'],
      [[0xf0, 0x0f, 0xae, 0x00], 64, 'invalid'], [[0xd8, 0xc1], 32, 'unimplemented'], [[0xdd, 0x00], 64, 'unimplemented'],
    ];
    for (const [b, bits, kind] of cases) {
      const d = new Insn();
      decode(d, bits, { byte: (i) => b[i] ?? 0x90 });
      expect(d.op, Buffer.from(b).toString('hex')).toBe(OP_INVALID);
      expect(d.invalidKind, `${Buffer.from(b).toString('hex')}: ${d.invalidReason}`).toBe(kind);
    }
    // LOCK CMPXCHG8B is lockable: no "LOCK prefix on an instruction that cannot be locked" any more.
    const d = new Insn();
    decode(d, 32, { byte: (i) => [0xf0, 0x0f, 0xc7, 0x0e][i] ?? 0x90 });
    expect(d.op).toBe(0x1c7);
  });
});

// The instruction decoder: legacy prefixes, REX, opcode, ModRM, SIB, displacement, immediate.
// See SDM Vol. 2A, "Instruction Format", "Instruction Prefixes", "REX Prefixes" and
// "Addressing-Mode Encoding of ModR/M and SIB Bytes"; Vol. 2D, "Opcode Map".
//
// Output goes into a reused `Insn`. Opcodes this emulator does not implement decode to OP_INVALID with an
// explanation saying whether the byte sequence is invalid x86 or merely not implemented by VMX Lab.

import { CpuFault } from './fault.ts';
import { Insn, OP_INVALID } from './insn.ts';
import { hexDigits } from '../util/hex.ts';
import { x87Implemented } from './isa/x87-minimal.ts';
import { notImplementedReason, type RefusedForm } from './not-implemented.ts';

/** Where instruction bytes come from; `byte(i)` is the i-th byte after the instruction start (may fault). */
export interface ByteSource {
  byte(offset: number): number;
}

// ---- The opcode table: one entry per opcode key, built once. ----
const MODRM = 1 << 0;
const IMM_SHIFT = 1;
const IMM_MASK = 0xf << IMM_SHIFT;
const I_NONE = 0, I_8 = 1, I_16 = 2, I_Z = 3, I_V = 4, I_16_8 = 5, I_FAR = 6, I_MOFFS = 7, I_REL8 = 8, I_RELZ = 9;
/** Default operand size 64 in 64-bit mode (66H selects 16). See SDM Vol. 2A, "Instructions Defaulting to 64-Bit Operand Size". */
const D64 = 1 << 5;
/** Operand size forced to 64 in 64-bit mode (near branches; 66H ignored as on Intel CPUs). */
const F64 = 1 << 6;
/** Invalid in 64-bit mode. */
const INV64 = 1 << 7;
const SUPPORTED = 1 << 8;

const TABLE = new Uint16Array(0x400);

function def(keys: number[] | number, flags: number): void {
  for (const k of Array.isArray(keys) ? keys : [keys]) TABLE[k] = flags | SUPPORTED;
}
function range(a: number, b: number): number[] {
  const r: number[] = [];
  for (let i = a; i <= b; i++) r.push(i);
  return r;
}
const imm = (t: number): number => t << IMM_SHIFT;

// One-byte opcodes. See SDM Vol. 2D, "One-byte Opcode Map".
for (const base of [0x00, 0x08, 0x10, 0x18, 0x20, 0x28, 0x30, 0x38]) {
  def([base, base + 1, base + 2, base + 3], MODRM);
  def(base + 4, imm(I_8));
  def(base + 5, imm(I_Z));
}
def([0x06, 0x07, 0x0e, 0x16, 0x17, 0x1e, 0x1f], INV64); // PUSH/POP ES CS SS DS
def(range(0x40, 0x4f), 0); // INC/DEC r (not reached in 64-bit mode: REX)
def(range(0x50, 0x5f), D64);
def([0x60, 0x61], INV64); // PUSHA/POPA. See SDM Vol. 2B, "PUSHA/PUSHAD" and "POPA/POPAD".
def(0x63, MODRM); // MOVSXD (64-bit mode); ARPL elsewhere is rejected in the interpreter
def(0x68, imm(I_Z) | D64);
def(0x69, MODRM | imm(I_Z));
def(0x6a, imm(I_8) | D64);
def(0x6b, MODRM | imm(I_8));
def(range(0x6c, 0x6f), 0); // INS/OUTS
def(range(0x70, 0x7f), imm(I_REL8) | F64);
def([0x80, 0x82], MODRM | imm(I_8));
TABLE[0x82]! |= INV64;
def(0x81, MODRM | imm(I_Z));
def(0x83, MODRM | imm(I_8));
def(range(0x84, 0x8e), MODRM);
def(0x8f, MODRM | D64);
def(range(0x90, 0x99), 0);
def(0x9b, 0); // WAIT/FWAIT
def(0x9c, D64);
def(0x9d, D64);
def([0x9e, 0x9f], 0); // SAHF, LAHF
def(range(0xa0, 0xa3), imm(I_MOFFS));
def(range(0xa4, 0xa7), 0);
def(0xa8, imm(I_8));
def(0xa9, imm(I_Z));
def(range(0xaa, 0xaf), 0);
def(range(0xb0, 0xb7), imm(I_8));
def(range(0xb8, 0xbf), imm(I_V));
def([0xc0, 0xc1], MODRM | imm(I_8));
def(0xc2, imm(I_16) | F64);
def(0xc3, F64);
def(0xc6, MODRM | imm(I_8));
def(0xc7, MODRM | imm(I_Z));
def(0xc8, imm(I_16_8) | D64); // ENTER imm16, imm8. See SDM Vol. 2A, "ENTER—Make Stack Frame for Procedure Parameters".
def(0xc9, D64);
def(0xca, imm(I_16));
def(0xcb, 0);
def(0xcc, 0);
def(0xcd, imm(I_8));
def(0xcf, 0);
def(range(0xd0, 0xd3), MODRM);
def(range(0xd8, 0xdf), MODRM); // x87 escapes: the forms isa/x87-minimal.ts implements, the rest "not implemented"
def(range(0xe0, 0xe3), imm(I_REL8) | F64);
def(range(0xe4, 0xe7), imm(I_8));
def([0xe8, 0xe9], imm(I_RELZ) | F64);
def(0xea, imm(I_FAR) | INV64);
def(0xeb, imm(I_REL8) | F64);
def(range(0xec, 0xef), 0);
def(0xf1, 0);
def([0xf4, 0xf5], 0);
def([0xf6, 0xf7], MODRM); // immediate for /0 /1 added by the decoder
def(range(0xf8, 0xfd), 0);
def([0xfe, 0xff], MODRM); // FF /2 /4 /6 get 64-bit default size from the decoder

// Two-byte opcodes (0F xx). See SDM Vol. 2D, "Two-byte Opcode Map".
const T = 0x100;
def([T + 0x00, T + 0x01], MODRM);
def(T + 0x06, 0); // CLTS
def([T + 0x05, T + 0x07], 0); // SYSCALL, SYSRET (REX.W: to 64-bit code). See SDM Vol. 2B, "SYSCALL—Fast System Call".
def([T + 0x08, T + 0x09, T + 0x0b], 0); // INVD WBINVD UD2
def(range(T + 0x18, T + 0x1f), MODRM); // hint NOPs / NOP r/m
def(range(T + 0x20, T + 0x23), MODRM | F64);
def([T + 0x30, T + 0x31, T + 0x32, T + 0x33], 0); // WRMSR RDTSC RDMSR RDPMC
def([T + 0x34, T + 0x35], 0); // SYSENTER, SYSEXIT (REX.W: to 64-bit code). See SDM Vol. 2B, "SYSENTER—Fast System Call".
def(range(T + 0x40, T + 0x4f), MODRM);
def([T + 0x78, T + 0x79], MODRM | F64); // VMREAD/VMWRITE: 64-bit operands in 64-bit mode
def(range(T + 0x80, T + 0x8f), imm(I_RELZ) | F64);
def(range(T + 0x90, T + 0x9f), MODRM);
def([T + 0xa0, T + 0xa1, T + 0xa8, T + 0xa9], D64);
def(T + 0xa2, 0);
def([T + 0xa3, T + 0xab, T + 0xb3, T + 0xbb], MODRM);
def([T + 0xa4, T + 0xac], MODRM | imm(I_8)); // SHLD/SHRD r/m, r, imm8
def([T + 0xa5, T + 0xad], MODRM); // SHLD/SHRD r/m, r, CL
def([T + 0xae, T + 0xaf], MODRM);
def([T + 0xb0, T + 0xb1, T + 0xc0, T + 0xc1], MODRM); // CMPXCHG, XADD
def([T + 0xb6, T + 0xb7, T + 0xbe, T + 0xbf, T + 0xbc, T + 0xbd], MODRM);
def(T + 0xb8, MODRM); // POPCNT (with F3H)
def(T + 0xba, MODRM | imm(I_8));
def(T + 0xc7, MODRM);
def(range(T + 0xc8, T + 0xcf), 0); // BSWAP
// Three-byte 0F 38: INVEPT / INVVPID / INVPCID (66H). See SDM Vol. 3C, "INVEPT" and "INVVPID", Vol. 2A, "INVPCID".
def([0x280, 0x281, 0x282], MODRM | F64);

// Opcodes that are invalid (always, or in 64-bit mode). Everything else not SUPPORTED is valid x86 that
// VMX Lab does not implement, and its #UD explanation says so.
const INVALID_ALWAYS = new Set<number>([0xd6, T + 0x04, T + 0x0a, T + 0x0c, T + 0x0e, T + 0x0f, T + 0x24, T + 0x25,
  T + 0x26, T + 0x27, T + 0x36, T + 0x39, T + 0x3b, T + 0x3c, T + 0x3d, T + 0x3e, T + 0x3f, T + 0x7a, T + 0x7b, T + 0xff,
  // 0F A6/A7 are undefined on Intel processors (VIA's PadLock used A7); 0F B9 is UD1, whose definition is #UD.
  T + 0xa6, T + 0xa7, T + 0xb9]);
const INVALID_IN_64 = new Set<number>([0x06, 0x07, 0x0e, 0x16, 0x17, 0x1e, 0x1f, 0x27, 0x2f, 0x37, 0x3f, 0x60, 0x61,
  0x62, 0x82, 0x9a, 0xce, 0xd4, 0xd5, 0xea]);

// 16-bit ModRM addressing: base/index per rm value. See SDM Vol. 2A,
// "16-Bit Addressing Forms with the ModR/M Byte".
const RM16_BASE = [3, 3, 5, 5, 6, 7, 5, 3]; // BX BX BP BP SI DI BP BX
const RM16_INDEX = [6, 7, 6, 7, -1, -1, -1, -1]; // SI DI SI DI

const SEG_PREFIX: Record<number, number> = { 0x26: 0, 0x2e: 1, 0x36: 2, 0x3e: 3, 0x64: 4, 0x65: 5 };
const DS = 3, SS = 2;
export const MAX_INSN_LENGTH = 15;

/**
 * Decode one instruction for a code segment of `bits` (16, 32, 64) into `d`.
 * Faults: #PF from the byte source; #GP(0) when the instruction would exceed 15 bytes.
 */
export function decode(d: Insn, bits: 16 | 32 | 64, src: ByteSource): void {
  let p = 0;
  let b = 0;
  let has66 = false, has67 = false, rep = 0, lock = false, segOv = -1, rex = 0;
  const next = (): number => {
    if (p >= MAX_INSN_LENGTH) {
      throw new CpuFault(13, 0, 'instruction longer than 15 bytes', 'SDM Vol. 2A, "Instruction Format"');
    }
    return src.byte(p++);
  };
  // Legacy prefixes (any order), then REX (64-bit mode only, must immediately precede the opcode).
  for (;;) {
    b = next();
    if (b === 0x66) has66 = true;
    else if (b === 0x67) has67 = true;
    else if (b === 0xf2 || b === 0xf3) rep = b;
    else if (b === 0xf0) lock = true;
    else if (b in SEG_PREFIX) {
      const s = SEG_PREFIX[b]!;
      // In 64-bit mode the ES/CS/SS/DS overrides are ignored (still decoded). See SDM Vol. 1,
      // "Segmentation in IA-32e Mode".
      if (bits !== 64 || s >= 4) segOv = s;
    } else break;
    rex = 0;
  }
  if (bits === 64 && (b & 0xf0) === 0x40) {
    rex = b;
    b = next();
    // A REX followed by another prefix is ignored; legacy prefixes after REX are not prefixes any more:
    // we treat a second REX as the effective one (as hardware does) and stop on anything else.
    while ((b & 0xf0) === 0x40) {
      rex = b;
      b = next();
    }
  }
  let key = b;
  if (b === 0x0f) {
    b = next();
    if (b === 0x38) key = 0x200 + next();
    else if (b === 0x3a) key = 0x300 + next();
    else key = 0x100 + b;
  }
  const flags = TABLE[key]!;
  const rexW = (rex & 8) !== 0;

  d.bits = bits;
  d.has66 = has66;
  d.rep = rep;
  d.lock = lock;
  d.rex = rex;
  d.segOverride = segOv;
  d.invalidKind = '';
  d.invalidReason = '';
  d.invalidKey = -1;
  d.mem = false;
  d.ripRel = false;
  d.base = -1;
  d.index = -1;
  d.scale = 0;
  d.disp = 0;
  d.imm = 0;
  d.immHi = 0;
  d.imm2 = 0;
  d.mod = 3;
  d.reg = 0;
  d.rm = 0;

  // Operand and address size. See SDM Vol. 2A, "Operand-Size and Address-Size Attributes".
  let opSize: number;
  if (bits === 64) {
    if (rexW) opSize = 8;
    else if (flags & F64) opSize = 8;
    else if (flags & D64) opSize = has66 ? 2 : 8;
    else opSize = has66 ? 2 : 4;
    d.addrSize = has67 ? 4 : 8;
  } else {
    const def32 = bits === 32;
    opSize = def32 !== has66 ? 4 : 2;
    d.addrSize = def32 !== has67 ? 4 : 2;
  }

  if (!(flags & SUPPORTED) || (bits === 64 && flags & INV64)) {
    d.op = OP_INVALID;
    d.len = p;
    d.opSize = opSize;
    classifyInvalid(d, key, bits, src, p);
    return;
  }

  // ModRM / SIB / displacement.
  if (flags & MODRM) {
    const m = next();
    // MOV to/from CR/DR ignore ModRM.mod: the r/m operand is always a register, no SIB/displacement follows.
    // See SDM Vol. 2B, "MOV—Move to/from Control Registers".
    const mod = key >= 0x120 && key <= 0x123 ? 3 : m >>> 6;
    const reg = ((m >>> 3) & 7) | ((rex & 4) << 1);
    let rm = m & 7;
    d.mod = mod;
    d.reg = reg;
    if (mod === 3) {
      d.rm = rm | ((rex & 1) << 3);
    } else {
      d.mem = true;
      let seg = DS;
      if (d.addrSize === 2) {
        // 16-bit addressing has no SIB; rm selects a base/index pair.
        if (mod === 0 && rm === 6) {
          d.disp = next() | (next() << 8);
          d.disp = (d.disp << 16) >> 16;
        } else {
          d.base = RM16_BASE[rm]!;
          d.index = RM16_INDEX[rm]!;
          if (d.base === 5) seg = SS;
          if (mod === 1) d.disp = (next() << 24) >> 24;
          else if (mod === 2) d.disp = ((next() | (next() << 8)) << 16) >> 16;
        }
      } else {
        if (rm === 4) {
          const sib = next();
          const scale = sib >>> 6;
          const index = ((sib >>> 3) & 7) | ((rex & 2) << 2);
          const base = sib & 7;
          if (index !== 4) {
            d.index = index;
            d.scale = scale;
          }
          if (base === 5 && mod === 0) {
            d.base = -1;
            d.disp = next() | (next() << 8) | (next() << 16) | (next() << 24);
          } else {
            d.base = base | ((rex & 1) << 3);
          }
        } else if (rm === 5 && mod === 0) {
          d.disp = next() | (next() << 8) | (next() << 16) | (next() << 24);
          if (bits === 64) d.ripRel = true;
        } else {
          d.base = rm | ((rex & 1) << 3);
        }
        if (mod === 1) d.disp = (next() << 24) >> 24;
        else if (mod === 2) d.disp = next() | (next() << 8) | (next() << 16) | (next() << 24);
        // RSP/RBP as base use SS by default. See SDM Vol. 1, "Default Segment Selection Rules".
        if (d.base === 4 || d.base === 5) seg = SS;
      }
      d.seg = segOv >= 0 ? segOv : seg;
      rm = -1;
      d.rm = -1;
    }
  } else {
    d.seg = segOv >= 0 ? segOv : DS;
  }

  // Group-dependent sizes and immediates.
  let immType = (flags & IMM_MASK) >>> IMM_SHIFT;
  if ((key === 0xf6 || key === 0xf7) && (d.reg & 7) < 2) immType = key === 0xf6 ? I_8 : I_Z;
  if (key === 0xff && bits === 64) {
    const r = d.reg & 7;
    if (r === 2 || r === 4) opSize = 8; // near CALL/JMP indirect: always 64-bit
    else if (r === 6) opSize = rexW ? 8 : has66 ? 2 : 8; // PUSH r/m
  }
  d.opSize = opSize;

  switch (immType) {
    case I_NONE:
      break;
    case I_8:
      d.imm = (next() << 24) >> 24; // kept sign-extended; byte users mask it
      d.immHi = d.imm >> 31;
      break;
    case I_16:
      d.imm = next() | (next() << 8);
      break;
    case I_Z:
      if (opSize === 2) {
        d.imm = ((next() | (next() << 8)) << 16) >> 16;
      } else {
        d.imm = next() | (next() << 8) | (next() << 16) | (next() << 24);
      }
      d.immHi = d.imm >> 31;
      break;
    case I_V:
      if (opSize === 2) d.imm = next() | (next() << 8);
      else {
        d.imm = next() | (next() << 8) | (next() << 16) | (next() << 24);
        if (opSize === 8) d.immHi = next() | (next() << 8) | (next() << 16) | (next() << 24);
      }
      break;
    case I_16_8:
      d.imm = next() | (next() << 8);
      d.imm2 = next();
      break;
    case I_FAR:
      if (opSize === 2) d.imm = next() | (next() << 8);
      else d.imm = (next() | (next() << 8) | (next() << 16) | (next() << 24)) >>> 0;
      d.imm2 = next() | (next() << 8);
      break;
    case I_MOFFS: {
      // The offset has the address size (8 bytes in 64-bit mode). See SDM Vol. 2B, "MOV—Move", note on moffs.
      d.mem = true;
      if (d.addrSize === 2) d.disp = next() | (next() << 8);
      else {
        d.disp = next() | (next() << 8) | (next() << 16) | (next() << 24);
        if (d.addrSize === 8) d.immHi = next() | (next() << 8) | (next() << 16) | (next() << 24);
        else d.disp >>>= 0;
      }
      break;
    }
    case I_REL8:
      d.imm = (next() << 24) >> 24;
      break;
    case I_RELZ:
      if (opSize === 2 && bits !== 64) d.imm = ((next() | (next() << 8)) << 16) >> 16;
      else d.imm = next() | (next() << 8) | (next() << 16) | (next() << 24);
      break;
  }
  d.op = key;
  d.len = p;
  checkEncoding(d, key, bits);
}

/** Encodings inside supported opcodes that are still #UD (e.g. LEA with a register operand). */
function checkEncoding(d: Insn, key: number, bits: number): void {
  const r = d.reg & 7;
  let bad = '';
  let unimpl = '';
  switch (key) {
    case 0x8d: if (!d.mem) bad = 'LEA requires a memory operand'; break;
    case 0x8f: if (r !== 0) bad = '8F /r with r ≠ 0 is XOP/undefined'; break;
    case 0xc6: case 0xc7: if (r !== 0) unimpl = 'C6/C7 with /r ≠ 0 (XABORT/XBEGIN)'; break;
    case 0xfe: if (r > 1) bad = 'FE /2–/7 are undefined'; break;
    case 0xff: if (r === 7) bad = 'FF /7 is undefined'; else if ((r === 3 || r === 5) && !d.mem) bad = 'far CALL/JMP needs a memory operand'; break;
    case 0x63: if (bits !== 64) unimpl = 'ARPL'; break;
    case 0x100: if (r > 3) unimpl = 'VERR/VERW'; break;
    case 0x101: {
      if (d.mem) { if (r === 5) bad = '0F 01 /5 with memory is undefined'; break; }
      const rm = d.rm & 7;
      // r = 1: MONITOR (rm 0) and MWAIT (rm 1).
      const ok = (r === 0 && rm >= 1 && rm <= 4) || (r === 1 && rm <= 1) || (r === 2 && (rm === 0 || rm === 1 || rm === 4)) ||
        (r === 7 && (rm === 0 || rm === 1)) || r === 4 || r === 6;
      if (!ok) unimpl = `0F 01 ${(0xc0 | (r << 3) | rm).toString(16).toUpperCase()}`;
      break;
    }
    case 0x120: case 0x122: {
      const cr = d.reg;
      if (!(cr === 0 || cr === 2 || cr === 3 || cr === 4 || cr === 8)) bad = `CR${cr} does not exist`;
      break;
    }
    case 0x121: case 0x123:
      if (d.reg > 7) bad = `DR${d.reg} does not exist`;
      break;
    case 0x178: case 0x179: if (bits === 64 || bits === 32) { /* fine */ } break;
    case 0x1ae:
      // Memory: FXSAVE (/0), FXRSTOR (/1), LDMXCSR (/2), STMXCSR (/3), XSAVE (/4), XRSTOR (/5) without 66/F2/F3;
      // CLFLUSH (/7; 66H CLFLUSHOPT runs as it). Registers: LFENCE/MFENCE/SFENCE (/5–/7).
      if (d.mem ? !(r === 7 || (r <= 5 && !d.has66 && d.rep === 0)) : r < 5) unimpl = '0F AE /6 with memory (XSAVEOPT, CLWB) and 66/F2/F3-prefixed 0F AE /0–/5 forms';
      break;
    case 0x1ba: if (r < 4) bad = '0F BA /0–/3 are undefined'; break;
    case 0x1b8: if (d.rep !== 0xf3) bad = '0F B8 without F3H is JMPE, which exists only on Itanium processors'; break;
    // With F3H these are TZCNT/LZCNT where the model reports BMI1/LZCNT, else BSF/BSR: the interpreter decides.
    case 0x1c7: {
      // Memory forms: VMPTRLD/VMCLEAR/VMXON (/6), VMPTRST (/7). Register forms: RDRAND (/6), RDSEED (/7); with
      // F3H they are SENDUIPI and RDPID.
      // Memory /1: CMPXCHG8B (CMPXCHG16B with REX.W).
      const ok = d.mem ? r === 1 || (r === 6 && (d.rep === 0xf3 || d.rep === 0)) || (r === 6 && d.has66) || r === 7 : (r === 6 || r === 7) && d.rep === 0;
      if (!ok) unimpl = d.mem ? `0F C7 /${r} with memory (XRSTORS/XSAVEC/XSAVES)` : d.rep === 0xf3 ? 'RDPID/SENDUIPI' : '0F C7 register forms other than RDRAND/RDSEED';
      if (!d.mem && r === 1) bad = 'CMPXCHG8B/16B need a memory operand';
      break;
    }
    case 0xd8: case 0xd9: case 0xda: case 0xdb: case 0xdc: case 0xdd: case 0xde: case 0xdf:
      if (!x87Implemented(key, d.mem, d.reg, d.rm)) unimpl = `x87 ${hexDigits(key, 2)} ${d.mem ? `/${r} with memory` : hexDigits(0xc0 | (r << 3) | (d.rm & 7), 2)} (x87 arithmetic and the other x87 forms)`;
      break;
    case 0x280: case 0x281: case 0x282:
      if (!d.has66) bad = '0F 38 80/81/82 without 66H';
      else if (!d.mem) bad = 'INVEPT/INVVPID/INVPCID need a memory operand';
      break;
  }
  if (key >= 0x178 && key <= 0x179 && (d.has66 || d.rep)) bad = 'VMREAD/VMWRITE with 66/F2/F3 prefix';
  if (bad || unimpl) {
    d.invalidKind = bad ? 'invalid' : 'unimplemented';
    d.invalidReason = bad || notImplementedReason({ key, bits: bits as 16 | 32 | 64, mem: d.mem, reg: r, modrm: d.mem ? -1 : 0xc0 | (r << 3) | (d.rm & 7), has66: d.has66, rep: d.rep }, unimpl);
    d.op = OP_INVALID;
    d.invalidKey = key;
  }
  // LOCK misuse is judged only for instructions VMX Lab implements: for the others the "not implemented"
  // explanation stays (a LOCK CMPXCHG8B was once reported as a LOCK misuse because CMPXCHG8B was missing).
  if (d.lock && d.op !== OP_INVALID && !lockable(key, d)) {
    d.op = OP_INVALID;
    d.invalidKind = 'invalid';
    d.invalidKey = key;
    d.invalidReason = 'LOCK prefix on an instruction that cannot be locked (or with a register destination)';
  }
}

/** LOCK is allowed only on read-modify-write instructions with a memory destination. See SDM Vol. 2B, "LOCK". */
function lockable(key: number, d: Insn): boolean {
  if (!d.mem) return false;
  const r = d.reg & 7;
  if (key < 0x40 && (key & 7) < 2 && (key & 0x38) !== 0x38) return true; // ADD..XOR r/m, r (not CMP)
  if ((key === 0x80 || key === 0x81 || key === 0x83) && r !== 7) return true;
  if (key === 0x86 || key === 0x87) return true;
  if ((key === 0xf6 || key === 0xf7) && (r === 2 || r === 3)) return true;
  if ((key === 0xfe || key === 0xff) && r < 2) return true;
  if (key === 0x1ab || key === 0x1b3 || key === 0x1bb || (key === 0x1ba && r >= 5)) return true;
  if (key === 0x1b0 || key === 0x1b1 || key === 0x1c0 || key === 0x1c1) return true;
  if (key === 0x1c7 && r === 1) return true; // CMPXCHG8B/16B
  return false;
}

function classifyInvalid(d: Insn, key: number, bits: number, src: ByteSource, p: number): void {
  d.invalidKey = key;
  const text = key < 0x100 ? hexDigits(key, 2) : key < 0x200 ? `0F ${hexDigits(key & 0xff, 2)}` : key < 0x300 ? `0F 38 ${hexDigits(key & 0xff, 2)}` : `0F 3A ${hexDigits(key & 0xff, 2)}`;
  d.opcodeText = text;
  if (INVALID_ALWAYS.has(key) || (bits === 64 && INVALID_IN_64.has(key))) {
    d.invalidKind = 'invalid';
    d.invalidReason = `invalid opcode ${text}${bits === 64 && INVALID_IN_64.has(key) ? ' in 64-bit mode' : ''}`;
  } else {
    d.invalidKind = 'unimplemented';
    const form: RefusedForm = { key, bits: bits as 16 | 32 | 64, has66: d.has66, rep: d.rep, vex: key === 0xc4 || key === 0xc5 ? vexOf(key, bits, src, p) : undefined };
    d.invalidReason = notImplementedReason(form, `opcode ${text}`);
  }
}

/**
 * C4/C5 are VEX prefixes in 64-bit mode, and elsewhere when the next byte looks like a register ModRM (mod = 3);
 * otherwise they are LES/LDS. The VEX bytes only name the table row: a fault reading them leaves the form unknown.
 * See SDM Vol. 2A, "VEX and the LOCK prefix" and "VEX Prefix".
 */
function vexOf(key: number, bits: number, src: ByteSource, p: number): RefusedForm['vex'] {
  try {
    const b1 = src.byte(p);
    if (bits !== 64 && (b1 & 0xc0) !== 0xc0) return undefined; // LES/LDS
    if (key === 0xc5) return { map: 1, pp: b1 & 3, opcode: src.byte(p + 1) };
    return { map: b1 & 0x1f, pp: src.byte(p + 1) & 3, opcode: src.byte(p + 2) };
  } catch {
    return { map: 0, pp: 0, opcode: -1 };
  }
}


/** Opcode keys the decoder accepts (for the differential test against iced-x86 and for docs). */
export function supportedOpcodeKeys(): number[] {
  const keys: number[] = [];
  for (let k = 0; k < TABLE.length; k++) if (TABLE[k]! & SUPPORTED) keys.push(k);
  return keys;
}
/** True when the opcode has a ModRM byte. */
export function opcodeHasModrm(key: number): boolean {
  return (TABLE[key]! & MODRM) !== 0;
}

// The not-implemented table against iced-x86 (each row's example is real x86) and against the machine (the example
// raises #UD naming the row; the implemented neighbours the notes name do not).
import { describe, expect, it } from 'vitest';
import { Decoder, DecoderOptions } from 'iced-x86';
import { harness, NO_EXCEPTION, DATA } from './isa/testing-harness.ts';
import { NOT_IMPLEMENTED, MODES_NOT_IMPLEMENTED, notImplementedRow } from './not-implemented.ts';
import { Machine } from './machine.ts';
import { walk, ACCESS_READ } from './paging.ts';
import { CpuFault } from './fault.ts';
import { CR0, CR4 } from '../x86/control-registers.ts';
import { decode, supportedOpcodeKeys } from './decoder.ts';
import { Insn, OP_INVALID } from './insn.ts';

const UD = 6;
const h = harness();
const bytesOf = (hex: string): number[] => hex.split(' ').map((b) => parseInt(b, 16));

/** iced-x86's view of `bytes`: valid, and its length. */
function iced(bytes: number[], bits: 32 | 64): { invalid: boolean; length: number } {
  const dec = new Decoder(bits, Uint8Array.from(bytes), DecoderOptions.None);
  const ins = dec.decode();
  const r = { invalid: ins.isInvalid, length: ins.length };
  ins.free();
  dec.free();
  return r;
}

function decodeBytes(bytes: number[], bits: 32 | 64): Insn {
  const d = new Insn();
  decode(d, bits, { byte: (k) => bytes[k] ?? 0x90 });
  return d;
}

describe('the not-implemented table', () => {
  it('has unique ids', () => {
    const ids = [...NOT_IMPLEMENTED.map((r) => r.id), ...MODES_NOT_IMPLEMENTED.map((m) => m.id)];
    expect(new Set(ids).size).toBe(ids.length);
  });

  for (const row of NOT_IMPLEMENTED) {
    it(`${row.id}: the example ${row.example.bytes} is valid x86 (iced-x86) and raises #UD naming the row`, () => {
      const bytes = bytesOf(row.example.bytes);
      expect(iced(bytes, row.example.bits)).toEqual({ invalid: false, length: bytes.length });
      const d = decodeBytes(bytes, row.example.bits);
      expect(d.op).toBe(OP_INVALID);
      expect(d.invalidKind).toBe('unimplemented');
      const vector = h.run(bytes, { rax: BigInt(DATA), rbx: BigInt(DATA) }, { compat: row.example.bits === 32 });
      expect(vector).toBe(UD);
      const why = h.lp.lastFault!.explanation;
      expect(why).toMatch(/valid x86 but not implemented by VMX Lab/);
      expect(why).toContain(`(${row.name}, see /reference/not-implemented#ni-${row.id})`);
    });
  }

  it('names a row for every opcode the decoder refuses as valid but not implemented', () => {
    const supported = new Set(supportedOpcodeKeys());
    const prefixes = new Set([0x0f, 0x26, 0x2e, 0x36, 0x3e, 0x64, 0x65, 0x66, 0x67, 0xf0, 0xf2, 0xf3]);
    const unnamed: string[] = [];
    for (const bits of [64, 32] as const) {
      for (let key = 0; key < 0x400; key++) {
        if (supported.has(key) || prefixes.has(key) || (key >= 0x40 && key <= 0x4f) || key === 0x138 || key === 0x13a) continue;
        const opcode = key < 0x100 ? [key] : key < 0x200 ? [0x0f, key & 0xff] : [0x0f, key < 0x300 ? 0x38 : 0x3a, key & 0xff];
        const d = decodeBytes([...opcode, 0xc0, 0, 0, 0, 0], bits);
        if (d.invalidKind === 'unimplemented' && !d.invalidReason.includes('/reference/not-implemented#ni-')) unnamed.push(`${bits}: ${d.invalidReason}`);
      }
    }
    expect(unnamed).toEqual([]);
  });

  // Implemented instructions in each row's encoding space (the ones the notes name): none #UD, none matches a row.
  const NEIGHBOURS: Record<string, string[]> = {
    'x87-arithmetic': ['DB E3', 'D9 38', 'D9 28', 'DF E0', 'D9 D0', 'DB E2'], // FNINIT FNSTCW FLDCW FNSTSW AX FNOP FNCLEX
    'bmi1-vex': ['F3 0F BC C1'], // TZCNT
    'bmi2-vex': ['D3 E0', 'D3 E8'], // SHL/SHR r/m, CL
    'far-pointer-loads': ['8E D8'], // MOV DS, AX
    'mmx-sse': ['0F AE 00', '0F AE 08', '0F AE 10', '0F AE 18', '0F AE E8', '0F AE F0', '0F AE F8'],
    'sse-three-byte': ['66 0F 38 82 00'], // INVPCID
    'xsaveopt': ['0F AE 20', '0F AE 28'], // XSAVE XRSTOR
    'clwb': ['0F AE 38', '66 0F AE 38'], // CLFLUSH CLFLUSHOPT
    'xsavec-xsaves': ['0F C7 08'], // CMPXCHG8B
    'rdpid': ['0F C7 F0', '0F C7 F8', '0F 01 F9'], // RDRAND RDSEED RDTSCP
    'tsx': ['C6 00 01', 'C7 00 01 00 00 00'], // MOV r/m, imm
    'system-0f01': ['0F 01 F8', '0F 01 D0', '0F 01 00'], // SWAPGS XGETBV SGDT
    'prefetchw': ['0F 18 08'], // PREFETCHT0
  };
  for (const [id, list] of Object.entries(NEIGHBOURS)) {
    it(`${id}: the implemented neighbours ${list.join(', ')} do not #UD`, () => {
      expect(NOT_IMPLEMENTED.some((r) => r.id === id)).toBe(true);
      h.lp.cr4 |= CR4.OSFXSR | CR4.OSXSAVE; // the OS has enabled FXSAVE/SSE state and XSAVE
      for (const hex of list) {
        const bytes = bytesOf(hex);
        expect(iced(bytes, 64).invalid, hex).toBe(false);
        expect(decodeBytes(bytes, 64).op, hex).not.toBe(OP_INVALID);
        const vector = h.run(bytes, { rax: BigInt(DATA), rcx: 1n, rdx: 0n }, { cr0: { clear: 1 << 3 } });
        expect(vector === NO_EXCEPTION || vector !== UD, `${hex}: #UD ${h.lp.lastFault?.explanation}`).toBe(true);
      }
    });
  }

  it('legacy paging: the #GP(0) explanation names the mode row', () => {
    const lp = new Machine({}).cpus[0]!;
    lp.cr0 |= CR0.PE | CR0.PG; // EFER.LMA = 0: 32-bit paging
    let fault: unknown;
    try { walk(lp, 0x1000, ACCESS_READ, 0); } catch (e) { fault = e; }
    expect(fault).toBeInstanceOf(CpuFault);
    expect((fault as CpuFault).vector).toBe(13);
    expect((fault as CpuFault).explanation).toContain('32-bit and PAE paging not implemented by VMX Lab (see /reference/not-implemented#mode-legacy-paging)');
  });

  it('looks a row up by form', () => {
    expect(notImplementedRow({ key: 0x137, bits: 64 })?.id).toBe('getsec');
    expect(notImplementedRow({ key: 0xc4, bits: 64, vex: { map: 2, pp: 1, opcode: 0xf7 } })?.id).toBe('bmi2-vex');
    expect(notImplementedRow({ key: 0xc4, bits: 64, vex: { map: 2, pp: 0, opcode: 0xf7 } })?.id).toBe('bmi1-vex');
    expect(notImplementedRow({ key: 0xc4, bits: 32 })?.id).toBe('far-pointer-loads');
  });
});

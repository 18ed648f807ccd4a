// The trampoline image, checked by decoding it with iced-x86 and reading its tables by hand.
import { Decoder, DecoderOptions, Mnemonic } from 'iced-x86';
import { describe, expect, it } from 'vitest';
import { buildLongModeTrampoline, longModeTrampolineSource } from './long-mode-trampoline.ts';

const BASE = 0x8000;

function qword(bytes: Uint8Array, address: number): bigint {
  return new DataView(bytes.buffer, bytes.byteOffset).getBigUint64(address - BASE, true);
}

/** Mnemonics (lower case) from `from` up to the first instruction at or after `to`. */
function mnemonics(bytes: Uint8Array, bits: 16 | 32 | 64, from: number, to: number): string[] {
  const d = new Decoder(bits, bytes.slice(from - BASE, to - BASE), DecoderOptions.None);
  d.ip = BigInt(from);
  const out: string[] = [];
  while (d.canDecode) {
    const ins = d.decode();
    out.push(Mnemonic[ins.mnemonic]!.toLowerCase());
    ins.free();
  }
  d.free();
  return out;
}

describe('long-mode trampoline', () => {
  const t = buildLongModeTrampoline({ base: BASE, stack: 0x7000, body: 'hlt' });
  const L = (name: string) => t.labels.get(name)!;

  it('starts at the image base with the SIPI vector base >> 12', () => {
    expect(L('real16')).toBe(BASE);
    expect(t.sipiVector).toBe(8);
  });

  it('runs the documented steps in each mode', () => {
    expect(mnemonics(t.bytes, 16, L('real16'), L('prot32'))).toEqual(['cli', 'mov', 'mov', 'lgdt', 'mov', 'or', 'mov', 'jmp']);
    expect(mnemonics(t.bytes, 32, L('prot32'), L('long64'))).toEqual([
      'mov', 'mov', 'mov', 'mov', 'mov', 'or', 'mov', 'mov', 'mov', 'mov', 'rdmsr', 'or', 'wrmsr', 'mov', 'or', 'mov', 'jmp',
    ]);
    // The 16-bit LGDT addresses the GDTR relative to CS base = BASE (DS = CS).
    const lgdt = t.bytes.slice(L('real16') + 5 - BASE, L('real16') + 10 - BASE);
    expect(Array.from(lgdt)).toEqual([0x0f, 0x01, 0x16, (L('gdtr') - BASE) & 0xff, (L('gdtr') - BASE) >> 8]);
  });

  it('has a GDT with flat 32-bit code, data and 64-bit code descriptors', () => {
    // Descriptor fields per SDM Vol. 3A, "Segment Descriptors": P=1, S=1, type A (code) / 2 (data);
    // G=1 and limit FFFFFH; D=1 for 32-bit code; L=1, D=0 for 64-bit code.
    expect(qword(t.bytes, L('gdt') + 8)).toBe(0x00cf9a000000ffffn);
    expect(qword(t.bytes, L('gdt') + 16)).toBe(0x00cf92000000ffffn);
    expect(qword(t.bytes, L('gdt') + 24)).toBe(0x00af9a000000ffffn);
    expect(new DataView(t.bytes.buffer).getUint16(L('gdtr') - BASE, true)).toBe(31);
    expect(new DataView(t.bytes.buffer).getUint32(L('gdtr') - BASE + 2, true)).toBe(L('gdt'));
  });

  it('identity-maps the first GiB with 2-MByte pages', () => {
    expect(t.pml4 % 4096).toBe(0);
    expect(qword(t.bytes, t.pml4)).toBe(BigInt(L('pdpt')) | 3n);
    expect(qword(t.bytes, L('pdpt'))).toBe(BigInt(L('pd')) | 3n);
    for (const i of [0, 1, 3, 511]) expect(qword(t.bytes, L('pd') + 8 * i)).toBe((BigInt(i) << 21n) | 0x83n);
    expect(qword(t.bytes, t.pml4 + 8)).toBe(0n);
  });

  it('jumps to an entry address when given one', () => {
    const j = buildLongModeTrampoline({ base: BASE, stack: 0x7000, entry: 0x123456 });
    expect(mnemonics(j.bytes, 64, j.labels.get('long64')!, j.labels.get('long64')! + 40).slice(4, 7)).toEqual(['mov', 'mov', 'jmp']);
  });

  it('rejects a base the SIPI vector cannot express', () => {
    expect(() => longModeTrampolineSource({ base: 0x8100, stack: 0 })).toThrow(/4-KByte aligned/);
    expect(() => longModeTrampolineSource({ base: 0x100000, stack: 0 })).toThrow(/below 1 MiB/);
  });
});

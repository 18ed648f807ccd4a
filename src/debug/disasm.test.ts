// Disassembly via iced-x86, checked on encodings written out from the SDM opcode tables.
import { describe, expect, it } from 'vitest';
import { disassemble, disassembleParts } from './disasm.ts';

const bytes = (...b: number[]) => Uint8Array.from(b);

describe('disassemble', () => {
  it('decodes a sequence with addresses, bytes and Intel-syntax text', () => {
    const code = bytes(
      0xb8, 0x01, 0x00, 0x00, 0x00, // B8+rd id: mov eax, 1
      0x0f, 0x01, 0xc2, //             0F 01 C2: vmlaunch
      0x48, 0x8b, 0x03, //             REX.W 8B /r: mov rax, [rbx]
      0xeb, 0xfe, //                   EB cb: jmp $
    );
    const lines = disassemble(code, { address: 0x8000n });
    expect(lines.map((l) => [l.address, Array.from(l.bytes), l.text])).toEqual([
      [0x8000n, [0xb8, 1, 0, 0, 0], 'mov eax, 0x1'],
      [0x8005n, [0x0f, 0x01, 0xc2], 'vmlaunch'],
      [0x8008n, [0x48, 0x8b, 0x03], 'mov rax, qword ptr [rbx]'],
      [0x800bn, [0xeb, 0xfe], 'jmp 0x800b'],
    ]);
  });

  it('honours count and a number address', () => {
    const lines = disassemble(bytes(0x90, 0x90, 0xf4), { address: 0x10, count: 2 });
    expect(lines.map((l) => [l.address, l.text])).toEqual([[0x10n, 'nop'], [0x11n, 'nop']]);
  });

  it('shows where a RIP-relative operand points', () => {
    // REX.W 8B /r with ModRM 05 (RIP + disp32 = 0x10) at 0x1000, 7 bytes long → 0x1017.
    const [line] = disassemble(bytes(0x48, 0x8b, 0x05, 0x10, 0, 0, 0), { address: 0x1000 });
    expect(line!.text).toBe('mov rax, qword ptr [rip+0x10]  # 0x1017');
  });

  it('decodes 16- and 32-bit code', () => {
    expect(disassemble(bytes(0xb8, 0x34, 0x12), { address: 0, bits: 16 })[0]!.text).toBe('mov ax, 0x1234');
    expect(disassemble(bytes(0xea, 0x00, 0x90, 0x00, 0x00, 0x08, 0x00), { address: 0, bits: 32 })[0]!.text).toBe('jmp far 0x9000, 0x8'); // iced's Intel form: offset, selector
  });

  it('turns undecodable and truncated bytes into one-byte "(bad)" lines and resynchronises', () => {
    // 06 (PUSH ES) is invalid in 64-bit mode; 48 alone is a REX prefix with no instruction after it.
    const lines = disassemble(bytes(0x06, 0x90, 0x48), { address: 0 });
    expect(lines.map((l) => [l.address, l.text])).toEqual([[0n, '(bad)'], [1n, 'nop'], [2n, '(bad)']]);
  });

  it('names branch targets and RIP-relative addresses with symbols, as gdb does', () => {
    // E8 rel32 at 0x8005 → 0x8005 + 5 - 10 = 0x8000; 48 8B 05 disp32 at 0x800a → 0x8011 + 0xf = 0x8020.
    const code = bytes(0xe8, 0xf6, 0xff, 0xff, 0xff, 0x48, 0x8b, 0x05, 0x0f, 0, 0, 0);
    const symbols = new Map([['start', 0x8000], ['data', 0x801c]]);
    expect(disassemble(code, { address: 0x8005, symbols }).map((l) => l.text)).toEqual([
      'call 0x8000 <start>',
      'mov rax, qword ptr [rip+0xf]  # 0x8020 <data+4>',
    ]);
  });

  it('splits prefixes with the mnemonic for aligned layouts', () => {
    const [p] = disassembleParts(bytes(0xf3, 0x48, 0xab), { address: 0 });
    expect([p!.mnemonic, p!.operands]).toEqual(['rep stosq', 'qword ptr [rdi]']);
  });
});

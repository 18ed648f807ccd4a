// Which instructions of a compiled kernel the emulated CPU would raise #UD on: every executable section of an ELF
// file (executable or object, 32- or 64-bit) is disassembled with iced-x86 and each instruction is decoded again by
// the emulator's decoder. What iced-x86 decodes and VMX Lab refuses is an ISA gap: "valid x86 but not implemented",
// or refused as invalid where iced-x86 (and the SDM) accept it (a decoder bug; a LOCK prefix on an unimplemented
// instruction is reported as "not implemented", not as a LOCK misuse).
// Each "not implemented" reason names its group in src/machine/not-implemented.ts (the site's /reference/not-implemented).
// This is the decoder's view: an instruction can still be refused when it runs (e.g. MOV to CR0 setting PG outside
// IA-32e mode, since legacy paging is not implemented).
//
//   surveyElf(readFileSync('kernel.elf'))  → [{ address: 0x1002d0, text: 'shrx eax, eax, ecx', reason: '…' }, …]

import { Decoder, DecoderOptions, Formatter, FormatterSyntax } from 'iced-x86';
import { decode, type ByteSource } from '../machine/decoder.ts';
import { Insn, OP_INVALID } from '../machine/insn.ts';
import { isElf } from './elf.ts';

export interface IsaGap {
  /** Section address of the instruction (its link address in an executable, the offset in an object file). */
  readonly address: number;
  /** iced-x86's Intel-syntax text. */
  readonly text: string;
  /** The emulator's #UD explanation. */
  readonly reason: string;
  /** 'unimplemented': VMX Lab knows it is valid; 'invalid': VMX Lab calls it invalid, iced-x86 does not. */
  readonly kind: 'unimplemented' | 'invalid';
}

const SHF_EXECINSTR = 0x4;
/** Section header layout per class (gABI, "Sections"): offsets of sh_flags, sh_addr, sh_offset, sh_size. */
const SECTION = {
  32: { shoff: 32, shentsize: 46, shnum: 48, flags: 8, addr: 12, offset: 16, size: 20, word: 4 },
  64: { shoff: 40, shentsize: 58, shnum: 60, flags: 8, addr: 16, offset: 24, size: 32, word: 8 },
} as const;

/** The instructions in the ELF file's executable sections that iced-x86 decodes and VMX Lab's decoder refuses. */
export function surveyElf(bytes: Uint8Array): IsaGap[] {
  if (!isElf(bytes)) throw new Error('not an ELF file');
  const elfBits = bytes[4] === 1 ? 32 : 64;
  const S = SECTION[elfBits];
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const word = (off: number): number => (S.word === 4 ? view.getUint32(off, true) : Number(view.getBigUint64(off, true)));
  // An ELF64 file may hold 32-bit code (a multiboot kernel converted with objcopy): EM_X86_64 object files are
  // taken as 64-bit code, EM_386 as 32-bit, and an ELF64 executable by its class.
  const codeBits: 32 | 64 = view.getUint16(18, true) === 3 ? 32 : view.getUint16(16, true) === 1 ? 64 : elfBits;
  const shoff = word(S.shoff);
  const shentsize = view.getUint16(S.shentsize, true);
  const gaps: IsaGap[] = [];
  for (let i = 0; i < view.getUint16(S.shnum, true); i++) {
    const sh = shoff + i * shentsize;
    if ((word(sh + S.flags) & SHF_EXECINSTR) === 0) continue;
    const offset = word(sh + S.offset);
    gaps.push(...surveyCode(bytes.subarray(offset, offset + word(sh + S.size)), word(sh + S.addr), codeBits));
  }
  return gaps;
}

/** Survey raw code: `bytes` at `address`, decoded as `bits`-bit code. */
export function surveyCode(bytes: Uint8Array, address: number, bits: 16 | 32 | 64): IsaGap[] {
  const gaps: IsaGap[] = [];
  const decoder = new Decoder(bits, bytes, DecoderOptions.None);
  decoder.ip = BigInt(address);
  const formatter = new Formatter(FormatterSyntax.Intel);
  const insn = new Insn();
  try {
    while (decoder.canDecode) {
      const at = decoder.position;
      const ins = decoder.decode();
      try {
        if (ins.isInvalid) continue; // data in a code section (padding, jump tables): not an instruction
        const src: ByteSource = { byte: (k) => (at + k < bytes.length ? bytes[at + k]! : 0) };
        decode(insn, bits, src);
        if (insn.op === OP_INVALID) {
          gaps.push({ address: address + at, text: formatter.format(ins), reason: insn.invalidReason, kind: insn.invalidKind === 'unimplemented' ? 'unimplemented' : 'invalid' });
        }
      } finally {
        ins.free();
      }
    }
  } finally {
    formatter.free();
    decoder.free();
  }
  return gaps;
}

// `npx tsx src/boot/isa-survey.ts kernel.elf [more.o …]`: list what the emulator would refuse, one line each.
if (process.argv[1] !== undefined && process.argv[1].endsWith('isa-survey.ts')) {
  const { readFileSync } = await import('node:fs');
  let total = 0;
  for (const file of process.argv.slice(2)) {
    for (const g of surveyElf(readFileSync(file))) {
      process.stdout.write(`${file}: ${g.address.toString(16).padStart(8, '0')}  ${g.text.padEnd(32)} ${g.reason}\n`);
      total++;
    }
  }
  process.stdout.write(`${total} instruction(s) the emulator would refuse\n`);
  process.exitCode = total === 0 ? 0 : 1;
}

// Disassembly of guest code with iced-x86's decoder and its Intel-syntax formatter.
//
//   disassemble(bytes, { address: 0x8000n, count: 3 })
//   → [{ address: 0x8000n, bytes: [b8 01 00 00 00], text: 'mov eax, 0x1' }, ...]
//
// Undecodable bytes come out as "(bad)", one byte at a time, so a listing of garbage still lines
// up; an instruction cut off by the end of the buffer is "(bad)" too.
import { Decoder, DecoderOptions, Formatter, FormatterSyntax, MemorySizeOptions, OpKind } from 'iced-x86';
import type { Instruction } from 'iced-x86';
import { symbolize } from './symbols.ts';
import type { Symbols } from './symbols.ts';
import { hexLower } from '../util/hex.ts';

export interface DisasmLine {
  address: bigint;
  bytes: Uint8Array;
  text: string;
}

export interface DisasmOptions {
  /** Address of `bytes[0]` (RIP of the first instruction). */
  address: bigint | number;
  /** Code size: 64 (default), 32 or 16. */
  bits?: 16 | 32 | 64;
  /** At most this many instructions (default: all of `bytes`). */
  count?: number;
  /** Labels: branch targets are shown as gdb does, `call 0x8000 <start>`. */
  symbols?: Symbols;
}

export function disassemble(bytes: Uint8Array, opts: DisasmOptions): DisasmLine[] {
  const base = BigInt.asUintN(64, BigInt(opts.address));
  const max = opts.count ?? Number.POSITIVE_INFINITY;
  const decoder = new Decoder(opts.bits ?? 64, bytes, DecoderOptions.None);
  decoder.ip = base;
  const formatter = intelFormatter();
  const lines: DisasmLine[] = [];
  try {
    while (decoder.canDecode && lines.length < max) {
      const offset = decoder.position;
      const ins = decoder.decode();
      try {
        lines.push(describe(ins, bytes, offset, base, formatter, opts.symbols));
        // After an invalid instruction, resynchronise one byte later, as gdb and objdump do.
        if (ins.isInvalid) decoder.position = offset + 1;
      } finally {
        ins.free();
      }
      decoder.ip = base + BigInt(decoder.position);
    }
  } finally {
    formatter.free();
    decoder.free();
  }
  return lines;
}

/** Mnemonic and operands separately, for layouts (like gdb's x/i) that align the operands. */
export function disassembleParts(bytes: Uint8Array, opts: DisasmOptions): { address: bigint; bytes: Uint8Array; mnemonic: string; operands: string }[] {
  return disassemble(bytes, opts).map((l) => {
    const [mnemonic, operands] = splitMnemonic(l.text);
    return { address: l.address, bytes: l.bytes, mnemonic, operands };
  });
}

const PREFIX_WORDS = new Set(['rep', 'repe', 'repne', 'lock', 'o16', 'o32', 'o64', 'a16', 'a32', 'a64']);

/** "rep stosq" stays together: prefixes belong with the mnemonic. */
function splitMnemonic(text: string): [string, string] {
  const words = text.split(' ');
  let i = 0;
  while (i < words.length - 1 && PREFIX_WORDS.has(words[i]!)) i++;
  return [words.slice(0, i + 1).join(' '), words.slice(i + 1).join(' ')];
}

const NEAR_BRANCH = new Set([OpKind.NearBranch16, OpKind.NearBranch32, OpKind.NearBranch64]);

function describe(ins: Instruction, bytes: Uint8Array, offset: number, base: bigint, formatter: Formatter, symbols?: Symbols): DisasmLine {
  const address = base + BigInt(offset);
  if (ins.isInvalid) return { address, bytes: bytes.slice(offset, offset + 1), text: '(bad)' };
  let text = formatter.format(ins);
  // Like gdb: name a branch target, and show where a RIP-relative operand points.
  const target = NEAR_BRANCH.has(ins.op0Kind) ? symbolize(symbols, ins.nearBranchTarget) : undefined;
  if (target !== undefined) text += ` <${target}>`;
  if (ins.isIpRelMemoryOperand) {
    const at = ins.ipRelMemoryAddress;
    const name = symbolize(symbols, at);
    text += `  # ${hexLower(at)}${name === undefined ? '' : ` <${name}>`}`;
  }
  return { address, bytes: bytes.slice(offset, offset + ins.length), text };
}

/** Intel syntax as gdb shows it (`set disassembly-flavor intel`), lower case with 0x numbers. */
function intelFormatter(): Formatter {
  const f = new Formatter(FormatterSyntax.Intel);
  f.hexPrefix = '0x';
  f.hexSuffix = '';
  f.uppercaseHex = false;
  f.smallHexNumbersInDecimal = false;
  f.branchLeadingZeros = false;
  f.showBranchSize = false;
  f.spaceAfterOperandSeparator = true;
  f.ripRelativeAddresses = true;
  f.memorySizeOptions = MemorySizeOptions.Always;
  return f;
}

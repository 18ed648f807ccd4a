// gdb's `x/nfu ADDRESS` — examine memory — with gdb's output layout.
//
//   x/9db 0x1fa4     nine bytes as signed decimals     0x1fa4:\t1\t2\t3\t4\t5\t6\t7\t8
//                                                       0x1fac:\t9
//   x/4gx 0x8000     four 8-byte words in hex          0x8000:\t0x0000000000000001\t0x...
//   x/2i $rip        two instructions                  => 0x8000:\tmov    eax,0x1
//   x/s 0x9000       a NUL-terminated string           0x9000:\t"hello"
//
// n = count (default 1); f = format: x hex, z zero-padded hex, d signed, u unsigned, o octal,
// t binary, a address, c char, f float, s string, i instruction (default x); u = unit: b byte,
// h halfword (2), w word (4), g giant (8) (default w). As in gdb, a line holds 8 bytes or
// halfwords, 4 words or 2 giants; unreadable memory ends the output with gdb's message.
import { AsmError, Cursor, evaluate, parseExpr, tokenize } from '../guest/asm/expr.ts';
import { disassembleParts } from './disasm.ts';
import { addressLabeler } from './symbols.ts';
import type { AddressLabeler as Labeler, Symbols } from './symbols.ts';
import { hexLower } from '../util/hex.ts';

export type ReadMemory = (addr: bigint, size: number) => Uint8Array | null;

export interface ExamineOptions {
  /** Register values for `$rip`, `$rsp + 8`, ... (names without `$`, lower case). */
  regs?: Record<string, bigint>;
  /** Code size for `i` (default 64). */
  bits?: 16 | 32 | 64;
  /** Symbols (e.g. the assembler's labels): addresses are shown as gdb does, `0x8005 <start+5>`. */
  symbols?: Symbols;
}

export type ExamineResult =
  | { ok: true; text: string; /** Where a following `x` would continue, as gdb's `$_` + size. */ next: bigint }
  | { ok: false; text: string; error: string };

type Format = 'x' | 'z' | 'd' | 'u' | 'o' | 't' | 'a' | 'c' | 'f' | 's' | 'i';
type Unit = 1 | 2 | 4 | 8;

const FORMATS = 'xzduotacfsi';
const UNITS: Readonly<Record<string, Unit>> = { b: 1, h: 2, w: 4, g: 8 };
/** gdb's elements per line by unit size. */
const PER_LINE: Readonly<Record<Unit, number>> = { 1: 8, 2: 8, 4: 4, 8: 2 };
/** gdb stops a string at this many characters and prints "...". */
const STRING_LIMIT = 200;

export function examine(spec: string, read: ReadMemory, opts: ExamineOptions = {}): ExamineResult {
  let parsed: { count: number; format: Format; unit: Unit; address: bigint };
  try {
    parsed = parseSpec(spec, opts.regs ?? {});
  } catch (e) {
    const message = e instanceof Error ? e.message : String(e);
    return { ok: false, text: message, error: message };
  }
  const { count, format, unit, address } = parsed;
  const label = addressLabeler(opts.symbols);
  if (format === 'i') return examineInstructions(count, address, read, label, opts);
  if (format === 's') return examineStrings(count, address, read, label);
  return examineValues(count, format, unit, address, read, label);
}

/** "x/nfu ADDR", "/nfu ADDR" or "x ADDR". */
function parseSpec(spec: string, regs: Record<string, bigint>): { count: number; format: Format; unit: Unit; address: bigint } {
  const m = /^\s*(?:x\b)?\s*(?:\/(\S*))?\s*(.*)$/.exec(spec)!;
  const letters = m[1] ?? '';
  const digits = /^\d*/.exec(letters)![0];
  if (letters.startsWith('-')) throw new Error('Negative counts (examining backwards) are not supported');
  const count = digits === '' ? 1 : Number(digits);
  let format: Format | undefined;
  let unit: Unit | undefined;
  for (const ch of letters.slice(digits.length)) {
    if (UNITS[ch] !== undefined) unit = UNITS[ch];
    else if (FORMATS.includes(ch)) format = ch as Format;
    else throw new Error(`Invalid format letter '${ch}' in "${spec.trim()}" (formats: ${FORMATS}; units: bhwg)`);
  }
  format ??= 'x';
  // gdb's defaults: addresses are pointer-sized, chars are bytes, floats are doubles.
  if (format === 'a') unit = 8;
  unit ??= format === 'c' || format === 's' ? 1 : format === 'f' ? 8 : 4;
  const text = m[2]!.trim();
  if (text === '') throw new Error('Argument required (starting display address).');
  return { count, format, unit, address: evaluateAddress(text, regs) };
}

/** A number or an expression over `$reg` values: 0x1000, $rsp + 8, $rbx + 4*$rcx. */
function evaluateAddress(text: string, regs: Record<string, bigint>): bigint {
  try {
    const cur = new Cursor(tokenize(text));
    const expr = parseExpr(cur);
    if (!cur.atEnd()) throw new AsmError(`unexpected '${cur.peek()!.v}'`);
    let missing = '';
    const v = evaluate(expr, {
      here: 0n,
      start: 0n,
      lookup: (name) => {
        const value = regs[name.toLowerCase()];
        if (value === undefined) missing ||= name;
        return value;
      },
    });
    if (v === undefined) throw new AsmError(`No register or symbol "${missing}" in current context.`);
    return BigInt.asUintN(64, v);
  } catch (e) {
    const why = e instanceof Error ? e.message : String(e);
    throw new Error(`Bad address expression "${text}": ${why}`);
  }
}


function cannotAccess(a: bigint): string {
  return `Cannot access memory at address ${hexLower(a)}`;
}

function examineValues(count: number, format: Format, unit: Unit, start: bigint, read: ReadMemory, label: Labeler): ExamineResult {
  const lines: string[] = [];
  const perLine = PER_LINE[unit];
  let addr = start;
  for (let done = 0; done < count; ) {
    let line = `${label(addr)}:`;
    for (let i = 0; i < perLine && done < count; i++, done++) {
      const bytes = read(addr, unit);
      if (bytes === null || bytes.length < unit) {
        lines.push(`${line}\t${cannotAccess(addr)}`);
        return failed(lines, cannotAccess(addr));
      }
      const v = littleEndian(bytes, unit);
      line += `\t${format === 'a' ? label(v) : formatValue(v, format, unit)}`;
      addr += BigInt(unit);
    }
    lines.push(line);
  }
  return { ok: true, text: lines.join('\n'), next: addr };
}

function failed(lines: string[], error: string): ExamineResult {
  return { ok: false, text: lines.join('\n'), error };
}

function littleEndian(bytes: Uint8Array, unit: Unit): bigint {
  let v = 0n;
  for (let i = unit - 1; i >= 0; i--) v = (v << 8n) | BigInt(bytes[i]!);
  return v;
}

/** One value as gdb prints it with this format and size. */
export function formatValue(v: bigint, format: Format, unit: Unit): string {
  const bits = unit * 8;
  switch (format) {
    case 'x':
    case 'z':
      return hexLower(v, unit * 2);
    case 'd':
      return BigInt.asIntN(bits, v).toString();
    case 'u':
      return v.toString();
    case 'o':
      return v === 0n ? '0' : `0${v.toString(8)}`;
    case 't':
      return v.toString(2).padStart(bits, '0');
    case 'a':
      return hexLower(v);
    case 'c': {
      const c = Number(BigInt.asIntN(8, v & 0xffn));
      return `${c} ${charLiteral(c & 0xff)}`;
    }
    case 'f':
      return formatFloat(v, unit);
    default:
      return v.toString();
  }
}

/** x/f: IEEE single for w, double for g (gdb prints b/h units as integers). */
function formatFloat(v: bigint, unit: Unit): string {
  if (unit !== 4 && unit !== 8) return BigInt.asIntN(unit * 8, v).toString();
  const view = new DataView(new ArrayBuffer(8));
  if (unit === 4) view.setUint32(0, Number(v));
  else view.setBigUint64(0, v);
  const f = unit === 4 ? view.getFloat32(0) : view.getFloat64(0);
  if (Number.isNaN(f)) return `${f < 0 ? '-' : ''}nan(0x${(v & (unit === 4 ? 0x7fffffn : 0xfffffffffffffn)).toString(16)})`;
  if (!Number.isFinite(f)) return f < 0 ? '-inf' : 'inf';
  // gdb prints the shortest text that reads back as the same value (%g with enough digits).
  return unit === 4 ? String(Number(f.toPrecision(9))) : String(f);
}

const C_ESCAPES: Readonly<Record<number, string>> = { 0: '\\000', 7: '\\a', 8: '\\b', 9: '\\t', 10: '\\n', 11: '\\v', 12: '\\f', 13: '\\r', 27: '\\033', 92: '\\\\' };

/** 'H', '\n', '\001', '\377' — how gdb shows a char. */
function charLiteral(c: number): string {
  return `'${charEscape(c, "'")}'`;
}

function charEscape(c: number, quote: string): string {
  if (c === quote.charCodeAt(0)) return `\\${quote}`;
  const e = C_ESCAPES[c];
  if (e !== undefined) return e;
  if (c >= 0x20 && c < 0x7f) return String.fromCharCode(c);
  return `\\${c.toString(8).padStart(3, '0')}`;
}

function examineStrings(count: number, start: bigint, read: ReadMemory, label: Labeler): ExamineResult {
  const lines: string[] = [];
  let addr = start;
  for (let n = 0; n < count; n++) {
    let text = '';
    let p = addr;
    let truncated = false;
    for (;;) {
      const b = read(p, 1);
      if (b === null || b.length < 1) {
        lines.push(`${label(addr)}:\t${text === '' ? '' : `"${text}"\t`}<error: ${cannotAccess(p)}>`);
        return failed(lines, cannotAccess(p));
      }
      p += 1n;
      if (b[0] === 0) break;
      if (text.length >= STRING_LIMIT) {
        truncated = true;
        break;
      }
      text += charEscape(b[0]!, '"');
    }
    lines.push(`${label(addr)}:\t"${text}"${truncated ? '...' : ''}`);
    addr = p;
  }
  return { ok: true, text: lines.join('\n'), next: addr };
}

/** The longest x86 instruction is 15 bytes. See SDM Vol. 2A, "AVX Instruction Length" ("remains 15 bytes"). */
const MAX_INSTRUCTION_LENGTH = 15;

function examineInstructions(count: number, start: bigint, read: ReadMemory, label: Labeler, opts: ExamineOptions): ExamineResult {
  const lines: string[] = [];
  const pc = opts.regs?.['rip'] ?? opts.regs?.['pc'];
  let addr = start;
  for (let n = 0; n < count; n++) {
    const bytes = readUpTo(addr, MAX_INSTRUCTION_LENGTH, read);
    const marker = addr === pc ? '=> ' : '   ';
    const [ins] = bytes.length === 0 ? [] : disassembleParts(bytes, { address: addr, bits: opts.bits ?? 64, count: 1, symbols: opts.symbols });
    // Fewer readable bytes than the instruction needs is an access error, as in gdb.
    if (ins === undefined || (ins.mnemonic === '(bad)' && bytes.length < MAX_INSTRUCTION_LENGTH)) {
      const at = addr + BigInt(bytes.length);
      lines.push(`${marker}${label(addr)}:\t${cannotAccess(at)}`);
      return failed(lines, cannotAccess(at));
    }
    // gdb (objdump) pads the mnemonic to six characters: "mov    eax,0x1".
    const operands = ins.operands.replace(/, /g, ',');
    lines.push(`${marker}${label(addr)}:\t${operands === '' ? ins.mnemonic : `${ins.mnemonic.padEnd(6)} ${operands}`}`);
    addr += BigInt(ins.bytes.length);
  }
  return { ok: true, text: lines.join('\n'), next: addr };
}

/** Read byte by byte up to `max` bytes, stopping at the first unreadable one. */
function readUpTo(addr: bigint, max: number, read: ReadMemory): Uint8Array {
  const out: number[] = [];
  for (let i = 0; i < max; i++) {
    const b = read(addr + BigInt(i), 1);
    if (b === null || b.length < 1) break;
    out.push(b[0]!);
  }
  return Uint8Array.from(out);
}

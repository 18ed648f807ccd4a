// The guest assembler: Intel-syntax (NASM-flavoured) text → machine code, encoded by iced-x86.
//
// Chapters write guest programs as assembly text and assemble them at test time:
//
//   const { bytes, labels } = assembleOrThrow(`
//     bits 64
//     start: mov ecx, 10
//     .loop: dec ecx
//            jnz .loop
//            hlt`, { origin: 0x8000 });
//
// The syntax, as in NASM:
//   labels        `name:` (global), `.name:` (local to the previous global label: `start.loop`)
//   directives    bits 16|32|64, org N (first: the origin; later: pad up to N), align N [, fill],
//                 db/dw/dd/dq items ('text', "text", `C escapes\n`, expressions), resb/resw/resd/resq N,
//                 times N <line>, NAME equ expr, default rel|abs
//   expressions   + - * / % << >> & | ^ ~ ( ), $ (this line's address), $$ (the origin), 'c' constants
//   operands      rax, [rbx + rcx*8 + disp], byte/word/dword/qword [..], fs:[..], [rel label],
//                 [rip + disp], far [..], jmp 0x08:label (far pointer), immediates
//   instructions  every legacy-encoded instruction iced-x86 knows (incl. VMX), with rep/repe/repne/lock;
//                 the shortest encoding is chosen; `[label]` is absolute unless `rel`/`default rel`.
//
// Layout takes several passes: a forward branch is first assumed short; when a label moves, the
// affected instructions are re-encoded, and an instruction never shrinks below the size it had in
// an earlier pass, so the layout settles. The result is taken from the first pass in which no label
// moved. Errors are values with line numbers; nothing in the source can make `assemble` throw.
import { Encoder } from 'iced-x86';
import { encodeInstruction } from './asm/encode.ts';
import { AsmError, evaluate, symbolsOf } from './asm/expr.ts';
import type { Expr } from './asm/expr.ts';
import { parseLine } from './asm/parse.ts';
import type { Body, Statement } from './asm/parse.ts';
import { hexLower } from '../util/hex.ts';

export interface AssembleOptions {
  /** Address of the first byte (default 0; an `org` before any code overrides it). */
  origin?: number;
  /** Initial code size (default 64). */
  bits?: 16 | 32 | 64;
  /** Name used in `assembleOrThrow` messages. */
  fileName?: string;
}

export interface ListingLine {
  line: number;
  address: number;
  bytes: Uint8Array;
  text: string;
}

export interface AssembleError {
  line: number;
  column?: number;
  message: string;
}

export type AssembleResult =
  | { ok: true; bytes: Uint8Array; labels: Map<string, number>; listing: ListingLine[] }
  | { ok: false; errors: AssembleError[] };

const MAX_PASSES = 16;
/** Guard against `times 1 << 40 nop`: guest images are small. */
const MAX_IMAGE_BYTES = 64 * 1024 * 1024;

export function assemble(source: string, opts: AssembleOptions = {}): AssembleResult {
  const origin = opts.origin ?? 0;
  if (!Number.isSafeInteger(origin) || origin < 0) return { ok: false, errors: [{ line: 0, message: `origin ${origin} is not a non-negative integer` }] };
  // Lines that do not parse are reported, and the rest is still assembled for its own errors.
  const parsed = parseSource(source);
  const encoders = { 16: new Encoder(16), 32: new Encoder(32), 64: new Encoder(64) };
  // Trying a short branch that does not reach makes iced throw; those errors are expected and
  // their stack traces would dominate the run time, so collect none while assembling.
  const stackTraceLimit = Error.stackTraceLimit;
  Error.stackTraceLimit = 0;
  try {
    const minLengths = new Map<string, number>();
    let previous = new Map<string, bigint>();
    for (let pass = 0; pass < MAX_PASSES; pass++) {
      const result = runPass(parsed.statements, opts, previous, minLengths, encoders);
      if (sameSymbols(result.symbols, previous) || result.fatal) return finish(result, parsed.errors);
      previous = result.symbols;
    }
    return { ok: false, errors: [{ line: 0, message: `label addresses did not settle after ${MAX_PASSES} passes` }] };
  } finally {
    Error.stackTraceLimit = stackTraceLimit;
    encoders[16].free();
    encoders[32].free();
    encoders[64].free();
  }
}

/** Like `assemble`, but returns the bytes and labels or throws an Error listing "file:line: message". */
export function assembleOrThrow(source: string, opts: AssembleOptions = {}): { bytes: Uint8Array; labels: Map<string, number>; listing: ListingLine[] } {
  const r = assemble(source, opts);
  if (r.ok) return r;
  const file = opts.fileName ?? '<asm>';
  throw new Error(r.errors.map((e) => `${file}:${e.line}: ${e.message}`).join('\n'));
}

function parseSource(source: string): { statements: Statement[]; errors: AssembleError[] } {
  const statements: Statement[] = [];
  const errors: AssembleError[] = [];
  const scope = { global: '' };
  source.split(/\r?\n/).forEach((text, i) => {
    try {
      statements.push(parseLine(text, i + 1, scope));
    } catch (e) {
      errors.push(toError(e, i + 1));
    }
  });
  return { statements, errors };
}

interface PassResult {
  bytes: number[];
  origin: bigint;
  labels: Map<string, bigint>;
  /** Labels and `equ` constants: what the next pass starts from. */
  symbols: Map<string, bigint>;
  listing: ListingLine[];
  errors: AssembleError[];
  fatal: boolean;
}

/** State while laying out one pass. */
interface PassState {
  bits: 16 | 32 | 64;
  defaultRel: boolean;
  origin: bigint;
  /** Whether any byte has been emitted yet (a first `org` moves the origin; a later one pads). */
  emitted: boolean;
  out: number[];
  symbols: Map<string, bigint>;
  previous: Map<string, bigint>;
  /** Symbols that were looked up but not defined, for the current statement. */
  undefinedNames: Set<string>;
}

function runPass(
  statements: readonly Statement[],
  opts: AssembleOptions,
  previous: Map<string, bigint>,
  minLengths: Map<string, number>,
  encoders: Record<16 | 32 | 64, Encoder>,
): PassResult {
  const st: PassState = {
    bits: opts.bits ?? 64,
    defaultRel: false,
    origin: BigInt(opts.origin ?? 0),
    emitted: false,
    out: [],
    symbols: new Map(),
    previous,
    undefinedNames: new Set(),
  };
  const labels = new Map<string, bigint>();
  const listing: ListingLine[] = [];
  const errors: AssembleError[] = [];
  for (const s of statements) {
    const start = st.out.length;
    let address = here(st);
    try {
      if (s.label !== undefined) {
        if (st.symbols.has(s.label)) throw new AsmError(`label '${s.label}' defined twice`);
        labels.set(s.label, address);
        st.symbols.set(s.label, address);
      }
      if (s.body !== undefined) {
        // `org` before any code moves the origin: the statement then starts at the new address.
        if (s.body.k === 'org' && !st.emitted) address = constant(s.body.address, st, 'org');
        emitBody(s.body, s, st, minLengths, encoders, `${s.line}`);
      }
      if (st.out.length > MAX_IMAGE_BYTES) {
        errors.push({ line: s.line, message: `image larger than ${MAX_IMAGE_BYTES} bytes` });
        return { bytes: [], origin: st.origin, labels, symbols: st.symbols, listing, errors, fatal: true };
      }
    } catch (e) {
      errors.push(toError(e, s.line));
    }
    for (const name of st.undefinedNames) errors.push({ line: s.line, message: `undefined symbol '${name}'` });
    st.undefinedNames.clear();
    listing.push({ line: s.line, address: Number(address), bytes: Uint8Array.from(st.out.slice(start)), text: s.text });
  }
  return { bytes: st.out, origin: st.origin, labels, symbols: st.symbols, listing, errors, fatal: false };
}

function emitBody(
  body: Body,
  s: Statement,
  st: PassState,
  minLengths: Map<string, number>,
  encoders: Record<16 | 32 | 64, Encoder>,
  key: string,
): void {
  switch (body.k) {
    case 'insn': {
      const bytes = encodeInstruction(
        body,
        { bits: st.bits, address: here(st), defaultRel: st.defaultRel, value: (e) => value(e, st), encoder: encoders[st.bits] },
        minLengths.get(key) ?? 0,
      );
      minLengths.set(key, Math.max(minLengths.get(key) ?? 0, bytes.length));
      emit(st, bytes);
      return;
    }
    case 'data':
      for (const item of body.items) emit(st, dataItem(item, body.unit, st));
      return;
    case 'res':
      emit(st, new Uint8Array(body.unit * count(body.count, st)));
      return;
    case 'times': {
      const n = count(body.count, st);
      // `times 4096 db 0` or `times 16 nop`: the bytes do not depend on where they land, so encode once.
      if (n > 0 && sameBytesEverywhere(body.body)) {
        const start = st.out.length;
        emitBody(body.body, s, st, minLengths, encoders, `${key}#0`);
        const chunk = st.out.slice(start);
        for (let i = 1; i < n && st.out.length <= MAX_IMAGE_BYTES; i++) for (const b of chunk) st.out.push(b);
        return;
      }
      for (let i = 0; i < n; i++) {
        emitBody(body.body, s, st, minLengths, encoders, `${key}#${i}`);
        if (st.out.length > MAX_IMAGE_BYTES) return;
      }
      return;
    }
    case 'align': {
      // NASM pads code with NOPs by default (SDM Vol. 2, "NOP—No Operation": 90H).
      const boundary = constant(body.boundary, st, 'align');
      if (boundary <= 0n || (boundary & (boundary - 1n)) !== 0n) throw new AsmError('align needs a power of two');
      const fill = body.fill === undefined ? 0x90 : Number(BigInt.asUintN(8, constant(body.fill, st, 'align fill')));
      const pad = Number((boundary - (here(st) % boundary)) % boundary);
      emit(st, new Uint8Array(pad).fill(fill));
      return;
    }
    case 'org': {
      const target = constant(body.address, st, 'org');
      if (!st.emitted) {
        st.origin = target;
        return;
      }
      if (target < here(st)) throw new AsmError(`org ${hexLower(target)} is below the current address ${hexLower(here(st))}`);
      emit(st, new Uint8Array(Number(target - here(st))));
      return;
    }
    case 'bits':
      st.bits = body.bits;
      return;
    case 'default':
      st.defaultRel = body.rel;
      return;
    case 'equ':
      if (st.symbols.has(body.name)) throw new AsmError(`symbol '${body.name}' defined twice`);
      st.symbols.set(body.name, value(body.value, st));
      return;
  }
}

/** Data without `$`, or an instruction without operands (NOP, HLT, MOVSB): position-independent bytes. */
function sameBytesEverywhere(body: Body): boolean {
  if (body.k === 'insn') return body.operands.length === 0;
  if (body.k === 'data') return body.items.every((item) => typeof item === 'string' || !mentionsHere(item));
  return false;
}

function mentionsHere(e: Expr): boolean {
  if (e.k === 'here') return true;
  if (e.k === 'un') return mentionsHere(e.e);
  if (e.k === 'bin') return mentionsHere(e.a) || mentionsHere(e.b);
  return false;
}

function emit(st: PassState, bytes: Uint8Array): void {
  st.emitted = true;
  for (const b of bytes) st.out.push(b);
}

function here(st: PassState): bigint {
  return st.origin + BigInt(st.out.length);
}

/**
 * Evaluate with the labels known so far (this pass, then the previous pass). An undefined symbol
 * is recorded as an error and replaced by `$`, which keeps a forward branch short until the label
 * is known.
 */
function value(e: Expr, st: PassState): bigint {
  const v = evaluate(e, {
    here: here(st),
    start: st.origin,
    lookup: (name) => st.symbols.get(name) ?? st.previous.get(name),
  });
  if (v !== undefined) return v;
  for (const name of symbolsOf(e)) if (!st.symbols.has(name) && !st.previous.has(name)) st.undefinedNames.add(name);
  return here(st);
}

function constant(e: Expr, st: PassState, what: string): bigint {
  const v = value(e, st);
  if (v < 0n) throw new AsmError(`${what} value ${v} is negative`);
  return v;
}

function count(e: Expr, st: PassState): number {
  const n = constant(e, st, 'count');
  if (n > BigInt(MAX_IMAGE_BYTES)) throw new AsmError(`count ${n} is too large`);
  return Number(n);
}

/** One `db/dw/dd/dq` item: a string (padded to the unit) or a value that must fit the unit. */
function dataItem(item: Expr | string, unit: 1 | 2 | 4 | 8, st: PassState): Uint8Array {
  if (typeof item === 'string') {
    const bytes = Array.from(item, (ch) => ch.charCodeAt(0) & 0xff);
    while (bytes.length % unit !== 0) bytes.push(0);
    return Uint8Array.from(bytes);
  }
  const v = value(item, st);
  const bits = BigInt(8 * unit);
  if (v < -(1n << (bits - 1n)) || v >= 1n << bits) throw new AsmError(`value ${v} does not fit in ${unit} byte${unit > 1 ? 's' : ''}`);
  const out = new Uint8Array(unit);
  let u = BigInt.asUintN(8 * unit, v);
  for (let i = 0; i < unit; i++, u >>= 8n) out[i] = Number(u & 0xffn);
  return out;
}

function sameSymbols(a: Map<string, bigint>, b: Map<string, bigint>): boolean {
  if (a.size !== b.size) return false;
  for (const [k, v] of a) if (b.get(k) !== v) return false;
  return true;
}

function finish(r: PassResult, parseErrors: readonly AssembleError[]): AssembleResult {
  if (r.errors.length + parseErrors.length > 0) {
    return { ok: false, errors: [...parseErrors, ...r.errors].sort((a, b) => a.line - b.line) };
  }
  const labels = new Map<string, number>();
  for (const [k, v] of r.labels) labels.set(k, Number(v));
  return { ok: true, bytes: Uint8Array.from(r.bytes), labels, listing: r.listing };
}

function toError(e: unknown, line: number): AssembleError {
  if (e instanceof AsmError) return e.column === undefined ? { line, message: e.message } : { line, column: e.column, message: e.message };
  // Anything else is a bug in the assembler; still report it as a value, never throw.
  return { line, message: `internal assembler error: ${e instanceof Error ? e.message : String(e)}` };
}

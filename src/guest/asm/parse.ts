// Parsing one source line of the guest assembler into a statement.
//
//   [label:] [times N] (instruction | directive)   ; comment
//
// Local labels (`.loop`) belong to the previous global label, as in NASM: `.loop` after `start:`
// is the symbol `start.loop`.
import type { Register } from 'iced-x86';
import { AsmError, Cursor, parseExpr, tokenize } from './expr.ts';
import type { Expr, Token } from './expr.ts';
import { registerNamed, SIZE_KEYWORDS } from './registers.ts';

export type Operand =
  | { readonly kind: 'reg'; readonly reg: Register; readonly text: string }
  | MemOperand
  | { readonly kind: 'imm'; readonly expr: Expr; readonly size?: number; readonly text: string }
  | { readonly kind: 'far'; readonly selector: Expr; readonly offset: Expr; readonly size?: number; readonly text: string };

export interface MemOperand {
  readonly kind: 'mem';
  readonly size?: number;
  readonly seg?: Register;
  readonly base?: Register;
  readonly index?: Register;
  readonly scale: number;
  readonly disp?: Expr;
  /** true: `rel`; false: `abs`; undefined: follow `default rel|abs`. */
  readonly rel?: boolean;
  /** `[rip + disp]`: RIP as the base register, disp counted from the next instruction. */
  readonly ripBase: boolean;
  /** `far [mem]`: an indirect far JMP/CALL through a pointer in memory. */
  readonly far: boolean;
  readonly text: string;
}

export interface Instruction {
  readonly k: 'insn';
  readonly prefixes: readonly string[];
  readonly mnemonic: string;
  readonly operands: readonly Operand[];
}

export type Body =
  | Instruction
  | { readonly k: 'data'; readonly unit: 1 | 2 | 4 | 8; readonly items: readonly (Expr | string)[] }
  | { readonly k: 'res'; readonly unit: 1 | 2 | 4 | 8; readonly count: Expr }
  | { readonly k: 'times'; readonly count: Expr; readonly body: Body }
  | { readonly k: 'align'; readonly boundary: Expr; readonly fill?: Expr }
  | { readonly k: 'org'; readonly address: Expr }
  | { readonly k: 'bits'; readonly bits: 16 | 32 | 64 }
  | { readonly k: 'default'; readonly rel: boolean }
  | { readonly k: 'equ'; readonly name: string; readonly value: Expr };

export interface Statement {
  readonly line: number;
  readonly text: string;
  readonly label?: string;
  readonly body?: Body;
}

const DATA_UNITS: Readonly<Record<string, 1 | 2 | 4 | 8>> = { db: 1, dw: 2, dd: 4, dq: 8 };
const RES_UNITS: Readonly<Record<string, 1 | 2 | 4 | 8>> = { resb: 1, resw: 2, resd: 4, resq: 8 };
const PREFIXES = new Set(['rep', 'repe', 'repz', 'repne', 'repnz', 'lock']);

/** Parser state carried from line to line: the global label that owns `.local` labels. */
export interface ParseScope {
  global: string;
}

export function parseLine(text: string, line: number, scope: ParseScope): Statement {
  const cur = new Cursor(tokenize(stripComment(text)));
  let label: string | undefined;
  const first = cur.peek();
  if (first?.k === 'id' && cur.isOp(':', 1) && registerNamed(first.v) === undefined) {
    label = qualify(first.v, scope, true);
    cur.pos += 2;
  }
  if (cur.atEnd()) return { line, text, label };
  // `name equ value` (with or without a colon after the name).
  if (label === undefined && first?.k === 'id' && cur.isId('equ', 1)) {
    cur.pos += 2;
    return { line, text, body: { k: 'equ', name: qualify(first.v, scope, false), value: wholeExpr(cur) } };
  }
  if (label !== undefined && cur.isId('equ')) {
    cur.next();
    return { line, text, body: { k: 'equ', name: label, value: wholeExpr(cur) } };
  }
  const body = parseBody(cur, scope);
  if (!cur.atEnd()) throw new AsmError(`unexpected '${cur.peek()!.v}'`, cur.column());
  return { line, text, label, body };
}

function stripComment(text: string): string {
  let quote = '';
  for (let i = 0; i < text.length; i++) {
    const c = text[i]!;
    if (quote !== '') {
      if (c === quote) quote = '';
    } else if (c === "'" || c === '"' || c === '`') quote = c;
    else if (c === ';') return text.slice(0, i);
    if (quote === '`' && c === '\\') i++; // an escaped character cannot end a backquoted string
  }
  return text;
}

/** `.x` → `global.x`; a new global label opens a new scope. */
function qualify(name: string, scope: ParseScope, defining: boolean): string {
  if (name.startsWith('.') && !name.startsWith('..')) return scope.global + name;
  if (defining) scope.global = name;
  return name;
}

function parseBody(cur: Cursor, scope: ParseScope): Body {
  // NASM's bracketed directives: [bits 64], [org 0x7c00], [default rel].
  const bracketed = cur.isOp('[') && (cur.isId('bits', 1) || cur.isId('org', 1) || cur.isId('default', 1));
  if (bracketed) cur.next();
  const head = cur.next();
  if (head === undefined || head.k !== 'id') throw new AsmError('instruction or directive expected', head?.col);
  const word = head.v.toLowerCase();
  const body = parseDirective(word, cur, scope) ?? parseInstruction(word, cur, scope);
  if (bracketed) cur.expectOp(']');
  return body;
}

function parseDirective(word: string, cur: Cursor, scope: ParseScope): Body | undefined {
  const unit = DATA_UNITS[word];
  if (unit !== undefined) return { k: 'data', unit, items: parseDataItems(cur, scope) };
  const resUnit = RES_UNITS[word];
  if (resUnit !== undefined) return { k: 'res', unit: resUnit, count: localExpr(cur, scope) };
  switch (word) {
    case 'times': {
      const count = localExpr(cur, scope);
      return { k: 'times', count, body: parseBody(cur, scope) };
    }
    case 'align': {
      const boundary = localExpr(cur, scope);
      if (!cur.isOp(',')) return { k: 'align', boundary };
      cur.next();
      if (cur.isId('db')) cur.next(); // NASM spells the fill `align 16, db 0`
      return { k: 'align', boundary, fill: localExpr(cur, scope) };
    }
    case 'org':
      return { k: 'org', address: localExpr(cur, scope) };
    case 'bits': {
      const t = cur.next();
      if (t?.k !== 'num' || (t.v !== 16n && t.v !== 32n && t.v !== 64n)) throw new AsmError('bits must be 16, 32 or 64', t?.col);
      return { k: 'bits', bits: Number(t.v) as 16 | 32 | 64 };
    }
    case 'default': {
      const t = cur.next();
      const v = t?.k === 'id' ? t.v.toLowerCase() : '';
      if (v !== 'rel' && v !== 'abs') throw new AsmError("expected 'default rel' or 'default abs'", t?.col);
      return { k: 'default', rel: v === 'rel' };
    }
  }
  return undefined;
}

function parseDataItems(cur: Cursor, scope: ParseScope): (Expr | string)[] {
  const items: (Expr | string)[] = [];
  for (;;) {
    const t = cur.peek();
    // A string on its own is a byte sequence; inside an expression it is a character constant.
    const endsHere = cur.peek(1) === undefined || cur.isOp(',', 1);
    if (t?.k === 'str' && endsHere) {
      cur.next();
      items.push(t.v);
    } else {
      items.push(localExpr(cur, scope));
    }
    if (!cur.isOp(',')) return items;
    cur.next();
  }
}

function parseInstruction(word: string, cur: Cursor, scope: ParseScope): Instruction {
  const prefixes: string[] = [];
  let mnemonic = word;
  while (PREFIXES.has(mnemonic)) {
    prefixes.push(mnemonic);
    const t = cur.next();
    if (t === undefined) return { k: 'insn', prefixes: prefixes.slice(0, -1), mnemonic, operands: [] };
    if (t.k !== 'id') throw new AsmError('instruction expected after prefix', t.col);
    mnemonic = t.v.toLowerCase();
  }
  const operands: Operand[] = [];
  while (!cur.atEnd()) {
    operands.push(parseOperand(cur, scope));
    if (!cur.isOp(',')) break;
    cur.next();
  }
  return { k: 'insn', prefixes, mnemonic, operands };
}

/** One operand: register, memory, immediate / branch target, or far pointer `sel:offset`. */
function parseOperand(cur: Cursor, scope: ParseScope): Operand {
  const start = cur.pos;
  let size: number | undefined;
  let far = false;
  let rel: boolean | undefined;
  for (;;) {
    const t = cur.peek();
    if (t?.k !== 'id') break;
    const w = t.v.toLowerCase();
    if (SIZE_KEYWORDS[w] !== undefined) size = SIZE_KEYWORDS[w];
    else if (w === 'far') far = true;
    else if (w === 'rel') rel = true;
    else if (w === 'abs') rel = false;
    else if (w !== 'ptr' && w !== 'short' && w !== 'near' && w !== 'strict') break;
    cur.next();
  }
  const text = () => tokensText(cur.tokens.slice(start, cur.pos));
  // Segment override before the bracket: fs:[rax]
  let seg: Register | undefined;
  const t = cur.peek();
  if (t?.k === 'id' && cur.isOp(':', 1) && cur.isOp('[', 2)) {
    seg = registerNamed(t.v);
    if (seg === undefined) throw new AsmError(`'${t.v}' is not a segment register`, t.col);
    cur.pos += 2;
  }
  if (cur.isOp('[')) {
    const m = parseMemory(cur, scope, { size, seg, rel, far });
    return { ...m, text: text() };
  }
  if (t?.k === 'id' && registerNamed(t.v) !== undefined && !cur.isOp(':', 1)) {
    cur.next();
    return { kind: 'reg', reg: registerNamed(t.v)!, text: t.v };
  }
  const first = localExpr(cur, scope);
  if (cur.isOp(':')) {
    cur.next();
    const offset = localExpr(cur, scope);
    return { kind: 'far', selector: first, offset, size, text: text() };
  }
  return { kind: 'imm', expr: first, size, text: text() };
}

interface MemPrefix {
  size?: number;
  seg?: Register;
  rel?: boolean;
  far: boolean;
}

/** `[seg: rel base + index*scale + disp]` — terms in any order. */
function parseMemory(cur: Cursor, scope: ParseScope, p: MemPrefix): Omit<MemOperand, 'text'> {
  cur.expectOp('[');
  let { seg, rel } = p;
  for (;;) {
    const t = cur.peek();
    if (t?.k !== 'id') break;
    if (cur.isId('rel') || cur.isId('abs')) {
      cur.next();
      rel = t.v.toLowerCase() === 'rel';
    } else if (cur.isOp(':', 1)) {
      cur.next();
      seg = registerNamed(t.v);
      if (seg === undefined) throw new AsmError(`'${t.v}' is not a segment register`, t.col);
      cur.next();
    } else break;
  }
  const expr = localExpr(cur, scope);
  cur.expectOp(']');
  const m: MemTerms = { scale: 1, ripBase: false };
  for (const { sign, term } of splitTerms(expr, 1)) addTerm(m, term, sign);
  if (m.ripBase && (m.base !== undefined || m.index !== undefined)) throw new AsmError('RIP cannot be combined with other registers');
  return { kind: 'mem', size: p.size, seg, base: m.base, index: m.index, scale: m.scale, disp: m.disp, rel, ripBase: m.ripBase, far: p.far };
}

/** Flatten a sum into signed terms: a - (b + c) → +a, -b, -c. */
function splitTerms(e: Expr, sign: 1 | -1): { sign: 1 | -1; term: Expr }[] {
  if (e.k === 'bin' && (e.op === '+' || e.op === '-')) {
    return [...splitTerms(e.a, sign), ...splitTerms(e.b, e.op === '-' ? (-sign as 1 | -1) : sign)];
  }
  return [{ sign, term: e }];
}

interface MemTerms {
  base?: Register;
  index?: Register;
  scale: number;
  disp?: Expr;
  ripBase: boolean;
}

function addTerm(m: MemTerms, term: Expr, sign: 1 | -1): void {
  const reg = term.k === 'sym' ? registerNamed(term.name) : undefined;
  if (term.k === 'sym' && term.name.toLowerCase() === 'rip') {
    if (sign < 0) throw new AsmError('a register cannot be subtracted in an address');
    m.ripBase = true;
    return;
  }
  if (reg !== undefined) {
    if (sign < 0) throw new AsmError('a register cannot be subtracted in an address');
    if (m.base === undefined) m.base = reg;
    else if (m.index === undefined) m.index = reg;
    else throw new AsmError('too many registers in address');
    return;
  }
  if (term.k === 'bin' && term.op === '*') {
    const [r, s] = scaledRegister(term.a, term.b) ?? scaledRegister(term.b, term.a) ?? [];
    if (r !== undefined && s !== undefined) {
      if (sign < 0) throw new AsmError('a register cannot be subtracted in an address');
      if (m.index !== undefined) throw new AsmError('two index registers in address');
      if (s !== 1 && s !== 2 && s !== 4 && s !== 8) throw new AsmError(`scale must be 1, 2, 4 or 8, not ${s}`);
      m.index = r;
      m.scale = s;
      return;
    }
  }
  const signed: Expr = sign < 0 ? { k: 'un', op: '-', e: term } : term;
  m.disp = m.disp === undefined ? signed : { k: 'bin', op: '+', a: m.disp, b: signed };
}

function scaledRegister(r: Expr, s: Expr): [Register, number] | undefined {
  if (r.k !== 'sym' || s.k !== 'num') return undefined;
  const reg = registerNamed(r.name);
  return reg === undefined ? undefined : [reg, Number(s.v)];
}

/** An expression with `.local` names resolved against the current scope. */
function localExpr(cur: Cursor, scope: ParseScope): Expr {
  return qualifyExpr(parseExpr(cur), scope);
}

function qualifyExpr(e: Expr, scope: ParseScope): Expr {
  switch (e.k) {
    case 'sym':
      return { k: 'sym', name: qualify(e.name, scope, false) };
    case 'un':
      return { ...e, e: qualifyExpr(e.e, scope) };
    case 'bin':
      return { ...e, a: qualifyExpr(e.a, scope), b: qualifyExpr(e.b, scope) };
    default:
      return e;
  }
}

function wholeExpr(cur: Cursor): Expr {
  const e = parseExpr(cur);
  if (!cur.atEnd()) throw new AsmError(`unexpected '${cur.peek()!.v}'`, cur.column());
  return e;
}

function tokensText(tokens: readonly Token[]): string {
  return tokens.map((t) => (t.k === 'str' ? `'${t.v}'` : String(t.v))).join(' ');
}

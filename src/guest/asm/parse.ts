// Parsing one source line of the guest assembler into a statement.
//
//   [label:] [times N] (instruction | directive)   ; comment
import { AsmError, Cursor, parseExpr, tokenize } from './expr.ts';
import type { Expr } from './expr.ts';
import { parseOperand } from './operands.ts';
import type { Operand } from './operands.ts';
import { registerNamed } from './registers.ts';
import { localExpr, qualify } from './scope.ts';
import type { ParseScope } from './scope.ts';

export type { MemOperand, Operand } from './operands.ts';
export type { ParseScope } from './scope.ts';

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
function wholeExpr(cur: Cursor): Expr {
  const e = parseExpr(cur);
  if (!cur.atEnd()) throw new AsmError(`unexpected '${cur.peek()!.v}'`, cur.column());
  return e;
}

// Parsing one instruction operand: a register, a memory reference `size [seg: base + index*scale
// + disp]`, an immediate or branch target expression, or a far pointer `selector:offset`.
import type { Register } from 'iced-x86';
import { AsmError } from './expr.ts';
import type { Cursor, Expr, Token } from './expr.ts';
import { registerNamed, SIZE_KEYWORDS } from './registers.ts';
import { localExpr } from './scope.ts';
import type { ParseScope } from './scope.ts';

export type Operand =
  | { readonly kind: 'reg'; readonly reg: Register; readonly text: string }
  | MemOperand
  | ImmOperand
  | { readonly kind: 'far'; readonly selector: Expr; readonly offset: Expr; readonly size?: number; readonly text: string };

/**
 * An immediate or branch target. `size` (byte/word/dword/qword) is the operand size, as in NASM; with
 * `strict` it is the size of the immediate field itself. `distance` is `short` (rel8) or `near` (rel16/32).
 */
export interface ImmOperand {
  readonly kind: 'imm';
  readonly expr: Expr;
  readonly size?: number;
  readonly strict: boolean;
  readonly distance?: 'short' | 'near';
  readonly text: string;
}

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

/** One operand: register, memory, immediate / branch target, or far pointer `sel:offset`. */
export function parseOperand(cur: Cursor, scope: ParseScope): Operand {
  const start = cur.pos;
  let size: number | undefined;
  let strict = false;
  let distance: 'short' | 'near' | undefined;
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
    else if (w === 'strict') strict = true;
    else if (w === 'short' || w === 'near') distance = w;
    else if (w !== 'ptr') break;
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
  return { kind: 'imm', expr: first, size, strict, distance, text: text() };
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

function tokensText(tokens: readonly Token[]): string {
  return tokens.map((t) => (t.k === 'str' ? `'${t.v}'` : String(t.v))).join(' ');
}


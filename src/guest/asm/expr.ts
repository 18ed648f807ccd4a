// Tokens and expressions of the guest assembler (NASM-flavoured Intel syntax).
//
// Expressions are evaluated as BigInt (the assembler is not a hot path and must handle 64-bit
// values exactly). Operators, loosest first: |  ^  &  << >>  + -  * / %  unary - + ~.

/** A problem in the source, reported with its line. Internal: `assemble` turns it into an error value. */
export class AsmError extends Error {
  constructor(message: string, readonly column?: number) {
    super(message);
  }
}

export type Token =
  | { readonly k: 'num'; readonly v: bigint; readonly col: number }
  | { readonly k: 'id'; readonly v: string; readonly col: number }
  | { readonly k: 'str'; readonly v: string; readonly col: number }
  | { readonly k: 'op'; readonly v: string; readonly col: number };

export type Expr =
  | { readonly k: 'num'; readonly v: bigint }
  | { readonly k: 'sym'; readonly name: string }
  | { readonly k: 'here' } // $  — address of the current statement
  | { readonly k: 'start' } // $$ — the origin
  | { readonly k: 'un'; readonly op: string; readonly e: Expr }
  | { readonly k: 'bin'; readonly op: string; readonly a: Expr; readonly b: Expr };

const IDENT_START = /[A-Za-z_.?@]/;
const IDENT_REST = /[A-Za-z0-9_.?@$#~]/;
const TWO_CHAR_OPS = ['<<', '>>'];
const ONE_CHAR_OPS = '+-*/%&|^~()[],:';

/** Split one line (comment already removed) into tokens. */
export function tokenize(text: string): Token[] {
  const out: Token[] = [];
  let i = 0;
  while (i < text.length) {
    const c = text[i]!;
    if (c === ' ' || c === '\t' || c === '\r') {
      i++;
    } else if (c === "'" || c === '"') {
      const end = text.indexOf(c, i + 1);
      if (end < 0) throw new AsmError('unterminated string', i + 1);
      out.push({ k: 'str', v: text.slice(i + 1, end), col: i + 1 });
      i = end + 1;
    } else if (c === '`') {
      const { value, end } = backquoted(text, i);
      out.push({ k: 'str', v: value, col: i + 1 });
      i = end + 1;
    } else if (/[0-9]/.test(c)) {
      let j = i;
      while (j < text.length && /[0-9A-Za-z_]/.test(text[j]!)) j++;
      out.push({ k: 'num', v: parseNumber(text.slice(i, j), i + 1), col: i + 1 });
      i = j;
    } else if (c === '$' && !IDENT_START.test(text[i + 1] ?? '')) {
      const two = text[i + 1] === '$';
      out.push({ k: 'id', v: two ? '$$' : '$', col: i + 1 });
      i += two ? 2 : 1;
    } else if (IDENT_START.test(c) || c === '$') {
      let j = i + 1;
      while (j < text.length && IDENT_REST.test(text[j]!)) j++;
      // `$name` is NASM's way to use a reserved word as a symbol name.
      out.push({ k: 'id', v: text.slice(c === '$' ? i + 1 : i, j), col: i + 1 });
      i = j;
    } else if (TWO_CHAR_OPS.includes(text.slice(i, i + 2))) {
      out.push({ k: 'op', v: text.slice(i, i + 2), col: i + 1 });
      i += 2;
    } else if (ONE_CHAR_OPS.includes(c)) {
      out.push({ k: 'op', v: c, col: i + 1 });
      i++;
    } else {
      throw new AsmError(`unexpected character '${c}'`, i + 1);
    }
  }
  return out;
}

const ESCAPES: Readonly<Record<string, string>> = { n: '\n', t: '\t', r: '\r', '0': '\0', '\\': '\\', "'": "'", '"': '"', '`': '`', a: '\x07', b: '\b', e: '\x1b' };

/** NASM's backquoted strings understand C escapes: `Hello\n` is six bytes. `\xHH` gives any byte. */
function backquoted(text: string, start: number): { value: string; end: number } {
  let value = '';
  for (let i = start + 1; i < text.length; i++) {
    const c = text[i]!;
    if (c === '`') return { value, end: i };
    if (c !== '\\') {
      value += c;
      continue;
    }
    const e = text[++i] ?? '';
    const hex = /^x([0-9a-fA-F]{1,2})/.exec(text.slice(i));
    if (hex) {
      value += String.fromCharCode(parseInt(hex[1]!, 16));
      i += hex[0].length - 1;
    } else if (ESCAPES[e] !== undefined) value += ESCAPES[e];
    else throw new AsmError(`unknown escape '\\${e}' in string`, i);
  }
  throw new AsmError('unterminated string', start + 1);
}

/** 123, 0x7B, 7Bh, 0b1111011, 1111011b, 0o173, 173q — underscores allowed as digit separators. */
function parseNumber(raw: string, col: number): bigint {
  const s = raw.replace(/_/g, '').toLowerCase();
  const forms: [RegExp, string][] = [
    [/^0x([0-9a-f]+)$/, '0x'],
    [/^([0-9][0-9a-f]*)h$/, '0x'],
    [/^0b([01]+)$/, '0b'],
    [/^([01]+)b$/, '0b'],
    [/^0o([0-7]+)$/, '0o'],
    [/^([0-7]+)[oq]$/, '0o'],
    [/^([0-9]+)d?$/, ''],
  ];
  for (const [re, prefix] of forms) {
    const m = re.exec(s);
    if (m) return BigInt(prefix + m[1]!);
  }
  throw new AsmError(`bad number '${raw}'`, col);
}

/** A cursor over a token list, shared by the expression and operand parsers. */
export class Cursor {
  pos = 0;
  constructor(readonly tokens: readonly Token[]) {}
  peek(offset = 0): Token | undefined {
    return this.tokens[this.pos + offset];
  }
  next(): Token | undefined {
    return this.tokens[this.pos++];
  }
  atEnd(): boolean {
    return this.pos >= this.tokens.length;
  }
  isOp(v: string, offset = 0): boolean {
    const t = this.peek(offset);
    return t !== undefined && t.k === 'op' && t.v === v;
  }
  isId(v: string, offset = 0): boolean {
    const t = this.peek(offset);
    return t !== undefined && t.k === 'id' && t.v.toLowerCase() === v;
  }
  expectOp(v: string): void {
    const t = this.next();
    if (t === undefined || t.k !== 'op' || t.v !== v) throw new AsmError(`expected '${v}'`, t?.col);
  }
  column(): number | undefined {
    return this.peek()?.col;
  }
}

const BINARY_LEVELS: readonly (readonly string[])[] = [['|'], ['^'], ['&'], ['<<', '>>'], ['+', '-'], ['*', '/', '%']];

/** Parse an expression (register names inside `[...]` come back as `sym` nodes for the caller to pick out). */
export function parseExpr(cur: Cursor, level = 0): Expr {
  if (level === BINARY_LEVELS.length) return parseUnary(cur);
  let left = parseExpr(cur, level + 1);
  for (;;) {
    const t = cur.peek();
    if (t === undefined || t.k !== 'op' || !BINARY_LEVELS[level]!.includes(t.v)) return left;
    cur.next();
    left = { k: 'bin', op: t.v, a: left, b: parseExpr(cur, level + 1) };
  }
}

function parseUnary(cur: Cursor): Expr {
  const t = cur.next();
  if (t === undefined) throw new AsmError('expression expected');
  if (t.k === 'op' && (t.v === '-' || t.v === '+' || t.v === '~')) return { k: 'un', op: t.v, e: parseUnary(cur) };
  if (t.k === 'op' && t.v === '(') {
    const e = parseExpr(cur);
    cur.expectOp(')');
    return e;
  }
  if (t.k === 'num') return { k: 'num', v: t.v };
  if (t.k === 'str') return { k: 'num', v: charConstant(t.v) };
  if (t.k === 'id') {
    if (t.v === '$') return { k: 'here' };
    if (t.v === '$$') return { k: 'start' };
    return { k: 'sym', name: t.v };
  }
  throw new AsmError(`unexpected '${t.v}' in expression`, t.col);
}

/** 'AB' in an expression is 0x4241: characters little-endian, as NASM does. */
function charConstant(s: string): bigint {
  let v = 0n;
  for (let i = s.length - 1; i >= 0; i--) v = (v << 8n) | BigInt(s.charCodeAt(i) & 0xff);
  return v;
}

export interface EvalEnv {
  readonly here: bigint;
  readonly start: bigint;
  /** The value of a symbol; undefined when it is not (yet) defined. */
  lookup(name: string): bigint | undefined;
}

/** Evaluate; undefined symbols make the whole result undefined. */
export function evaluate(e: Expr, env: EvalEnv): bigint | undefined {
  switch (e.k) {
    case 'num':
      return e.v;
    case 'here':
      return env.here;
    case 'start':
      return env.start;
    case 'sym':
      return env.lookup(e.name);
    case 'un': {
      const v = evaluate(e.e, env);
      if (v === undefined) return undefined;
      return e.op === '-' ? -v : e.op === '~' ? ~v : v;
    }
    case 'bin': {
      const a = evaluate(e.a, env);
      const b = evaluate(e.b, env);
      if (a === undefined || b === undefined) return undefined;
      return binary(e.op, a, b);
    }
  }
}

function binary(op: string, a: bigint, b: bigint): bigint {
  switch (op) {
    case '+': return a + b;
    case '-': return a - b;
    case '*': return a * b;
    case '/':
    case '%':
      if (b === 0n) throw new AsmError('division by zero');
      return op === '/' ? a / b : a % b;
    case '<<':
    case '>>':
      if (b < 0n || b > 127n) throw new AsmError(`shift count ${b} out of range`);
      return op === '<<' ? a << b : a >> b;
    case '&': return a & b;
    case '|': return a | b;
    case '^': return a ^ b;
  }
  throw new AsmError(`unknown operator '${op}'`);
}

/** The names of all symbols an expression mentions (for "undefined symbol" messages). */
export function symbolsOf(e: Expr): string[] {
  switch (e.k) {
    case 'sym':
      return [e.name];
    case 'un':
      return symbolsOf(e.e);
    case 'bin':
      return [...symbolsOf(e.a), ...symbolsOf(e.b)];
    default:
      return [];
  }
}

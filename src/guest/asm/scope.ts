// Symbol scope while parsing: local labels (`.loop`) belong to the previous global label, as in
// NASM, so `.loop` after `start:` is the symbol `start.loop`.
import { parseExpr } from './expr.ts';
import type { Cursor, Expr } from './expr.ts';

/** Parser state carried from line to line: the global label that owns `.local` labels. */
export interface ParseScope {
  global: string;
}

/** `.x` → `global.x`; a new global label opens a new scope. */
export function qualify(name: string, scope: ParseScope, defining: boolean): string {
  if (name.startsWith('.') && !name.startsWith('..')) return scope.global + name;
  if (defining) scope.global = name;
  return name;
}

/** An expression with `.local` names resolved against the current scope. */
export function localExpr(cur: Cursor, scope: ParseScope): Expr {
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


// Placeholder for the block compiler (see DESIGN.md "Known design levers"); returns null = not compiled.
import type { Block } from './code-cache.ts';
export const JIT_THRESHOLD = 50;
export function compileBlock(_block: Block): ((lp: unknown) => void) | null {
  return null;
}

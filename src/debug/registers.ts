// A compact register dump, like the top of a crash report or gdb's `info registers`:
//
//   rax 0x0000000000000001  rbx 0x0000000000008000  rcx 0x0000000000000000  rdx 0x0000000000000000
//   ...
//   rip 0x0000000000008005  rflags 0x0000000000000246 [ PF ZF IF ]
//   cs 0x0008  ss 0x0010  ds 0x0010  es 0x0010  fs 0x0000  gs 0x0000
//   cr0 0x0000000080010031 [ PE ET NE WP PG ]  cr2 0x0000000000000000  ...
//
// Keys are register names (any case); missing registers are left out, so a partial snapshot works.
import type { LpSnapshot } from '../machine/lp.ts';
import { CR0, CR4, EFER } from '../x86/control-registers.ts';
import { RFLAGS } from '../x86/flags.ts';
import { GPR64 } from '../x86/registers.ts';
import { hexLower } from '../util/hex.ts';

const ROWS: readonly (readonly string[])[] = [
  ['rax', 'rbx', 'rcx', 'rdx'],
  ['rsi', 'rdi', 'rbp', 'rsp'],
  ['r8', 'r9', 'r10', 'r11'],
  ['r12', 'r13', 'r14', 'r15'],
  ['rip', 'rflags'],
  ['cs', 'ss', 'ds', 'es', 'fs', 'gs', 'ldtr', 'tr'],
  ['cr0', 'cr2', 'cr3', 'cr4', 'cr8'],
  ['efer'],
];

/** Flag tables for registers whose bits are worth naming. */
const BIT_NAMES: Readonly<Record<string, Readonly<Record<string, number>>>> = { rflags: RFLAGS, cr0: CR0, cr4: CR4, efer: EFER };
/** Bits that are not flags: RFLAGS bit 1 always reads 1, IOPL is a 2-bit field shown as a number. */
const NOT_FLAGS = new Set(['FIXED1', 'IOPL']);
const SELECTORS = new Set(['cs', 'ss', 'ds', 'es', 'fs', 'gs', 'ldtr', 'tr']);

export function formatRegisters(snapshot: Record<string, bigint>): string {
  const regs = new Map(Object.entries(snapshot).map(([k, v]) => [k.toLowerCase(), v]));
  const lines: string[] = [];
  for (const row of ROWS) {
    const cells = row.filter((name) => regs.has(name)).map((name) => cell(name, regs.get(name)!));
    if (cells.length > 0) lines.push(cells.join('  '));
  }
  return lines.join('\n');
}

function cell(name: string, value: bigint): string {
  const v = BigInt.asUintN(64, value);
  if (SELECTORS.has(name)) return `${name} ${hexLower(v, 4)}`;
  let text = `${name} ${hexLower(v, 16)}`;
  const bits = BIT_NAMES[name];
  if (bits !== undefined) text += ` [ ${flagNames(v, bits, name === 'rflags').join(' ')} ]`;
  return text;
}

/** Names of the set bits, lowest first; for RFLAGS also IOPL when it is not 0. */
export function flagNames(v: bigint, bits: Readonly<Record<string, number>>, withIopl = false): string[] {
  const names = Object.entries(bits)
    .filter(([name, mask]) => !NOT_FLAGS.has(name) && (v & BigInt(mask)) !== 0n)
    .sort(([, a], [, b]) => a - b)
    .map(([name]) => name);
  // IOPL is RFLAGS bits 13:12. See SDM Vol. 1, "EFLAGS Register".
  const iopl = Number((v >> 12n) & 3n);
  if (withIopl && iopl !== 0) names.push(`IOPL=${iopl}`);
  return names;
}

/** A logical processor's snapshot as name → value: GPRs, RIP, RFLAGS, control registers, EFER, selectors. */
export function registersFromSnapshot(s: LpSnapshot): Record<string, bigint> {
  const regs: Record<string, bigint> = {};
  for (const name of GPR64) regs[name] = s[name];
  Object.assign(regs, { rip: s.rip, rflags: s.rflags, cr0: s.cr0, cr2: s.cr2, cr3: s.cr3, cr4: s.cr4, cr8: s.cr8, efer: s.efer });
  for (const [name, seg] of Object.entries(s.segments)) regs[name] = BigInt(seg.selector);
  return regs;
}

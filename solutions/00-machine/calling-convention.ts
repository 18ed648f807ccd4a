// The System V AMD64 calling convention (Linux, and the kernel a hypervisor module lives in).
// See the "System V Application Binary Interface, AMD64 Architecture Processor Supplement",
// section "Parameter Passing", and "Registers" (callee-saved registers).

export type Gpr =
  | 'rax' | 'rbx' | 'rcx' | 'rdx' | 'rsi' | 'rdi' | 'rbp' | 'rsp'
  | 'r8' | 'r9' | 'r10' | 'r11' | 'r12' | 'r13' | 'r14' | 'r15';

export type ArgumentLocation =
  | { kind: 'register'; register: Gpr }
  /** Offset from RSP at the first instruction of the callee (RSP points at the return address). */
  | { kind: 'stack'; offset: number };

/** Integer/pointer arguments go in these six registers, in order. */
const ARGUMENT_REGISTERS: readonly Gpr[] = ['rdi', 'rsi', 'rdx', 'rcx', 'r8', 'r9'];

/** A callee must preserve these (and RSP); everything else may be clobbered by a call. */
const CALLEE_SAVED: ReadonlySet<Gpr> = new Set<Gpr>(['rbx', 'rbp', 'r12', 'r13', 'r14', 'r15', 'rsp']);

/** Where the n-th (0-based) integer or pointer argument is found on entry to the callee. */
export function argumentLocation(n: number): ArgumentLocation {
  if (!Number.isInteger(n) || n < 0) throw new RangeError(`argument index ${n} must be a whole number ≥ 0`);
  if (n < ARGUMENT_REGISTERS.length) return { kind: 'register', register: ARGUMENT_REGISTERS[n]! };
  // CALL pushed the return address at [rsp]; the caller pushed the 7th argument just above it.
  return { kind: 'stack', offset: 8 + 8 * (n - ARGUMENT_REGISTERS.length) };
}

export function isCalleeSaved(r: Gpr): boolean {
  return CALLEE_SAVED.has(r);
}

/** Where an integer return value is: RAX, and RDX:RAX for a 128-bit value. */
export function returnRegisters(bits: 64 | 128): Gpr[] {
  return bits === 64 ? ['rax'] : ['rax', 'rdx'];
}

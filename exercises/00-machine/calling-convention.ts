// Exercise 0.4 — the System V AMD64 calling convention.
// Read chapters/00-machine/README.md, section "Calling conventions".

export type Gpr =
  | 'rax' | 'rbx' | 'rcx' | 'rdx' | 'rsi' | 'rdi' | 'rbp' | 'rsp'
  | 'r8' | 'r9' | 'r10' | 'r11' | 'r12' | 'r13' | 'r14' | 'r15';

export type ArgumentLocation =
  | { kind: 'register'; register: Gpr }
  /** Offset from RSP at the first instruction of the callee (RSP points at the return address). */
  | { kind: 'stack'; offset: number };

/** Where the n-th (0-based) integer or pointer argument is found on entry to the callee. */
export function argumentLocation(n: number): ArgumentLocation {
  // TODO: six registers first, then the stack. Throw a RangeError for a negative or fractional n.
  throw new Error('TODO: argumentLocation');
}

/** True if a called function must preserve `r` for its caller. */
export function isCalleeSaved(r: Gpr): boolean {
  // TODO
  throw new Error('TODO: isCalleeSaved');
}

/** Where an integer return value is: one register for 64 bits, two for 128 bits (low half first). */
export function returnRegisters(bits: 64 | 128): Gpr[] {
  // TODO
  throw new Error('TODO: returnRegisters');
}

// The one exception type the CPU core throws internally: an architectural fault on its way to delivery.
// The interpreter catches it at the instruction boundary and delivers it through the IDT (or as a VM exit).
// Host-side callers of privileged LP methods (e.g. `lp.writeCr4()` from a learner's module) see it as a
// "host fault": the kernel turns it into an oops with `explanation` and `sdm`.

import { exceptionMnemonic } from '../x86/exceptions.ts';

export class CpuFault extends Error {
  constructor(
    readonly vector: number,
    /** Error code pushed on the stack, or -1 when the exception has none. */
    readonly errorCode: number,
    /** Human explanation (the explanation channel); never changes the architectural outcome. */
    readonly explanation: string,
    /** SDM section title that defines the rule. */
    readonly sdm = '',
  ) {
    super(`${exceptionMnemonic(vector)}${errorCode >= 0 ? `(${errorCode.toString(16)}H)` : ''}: ${explanation}`);
    this.name = 'CpuFault';
  }
}

/** Raise #GP with an error code (usually 0). */
export function gp(errorCode: number, explanation: string, sdm = ''): CpuFault {
  return new CpuFault(13, errorCode, explanation, sdm);
}
/** Raise #UD. */
export function ud(explanation: string, sdm = ''): CpuFault {
  return new CpuFault(6, -1, explanation, sdm);
}

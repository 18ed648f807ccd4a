// Oops reports: what the kernel prints when host code faults (a #GP from VMXON, a #UD from
// VMREAD outside VMX operation, a page fault on a bad pointer). Shaped like Linux's, plus the
// explanation channel: the rule that was broken and the SDM section to read.
import { CpuFault } from '../machine/fault.ts';
import { exceptionMnemonic } from '../x86/exceptions.ts';

export interface OopsReport {
  readonly cpu: number;
  /** Exception vector, or -1 for a JS error in module code (a "BUG" rather than a CPU fault). */
  readonly vector: number;
  readonly errorCode: number;
  /** The privileged operation that faulted, e.g. "VMXON" or "WRMSR", when known. */
  readonly instruction?: string;
  readonly cause: string;
  readonly sdm?: string;
  /** "file:line:col" of the module code that made the call, when it is learner code. */
  readonly location?: string;
  /** The whole report as dmesg shows it. */
  readonly text: string;
}

const LINUX_HEADLINE: Record<number, string> = {
  0: 'divide error',
  6: 'invalid opcode',
  13: 'general protection fault',
  14: 'Oops',
};

/** Frames of learner-visible code (chapters, exercises, solutions) in a JS stack. */
function callerLocation(stack: string | undefined): string | undefined {
  const m = /((?:exercises|solutions|chapters)\/[^\s:()]+):(\d+):(\d+)/.exec(stack ?? '');
  return m === null ? undefined : `${m[1]}:${m[2]}:${m[3]}`;
}

/**
 * Which HostCpu method the module called, from the JS stack: "HostCpu.vmxon" → "VMXON". The outermost
 * HostCpu frame is the one module code called; the inner ones are HostCpu's own helpers (run, withM64).
 * If the stack was cut short before it, a VMX fault's explanation still starts with its mnemonic.
 */
function instructionFrom(stack: string | undefined, explanation: string): string | undefined {
  const frames = [...(stack ?? '').matchAll(/at HostCpu\.(\w+)/g)];
  if (frames.length === 0) return /^(VM[A-Z]+|INV[A-Z]+): /.exec(explanation)?.[1];
  const name = frames[frames.length - 1]![1]!;
  if (/^(read|write)Cr\d$/.test(name)) return `MOV ${name.startsWith('read') ? 'from' : 'to'} CR${name.slice(-1)}`;
  if (name === 'rdmsrSafe') return 'RDMSR';
  return name.toUpperCase();
}

export function oopsFromError(e: unknown, cpu: number, count: number): OopsReport {
  if (e instanceof CpuFault) {
    const instruction = instructionFrom(e.stack, e.explanation);
    const location = callerLocation(e.stack);
    const headline = LINUX_HEADLINE[e.vector] ?? exceptionMnemonic(e.vector);
    const code = e.errorCode >= 0 ? e.errorCode.toString(16).padStart(4, '0') : '0000';
    const lines = [
      `${headline}: ${code} [#${count}] PREEMPT SMP NOPTI`,
      `CPU: ${cpu} PID: 1000 Comm: insmod Tainted: G           O`,
      `Exception: ${exceptionMnemonic(e.vector)}${e.errorCode >= 0 ? ` error code ${e.errorCode}` : ''}${instruction !== undefined ? ` in ${instruction}` : ''}`,
      `Cause: ${e.explanation}`,
      ...(e.sdm ? [`See: ${e.sdm}`] : []),
      ...(location !== undefined ? [`Called from: ${location}`] : []),
      '---[ end trace ]---',
    ];
    return { cpu, vector: e.vector, errorCode: e.errorCode, ...(instruction !== undefined ? { instruction } : {}), cause: e.explanation, ...(e.sdm ? { sdm: e.sdm } : {}), ...(location !== undefined ? { location } : {}), text: lines.join('\n') };
  }
  const err = e instanceof Error ? e : new Error(String(e));
  const location = callerLocation(err.stack);
  const lines = [
    `BUG: module code raised ${err.name}: ${err.message}`,
    `CPU: ${cpu} PID: 1000 Comm: insmod Tainted: G           O`,
    ...(location !== undefined ? [`Called from: ${location}`] : []),
    '---[ end trace ]---',
  ];
  return { cpu, vector: -1, errorCode: -1, cause: `${err.name}: ${err.message}`, ...(location !== undefined ? { location } : {}), text: lines.join('\n') };
}

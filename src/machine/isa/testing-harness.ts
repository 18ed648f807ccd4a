// Test helper for the instruction files in this folder: run raw instruction bytes on one LP in 64-bit mode or
// compatibility mode (32-bit code), with handlers that record the exception vector, and CPUID bits forced on or
// off over the CPU model's answer.
import { Machine } from '../machine.ts';
import { DEFAULT_CPU_MODEL } from '../cpu-model.ts';
import type { LogicalProcessor } from '../lp.ts';
import type { CpuidFeature } from '../../x86/cpuid.ts';
import { AR } from '../../x86/segments.ts';
import { enterLongMode, writeIdtGate, LONG_MODE_LAYOUT as L, SELECTORS } from '../testing/long-mode.ts';

export const NO_EXCEPTION = 0xff;
const HANDLER = 0x200000;
const VECTORS_WITH_ERROR_CODE = new Set([8, 10, 11, 12, 13, 14, 17]);
/** Where test data lives (identity-mapped RAM). */
export const DATA = 0x300000;

export interface Harness {
  machine: Machine;
  lp: LogicalProcessor;
  /** Run `bytes` (then HLT) with `regs`; returns the exception vector taken, or NO_EXCEPTION. */
  run(bytes: number[], regs?: Record<string, bigint>, opts?: { rflags?: bigint; compat?: boolean; cr0?: { set?: number; clear?: number } }): number;
  /** Force CPUID feature bits (true = 1, false = 0) over the model's answer; `{}` restores the model. */
  forceCpuid(bits: Map<CpuidFeature, boolean>): void;
}

export function harness(): Harness {
  const machine = new Machine({ model: DEFAULT_CPU_MODEL });
  const lp = machine.cpus[0]!;
  enterLongMode(lp);
  for (let v = 0; v < 32; v++) {
    const at = HANDLER + v * 16;
    // mov r15, v; (pop r14 for an error code); hlt
    const code = [0x49, 0xc7, 0xc7, v, 0, 0, 0, ...(VECTORS_WITH_ERROR_CODE.has(v) ? [0x41, 0x5e] : []), 0xf4];
    machine.memory.writeBytes(at, code);
    writeIdtGate(machine.memory, L.idt, v, at);
  }
  const modelCpuid = lp.cpuidSource!;
  const baseCr0 = lp.cr0;
  const csAr = lp.getSegment('cs').ar;
  // Each distinct code sequence (and mode) gets its own address, so no decoded block is ever stale.
  const placed = new Map<string, number>();
  let nextCode = L.code;
  return {
    machine, lp,
    run(bytes, regs = {}, opts = {}) {
      const compat = opts.compat ?? false;
      const key = `${compat}:${bytes.join(',')}`;
      let at = placed.get(key);
      if (at === undefined) {
        at = nextCode;
        nextCode += 64;
        if (nextCode >= HANDLER) throw new Error('test harness: out of code space');
        machine.memory.writeBytes(at, [...bytes, 0xf4]);
        placed.set(key, at);
      }
      lp.cr0 = (baseCr0 | (opts.cr0?.set ?? 0)) & ~(opts.cr0?.clear ?? 0);
      lp.setSegment('cs', compat
        ? { selector: SELECTORS.CODE32, base: 0n, limit: 0xffffffff, ar: (csAr & ~AR.L) | AR.DB }
        : { selector: SELECTORS.CODE64, base: 0n, limit: 0xffffffff, ar: csAr });
      lp.updateMode();
      lp.setReg('rsp', BigInt(L.stackTop));
      for (const [k, v] of Object.entries(regs)) lp.setReg(k, v);
      lp.setReg('r15', BigInt(NO_EXCEPTION));
      lp.setReg('rflags', (opts.rflags ?? 0n) | 2n);
      lp.rip = at;
      lp.activity = 'active';
      machine.run({ maxInstructions: 200 });
      return Number(lp.getReg('r15'));
    },
    forceCpuid(bits) {
      lp.cpuidSource = (leaf, subleaf, p) => {
        const r = { ...modelCpuid(leaf, subleaf, p) };
        for (const [f, on] of bits) {
          if (f.leaf === leaf && f.subleaf === (leaf === 7 ? subleaf : f.subleaf)) r[f.reg] = on ? (r[f.reg] | (1 << f.bit)) >>> 0 : (r[f.reg] & ~(1 << f.bit)) >>> 0;
        }
        return r;
      };
    },
  };
}

// The guests the benchmarks run under the reference hypervisor (the solutions of chapters 1–6), written once for
// bench/run.ts and bench/profile-exits.ts.
import { bootHost } from '../src/kernel/boot-host.ts';
import type { KernelRunResult } from '../src/kernel/kernel.ts';
import { cpuidPart } from '../solutions/05-exits/cpuid.ts';
import { createHypervisor, type HypervisorLog, type VmmPart } from '../solutions/05-exits/hypervisor.ts';
import { eptIdentityPart } from '../solutions/06-ept/identity-map.ts';

/** The model every hypervisor benchmark runs on. */
export const BENCH_MODEL = 'skylake-i5-6300u';

/** The DESIGN.md loop (8 instructions per iteration), with `rbx` set by `setRbx`, then HLT. */
export function loopProgram(setRbx: string, iterations: number): string {
  return `
    bits 64
    ${setRbx}
    mov rcx, ${iterations}
    xor eax, eax
    xor edx, edx
  .loop:
    add rax, rdx
    inc rdx
    mov [rbx], rax
    mov rsi, [rbx]
    xor rsi, rdx
    cmp rsi, rax
    dec rcx
    jnz .loop
    hlt`;
}

/** A guest that executes CPUID leaf 1 `iterations` times (5 instructions each, one VM exit each), then HLT. */
export function cpuidLoopProgram(iterations: number): string {
  return `
    bits 64
    mov r8, ${iterations}
  .loop:
    mov eax, 1
    xor ecx, ecx
    cpuid
    dec r8
    jnz .loop
    hlt`;
}

/**
 * The reference hypervisor's parts for a benchmark: the CPUID part (chapter 5) if the guest executes CPUID, and the
 * identity EPT with the largest pages the model allows (chapter 6) for the EPT variants.
 */
export function benchParts(opts: { cpuid: boolean; ept: boolean }): VmmPart[] {
  return [...(opts.cpuid ? [cpuidPart()] : []), ...(opts.ept ? [eptIdentityPart()] : [])];
}

/**
 * A booted host with the reference hypervisor for `guest`, not yet loaded: `start` loads it (VMLAUNCH) and runs
 * the machine, so a caller can measure or profile exactly that part.
 */
export function hypervisorWorkload(name: string, guest: string, parts: readonly VmmPart[]): { log: HypervisorLog; start: (maxInstructions: number) => KernelRunResult } {
  const host = bootHost({ model: BENCH_MODEL });
  const hv = createHypervisor({ guest, parts });
  return {
    log: hv.log,
    start: (maxInstructions) => {
      const loaded = host.kernel.insmod(hv.module);
      if (!loaded.ok) throw new Error(`${name}: insmod failed: ${loaded.message}\n${host.kernel.dmesg()}`);
      const r = host.kernel.run({ maxInstructions });
      if (!hv.log.halted) throw new Error(`${name} did not finish: ${r.reason}, exits ${hv.log.exits.length}\n${host.kernel.dmesg()}`);
      return r;
    },
  };
}

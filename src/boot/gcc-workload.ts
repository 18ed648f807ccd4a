// The gcc-compiled benchmark workload (tests/kernels/workload.c): a multiboot kernel whose instruction mix is the
// compiler's (printf, CRC-32, quicksort, a sieve, jump tables, 64-bit sums), booted with "rounds=N" and timed.
// Its printed results are checked, so a broken fast path cannot report a fast time. Needs gcc and binutils.
//
//   const r = gccWorkload(20);       // { name: 'gcc-workload', instructions, seconds, mips, wallSeconds }
//   gccWorkload(20, 64)              // the same C compiled with -m64, run in long mode: 'gcc-workload64'

import { readFileSync } from 'node:fs';
import { buildTestKernels } from '../../tests/kernels/build.ts';
import { createBootPc, loadKernel, runBoot } from './pc.ts';

/** What every round of the workload must print (checked against the same computations on the host). */
export const GCC_WORKLOAD_RESULTS = [
  'crc32 414fa339',
  'sort ok min -49972 max 49974',
  'primes below 50000: 5133',
  'ops add..rol acc 00006000',
  'u64 sum hi 0007a313 lo ffd9d09c',
] as const;

/** About 1.25 million guest instructions per round. */
const BUDGET_PER_ROUND = 5_000_000;

export interface GccWorkloadResult {
  name: 'gcc-workload' | 'gcc-workload64';
  instructions: number;
  /** CPU time of this process (user + system), as bench/run.ts measures. */
  seconds: number;
  mips: number;
  wallSeconds: number;
}

export function gccWorkload(rounds: number, bits: 32 | 64 = 32): GccWorkloadResult {
  const kernels = buildTestKernels();
  const name = bits === 32 ? 'gcc-workload' : 'gcc-workload64';
  const bytes: number[] = [];
  const pc = createBootPc({ append: `rounds=${rounds}`, output: (b) => bytes.push(b) });
  const load = loadKernel(pc, readFileSync(bits === 32 ? kernels.workload : kernels.workload64), 'workload.elf');
  if (!load.ok) throw new Error(`${name}: ${load.error}`);
  const c0 = process.cpuUsage();
  const w0 = process.hrtime.bigint();
  const outcome = runBoot(pc, { budget: BUDGET_PER_ROUND * rounds + 1_000_000 });
  const c = process.cpuUsage(c0);
  const wallSeconds = Number(process.hrtime.bigint() - w0) / 1e9;
  const output = Buffer.from(bytes).toString('latin1');
  const missing = [`rounds ${rounds}`, ...GCC_WORKLOAD_RESULTS].filter((line) => !output.includes(`${line}\n`));
  if (outcome.kind !== 'debug-exit' || outcome.value !== 0 || missing.length > 0) {
    throw new Error(`${name} gave a wrong result (${outcome.kind}${outcome.kind === 'debug-exit' ? ` ${outcome.value}` : ''}); missing: ${missing.join(' | ')}`);
  }
  const seconds = (c.user + c.system) / 1e6;
  return { name, instructions: outcome.instructions, seconds, mips: outcome.instructions / seconds / 1e6, wallSeconds };
}

// Builds the freestanding test kernels of this directory with the host's GNU toolchain (Debian's gcc and binutils):
// each 32-bit `<name>.c` is linked with entry.S and lib.c into `build/<name>.elf` (ELF32, loaded at 1 MiB); hello is
// also converted to an ELF64 container (`build/hello64.elf`); and each 64-bit one (long.c) is compiled with -m64 and
// linked with entry64.S (which enters long mode) as ELF64. Binaries are never committed: `build/` is git-ignored and rebuilt by the tests.
//
// gcc -m32 is used only to compile (no 32-bit libc or libgcc is needed: the kernels use none); ld links.
//
//   npx tsx tests/kernels/build.ts      # build them by hand, then: npx vmxlab boot tests/kernels/build/hello.elf

import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, renameSync, rmSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export const KERNEL_DIR = resolve(fileURLToPath(new URL('.', import.meta.url)));
export const KERNEL_BUILD_DIR = join(KERNEL_DIR, 'build');
export const TEST_KERNELS = ['hello', 'mbinfo', 'fwcfg', 'triple', 'spin', 'halt', 'workload', 'smp', 'acpi', 'legacy', 'timer', 'isa'] as const;
/** Assembly a kernel needs besides entry.S. */
const EXTRA_ASM: Partial<Record<string, string>> = { smp: 'ap-trampoline.S' };
/** 64-bit kernels: entry64.S switches to long mode; the C is compiled with -m64 and linked as ELF64. */
export const TEST_KERNELS_64 = ['long', 'workload64', 'isa64'] as const;
/** The C source of each 64-bit kernel (workload64 is workload.c compiled for long mode). */
const SOURCE_64: Record<(typeof TEST_KERNELS_64)[number], string> = { long: 'long.c', workload64: 'workload.c', isa64: 'isa64.c' };
export type TestKernel = (typeof TEST_KERNELS)[number] | (typeof TEST_KERNELS_64)[number] | 'hello64';

const CFLAGS_64 = ['-m64', '-ffreestanding', '-nostdlib', '-fno-pic', '-fno-stack-protector', '-mno-red-zone', '-mgeneral-regs-only', '-O2', '-Wall', '-Werror', '-fno-asynchronous-unwind-tables'];
const CFLAGS = ['-m32', '-ffreestanding', '-nostdlib', '-fno-pic', '-fno-stack-protector', '-mno-sse', '-O2', '-Wall', '-Werror', '-fno-asynchronous-unwind-tables'];
const TOOLS = ['gcc', 'as', 'ld', 'objcopy'] as const;

/** The tools the build needs that are not on PATH (empty when all are there). */
export function missingTools(): string[] {
  return TOOLS.filter((t) => {
    try {
      execFileSync(t, ['--version'], { stdio: 'ignore' });
      return false;
    } catch {
      return true;
    }
  });
}

/**
 * Build every test kernel; returns the path of each ELF in `outDir`. Throws with the tool's own message when a step
 * fails. Everything is built in a private directory and then renamed into `outDir` (an atomic replace), so
 * two test runs building at once never read each other's half-written files.
 */
export function buildTestKernels(outDir = KERNEL_BUILD_DIR): Record<TestKernel, string> {
  const missing = missingTools();
  if (missing.length > 0) {
    throw new Error(`cannot build the test kernels: ${missing.join(', ')} not found (on Debian/Ubuntu: apt-get install gcc binutils)`);
  }
  mkdirSync(outDir, { recursive: true });
  // A private directory next to the output (same file system, so each rename is atomic).
  const work = mkdtempSync(join(outDir, '.tmp-'));
  try {
    buildIn(work);
    for (const f of readdirSync(work)) renameSync(join(work, f), join(outDir, f));
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
  const out = {} as Record<TestKernel, string>;
  for (const name of [...TEST_KERNELS, ...TEST_KERNELS_64, 'hello64'] as const) out[name] = join(outDir, `${name}.elf`);
  return out;
}

function buildIn(dir: string): void {
  const src = (f: string) => join(KERNEL_DIR, f);
  const obj = (f: string) => join(dir, f);
  run('as', ['--32', '-o', obj('entry.o'), src('entry.S')]);
  run('gcc', [...CFLAGS, '-c', '-o', obj('lib.o'), src('lib.c')]);
  for (const name of TEST_KERNELS) {
    run('gcc', [...CFLAGS, '-c', '-o', obj(`${name}.o`), src(`${name}.c`)]);
    const extra = EXTRA_ASM[name];
    if (extra !== undefined) run('as', ['--32', '-o', obj(`${name}-asm.o`), src(extra)]);
    run('ld', ['-m', 'elf_i386', '-T', src('linker.ld'), '-nostdlib', '--build-id=none', '-z', 'max-page-size=0x1000',
      '-o', obj(`${name}.elf`), obj('entry.o'), obj('lib.o'), obj(`${name}.o`), ...(extra !== undefined ? [obj(`${name}-asm.o`)] : [])]);
  }
  run('objcopy', ['-O', 'elf64-x86-64', obj('hello.elf'), obj('hello64.elf')]);
  run('as', ['--64', '-o', obj('entry64.o'), src('entry64.S')]);
  run('gcc', [...CFLAGS_64, '-c', '-o', obj('lib64.o'), src('lib.c')]);
  for (const name of TEST_KERNELS_64) {
    run('gcc', [...CFLAGS_64, '-c', '-o', obj(`${name}.o`), src(SOURCE_64[name])]);
    run('ld', ['-m', 'elf_x86_64', '-T', src('linker.ld'), '-nostdlib', '--build-id=none', '-z', 'max-page-size=0x1000',
      '-o', obj(`${name}.elf`), obj('entry64.o'), obj('lib64.o'), obj(`${name}.o`)]);
  }
}

function run(tool: string, args: string[]): void {
  try {
    execFileSync(tool, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  } catch (e) {
    const err = e as { stderr?: Buffer; message: string };
    throw new Error(`${tool} ${args.join(' ')} failed:\n${err.stderr?.toString() ?? err.message}`);
  }
}

if (process.argv[1] !== undefined && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  for (const [name, path] of Object.entries(buildTestKernels())) process.stdout.write(`${name}: ${path}\n`);
}

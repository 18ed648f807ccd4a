// The multiboot loader and `vmxlab boot`, on freestanding kernels compiled here with gcc (tests/kernels/, built at
// setup, never committed) and on images built byte by byte. Every run ends by an instruction budget.
import { describe, it, expect, beforeAll } from 'vitest';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { buildTestKernels, KERNEL_BUILD_DIR, missingTools, type TestKernel } from '../../tests/kernels/build.ts';
import { Machine } from '../machine/machine.ts';
import { AR } from '../x86/segments.ts';
import { CR0 } from '../x86/control-registers.ts';
import { RFLAGS } from '../x86/flags.ts';
import { createBootPc, loadKernel, runBoot, type BootOutcome } from './pc.ts';
import { bootMultiboot, findMultibootHeader, MULTIBOOT_BOOTLOADER_MAGIC, MULTIBOOT_HEADER_MAGIC } from './multiboot.ts';
import { parseElf } from './elf.ts';
import { surveyCode, surveyElf } from './isa-survey.ts';
import { gccWorkload } from './gcc-workload.ts';
import { CPU_MODELS, DEFAULT_CPU_MODEL } from '../machine/cpu-model.ts';
import { FwCfg, FW_CFG, FW_CFG_PORT_DATA, FW_CFG_PORT_SEL } from './devices/fw-cfg.ts';
import { IoApic, IOAPIC_MMIO, IOAPIC_REG, IOREDTBL } from './devices/ioapic.ts';
import type { LocalApic } from '../machine/apic.ts';
import { CmosRtc, CMOS, CMOS_PORT_DATA, CMOS_PORT_INDEX, RTC_B } from './devices/cmos-rtc.ts';
import { PciHostEmptyBus, PCI_CONFIG_ADDRESS, PCI_CONFIG_DATA } from './devices/pci-host.ts';
import { Pic8259Pair } from './devices/pic8259.ts';
import { Pit8254 } from './devices/pit8254.ts';
import { BOOT_EXIT, runBootCommand } from '../cli/boot.ts';

const ROOT = resolve(fileURLToPath(new URL('../..', import.meta.url)));
const BUDGET = 2_000_000;

// Without gcc the kernels cannot be built. In CI that is a failure (buildTestKernels throws and says what to install);
// on a learner's machine the kernel tests are skipped, and say so.
const toolsMissing = missingTools();
const canBuild = toolsMissing.length === 0 || process.env.CI === 'true';
if (!canBuild) console.warn(`boot tests skipped: ${toolsMissing.join(', ')} not found (apt-get install gcc binutils)`);

let kernels: Record<TestKernel, string>;

interface Booted {
  outcome: BootOutcome;
  output: string;
}

function boot(kernel: TestKernel, opts: { append?: string; cpus?: number; memMiB?: number; budget?: number } = {}): Booted {
  const bytes: number[] = [];
  const pc = createBootPc({ cpus: opts.cpus, ramBytes: opts.memMiB === undefined ? undefined : opts.memMiB * 2 ** 20, append: opts.append, output: (b) => bytes.push(b) });
  const load = loadKernel(pc, readFileSync(kernels[kernel]), `${kernel}.elf`);
  if (!load.ok) throw new Error(load.error);
  const outcome = runBoot(pc, { budget: opts.budget ?? BUDGET });
  return { outcome, output: Buffer.from(bytes).toString('latin1') };
}

describe.skipIf(!canBuild)('gcc-built multiboot kernels', () => {
  beforeAll(() => {
    kernels = buildTestKernels();
  });

  it('hello prints on COM1 and exits through isa-debug-exit with (21 << 1) | 1', () => {
    const { outcome, output } = boot('hello');
    expect(output).toBe('hello from a multiboot kernel\n');
    expect(outcome).toMatchObject({ kind: 'debug-exit', value: 21, status: 43 });
  });

  it('loads the same kernel from an ELF64 container (32-bit code, ELF64 program headers)', () => {
    expect(parseElf(readFileSync(kernels.hello64))).toMatchObject({ ok: true, elf: { bits: 64 } });
    const { outcome, output } = boot('hello64');
    expect(output).toBe('hello from a multiboot kernel\n');
    expect(outcome).toMatchObject({ kind: 'debug-exit', status: 43 });
  });

  it('mbinfo reads the magic, the memory sizes, the command line, the PC memory map and the loader name', () => {
    const { outcome, output } = boot('mbinfo', { append: 'console=ttyS0 quiet', memMiB: 64 });
    expect(output).toBe([
      'magic 2badb002',
      'flags 0000024f', // MEMORY | BOOTDEV | CMDLINE | MODS | MEM_MAP | BOOT_LOADER_NAME
      'mem_lower 639 KiB',
      'mem_upper 64512 KiB',
      "cmdline 'mbinfo.elf console=ttyS0 quiet'",
      'mmap 0000000000000000 000000000009fc00 1',
      'mmap 000000000009fc00 0000000000000400 2',
      'mmap 00000000000f0000 0000000000010000 2',
      'mmap 0000000000100000 0000000003f00000 1',
      'mmap 00000000fffc0000 0000000000040000 2',
      'mmap entries 5, usable 65151 KiB',
      'mods 0',
      "loader 'vmxlab'",
      '',
    ].join('\n'));
    expect(outcome).toMatchObject({ kind: 'debug-exit', value: 0, status: 1 });
  });

  it('fwcfg finds the QEMU signature on 510H/511H and reads the CPU count and RAM size (E9H and COM1 both reach the output)', () => {
    const { outcome, output } = boot('fwcfg', { cpus: 3, memMiB: 256 });
    expect(output).toBe("fw_cfg signature 'QEMU'\nfw_cfg id 1\nfw_cfg cpus 3\nfw_cfg ram 256 MiB\n");
    expect(outcome).toMatchObject({ kind: 'debug-exit', value: 3, status: 7 });
  });

  it('isa runs SHLD/SHRD, LOCK CMPXCHG8B, PUSHA/POPA, SAHF/LAHF, ENTER, REP BSF, the x87 control words and FXSAVE/FXRSTOR', () => {
    const checks = ['shld', 'shrd', 'lock cmpxchg8b (equal)', 'lock cmpxchg8b (different)', 'pusha/popa', 'sahf/lahf', 'enter/leave', 'rep bsf', 'fninit/fnstcw/fnstsw/fldcw/fwait'];
    // The machine's built-in CPUID has no FXSR, and the kernel asks before it uses FXSAVE; a CPU model has it.
    const plain = boot('isa');
    expect(plain.output).toBe([...checks.map((c) => `${c} ok`), 'fxsave skipped: no FXSR in CPUID', ''].join('\n'));
    expect(plain.outcome).toMatchObject({ kind: 'debug-exit', value: 0 });
    const bytes: number[] = [];
    const pc = createBootPc({ model: DEFAULT_CPU_MODEL, output: (b) => bytes.push(b) });
    expect(loadKernel(pc, readFileSync(kernels.isa), 'isa.elf').ok).toBe(true);
    expect(runBoot(pc, { budget: BUDGET })).toMatchObject({ kind: 'debug-exit', value: 0 });
    expect(Buffer.from(bytes).toString('latin1')).toBe([...checks, 'fxsave/fxrstor'].map((c) => `${c} ok\n`).join(''));
  });

  it('isa64 runs CMPXCHG16B, 64-bit SHLD/SHRD, LAHF/SAHF, ENTER with a level, POPCNT, FXSAVE64, XSAVE64/XRSTOR64 and LDMXCSR/STMXCSR in long mode', () => {
    const all = ['shld/shrd (64-bit)', 'lock cmpxchg16b', 'sahf/lahf (64-bit mode)', 'enter 32, 1', 'popcnt', 'fxsave64', 'xsave64/xrstor64, ldmxcsr/stmxcsr'];
    const bytes: number[] = [];
    const pc = createBootPc({ model: DEFAULT_CPU_MODEL, output: (b) => bytes.push(b) });
    expect(loadKernel(pc, readFileSync(kernels.isa64), 'isa64.elf').ok).toBe(true);
    expect(runBoot(pc, { budget: BUDGET })).toMatchObject({ kind: 'debug-exit', value: 0 });
    expect(Buffer.from(bytes).toString('latin1')).toBe(all.map((c) => `${c} ok\n`).join(''));
    // The built-in CPUID reports none of CX16, LAHF-SAHF in 64-bit mode, POPCNT, FXSR, SSE: the kernel skips those.
    const plain = boot('isa64');
    expect(plain.outcome).toMatchObject({ kind: 'debug-exit', value: 0 });
    expect(plain.output).toBe(['shld/shrd (64-bit) ok', 'cmpxchg16b skipped: not in CPUID', 'sahf/lahf skipped: not in CPUID', 'enter 32, 1 ok',
      'popcnt skipped: not in CPUID', 'fxsave64 skipped: not in CPUID', 'xsave skipped: not in CPUID', ''].join('\n'));
  });

  it('triple: #UD with no IDT shuts the processor down, and nothing after the fault runs', () => {
    const { outcome, output } = boot('triple');
    expect(output).toBe('about to triple-fault\n');
    expect(outcome.kind).toBe('shutdown');
    if (outcome.kind !== 'shutdown') return;
    expect(outcome.reason).toMatch(/^triple fault/);
    expect(outcome.lastFault).toMatch(/^#UD: UD2/);
  });

  it('spin runs until the budget, exactly', () => {
    const { outcome, output } = boot('spin', { budget: 200_000 });
    expect(output).toBe('spinning\n');
    expect(outcome).toEqual({ kind: 'budget', instructions: 200_000 });
  });

  it('halt (cli; hlt) ends the run as halted, not by the budget', () => {
    const { outcome, output } = boot('halt');
    expect(output).toBe('halting\n');
    expect(outcome.kind).toBe('halted');
  });

  it("workload: gcc's own instruction mix (printf, CRC-32, quicksort, sieve, jump tables, 64-bit sums, atomics, CPUID) gives the right answers", () => {
    const { outcome, output } = boot('workload', { budget: 50_000_000 });
    expect(output).toBe([
      'workload: magic 2badb002',
      'rounds 1',
      'crc32 414fa339',
      'sort ok min -49972 max 49974',
      'primes below 50000: 5133',
      'ops add..rol acc 00006000',
      'u64 sum hi 0007a313 lo ffd9d09c',
      'bits clz 8 ctz 20 bswap 44332211',
      'atomics 5 8 42',
      'cpuid vendor GenuineIntel',
      '',
    ].join('\n')); // values checked against the same computations on the host
    expect(outcome).toMatchObject({ kind: 'debug-exit', value: 0, status: 1 });
  });

  it('smp: the BSP starts every AP with INIT-SIPI-SIPI (real mode at 8000H → protected mode) and counts them', () => {
    expect(boot('smp', { cpus: 4 })).toEqual({
      output: 'BSP: APIC ID 0, 4 CPUs\nAP 1 up, APIC ID 1\nAP 2 up, APIC ID 2\nAP 3 up, APIC ID 3\nBSP: 3 APs up\n',
      outcome: expect.objectContaining({ kind: 'debug-exit', value: 3, status: 7 }),
    });
    expect(boot('smp').output).toBe('BSP: APIC ID 0, 1 CPUs\nBSP: 0 APs up\n');
  });

  it('acpi: finds the RSDP in the BIOS area and walks XSDT, FADT (hardware-reduced, empty DSDT) and MADT (LAPICs, the I/O APIC, IRQ 0 → GSI 2)', () => {
    const { outcome, output } = boot('acpi', { cpus: 2 });
    expect(output).toBe([
      "RSDP at 000f0100 revision 2 OEM 'VMXLAB' extended checksum ok",
      'root XSDT ok',
      'table FACP length 276 revision 6 checksum ok',
      '  DSDT DSDT ok, flags 00100001',
      'table APIC length 82 revision 5 checksum ok',
      '  local APIC address fee00000 flags 00000001', // PCAT_COMPAT: the 8259s are there
      '  CPU uid 0 APIC ID 0',
      '  CPU uid 1 APIC ID 1',
      '  I/O APIC ID 2 at fec00000 GSI base 0: version 00000020, 24 pins',
      '  ISA IRQ 0 -> GSI 2',
      '',
    ].join('\n'));
    expect(outcome).toMatchObject({ kind: 'debug-exit', value: 2 });
  });

  it('legacy: the CMOS RTC (BCD, then binary), the CMOS memory sizes and CPU count, and an empty PCI bus', () => {
    const { outcome, output } = boot('legacy', { cpus: 2, memMiB: 512 });
    expect(output).toBe([
      'rtc 2026-01-01 00:00:00 weekday 5 status B 00000002', // a Thursday: weekday 5 counting Sunday as 1
      'rtc binary month 1 year 26',
      'cmos base 640 KiB, extended 65535 KiB, above 16 MiB 7936 x 64 KiB, cpus 2',
      'pci bus 0: 0 devices, CONFIG_ADDRESS reads back 8000f800',
      '',
    ].join('\n'));
    expect(outcome).toMatchObject({ kind: 'debug-exit', value: 0 });
  });

  it('timer: PIT IRQ 0 through the remapped PICs and through the I/O APIC wakes HLT; the TSC calibrates to 1 GHz against PIT channel 2', () => {
    const { outcome, output } = boot('timer', { budget: 100_000_000 });
    expect(output).toBe('PIC: 10 timer interrupts\nTSC: 999 MHz (many polls)\nI/O APIC: 5 timer interrupts\n');
    expect(outcome).toMatchObject({ kind: 'debug-exit', value: 0 });
    // The CPU slept through the 15 ms of timer ticks: it executed little more than the 10 ms of polling.
    expect(outcome.instructions).toBeLessThan(11_000_000);
  });

  it('long: a 64-bit kernel whose stub goes from the multiboot entry to long mode (PAE, EFER.LME, CR0.PG), ELF64', () => {
    const { outcome, output } = boot('long');
    expect(output).toBe([
      'long mode: magic 2badb002, info at 00109000',
      'u64 9d3106471973c5a7 / 1000003 = 00000a4d3a55c7f6 rem 590917', // checked on the host
      'EFER 00000500, 8-byte pointers', // LME | LMA
      '',
    ].join('\n'));
    expect(outcome).toMatchObject({ kind: 'debug-exit', value: 0 });
  });

  it('gccWorkload: the same C in 32-bit protected mode and in long mode gives the checked results', () => {
    for (const bits of [32, 64] as const) {
      const r = gccWorkload(1, bits);
      expect(r.name).toBe(bits === 32 ? 'gcc-workload' : 'gcc-workload64');
      expect(r.instructions).toBeGreaterThan(1_000_000);
    }
  });

  it('every instruction gcc emitted for the test kernels is one the emulator implements', () => {
    for (const k of ['hello', 'mbinfo', 'fwcfg', 'triple', 'spin', 'halt', 'workload', 'smp', 'acpi', 'legacy', 'timer', 'long', 'workload64', 'isa', 'isa64'] as const) {
      expect(surveyElf(readFileSync(kernels[k])), k).toEqual([]);
    }
  });

  it('hello boots on every CPU model', () => {
    for (const model of CPU_MODELS) {
      const pc = createBootPc({ model });
      expect(loadKernel(pc, readFileSync(kernels.hello)).ok).toBe(true);
      expect(runBoot(pc, { budget: BUDGET }), model.name).toMatchObject({ kind: 'debug-exit', status: 43 });
    }
  });

  it('refuses an ELF that is not an executable (an object file with a multiboot header)', () => {
    const m = new Machine({ ramBytes: 16 << 20 });
    const r = bootMultiboot(m, readFileSync(join(KERNEL_BUILD_DIR, 'entry.o')));
    expect(r).toEqual({ ok: false, error: 'ELF type 1 is not ET_EXEC (2): link the kernel as a static executable' });
  });

  describe('vmxlab boot', () => {
    function cli(args: string[]): { status: number; stdout: string; stderr: string } {
      let stdout = '';
      let stderr = '';
      const status = runBootCommand(args, {
        stdout: { write: (d: Uint8Array | string) => (stdout += typeof d === 'string' ? d : Buffer.from(d).toString('latin1')) },
        stderr: { write: (d: string) => (stderr += d) },
      });
      return { status, stdout, stderr };
    }

    it('gives the guest exit status and its output, and says nothing of its own', () => {
      expect(cli([kernels.hello])).toEqual({ status: 43, stdout: 'hello from a multiboot kernel\n', stderr: '' });
    });

    it('passes --append, --cpus and --mem to the kernel', () => {
      const r = cli([kernels.fwcfg, '--cpus', '2', '--mem', '32']);
      expect(r.stdout).toContain('fw_cfg cpus 2\nfw_cfg ram 32 MiB\n');
      expect(r.status).toBe(5);
      expect(cli([kernels.mbinfo, '--append', 'a=1 b']).stdout).toContain(`cmdline '${kernels.mbinfo} a=1 b'`);
    });

    it('loads --initrd files as multiboot modules, page-aligned after the kernel, with their strings', () => {
      const src = join(ROOT, 'tests/kernels/lib.h');
      const r = cli([kernels.mbinfo, '--initrd', `${src} one two,${kernels.hello}`]);
      expect(r.stdout).toContain('mods 2\n');
      const mods = [...r.stdout.matchAll(/^mod ([0-9a-f]{8}) ([0-9a-f]{8}) '(.*)' starts '(.*)'$/gm)].map((m) => ({
        start: parseInt(m[1]!, 16), end: parseInt(m[2]!, 16), string: m[3], head: m[4],
      }));
      expect(mods.map((m) => [m.string, m.head, m.end - m.start, m.start % 4096])).toEqual([
        [`${src} one two`, '/* What the ', readFileSync(src).length, 0],
        [kernels.hello, '\x7fELF', readFileSync(kernels.hello).length, 0],
      ]);
      expect(mods[1]!.start).toBe(Math.ceil(mods[0]!.end / 4096) * 4096);
      expect(r.status).toBe(1);
      expect(cli([kernels.mbinfo, '--initrd', '/no/such/module']).stderr).toMatch(/^vmxlab boot: cannot read module \/no\/such\/module/);
    });

    it.each([
      ['triple', [] as string[], BOOT_EXIT.SHUTDOWN, /^vmxlab boot: CPU 0 shut down at EIP [0-9A-F]{8}H after \d+ instructions: triple fault.*the last fault raised: #UD: UD2/],
      ['spin', ['--budget', '100_000'], BOOT_EXIT.BUDGET, /^vmxlab boot: instruction budget exhausted: 100000 instructions and the kernel did not exit/],
      ['halt', [], BOOT_EXIT.HALTED, /^vmxlab boot: every CPU is halted and nothing can wake it/],
    ] as const)('%s ends with one line on stderr and its own status', (kernel, extra, status, message) => {
      const r = cli([kernels[kernel], ...extra]);
      expect(r.status).toBe(status);
      expect(r.stderr).toMatch(message);
      expect(r.stderr.trimEnd().split('\n')).toHaveLength(1);
    });

    it('refuses a file without a multiboot header, a missing file and bad options, in one line each', () => {
      const notKernel = cli([join(KERNEL_BUILD_DIR, 'hello.o')]);
      expect(notKernel.status).toBe(BOOT_EXIT.BAD_IMAGE);
      expect(notKernel.stderr).toMatch(/^vmxlab boot: .*hello\.o: no multiboot header \(magic 1BADB002H, 4-byte aligned\) in the first 8192 bytes/);
      expect(notKernel.stderr.trimEnd().split('\n')).toHaveLength(1);
      const missing = cli([join(KERNEL_BUILD_DIR, 'no-such.elf')]);
      expect(missing.status).toBe(BOOT_EXIT.USAGE);
      expect(missing.stderr).toMatch(/^vmxlab boot: cannot read .*no-such\.elf: ENOENT/);
      for (const bad of [['--cpus', '0'], ['--mem', '1'], ['--budget', 'lots'], ['--model', 'pentium'], ['--bogus']]) {
        const r = cli([kernels.hello, ...bad]);
        expect(r.status, bad.join(' ')).toBe(BOOT_EXIT.USAGE);
        expect(r.stderr.split('\n')[0], bad.join(' ')).toMatch(/^vmxlab boot: /);
      }
      expect(cli([kernels.hello, '--model', 'penryn-core2-duo-t9600']).status).toBe(43);
      const help = cli(['--help']);
      expect([help.status, help.stderr]).toEqual([0, '']);
      expect(help.stdout).toMatch(/^usage: vmxlab boot <kernel.elf>/);
    });

    it('runs from the command line: npx vmxlab boot <kernel>', () => {
      const r = spawnSync(process.execPath, [join(ROOT, 'bin/vmxlab.js'), 'boot', kernels.hello], { encoding: 'utf8' });
      expect(r.stdout).toBe('hello from a multiboot kernel\n');
      expect(r.stderr).toBe('');
      expect(r.status).toBe(43);
    });
  });
});

describe('multiboot loader on hand-made images', () => {
  const LOAD = 0x100000;
  /** A flat image with an a.out-kludge header at its start: the header's address fields say where it goes. */
  function aoutImage(code: number[], fields: { bssEnd?: number; flags?: number; checksum?: number } = {}): Uint8Array {
    const flags = fields.flags ?? 1 << 16;
    const words = [MULTIBOOT_HEADER_MAGIC, flags, fields.checksum ?? -(MULTIBOOT_HEADER_MAGIC + flags), LOAD, LOAD, 0, fields.bssEnd ?? 0, LOAD + 32];
    const image = new Uint8Array(32 + code.length);
    const view = new DataView(image.buffer);
    words.forEach((w, i) => view.setUint32(i * 4, w >>> 0, true));
    image.set(code, 32);
    return image;
  }
  // mov al, 7; out F4H, al; mov al, 'X'; out E9H, al; hlt
  const EXIT_7_THEN_PRINT = [0xb0, 0x07, 0xe6, 0xf4, 0xb0, 0x58, 0xe6, 0xe9, 0xf4];

  it('leaves the machine state the specification promises', () => {
    const m = new Machine({ ramBytes: 16 << 20 });
    const r = bootMultiboot(m, aoutImage(EXIT_7_THEN_PRINT), { cmdline: 'k' });
    expect(r).toMatchObject({ ok: true, boot: { entry: LOAD + 32, format: 'aout-kludge', infoAddress: LOAD + 0x1000 } });
    const lp = m.cpus[0]!;
    expect(lp.getReg('rax')).toBe(BigInt(MULTIBOOT_BOOTLOADER_MAGIC));
    expect(lp.getReg('rbx')).toBe(BigInt(LOAD + 0x1000));
    expect(lp.cr0 & CR0.PE).toBe(CR0.PE);
    expect(lp.cr0 & CR0.PG).toBe(0);
    expect(lp.bits).toBe(32);
    expect(lp.getRflags() & (RFLAGS.IF | RFLAGS.VM)).toBe(0);
    for (const s of ['cs', 'ds', 'es', 'fs', 'gs', 'ss'] as const) {
      const seg = lp.getSegment(s);
      expect([seg.base, seg.limit, (seg.ar & AR.DB) !== 0], s).toEqual([0n, 0xffffffff, true]);
    }
  });

  it('isa-debug-exit stops the machine at the OUT: nothing after it runs', () => {
    const pc = createBootPc();
    const bytes: number[] = [];
    pc.console.onByte = (b) => bytes.push(b);
    expect(loadKernel(pc, aoutImage(EXIT_7_THEN_PRINT)).ok).toBe(true);
    expect(runBoot(pc, { budget: 1000 })).toEqual({ kind: 'debug-exit', value: 7, status: 15, instructions: 2 });
    expect(bytes).toEqual([]);
  });

  it('traces each instruction before it runs', () => {
    const pc = createBootPc();
    loadKernel(pc, aoutImage(EXIT_7_THEN_PRINT));
    const lines: string[] = [];
    runBoot(pc, { budget: 1000, trace: (l) => lines.push(l) });
    expect(lines).toEqual(['cpu0 00100020  mov al, 0x7', 'cpu0 00100022  out 0xf4, al']);
  });

  it('refuses images it cannot load, saying why', () => {
    const m = () => new Machine({ ramBytes: 4 << 20 });
    expect(findMultibootHeader(new Uint8Array(9000))).toMatchObject({ ok: false, error: expect.stringMatching(/^no multiboot header/) });
    expect(bootMultiboot(m(), aoutImage([], { checksum: 0 }))).toMatchObject({ ok: false, error: expect.stringMatching(/bad checksum/) });
    expect(bootMultiboot(m(), aoutImage([], { flags: (1 << 16) | (1 << 5), checksum: -(MULTIBOOT_HEADER_MAGIC + ((1 << 16) | (1 << 5))) })))
      .toMatchObject({ ok: false, error: expect.stringMatching(/requires flags 20H this loader does not know/) });
    expect(bootMultiboot(m(), aoutImage([], { bssEnd: 8 << 20 }))).toMatchObject({ ok: false, error: expect.stringMatching(/does not fit in RAM, which ends at 400000H/) });
    const noKludge = aoutImage([], { flags: 0 });
    expect(bootMultiboot(m(), noKludge)).toMatchObject({ ok: false, error: expect.stringMatching(/^not an ELF file/) });
  });
});

describe('ISA survey', () => {
  it('reports instructions iced-x86 decodes and the emulator does not implement, and only those', () => {
    // add eax, ebx ; vaddps zmm0, zmm1, zmm2 (AVX-512, which no `-mno-sse` kernel needs) ; nop
    const code = Uint8Array.of(0x01, 0xd8, 0x62, 0xf1, 0x74, 0x48, 0x58, 0xc2, 0x90);
    expect(surveyCode(code, 0x1000, 32)).toEqual([
      { address: 0x1002, text: 'vaddps zmm0,zmm1,zmm2', reason: 'opcode 62 (AVX-512 (EVEX) and BOUND, see /reference/not-implemented#ni-evex-bound): valid x86 but not implemented by VMX Lab', kind: 'unimplemented' },
    ]);
  });
});

describe('I/O APIC', () => {
  const select = (io: IoApic, reg: number) => io.write(IOAPIC_MMIO.IOREGSEL, 4, BigInt(reg));
  const readReg = (io: IoApic, reg: number) => (select(io, reg), Number(io.read(IOAPIC_MMIO.IOWIN, 4)));
  const writeReg = (io: IoApic, reg: number, v: number) => (select(io, reg), io.write(IOAPIC_MMIO.IOWIN, 4, BigInt(v)));

  function pcWithEnabledApics(cpus: number) {
    const pc = createBootPc({ cpus });
    for (const lp of pc.machine.cpus) (lp.apic as unknown as LocalApic).write(0xf0, 4, 0x1ffn); // SVR: software-enable
    return pc;
  }

  it('reports its ID, version 20H and 24 pins, and starts with every entry masked', () => {
    const io = createBootPc({ cpus: 3 }).ioApic;
    expect(readReg(io, IOAPIC_REG.ID)).toBe(3 << 24);
    expect(readReg(io, IOAPIC_REG.VER)).toBe(0x170020);
    for (let pin = 0; pin < 24; pin++) expect(io.entry(pin)).toBe(BigInt(IOREDTBL.MASKED));
  });

  it('sends an unmasked edge-triggered input to the destination APIC, and nothing while masked', () => {
    const pc = pcWithEnabledApics(2);
    const io = pc.ioApic;
    writeReg(io, IOAPIC_REG.REDTBL + 2 * 4 + 1, 1 << 24); // pin 4 → APIC ID 1
    writeReg(io, IOAPIC_REG.REDTBL + 2 * 4, 0x41); // vector 41H, fixed, physical, edge, unmasked
    io.setIrq(4, true);
    const [bsp, ap] = pc.machine.cpus.map((lp) => lp.apic as unknown as LocalApic);
    expect(ap!.pendingVector()).toBe(0x41);
    expect(bsp!.pendingVector()).toBe(-1);
    writeReg(io, IOAPIC_REG.REDTBL + 2 * 4, 0x42 | IOREDTBL.MASKED); // a masked edge sends nothing (42H would win)
    io.setIrq(4, false);
    io.setIrq(4, true);
    expect(ap!.pendingVector()).toBe(0x41);
  });

  it('level-triggered: sets Remote IRR when it sends and sends again after an EOI while the input stays asserted', () => {
    const pc = pcWithEnabledApics(1);
    const io = pc.ioApic;
    writeReg(io, IOAPIC_REG.REDTBL + 2 * 9, 0x50 | IOREDTBL.TRIGGER_LEVEL);
    io.setIrq(9, true);
    expect(io.entry(9) & BigInt(IOREDTBL.REMOTE_IRR)).not.toBe(0n);
    writeReg(io, IOAPIC_REG.REDTBL + 2 * 9, 0x50 | IOREDTBL.TRIGGER_LEVEL | IOREDTBL.REMOTE_IRR); // read-only bit
    io.setIrq(9, false);
    io.write(IOAPIC_MMIO.EOI, 4, 0x50n);
    expect(io.entry(9) & BigInt(IOREDTBL.REMOTE_IRR)).toBe(0n);
    expect((pc.machine.cpus[0]!.apic as unknown as LocalApic).pendingVector()).toBe(0x50);
  });
});

describe('CMOS RTC', () => {
  const reg = (c: CmosRtc, r: number) => (c.out(CMOS_PORT_INDEX, 1, r), c.in(CMOS_PORT_DATA, 1));
  const set = (c: CmosRtc, r: number, v: number) => (c.out(CMOS_PORT_INDEX, 1, r), c.out(CMOS_PORT_DATA, 1, v));

  it('advances one second per 10^9 instructions, and carries into minutes', () => {
    let instructions = 0;
    const c = new CmosRtc({ ramBytes: 64 << 20, cpus: 1, start: new Date(Date.UTC(2026, 11, 31, 23, 59, 58)), instructions: () => instructions });
    expect([reg(c, CMOS.SECONDS), reg(c, CMOS.MINUTES), reg(c, CMOS.HOURS)]).toEqual([0x58, 0x59, 0x23]);
    instructions = 2e9;
    expect([reg(c, CMOS.SECONDS), reg(c, CMOS.MINUTES), reg(c, CMOS.HOURS), reg(c, CMOS.DAY_OF_MONTH), reg(c, CMOS.MONTH), reg(c, CMOS.YEAR), reg(c, CMOS.CENTURY)])
      .toEqual([0x00, 0x00, 0x00, 0x01, 0x01, 0x27, 0x20]);
  });

  it('12-hour mode reports 1–12 with bit 7 for PM; writing a time register sets the clock', () => {
    const c = new CmosRtc({ ramBytes: 64 << 20, cpus: 1, start: new Date(Date.UTC(2026, 5, 1, 13, 5, 0)) });
    set(c, CMOS.STATUS_B, 0); // BCD, 12-hour
    expect(reg(c, CMOS.HOURS)).toBe(0x80 | 0x01);
    set(c, CMOS.STATUS_B, RTC_B.HOURS_24 | RTC_B.DATA_MODE_BINARY);
    set(c, CMOS.MINUTES, 42);
    expect(c.now().toISOString()).toBe('2026-06-01T13:42:00.000Z');
  });
});

describe('PCI configuration ports, empty bus', () => {
  it('latches CONFIG_ADDRESS on doubleword writes and reads all ones from every device', () => {
    const p = new PciHostEmptyBus();
    p.out(PCI_CONFIG_ADDRESS, 4, 0xffffffff);
    expect(p.in(PCI_CONFIG_ADDRESS, 4)).toBe(0x80fffffc);
    expect(p.in(PCI_CONFIG_DATA, 4)).toBe(0xffffffff);
    expect(p.in(PCI_CONFIG_DATA + 2, 2)).toBe(0xffff);
    p.out(PCI_CONFIG_ADDRESS, 1, 0); // a byte write at CF8H is not CONFIG_ADDRESS
    expect(p.in(PCI_CONFIG_ADDRESS, 4)).toBe(0x80fffffc);
  });
});

describe('8259 PICs', () => {
  function remapped(): Pic8259Pair {
    const p = new Pic8259Pair();
    for (const [port, v] of [[0x20, 0x11], [0xa0, 0x11], [0x21, 0x20], [0xa1, 0x28], [0x21, 4], [0xa1, 2], [0x21, 1], [0xa1, 1], [0x21, 0], [0xa1, 0]] as const) p.out(port, 1, v);
    return p;
  }

  it('delivers by fixed priority, holds lower ones while one is in service, and EOI releases them', () => {
    const p = remapped();
    p.setIrq(3, true);
    p.setIrq(1, true);
    expect(p.acknowledge()).toBe(0x21);
    expect(p.pendingVector()).toBe(-1); // IRQ 3 waits: IRQ 1 is in service
    p.out(0x20, 1, 0x20); // non-specific EOI
    expect(p.acknowledge()).toBe(0x23);
  });

  it('routes the slave through master IRQ 2 and honours both masks', () => {
    const p = remapped();
    p.setIrq(12, true);
    expect(p.pendingVector()).toBe(0x2c);
    p.out(0x21, 1, 1 << 2); // mask the cascade input
    expect(p.pendingVector()).toBe(-1);
    expect(p.masked(12)).toBe(true);
    p.out(0x21, 1, 0);
    expect(p.acknowledge()).toBe(0x2c);
    p.out(0x20, 1, 0x0b); // OCW3: read ISR
    expect(p.in(0x20, 1)).toBe(1 << 2);
  });
});

describe('8254 PIT', () => {
  it('counts down from the reload in mode 2, latches on command, and rises OUT once per period', () => {
    let ns = 0;
    const pit = new Pit8254(() => ns);
    pit.out(0x43, 1, 0x34); // channel 0, low/high, mode 2
    pit.out(0x40, 1, 100);
    pit.out(0x40, 1, 0);
    ns = Math.ceil((30 * 1e9) / 1_193_182); // 30 PIT ticks later
    pit.out(0x43, 1, 0x00); // latch channel 0
    ns += 1_000_000; // the latch holds while time passes
    expect(pit.in(0x40, 1) | (pit.in(0x40, 1) << 8)).toBe(70);
    expect(pit.takeIrq0()).toBe(true); // 100 ticks have passed by now
    expect(pit.takeIrq0()).toBe(false);
  });

  it('channel 2 in mode 0: OUT2 at port 61H bit 5 rises at terminal count while the gate is on', () => {
    let ns = 0;
    const pit = new Pit8254(() => ns);
    pit.out(0x61, 1, 0x01); // gate 2 on
    pit.out(0x43, 1, 0xb0); // channel 2, low/high, mode 0
    pit.out(0x42, 1, 0x10);
    pit.out(0x42, 1, 0x00);
    expect(pit.in(0x61, 1) & 0x20).toBe(0);
    ns = Math.ceil((16 * 1e9) / 1_193_182);
    expect(pit.in(0x61, 1) & 0x20).toBe(0x20);
  });
});

describe('fw_cfg', () => {
  const read = (d: FwCfg, n: number) => Array.from({ length: n }, () => d.in(FW_CFG_PORT_DATA, 1));

  it('selects with a word write to 510H and reads item bytes from 511H, then zeros past the end', () => {
    const d = new FwCfg({ ramBytes: 0x1_2345_6000, cpus: 4, cmdline: 'hi' });
    d.out(FW_CFG_PORT_SEL, 2, FW_CFG.SIGNATURE);
    expect(String.fromCharCode(...read(d, 4))).toBe('QEMU');
    expect(read(d, 2)).toEqual([0, 0]);
    d.out(FW_CFG_PORT_SEL, 2, FW_CFG.RAM_SIZE);
    expect(read(d, 8)).toEqual([0x00, 0x60, 0x45, 0x23, 0x01, 0, 0, 0]);
    d.out(FW_CFG_PORT_SEL, 2, FW_CFG.NB_CPUS);
    expect(read(d, 2)).toEqual([4, 0]);
    d.out(FW_CFG_PORT_SEL, 2, FW_CFG.CMDLINE_DATA);
    expect(read(d, 4)).toEqual([0x68, 0x69, 0, 0]);
    d.out(FW_CFG_PORT_SEL, 2, FW_CFG.FILE_DIR);
    expect(read(d, 4)).toEqual([0, 0, 0, 0]);
  });

  it('ignores byte writes (legacy data writes) and unknown keys read as zeros', () => {
    const d = new FwCfg({ ramBytes: 1 << 20, cpus: 1 });
    d.out(FW_CFG_PORT_SEL, 1, FW_CFG.NB_CPUS); // a data write: the signature stays selected
    expect(d.in(FW_CFG_PORT_DATA, 1)).toBe(0x51); // 'Q'
    d.out(FW_CFG_PORT_SEL, 2, 0x1234);
    expect(read(d, 2)).toEqual([0, 0]);
  });
});


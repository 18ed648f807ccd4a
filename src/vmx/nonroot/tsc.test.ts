// RDTSC, RDTSCP and RDMSR(IA32_TIME_STAMP_COUNTER) from a real guest: exits with "RDTSC exiting", otherwise
// offset (and scaled) TSC values. See SDM Vol. 3C, "Time-Stamp Counter Offset and Multiplier" and "Changes to
// Instruction Behavior in VMX Non-Root Operation".
import { describe, expect, it } from 'vitest';
import { CPU_MODELS } from '../../machine/cpu-model.ts';
import { read, runRecordedGuest, write } from '../../kernel/testing/reference-vm.ts';
import { VMX_CONTROL as C } from '../controls.ts';
import { capabilitiesOf } from '../emulated-msrs.ts';
import { EXIT_REASON } from '../exit-reasons.ts';

const READ_TSC_TWICE = `
  bits 64
  rdtsc
  shl rdx, 32
  or rax, rdx
  mov rbx, rax       ; RBX = TSC from RDTSC
  mov ecx, 0x10      ; IA32_TIME_STAMP_COUNTER
  rdmsr
  shl rdx, 32
  or rax, rdx        ; RAX = TSC from RDMSR
  cpuid`;
const OFFSET = 0x0000_0100_0000_0000n;
const proc = (cpu: Parameters<typeof read>[0]) => read(cpu, 'CPU_BASED_VM_EXEC_CONTROL');

describe('TSC in VMX non-root operation', () => {
  it('with "use TSC offsetting" RDTSC and RDMSR of the TSC read TSC + TSC_OFFSET', () => {
    let tscAtLaunch = 0n;
    const run = runRecordedGuest({
      source: READ_TSC_TWICE,
      setup: (host, cpu) => {
        write(host, cpu, 'CPU_BASED_VM_EXEC_CONTROL', proc(cpu) | BigInt(C.CPU_BASED_USE_TSC_OFFSETTING | C.CPU_BASED_USE_MSR_BITMAPS));
        write(host, cpu, 'MSR_BITMAP', host.kernel.virt_to_phys(host.kernel.get_zeroed_page())); // no MSR exits
        write(host, cpu, 'TSC_OFFSET', OFFSET);
        tscAtLaunch = cpu.lp.readTsc();
      },
    });
    const e = run.exits[0]!;
    expect(e.reason, run.why()).toBe(BigInt(EXIT_REASON.EXIT_REASON_CPUID));
    const tscNow = run.host.kernel.cpu().lp.readTsc();
    for (const [what, v] of [['RDTSC', e.rbx], ['RDMSR', e.rax]] as const) {
      expect(v - OFFSET >= tscAtLaunch && v - OFFSET <= tscNow, `${what} read ${v.toString(16)}H: not TSC + offset`).toBe(true);
    }
  });

  it('without offsetting the guest reads the real TSC', () => {
    const run = runRecordedGuest({
      source: READ_TSC_TWICE,
      setup: (host, cpu) => {
        write(host, cpu, 'CPU_BASED_VM_EXEC_CONTROL', proc(cpu) | BigInt(C.CPU_BASED_USE_MSR_BITMAPS));
        write(host, cpu, 'MSR_BITMAP', host.kernel.virt_to_phys(host.kernel.get_zeroed_page()));
        write(host, cpu, 'TSC_OFFSET', OFFSET); // ignored: offsetting is off
      },
    });
    expect(run.exits[0]!.rbx < OFFSET, run.why()).toBe(true);
  });

  const scaling = CPU_MODELS.filter((m) => (capabilitiesOf(m).effective.proc2.allowed1 & C.SECONDARY_EXEC_TSC_SCALING) !== 0).map((m) => m.name);
  it.each(scaling)('%s: with "use TSC scaling" the guest reads (TSC × multiplier) >> 48 + offset', (model) => {
    let tscAtLaunch = 0n;
    const MULT = 3n << 48n; // ×3
    const run = runRecordedGuest({
      model, source: READ_TSC_TWICE,
      setup: (host, cpu) => {
        write(host, cpu, 'CPU_BASED_VM_EXEC_CONTROL', proc(cpu) | BigInt(C.CPU_BASED_USE_TSC_OFFSETTING | C.CPU_BASED_USE_MSR_BITMAPS | C.CPU_BASED_ACTIVATE_SECONDARY_CONTROLS));
        write(host, cpu, 'SECONDARY_VM_EXEC_CONTROL', C.SECONDARY_EXEC_TSC_SCALING);
        write(host, cpu, 'TSC_MULTIPLIER', MULT);
        write(host, cpu, 'MSR_BITMAP', host.kernel.virt_to_phys(host.kernel.get_zeroed_page()));
        write(host, cpu, 'TSC_OFFSET', OFFSET);
        tscAtLaunch = cpu.lp.readTsc();
      },
    });
    const e = run.exits[0]!;
    expect(e.reason, run.why()).toBe(BigInt(EXIT_REASON.EXIT_REASON_CPUID));
    const tscNow = run.host.kernel.cpu().lp.readTsc();
    expect(e.rbx - OFFSET >= tscAtLaunch * 3n && e.rbx - OFFSET <= tscNow * 3n, `RDTSC read ${e.rbx.toString(16)}H`).toBe(true);
  });

  it('with "RDTSC exiting" RDTSC exits (reason 16, instruction length 2, RIP of the RDTSC)', () => {
    const run = runRecordedGuest({
      source: 'bits 64\nnop\nrdtsc\ncpuid',
      setup: (host, cpu) => write(host, cpu, 'CPU_BASED_VM_EXEC_CONTROL', proc(cpu) | BigInt(C.CPU_BASED_RDTSC_EXITING)),
    });
    const e = run.exits[0]!;
    expect(e.reason, run.why()).toBe(BigInt(EXIT_REASON.EXIT_REASON_RDTSC));
    expect(e.instructionLength).toBe(2n);
    expect(e.guestRip).toBe(run.guest.rip + 1n);
  });
});

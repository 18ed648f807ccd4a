// Control-register accesses from a real guest, against SDM Vol. 3C, "Guest/Host Masks and Read Shadows for CR0
// and CR4", "CR3-Target Controls", "Changes to Instruction Behavior in VMX Non-Root Operation" and "Exit
// Qualification for Control-Register Accesses". Expected values are computed here from the SDM's rules.
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { read, runRecordedGuest, write } from '../../kernel/testing/reference-vm.ts';
import { CR0 } from '../../x86/control-registers.ts';
import { EXIT_REASON } from '../exit-reasons.ts';
import { VMX_CONTROL as C } from '../controls.ts';

const CPUID = BigInt(EXIT_REASON.EXIT_REASON_CPUID), CR_ACCESS = BigInt(EXIT_REASON.EXIT_REASON_CR_ACCESS);
/** CR0 bits a 64-bit guest may flip freely: MP, EM, TS, WP, AM. */
const FLIPPABLE = [CR0.MP, CR0.EM, CR0.TS, CR0.WP, CR0.AM].map(BigInt);
const bitsOf = (picks: readonly boolean[]): bigint => picks.reduce((m, p, i) => (p ? m | FLIPPABLE[i]! : m), 0n);
const bools = fc.array(fc.boolean(), { minLength: FLIPPABLE.length, maxLength: FLIPPABLE.length });

describe('MOV to/from CR0 with a guest/host mask and read shadow', () => {
  it('reads see the shadow for host-owned bits; a write exits exactly when a host-owned bit differs from the shadow, else keeps host-owned bits', () => {
    fc.assert(fc.property(bools, bools, bools, (maskP, shadowP, flipP) => {
      const mask = bitsOf(maskP);
      let real = 0n, shadow = 0n, value = 0n;
      const run = runRecordedGuest({
        source: `
          bits 64
          mov rax, cr0
        at_write:
          mov cr0, rcx
          mov rbx, cr0
          cpuid`,
        setup: (host, cpu) => {
          real = read(cpu, 'GUEST_CR0') | BigInt(CR0.ET); // ET is hardwired to 1: VM entry loads it as 1
          shadow = (real & ~bitsOf(FLIPPABLE.map(() => true))) | bitsOf(shadowP);
          value = real ^ bitsOf(flipP);
          write(host, cpu, 'CR0_GUEST_HOST_MASK', mask);
          write(host, cpu, 'CR0_READ_SHADOW', shadow);
          cpu.writeGpr('rcx', value);
        },
      });
      const first = run.exits[0]!;
      const seen = (cr: bigint) => (cr & ~mask) | (shadow & mask);
      expect(first.rax, `MOV from CR0 before the write\n${run.why()}`).toBe(seen(real));
      if (((value ^ shadow) & mask) !== 0n) {
        expect(first.reason, run.why()).toBe(CR_ACCESS);
        // CR 0 (3:0), access type 0 = MOV to CR (5:4), RCX = register 1 (11:8).
        expect(first.qualification).toBe(0x100n);
        expect(first.guestRip, 'a CR-access exit is fault-like: RIP of the MOV').toBe(BigInt(run.guest.labels.get('at_write')!));
        expect(first.instructionLength).toBe(3n);
        expect(read(run.host.kernel.cpu(), 'GUEST_CR0'), 'CR0 unchanged').toBe(real);
      } else {
        expect(first.reason, run.why()).toBe(CPUID);
        const loaded = (value & ~mask) | (real & mask);
        expect(read(run.host.kernel.cpu(), 'GUEST_CR0'), 'host-owned bits keep their value').toBe(loaded);
        expect(first.rbx, 'MOV from CR0 after the write').toBe(seen(loaded));
      }
    }), { seed: 51, numRuns: 40 });
  });

  it('CLTS exits when the host owns CR0.TS and the shadow has it set (qualification: access type 2)', () => {
    const run = runRecordedGuest({
      source: 'bits 64\nclts\ncpuid',
      setup: (host, cpu) => {
        write(host, cpu, 'CR0_GUEST_HOST_MASK', CR0.TS);
        write(host, cpu, 'CR0_READ_SHADOW', CR0.TS);
      },
    });
    expect(run.exits[0]?.reason, run.why()).toBe(CR_ACCESS);
    expect(run.exits[0]?.qualification).toBe(0x20n);
    expect(run.exits[0]?.instructionLength).toBe(2n);
  });

  it('CLTS with TS host-owned and clear in the shadow does not exit and leaves the real TS alone', () => {
    let real = 0n;
    const run = runRecordedGuest({
      source: 'bits 64\nclts\ncpuid',
      setup: (host, cpu) => {
        real = read(cpu, 'GUEST_CR0') | BigInt(CR0.TS);
        write(host, cpu, 'GUEST_CR0', real);
        write(host, cpu, 'CR0_GUEST_HOST_MASK', CR0.TS);
        write(host, cpu, 'CR0_READ_SHADOW', 0);
      },
    });
    expect(run.exits[0]?.reason, run.why()).toBe(CPUID);
    expect(read(run.host.kernel.cpu(), 'GUEST_CR0') & BigInt(CR0.TS)).toBe(BigInt(CR0.TS));
  });

  it('LMSW from memory that sets a host-owned TS against the shadow exits with the source and the linear address', () => {
    const run = runRecordedGuest({
      source: `
        bits 64
        lea rdx, [rel operand]
        lmsw [rdx]
        cpuid
      operand: dw 0x000b`,
      setup: (host, cpu) => {
        write(host, cpu, 'CR0_GUEST_HOST_MASK', CR0.TS);
        write(host, cpu, 'CR0_READ_SHADOW', 0);
      },
    });
    const e = run.exits[0]!;
    expect(e.reason, run.why()).toBe(CR_ACCESS);
    // access type 3 (5:4), memory operand (6), source data 000BH (31:16).
    expect(e.qualification).toBe((0x000bn << 16n) | (1n << 6n) | (3n << 4n));
    expect(e.guestLinearAddress).toBe(BigInt(run.guest.labels.get('operand')!));
  });
});

describe('MOV to CR3 with "CR3-load exiting" and CR3-target values', () => {
  it('a target value does not exit; any other value exits with the register in the qualification', () => {
    const run = runRecordedGuest({
      model: 'skylake-i5-6300u',
      source: `
        bits 64
        mov rbx, cr3
        mov cr3, rbx       ; the target value: no exit
        mov rdx, rbx
        or rdx, 0x1000     ; not a target (still a valid CR3 for MOV)
        mov cr3, rdx
        cpuid`,
      setup: (host, cpu, g) => {
        write(host, cpu, 'CPU_BASED_VM_EXEC_CONTROL', read(cpu, 'CPU_BASED_VM_EXEC_CONTROL') | BigInt(C.CPU_BASED_CR3_LOAD_EXITING));
        write(host, cpu, 'CR3_TARGET_COUNT', 1);
        write(host, cpu, 'CR3_TARGET_VALUE0', g.cr3);
      },
    });
    const e = run.exits[0]!;
    expect(e.reason, run.why()).toBe(CR_ACCESS);
    expect(e.qualification, 'CR3, MOV to CR, RDX = register 2').toBe(0x203n);
  });
});

describe('MOV CR8 with "use TPR shadow": the virtual TPR and TPR-below-threshold exits', () => {
  // The virtual-APIC page: a page of guest-physical memory the host points VIRTUAL_APIC_PAGE_ADDR at.
  const tprGuest = (threshold: number, writes: readonly number[]) => runRecordedGuest({
    model: 'skylake-i5-6300u',
    source: `
      bits 64
      ${writes.map((w, i) => `mov rax, ${w}\n      mov cr8, rax\n    after${i}:`).join('\n      ')}
      mov rbx, cr8
      cpuid`,
    resumeOn: [EXIT_REASON.EXIT_REASON_TPR_BELOW_THRESHOLD],
    setup: (host, cpu) => {
      const page = host.kernel.get_zeroed_page();
      // VM entry requires TPR threshold[3:0] <= VTPR[7:4] (SDM Vol. 3C, "VM-Execution Control Fields" checks):
      // start with VTPR = F0H.
      host.kernel.write32(page + 0x80n, 0xf0);
      write(host, cpu, 'VIRTUAL_APIC_PAGE_ADDR', host.kernel.virt_to_phys(page));
      write(host, cpu, 'TPR_THRESHOLD', threshold);
      write(host, cpu, 'CPU_BASED_VM_EXEC_CONTROL', read(cpu, 'CPU_BASED_VM_EXEC_CONTROL') | BigInt(C.CPU_BASED_TPR_SHADOW));
    },
  });

  it('MOV to CR8 at or above the threshold writes VTPR[7:4] without an exit, and MOV from CR8 reads it back', () => {
    const run = tprGuest(3, [5, 3]);
    expect(run.exits.length, `the guest ran and exited: ${run.why()}`).toBeGreaterThan(0);
    const e = run.exits[0]!;
    expect(e.reason, `first exit: ${run.why()}`).toBe(CPUID);
    expect(e.rbx, 'RBX = MOV from CR8 = VTPR[7:4] = 3 (the last value written), not the real TPR').toBe(3n);
  });

  it('MOV to CR8 below the threshold exits after the instruction: RIP of the next one, qualification 0, length undefined', () => {
    const run = tprGuest(4, [5, 2]);
    expect(run.exits.length, `the guest ran and exited: ${run.why()}`).toBeGreaterThan(0);
    const e = run.exits[0]!;
    expect(e.reason, `exit reason 43 (TPR below threshold) expected: ${run.why()}`).toBe(BigInt(EXIT_REASON.EXIT_REASON_TPR_BELOW_THRESHOLD));
    const after = BigInt(run.guest.labels.get('after1')!);
    expect(e.guestRip, `GUEST_RIP = 0x${e.guestRip.toString(16)}: a trap-like exit saves the RIP of the instruction after the MOV CR8 (0x${after.toString(16)})`).toBe(after);
    expect(e.qualification, 'EXIT_QUALIFICATION is cleared for TPR-below-threshold exits').toBe(0n);
    expect(e.instructionLength, 'VM_EXIT_INSTRUCTION_LEN is undefined (poisoned) for a TPR-below-threshold exit').toBe(0xdeadbeefn);
  });
});

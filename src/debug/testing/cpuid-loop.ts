// Test support for the inspectors (never imported by learner code or the CPU): a real guest that executes CPUID
// `n` times and then HLT, under a minimal exit handler that skips each CPUID by VM_EXIT_INSTRUCTION_LEN and
// resumes — the smallest hypervisor whose exit counts are known exactly (n CPUID exits, one HLT exit).
import {
  bootHost, enterVmx, read, write, writeReferenceVmcs, type Host, type HostOptions, type ReferenceGuest,
} from '../../kernel/testing/reference-vm.ts';
import { EXIT_REASON } from '../../vmx/exit-reasons.ts';

export function cpuidLoopGuest(n: number): string {
  return `
bits 64
        mov esi, ${n}
again:
        xor eax, eax
at_cpuid:
        cpuid
        dec esi
        jnz again
at_hlt:
        hlt
`;
}

export interface CpuidLoop {
  readonly host: Host;
  readonly guest: ReferenceGuest;
  /** Addresses of the CPUID and the HLT in the guest. */
  readonly cpuidRip: bigint;
  readonly hltRip: bigint;
}

/**
 * Boot a host, enter VMX operation and write the reference VMCS for the CPUID loop; the caller attaches its
 * inspectors and then runs `cpu.vmlaunch()` and `runGuests(host)`.
 */
export function prepareCpuidLoop(n: number, opts: HostOptions = {}): CpuidLoop {
  const host = bootHost(opts);
  const k = host.kernel, cpu = k.cpu();
  enterVmx(host, cpu);
  const rip = k.hostEntry('cpuid_loop_exit', (_k, c) => {
    if (Number(read(c, 'VM_EXIT_REASON')) !== EXIT_REASON.EXIT_REASON_CPUID) return; // HLT (or anything else): stop
    write(host, c, 'GUEST_RIP', read(c, 'GUEST_RIP') + read(c, 'VM_EXIT_INSTRUCTION_LEN'));
    c.vmresume();
  });
  const guest = writeReferenceVmcs(host, cpu, rip, cpuidLoopGuest(n));
  const label = (name: string): bigint => BigInt(guest.labels.get(name)!);
  return { host, guest, cpuidRip: label('at_cpuid'), hltRip: label('at_hlt') };
}

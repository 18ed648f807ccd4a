// Exercise 5.2 — CPUID emulation: the guest's CPUID always causes a VM exit, so the hypervisor decides what the guest's CPU is.
// This one is the host CPU with two changes: VMX is hidden (CPUID.1:ECX[5] = 0, so a guest kernel does not try
// VMXON), and a hypervisor is announced (CPUID.1:ECX[31] = 1 and the leaves from 40000000H, the range Intel
// leaves to hypervisors).
// Read chapters/05-exits/README.md, section "CPUID: the CPU the guest sees".
// See SDM Vol. 3C, "Instructions That Cause VM Exits Unconditionally", and Vol. 2A, "CPUID—CPU Identification".
import { EXIT_REASON } from '../../src/vmx/exit-reasons.ts';
import { SKIP, type ExitAction, type Vcpu, type VmmPart } from './hypervisor.ts';

export interface CpuidRegs {
  readonly eax: number;
  readonly ebx: number;
  readonly ecx: number;
  readonly edx: number;
}

/** CPUID as the host CPU answers it (cpu.cpuid). */
export type HostCpuid = (leaf: number, subleaf: number) => CpuidRegs;

/** The first hypervisor leaf: EAX = the highest hypervisor leaf, EBX:ECX:EDX = a 12-byte vendor signature. */
export const HYPERVISOR_LEAF = 0x40000000;
/** The last leaf of the range Intel reserves for hypervisors. */
export const HYPERVISOR_LEAF_LAST = 0x4fffffff;
/** This hypervisor's signature, as EBX, ECX, EDX spell it (4 ASCII bytes each, little-endian). */
export const HYPERVISOR_SIGNATURE = 'VMXLabVMXLab';
/** CPUID.1:ECX[5]: VMX. */
export const CPUID_1_ECX_VMX = 1 << 5;
/**
 * CPUID.1:ECX[31]: the SDM calls it "not used" and bare metal returns 0; hypervisors set it to say "you run in a
 * VM", and guests (Linux's X86_FEATURE_HYPERVISOR) check it before they read leaf 40000000H.
 */
export const CPUID_1_ECX_HYPERVISOR = 2 ** 31;

/**
 * What the guest's CPUID returns for `leaf`/`subleaf`:
 *  - leaf 1: the host's answer with ECX[5] (VMX) clear and ECX[31] (hypervisor present) set;
 *  - leaf 40000000H: EAX = 40000000H (no further hypervisor leaves), EBX/ECX/EDX = HYPERVISOR_SIGNATURE;
 *  - leaves 40000001H–4FFFFFFFH: all zero (this hypervisor defines none);
 *  - every other leaf: the host's answer.
 * Values are unsigned 32-bit numbers.
 */
export function virtualCpuid(host: HostCpuid, leaf: number, subleaf: number): CpuidRegs {
  // TODO
  throw new Error('TODO: virtualCpuid');
}

/** Four ASCII characters of `s` from `at`, as the little-endian dword CPUID returns (given). */
export function signatureWord(s: string, at: number): number {
  let w = 0;
  for (let i = 0; i < 4; i++) w |= (s.charCodeAt(at + i) & 0xff) << (8 * i);
  return w >>> 0;
}

/**
 * The CPUID part: a handler for CPUID exits (reason 10, EXIT_REASON.EXIT_REASON_CPUID) that
 *  - takes the leaf from EAX and the subleaf from ECX (bits 63:32 of RAX and RCX play no part: cpu.readGpr),
 *  - asks virtualCpuid, with the host's own answer as `host`: (l, s) => cpu.cpuid(l, s),
 *  - writes EAX, EBX, ECX, EDX to the guest's RAX–RDX with bits 63:32 clear (cpu.writeGpr),
 *  - returns SKIP: the dispatcher advances RIP by VM_EXIT_INSTRUCTION_LEN.
 */
export function cpuidPart(): VmmPart {
  // TODO
  throw new Error('TODO: cpuidPart');
}

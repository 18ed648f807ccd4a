// CPUID emulation: the guest's CPUID always causes a VM exit, so the hypervisor decides what the guest's CPU is.
// This one is the host CPU with two changes: VMX is hidden (CPUID.1:ECX[5] = 0, so a guest kernel does not try
// VMXON), and a hypervisor is announced (CPUID.1:ECX[31] = 1 and the leaves from 40000000H, the range Intel
// leaves to hypervisors).
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
  const l = leaf >>> 0;
  if (l === HYPERVISOR_LEAF) {
    const [ebx, ecx, edx] = [0, 4, 8].map((at) => signatureWord(HYPERVISOR_SIGNATURE, at)) as [number, number, number];
    return { eax: HYPERVISOR_LEAF, ebx, ecx, edx };
  }
  if (l > HYPERVISOR_LEAF && l <= HYPERVISOR_LEAF_LAST) return { eax: 0, ebx: 0, ecx: 0, edx: 0 };
  const r = host(l, subleaf >>> 0);
  const regs = { eax: r.eax >>> 0, ebx: r.ebx >>> 0, ecx: r.ecx >>> 0, edx: r.edx >>> 0 };
  if (l === 1) return { ...regs, ecx: ((regs.ecx & ~CPUID_1_ECX_VMX) | CPUID_1_ECX_HYPERVISOR) >>> 0 };
  return regs;
}

/** Four ASCII characters of `s` from `at`, as the little-endian dword CPUID returns. */
export function signatureWord(s: string, at: number): number {
  let w = 0;
  for (let i = 0; i < 4; i++) w |= (s.charCodeAt(at + i) & 0xff) << (8 * i);
  return w >>> 0;
}

/** The CPUID part: answer every CPUID exit with virtualCpuid and skip the instruction. */
export function cpuidPart(): VmmPart {
  return {
    name: 'cpuid',
    handlers: { [EXIT_REASON.EXIT_REASON_CPUID]: handleCpuid },
  };
}

function handleCpuid(v: Vcpu): ExitAction {
  const { cpu } = v;
  // The leaf is EAX and the subleaf ECX: bits 63:32 of RAX and RCX play no part.
  const leaf = Number(cpu.readGpr('rax') & 0xffffffffn);
  const subleaf = Number(cpu.readGpr('rcx') & 0xffffffffn);
  const r = virtualCpuid((l, s) => cpu.cpuid(l, s), leaf, subleaf);
  // In 64-bit mode CPUID clears bits 63:32 of RAX, RBX, RCX and RDX.
  cpu.writeGpr('rax', BigInt(r.eax >>> 0));
  cpu.writeGpr('rbx', BigInt(r.ebx >>> 0));
  cpu.writeGpr('rcx', BigInt(r.ecx >>> 0));
  cpu.writeGpr('rdx', BigInt(r.edx >>> 0));
  return SKIP;
}

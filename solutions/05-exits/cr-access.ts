// Control-register accesses: the guest/host masks and read shadows of CR0 and CR4. A bit set in the mask is
// host-owned: the guest reads it from the read shadow, and a MOV to CR that would give it a value different from
// the shadow causes a VM exit. This part owns exactly the bits VMX fixes (FIXED0 = 1: must be 1; FIXED1 = 0: must be
// 0), so the guest sees the CR values it wrote — CR4.VMXE = 0 among them, as on a CPU without VMX — while the real
// registers keep the values VM entry requires. On CPUs without the TRUE controls, CR3-load and CR3-store exiting
// cannot be turned off: MOV to and from CR3 exit too, and are emulated here.
// See SDM Vol. 3C, "Guest/Host Masks and Read Shadows for CR0 and CR4", "Instructions That Cause VM Exits
// Conditionally", "Exit Qualification for Control-Register Accesses" and Vol. 2B, "MOV—Move to/from Control
// Registers".
import type { HostCpu } from '../../src/kernel/host-cpu.ts';
import { EXIT_REASON } from '../../src/vmx/exit-reasons.ts';
import type { Gpr64Name } from '../../src/x86/registers.ts';
import { describeVmxError, vmread, vmwrite, type VmxResult } from '../02-vmcs/vmx-access.ts';
import { adjustCr0, adjustCr4 } from '../03-capabilities/fixed-bits.ts';
import { RESUME, SETUP_OK, SKIP, stop, type ExitAction, type SetupResult, type Vcpu, type VmExit, type VmmPart } from './hypervisor.ts';
import { injectHardwareException, VECTOR_GP } from './msr.ts';

/** Bits 5:4 of the qualification. */
export type CrAccessType = 'mov-to-cr' | 'mov-from-cr' | 'clts' | 'lmsw';

export interface CrAccess {
  /** Bits 3:0: the control register (0 for CLTS and LMSW). */
  readonly cr: number;
  readonly access: CrAccessType;
  /** Bit 6, LMSW only: the operand was in memory. */
  readonly lmswMemory: boolean;
  /** Bits 11:8, MOV CR only: the general-purpose register (0 RAX … 15 R15). */
  readonly gpr: number;
  /** Bits 31:16, LMSW only: the source data. */
  readonly lmswSource: number;
}

const ACCESS_TYPES: readonly CrAccessType[] = ['mov-to-cr', 'mov-from-cr', 'clts', 'lmsw'];

/** Decode the exit qualification of a control-register access (exit reason 28). */
export function decodeCrAccess(q: bigint): CrAccess {
  const v = Number(q & 0xffffffffn);
  return {
    cr: v & 0xf,
    access: ACCESS_TYPES[(v >>> 4) & 3]!,
    lmswMemory: ((v >>> 6) & 1) === 1,
    gpr: (v >>> 8) & 0xf,
    lmswSource: (v >>> 16) & 0xffff,
  };
}

/** General-purpose registers in the order the qualification (and the instruction encoding) numbers them. */
export const GPRS: readonly Gpr64Name[] = [
  'rax', 'rcx', 'rdx', 'rbx', 'rsp', 'rbp', 'rsi', 'rdi', 'r8', 'r9', 'r10', 'r11', 'r12', 'r13', 'r14', 'r15',
];
const RSP = 4;

/**
 * The guest's general-purpose register `n`. A VM exit saves the guest's RSP in the VMCS and loads HOST_RSP: the
 * register file's RSP is the host's. Every other register is still the guest's.
 * See SDM Vol. 3C, "Saving Guest State" and "Loading Host State".
 */
export function readGuestGpr(cpu: HostCpu, n: number): VmxResult<bigint> {
  if (n === RSP) return vmread(cpu, 'GUEST_RSP');
  return { ok: true, value: cpu.readGpr(GPRS[n & 0xf]!) };
}

export function writeGuestGpr(cpu: HostCpu, n: number, value: bigint): VmxResult<void> {
  if (n === RSP) return vmwrite(cpu, 'GUEST_RSP', value);
  cpu.writeGpr(GPRS[n & 0xf]!, value);
  return { ok: true, value: undefined };
}

/** The bits VMX fixes, to be host-owned: 1 in FIXED0 (must be 1) or 0 in FIXED1 (must be 0), all 64 bits. */
export function hostOwnedBits(fixed0: bigint, fixed1: bigint): bigint {
  return BigInt.asUintN(64, fixed0 | ~fixed1);
}

const MSR_IA32_VMX_CR0_FIXED0 = 0x486, MSR_IA32_VMX_CR0_FIXED1 = 0x487;
const MSR_IA32_VMX_CR4_FIXED0 = 0x488, MSR_IA32_VMX_CR4_FIXED1 = 0x489;
const CR0_PE = 1n << 0n, CR0_NW = 1n << 29n, CR0_CD = 1n << 30n, CR0_PG = 1n << 31n;
const CR4_PAE = 1n << 5n, CR4_VMXE = 1n << 13n, CR4_PCIDE = 1n << 17n;
const ENTRY_IA32E_MODE_GUEST = 1 << 9;
const AR_L = 1 << 13;

/**
 * The CR part. Setup: both masks = hostOwnedBits of the FIXED MSRs; CR0_READ_SHADOW = GUEST_CR0 (the guest's view
 * is its real CR0), CR4_READ_SHADOW = GUEST_CR4 without VMXE (VMX is hidden). On a control-register exit:
 *  - MOV to CR0/CR4: the value from the guest's register. If bare metal would refuse it, #GP(0) and RIP unchanged.
 *    Otherwise the shadow takes the value as written and GUEST_CRn the value adjusted to the fixed bits (chapter
 *    3's adjustCr0/adjustCr4); SKIP.
 *  - MOV to CR3: GUEST_CR3 = the value (#GP(0) for bits above MAXPHYADDR); MOV from CR3: the register = GUEST_CR3.
 *  - anything else (CR8, CLTS, LMSW — which these masks never make exit): stop.
 */
export function crPart(): VmmPart {
  function setup(v: Vcpu): SetupResult {
    const rd = (msr: number): bigint => v.cpu.rdmsr(msr);
    const cr0 = vmread(v.cpu, 'GUEST_CR0');
    const cr4 = vmread(v.cpu, 'GUEST_CR4');
    if (!cr0.ok || !cr4.ok) return { ok: false, error: 'VMREAD GUEST_CR0/GUEST_CR4 failed' };
    const writes: [string, () => VmxResult<void>][] = [
      ['CR0_GUEST_HOST_MASK', () => vmwrite(v.cpu, 'CR0_GUEST_HOST_MASK', hostOwnedBits(rd(MSR_IA32_VMX_CR0_FIXED0), rd(MSR_IA32_VMX_CR0_FIXED1)))],
      ['CR4_GUEST_HOST_MASK', () => vmwrite(v.cpu, 'CR4_GUEST_HOST_MASK', hostOwnedBits(rd(MSR_IA32_VMX_CR4_FIXED0), rd(MSR_IA32_VMX_CR4_FIXED1)))],
      ['CR0_READ_SHADOW', () => vmwrite(v.cpu, 'CR0_READ_SHADOW', cr0.value)],
      ['CR4_READ_SHADOW', () => vmwrite(v.cpu, 'CR4_READ_SHADOW', cr4.value & ~CR4_VMXE)],
    ];
    for (const [field, w] of writes) {
      const r = w();
      if (!r.ok) return { ok: false, error: `VMWRITE ${field}: ${describeVmxError(r.error)}` };
    }
    return SETUP_OK;
  }

  function handle(v: Vcpu, exit: VmExit): ExitAction {
    const a = decodeCrAccess(exit.qualification);
    const r = a.access === 'mov-to-cr' ? movToCr(v, a) : a.access === 'mov-from-cr' && a.cr === 3 ? movFromCr3(v, a) : null;
    if (r === null) return stop(`unexpected control-register access: ${a.access} CR${a.cr}`);
    return r.ok ? r.value : stop(describeVmxError(r.error));
  }

  return { name: 'cr', setup, handlers: { [EXIT_REASON.EXIT_REASON_CR_ACCESS]: handle } };
}

function movToCr(v: Vcpu, a: CrAccess): VmxResult<ExitAction> | null {
  const src = readGuestGpr(v.cpu, a.gpr);
  if (!src.ok) return src;
  const value = src.value;
  const rd = (msr: number): bigint => v.cpu.rdmsr(msr);
  switch (a.cr) {
    case 0: {
      if (cr0Faults(v.cpu, value)) return gp(v.cpu);
      return write2(v.cpu, ['GUEST_CR0', adjustCr0(rd, value)], ['CR0_READ_SHADOW', value]);
    }
    case 4: {
      if (cr4Faults(v.cpu, value)) return gp(v.cpu);
      return write2(v.cpu, ['GUEST_CR4', adjustCr4(rd, value)], ['CR4_READ_SHADOW', value]);
    }
    case 3: {
      const cr4 = vmread(v.cpu, 'GUEST_CR4');
      if (!cr4.ok) return cr4;
      // With CR4.PCIDE = 1, bit 63 only says "do not flush" and is not stored. See SDM Vol. 3A, "Process-Context
      // Identifiers (PCIDs)".
      const cr3 = (cr4.value & CR4_PCIDE) !== 0n ? value & ~(1n << 63n) : value;
      if (cr3 >> BigInt(maxPhysAddr(v.cpu)) !== 0n) return gp(v.cpu);
      const w = vmwrite(v.cpu, 'GUEST_CR3', cr3);
      return w.ok ? { ok: true, value: SKIP } : w;
    }
    default:
      return null;
  }
}

function movFromCr3(v: Vcpu, a: CrAccess): VmxResult<ExitAction> {
  const cr3 = vmread(v.cpu, 'GUEST_CR3');
  if (!cr3.ok) return cr3;
  const w = writeGuestGpr(v.cpu, a.gpr, cr3.value);
  return w.ok ? { ok: true, value: SKIP } : w;
}

/**
 * Would bare metal refuse this MOV to CR0 with #GP(0)? Bits 63:32 set; PG without PE; NW without CD; clearing PG
 * in 64-bit mode. See SDM Vol. 2B, "MOV—Move to/from Control Registers" (64-Bit Mode Exceptions).
 */
export function cr0Faults(cpu: HostCpu, value: bigint): boolean {
  if (value >> 32n !== 0n) return true;
  if ((value & CR0_PG) !== 0n && (value & CR0_PE) === 0n) return true;
  if ((value & CR0_NW) !== 0n && (value & CR0_CD) === 0n) return true;
  return (value & CR0_PG) === 0n && in64BitMode(cpu);
}

/**
 * Would the guest's CPU refuse this MOV to CR4? A bit VMX forces to 0 (FIXED1), bits 63:32, and VMXE — reserved on
 * a CPU whose CPUID says it has no VMX; clearing PAE in IA-32e mode.
 */
export function cr4Faults(cpu: HostCpu, value: bigint): boolean {
  const fixed1 = cpu.rdmsr(MSR_IA32_VMX_CR4_FIXED1);
  if ((value & ~fixed1) !== 0n || (value & CR4_VMXE) !== 0n) return true;
  return (value & CR4_PAE) === 0n && ia32eGuest(cpu);
}

/** The guest is in IA-32e mode: a VM exit saves IA32_EFER.LMA into the "IA-32e mode guest" entry control. */
function ia32eGuest(cpu: HostCpu): boolean {
  const entry = vmread(cpu, 'VM_ENTRY_CONTROLS');
  return entry.ok && (entry.value & ENTRY_IA32E_MODE_GUEST) !== 0;
}

/** 64-bit mode: IA-32e mode and CS.L = 1. */
function in64BitMode(cpu: HostCpu): boolean {
  const cs = vmread(cpu, 'GUEST_CS_AR_BYTES');
  return ia32eGuest(cpu) && cs.ok && (cs.value & AR_L) !== 0;
}

/** CPUID.80000008H:EAX[7:0]. */
function maxPhysAddr(cpu: HostCpu): number {
  return cpu.cpuid(0x80000008).eax & 0xff;
}

function gp(cpu: HostCpu): VmxResult<ExitAction> {
  const r = injectHardwareException(cpu, VECTOR_GP, 0);
  return r.ok ? { ok: true, value: RESUME } : r;
}

function write2(cpu: HostCpu, a: ['GUEST_CR0' | 'GUEST_CR4', bigint], b: ['CR0_READ_SHADOW' | 'CR4_READ_SHADOW', bigint]): VmxResult<ExitAction> {
  const r1 = vmwrite(cpu, a[0], a[1]);
  if (!r1.ok) return r1;
  const r2 = vmwrite(cpu, b[0], b[1]);
  return r2.ok ? { ok: true, value: SKIP } : r2;
}

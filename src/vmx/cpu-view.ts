// What the VMX instructions need from a logical processor — exactly this, nothing more. The real LP
// (src/machine/lp.ts) is adapted to this interface; tests use `FakeVmxCpu` (testing/fake-vmx-cpu.ts).
//
// Values: control registers, EFER and MSRs are bigint (VMX instructions are not on the interpreter's hot path);
// RFLAGS is a number (all defined bits are below bit 22). Physical addresses are bigint as the VMCS holds them.
import type { CpuFault } from '../machine/fault.ts';
import type { VmxCapabilities } from './capabilities.ts';

/** The result of a linear-memory access: a value, or the fault (#PF, #GP, #SS) the access raised. */
export type MemAccess = { readonly ok: true; readonly value: bigint } | { readonly ok: false; readonly fault: CpuFault };

/** The outcome of a write to linear memory: nothing, or the fault it raised. */
export type MemWrite = { readonly ok: true } | { readonly ok: false; readonly fault: CpuFault };

export interface VmxCpu {
  /** Current privilege level. */
  cpl(): number;
  readCr0(): bigint;
  readCr4(): bigint;
  readEfer(): bigint;
  /** IA32_EFER.LMA = 1: the LP is in IA-32e mode (64-bit or compatibility mode). */
  ia32eModeActive(): boolean;
  /** CS.L: the current code segment is a 64-bit code segment. */
  csL(): boolean;
  readRflags(): number;
  writeRflags(value: number): void;
  /** General-purpose register by number (0 = RAX … 15 = R15), 64 bits. */
  readGpr(reg: number): bigint;
  /** Write a GPR; `size` 4 zero-extends to 64 bits like a 32-bit MOV in 64-bit mode. */
  writeGpr(reg: number, value: bigint, size: 4 | 8): void;
  /** Read 4 or 8 bytes at a linear address (with paging and the permission checks of a CPL-`cpl()` data read). */
  readLinear(linear: bigint, size: 4 | 8): MemAccess;
  writeLinear(linear: bigint, size: 4 | 8, value: bigint): MemWrite;
  /** Physical memory, for the VMXON and VMCS regions (which the processor accesses by physical address). */
  readPhysical32(pa: bigint): number;
  readPhysical64(pa: bigint): bigint;
  writePhysical32(pa: bigint, value: number): void;
  writePhysical64(pa: bigint, value: bigint): void;
  /** This LP's IA32_FEATURE_CONTROL (3AH). */
  featureControl(): bigint;
  /** The LP is in SMX operation (after GETSEC[SENTER]); always false in this emulator unless modelled. */
  inSmxOperation(): boolean;
  /** Blocking by MOV SS / POP SS is in effect for this instruction boundary. */
  movSsBlocking(): boolean;
  /** MAXPHYADDR, CPUID.80000008H:EAX[7:0]. */
  maxPhysAddr(): number;
  /** Linear-address width, CPUID.80000008H:EAX[15:8]. */
  linearAddrWidth(): number;
  /** The model's VMX capability MSRs, decoded once. */
  readonly caps: VmxCapabilities;
  /** Invalidate cached guest-physical / combined mappings: INVEPT. `eptp` is null for all contexts. */
  invalidateEpt(eptp: bigint | null): void;
  /**
   * Invalidate linear / combined mappings tagged with a VPID: INVVPID. `vpid` null = all VPIDs except 0;
   * `linear` non-null = only that address; `keepGlobal` = retain global translations.
   */
  invalidateVpid(vpid: number | null, linear: bigint | null, keepGlobal: boolean): void;
}

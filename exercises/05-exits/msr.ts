// Exercise 5.3 — MSR bitmaps and RDMSR/WRMSR emulation. With "use MSR bitmaps" = 1, a 4-KByte bitmap says which RDMSR/WRMSR
// cause VM exits: one bit per MSR for the low range 00000000H–00001FFFH and the high range C0000000H–C0001FFFH,
// reads and writes separately. An MSR outside both ranges always exits. The hypervisor answers an intercepted
// access itself, or refuses it the way a CPU refuses an MSR it does not have: #GP(0), injected on VM entry.
// Read chapters/05-exits/README.md, section "RDMSR, WRMSR and the MSR bitmap".
// See SDM Vol. 3C, "MSR-Bitmap Address", "Instructions That Cause VM Exits Conditionally" and "Event Injection".
import type { HostCpu } from '../../src/kernel/host-cpu.ts';
import type { Kernel } from '../../src/kernel/kernel.ts';
import { VMX_CONTROL } from '../../src/vmx/controls.ts';
import { EXIT_REASON } from '../../src/vmx/exit-reasons.ts';
import { describeVmxError, vmwrite, type VmxResult } from '../02-vmcs/vmx-access.ts';
import { RESUME, SETUP_OK, SKIP, stop, type ExitAction, type SetupResult, type Vcpu, type VmmPart } from './hypervisor.ts';

export type MsrAccess = 'read' | 'write';

/** Byte offsets of the four 1-KByte quarters of the MSR bitmap. */
export const MSR_BITMAP_READ_LOW = 0;
export const MSR_BITMAP_READ_HIGH = 1024;
export const MSR_BITMAP_WRITE_LOW = 2048;
export const MSR_BITMAP_WRITE_HIGH = 3072;

const LOW_LAST = 0x1fff;
const HIGH_FIRST = 0xc0000000;
const HIGH_LAST = 0xc0001fff;

/**
 * Where the bit for `msr` and `access` lives: byte offset in the bitmap page and bit number (LSB first: MSR n of a
 * range is bit n mod 8 of byte n / 8 of its quarter). null for an MSR outside both ranges: it has no bit and
 * always causes a VM exit.
 */
export function msrBitmapPosition(msr: number, access: MsrAccess): { readonly byte: number; readonly bit: number } | null {
  // TODO
  throw new Error('TODO: msrBitmapPosition');
}

/** Set the bit for `msr`/`access` in the bitmap page at kernel address `bitmap`. False if the MSR has no bit. */
export function interceptMsr(k: Kernel, bitmap: bigint, msr: number, access: MsrAccess): boolean {
  // TODO
  throw new Error('TODO: interceptMsr');
}

/** The interruption type of a hardware exception in the interruption-information format. */
export const INTR_TYPE_HARD_EXCEPTION = 3;
export const INTR_INFO_DELIVER_CODE = 1 << 11;
export const INTR_INFO_VALID = 2 ** 31;
export const VECTOR_GP = 13;

/**
 * Make the next VM entry deliver hardware exception `vector` to the guest, with `errorCode` pushed (null: none).
 * VM_ENTRY_INTR_INFO_FIELD = valid | deliver-error-code | type << 8 | vector. The guest's RIP stays on the
 * instruction: an exception is a fault. See SDM Vol. 3C, "VM-Entry Controls for Event Injection".
 */
export function injectHardwareException(cpu: HostCpu, vector: number, errorCode: number | null): VmxResult<void> {
  // TODO
  throw new Error('TODO: injectHardwareException');
}

export const MSR_IA32_FEATURE_CONTROL = 0x3a;
export const MSR_IA32_VMX_BASIC = 0x480;
export const MSR_IA32_VMX_VMFUNC = 0x491;
/** A synthetic MSR this hypervisor implements: it keeps what the guest writes. Outside both ranges: always exits. */
export const MSR_VMXLAB_SCRATCH = 0x40000000;

const FEATURE_CONTROL_LOCK = 1n << 0n;
const FEATURE_CONTROL_VMX = (1n << 1n) | (1n << 2n);

/** The MSRs whose accesses this hypervisor intercepts in the bitmap (reads and writes). */
export const INTERCEPTED_MSRS: readonly number[] = [
  MSR_IA32_FEATURE_CONTROL,
  ...Array.from({ length: MSR_IA32_VMX_VMFUNC - MSR_IA32_VMX_BASIC + 1 }, (_, i) => MSR_IA32_VMX_BASIC + i),
];

/**
 * The MSR part: a bitmap that intercepts INTERCEPTED_MSRS (everything else in the two ranges runs without a VM
 * exit), and handlers for RDMSR (reason 31) and WRMSR (reason 32):
 *  - IA32_FEATURE_CONTROL: reads return the host's value with the VMX-enable bits (1, 2) clear and the lock bit set
 *    — what firmware that disabled VMX leaves; writes get #GP(0), as a locked IA32_FEATURE_CONTROL gives;
 *  - IA32_VMX_BASIC … IA32_VMX_VMFUNC: #GP(0) — these MSRs do not exist on a CPU whose CPUID says no VMX;
 *  - MSR_VMXLAB_SCRATCH: a 64-bit register of the hypervisor's own (0 at first);
 *  - any other MSR that exits: #GP(0). The hypervisor never runs the guest's RDMSR/WRMSR on the host's MSRs.
 * RDMSR returns EDX:EAX with bits 63:32 of RAX and RDX cleared; WRMSR writes EDX:EAX; the MSR is ECX (bits 63:32 of
 * RCX are ignored). A served access skips the instruction; a refused one injects #GP(0) and leaves RIP on it.
 */
export function msrPart(): VmmPart {
  let bitmap = 0n;
  let scratch = 0n;

  /**
   * A zeroed, 4-KByte-aligned page (k.get_zeroed_page; keep its kernel address in `bitmap`), a read and a write
   * intercept for each of INTERCEPTED_MSRS, and MSR_BITMAP = its physical address (k.virt_to_phys).
   */
  function setup(v: Vcpu): SetupResult {
    // TODO
    throw new Error('TODO: setup');
  }

  /** RDMSR exit: FEATURE_CONTROL and the scratch MSR answered in EDX:EAX (then SKIP); anything else refused. */
  function rdmsr(v: Vcpu): ExitAction {
    // TODO
    throw new Error('TODO: rdmsr');
  }

  /** WRMSR exit: the scratch MSR takes EDX:EAX (then SKIP); anything else refused with #GP(0), RIP unchanged. */
  function wrmsr(v: Vcpu): ExitAction {
    // TODO
    throw new Error('TODO: wrmsr');
  }

  return {
    name: 'msr',
    controls: { proc: { want: VMX_CONTROL.CPU_BASED_USE_MSR_BITMAPS } },
    setup,
    release(k) {
      if (bitmap !== 0n) k.free_page(bitmap);
      bitmap = 0n;
    },
    handlers: { [EXIT_REASON.EXIT_REASON_MSR_READ]: rdmsr, [EXIT_REASON.EXIT_REASON_MSR_WRITE]: wrmsr },
  };
}

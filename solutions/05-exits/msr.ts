// MSR bitmaps and RDMSR/WRMSR emulation. With "use MSR bitmaps" = 1, a 4-KByte bitmap says which RDMSR/WRMSR
// cause VM exits: one bit per MSR for the low range 00000000H–00001FFFH and the high range C0000000H–C0001FFFH,
// reads and writes separately. An MSR outside both ranges always exits. The hypervisor answers an intercepted
// access itself, or refuses it the way a CPU refuses an MSR it does not have: #GP(0), injected on VM entry.
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
  const m = msr >>> 0;
  let quarter: number;
  if (m <= LOW_LAST) quarter = access === 'read' ? MSR_BITMAP_READ_LOW : MSR_BITMAP_WRITE_LOW;
  else if (m >= HIGH_FIRST && m <= HIGH_LAST) quarter = access === 'read' ? MSR_BITMAP_READ_HIGH : MSR_BITMAP_WRITE_HIGH;
  else return null;
  const n = m & 0x1fff;
  return { byte: quarter + (n >> 3), bit: n & 7 };
}

/** Set the bit for `msr`/`access` in the bitmap page at kernel address `bitmap`. False if the MSR has no bit. */
export function interceptMsr(k: Kernel, bitmap: bigint, msr: number, access: MsrAccess): boolean {
  const at = msrBitmapPosition(msr, access);
  if (at === null) return false;
  const va = bitmap + BigInt(at.byte);
  k.write8(va, k.read8(va) | (1 << at.bit));
  return true;
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
  const info = (INTR_INFO_VALID | (errorCode !== null ? INTR_INFO_DELIVER_CODE : 0) | (INTR_TYPE_HARD_EXCEPTION << 8) | (vector & 0xff)) >>> 0;
  if (errorCode !== null) {
    const r = vmwrite(cpu, 'VM_ENTRY_EXCEPTION_ERROR_CODE', errorCode >>> 0);
    if (!r.ok) return r;
  }
  return vmwrite(cpu, 'VM_ENTRY_INTR_INFO_FIELD', info);
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

  function setup(v: Vcpu): SetupResult {
    // A bitmap page: 4-KByte aligned, all zero except what we intercept. get_zeroed_page gives exactly that.
    bitmap = v.k.get_zeroed_page();
    if (bitmap === 0n) return { ok: false, error: 'out of memory for the MSR bitmap' };
    for (const msr of INTERCEPTED_MSRS) {
      interceptMsr(v.k, bitmap, msr, 'read');
      interceptMsr(v.k, bitmap, msr, 'write');
    }
    const r = vmwrite(v.cpu, 'MSR_BITMAP', v.k.virt_to_phys(bitmap));
    return r.ok ? SETUP_OK : { ok: false, error: `VMWRITE MSR_BITMAP: ${describeVmxError(r.error)}` };
  }

  function refuse(v: Vcpu): ExitAction {
    const r = injectHardwareException(v.cpu, VECTOR_GP, 0);
    return r.ok ? RESUME : stop(`injecting #GP: ${describeVmxError(r.error)}`);
  }

  function rdmsr(v: Vcpu): ExitAction {
    const msr = Number(v.cpu.readGpr('rcx') & 0xffffffffn);
    let value: bigint;
    if (msr === MSR_IA32_FEATURE_CONTROL) value = (v.cpu.rdmsr(MSR_IA32_FEATURE_CONTROL) & ~FEATURE_CONTROL_VMX) | FEATURE_CONTROL_LOCK;
    else if (msr === MSR_VMXLAB_SCRATCH) value = scratch;
    else return refuse(v);
    v.cpu.writeGpr('rax', value & 0xffffffffn);
    v.cpu.writeGpr('rdx', value >> 32n);
    return SKIP;
  }

  function wrmsr(v: Vcpu): ExitAction {
    const msr = Number(v.cpu.readGpr('rcx') & 0xffffffffn);
    if (msr !== MSR_VMXLAB_SCRATCH) return refuse(v);
    scratch = ((v.cpu.readGpr('rdx') & 0xffffffffn) << 32n) | (v.cpu.readGpr('rax') & 0xffffffffn);
    return SKIP;
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

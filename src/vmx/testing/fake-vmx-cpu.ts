// Test double: a logical processor for tests of the VMX instructions. FakeTransitionCpu (fake-transition-cpu.ts:
// registers, sparse physical memory, MSRs) plus what the instructions add — a settable CPL, IA32_FEATURE_CONTROL,
// SMX and MOV-SS state, identity-mapped linear memory with pages that raise #PF, and a log of INVEPT/INVVPID
// invalidations. It starts in 64-bit mode at CPL 0 with CR0/CR4 satisfying the model's FIXED0/FIXED1 and
// CR4.VMXE = 1.
import { CpuFault } from '../../machine/fault.ts';
import { PF_ERROR, PF_VECTOR } from '../../x86/exceptions.ts';
import { CR0, CR4, EFER } from '../../x86/control-registers.ts';
import { MSR_EFER } from '../../x86/msr.ts';
import { AR } from '../../x86/segments.ts';
import { FEAT_CTL_LOCKED, FEAT_CTL_VMX_ENABLED_OUTSIDE_SMX } from '../msrs.ts';
import type { VmxCapabilities } from '../capabilities.ts';
import type { MemAccess, MemWrite } from '../cpu-view.ts';
import { FakeTransitionCpu } from './fake-transition-cpu.ts';
import { VmxState } from '../state.ts';
import { supportedSlots } from '../vmcs-support.ts';
import type { VmEntryContext } from '../instructions/vmlaunch.ts';
import { hexLower } from '../../util/hex.ts';

export class FakeVmxCpu extends FakeTransitionCpu {
  cplValue = 0;
  featureControlValue = BigInt(FEAT_CTL_LOCKED | FEAT_CTL_VMX_ENABLED_OUTSIDE_SMX);
  smx = false;
  movSs = false;
  /** Linear pages (address >> 12) whose access raises #PF. */
  readonly faultingPages = new Set<bigint>();
  readonly eptInvalidations: (bigint | null)[] = [];
  readonly vpidInvalidations: { vpid: number | null; linear: bigint | null; keepGlobal: boolean }[] = [];

  constructor(caps: VmxCapabilities, physWidth = 39, linearWidth = 48) {
    super(caps, physWidth, linearWidth);
    this.cr0 = BigInt((CR0.PE | CR0.NE | CR0.PG | CR0.ET) >>> 0) | (caps.cr0Fixed0 & 0xffffffffn);
    this.cr4 = BigInt(CR4.PAE | CR4.VMXE) | caps.cr4Fixed0;
    this.msrs.set(MSR_EFER, BigInt(EFER.LME | EFER.LMA));
    this.segments.CS = { selector: 0x10, base: 0n, limit: 0xffffffff, ar: 0xb | AR.S | AR.P | AR.L | AR.G };
    this.segments.SS = { selector: 0x18, base: 0n, limit: 0xffffffff, ar: 0x3 | AR.S | AR.P | AR.DB | AR.G };
  }

  override cpl(): number { return this.cplValue; }
  override featureControl(): bigint { return this.featureControlValue; }
  override inSmxOperation(): boolean { return this.smx; }
  override movSsBlocking(): boolean { return this.movSs; }
  // (Parameters are optional only because the base class declares these methods without parameters.)
  override invalidateEpt(eptp: bigint | null = null): void { this.eptInvalidations.push(eptp); }
  override invalidateVpid(vpid: number | null = null, linear: bigint | null = null, keepGlobal = false): void {
    this.vpidInvalidations.push({ vpid, linear, keepGlobal });
  }

  override readLinear(linear = 0n, size: 4 | 8 = 8): MemAccess {
    const f = this.pageFault(linear, size, false);
    if (f !== null) return { ok: false, fault: f };
    return { ok: true, value: size === 8 ? this.readPhysical64(linear) : BigInt(this.readPhysical32(linear)) };
  }
  override writeLinear(linear = 0n, size: 4 | 8 = 8, value = 0n): MemWrite {
    const f = this.pageFault(linear, size, true);
    if (f !== null) return { ok: false, fault: f };
    if (size === 8) this.writePhysical64(linear, value);
    else this.writePhysical32(linear, Number(value & 0xffffffffn));
    return { ok: true };
  }

  private pageFault(linear: bigint, size: number, write: boolean): CpuFault | null {
    for (const a of [linear, linear + BigInt(size - 1)]) {
      if (this.faultingPages.has(a >> 12n)) return new CpuFault(PF_VECTOR, write ? PF_ERROR.WR : 0, `page fault at ${hexLower(a)}`);
    }
    return null;
  }
}

/** A fake CPU with fresh VMX state for its model, ready for the instruction functions. */
export function fakeVmxContext(caps: VmxCapabilities, physWidth = 39): VmEntryContext & { readonly cpu: FakeVmxCpu } {
  const cpu = new FakeVmxCpu(caps, physWidth);
  return { cpu, state: new VmxState(supportedSlots(caps)) };
}

// A read-only view of the VMCS and the processor for the VM-entry checks: field reads by name, the control fields
// decoded once, and the handful of derived facts the SDM's checks keep referring to ("IA-32e mode guest",
// "unrestricted guest", "the guest will be in virtual-8086 mode", the physical-address width).
import type { EntryContext } from './context.ts';
import type { VmcsAccess } from '../transition/vmcs-access.ts';
import type { VmcsFullFieldName } from '../fields.ts';
import type { VmxCapabilities } from '../capabilities.ts';
import { VMX_CONTROL } from '../controls.ts';
import { RFLAGS } from '../../x86/flags.ts';
import { SLOT_BY_NAME } from '../vmcs.ts';
import type { ReadRecorder } from './incremental.ts';

const U64 = 0xffffffffffffffffn;

export class EntryView {
  readonly vmcs: VmcsAccess;
  readonly caps: VmxCapabilities;
  readonly ctx: EntryContext;
  /** Pin-based VM-execution controls. */
  readonly pin: number;
  /** Primary processor-based VM-execution controls. */
  readonly proc: number;
  /** Secondary controls, or 0 when "activate secondary controls" is 0 (the SDM treats them as all 0 then). */
  readonly proc2: number;
  readonly exitCtls: number;
  readonly entryCtls: number;
  readonly physAddrWidth: number;
  readonly linearAddrWidth: number;
  /** The "IA-32e mode guest" VM-entry control. */
  readonly ia32eModeGuest: boolean;
  /** The "host address-space size" VM-exit control. */
  readonly hostAddressSpaceSize: boolean;
  /** The "unrestricted guest" VM-execution control (0 when secondary controls are not active). */
  readonly unrestrictedGuest: boolean;
  /** RFLAGS.VM in the guest-state area: the guest will run in virtual-8086 mode. */
  readonly v8086: boolean;
  /**
   * While set, every read is noted: VMCS fields by slot, anything else as "outside" (./incremental.ts, which
   * re-runs only the checks whose inputs changed). Null while guest state is loaded.
   */
  recorder: ReadRecorder | null = null;

  constructor(ctx: EntryContext, recorder?: ReadRecorder) {
    if (recorder !== undefined) {
      recorder.begin();
      this.recorder = recorder;
    }
    this.ctx = ctx;
    this.vmcs = ctx.vmcs;
    this.caps = ctx.caps;
    this.pin = this.u32('PIN_BASED_VM_EXEC_CONTROL');
    this.proc = this.u32('CPU_BASED_VM_EXEC_CONTROL');
    // See SDM Vol. 3C, "Secondary Processor-Based VM-Execution Controls": with the activate bit clear, the
    // processor operates as if all secondary controls were 0.
    this.proc2 = this.proc & VMX_CONTROL.CPU_BASED_ACTIVATE_SECONDARY_CONTROLS ? this.u32('SECONDARY_VM_EXEC_CONTROL') : 0;
    this.exitCtls = this.u32('VM_EXIT_CONTROLS');
    this.entryCtls = this.u32('VM_ENTRY_CONTROLS');
    this.physAddrWidth = ctx.cpu.maxPhysAddr();
    this.linearAddrWidth = ctx.cpu.linearAddrWidth();
    this.ia32eModeGuest = (this.entryCtls & VMX_CONTROL.VM_ENTRY_IA32E_MODE) !== 0;
    this.hostAddressSpaceSize = (this.exitCtls & VMX_CONTROL.VM_EXIT_HOST_ADDR_SPACE_SIZE) !== 0;
    this.unrestrictedGuest = (this.proc2 & VMX_CONTROL.SECONDARY_EXEC_UNRESTRICTED_GUEST) !== 0;
    this.v8086 = (this.u64('GUEST_RFLAGS') & BigInt(RFLAGS.VM)) !== 0n;
    this.recorder = null;
  }

  // The checks read the same fields many times (RFLAGS, access rights, controls); a VM entry reads each field of
  // the VMCS once. The VMCS does not change while the checks and the loading run. (Made on first use: the
  // processor's cached VMCS needs no memo, and every VM entry makes a view.)
  private wide: Map<VmcsFullFieldName, bigint> | null = null;
  private narrow: Map<VmcsFullFieldName, number> | null = null;

  /** A 16- or 32-bit field as an unsigned number. */
  u32(field: VmcsFullFieldName): number {
    if (this.recorder !== null) this.recorder.note(SLOT_BY_NAME.get(field)!);
    if (this.vmcs.read32) return this.vmcs.read32(field);
    this.narrow ??= new Map();
    let v = this.narrow.get(field);
    if (v === undefined) {
      v = Number(this.u64(field) & 0xffffffffn);
      this.narrow.set(field, v);
    }
    return v;
  }
  /** A 64-bit or natural-width field. */
  u64(field: VmcsFullFieldName): bigint {
    if (this.recorder !== null) this.recorder.note(SLOT_BY_NAME.get(field)!);
    // The processor's cached VMCS (the accessor with the 32-bit fast path) holds 64-bit values already, and reading
    // it is as cheap as the memo below.
    if (this.vmcs.read32) return this.vmcs.read(field);
    this.wide ??= new Map();
    let v = this.wide.get(field);
    if (v === undefined) {
      v = this.vmcs.read(field) & U64;
      this.wide.set(field, v);
    }
    return v;
  }

  /** True when no bit at or above the physical-address width is set. */
  withinPhysWidth(addr: bigint): boolean {
    return addr >> BigInt(this.physAddrWidth) === 0n;
  }
  /** True when bits 63:N are all equal to bit N-1 (N = linear-address width). */
  canonical(addr: bigint): boolean {
    const top = addr >> BigInt(this.linearAddrWidth - 1);
    return top === 0n || top === U64 >> BigInt(this.linearAddrWidth - 1);
  }

  /** Processor state outside the VMCS. */
  get hostInIa32eMode(): boolean {
    if (this.recorder !== null) this.recorder.outside = true;
    return this.ctx.cpu.ia32eModeActive();
  }
  readPhys32(pa: bigint): number {
    if (this.recorder !== null) this.recorder.outside = true;
    return this.ctx.cpu.readPhysical32(pa);
  }
  readPhys64(pa: bigint): bigint {
    if (this.recorder !== null) this.recorder.outside = true;
    return this.ctx.cpu.readPhysical64(pa);
  }
  /** WRMSR without raising; false when it would #GP. Used only by the MSR-loading step. */
  writeMsr(index: number, value: bigint): boolean {
    if (this.recorder !== null) this.recorder.outside = true;
    return this.ctx.cpu.writeMsr(index, value);
  }
}

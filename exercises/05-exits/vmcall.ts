// Exercise 5.6 — a hypercall ABI. VMCALL causes a VM exit unconditionally in VMX non-root operation, at any CPL; what it means is
// up to the hypervisor. This one follows the usual register convention (KVM's is the same shape): RAX = function
// number, arguments in RBX, RCX; results in RAX (0 or a negative errno) and RBX. Every other register and RFLAGS
// come back unchanged, and RIP moves past the VMCALL by VM_EXIT_INSTRUCTION_LEN (3 bytes: 0F 01 C1).
// See SDM Vol. 3C, "Instructions That Cause VM Exits Unconditionally", Vol. 2B, "VMCALL—Call to VM Monitor", and
// Vol. 3A, "Privilege Levels" (CPL is SS.DPL).
// Read chapters/05-exits/README.md, section "VMCALL: a hypercall ABI".
import type { HostCpu } from '../../src/kernel/host-cpu.ts';
import { EXIT_REASON } from '../../src/vmx/exit-reasons.ts';
import { describeVmxError, vmread, type VmxResult } from '../02-vmcs/vmx-access.ts';
import type { GuestImage } from '../04-first-launch/guest-state.ts';
import { SKIP, stop, type ExitAction, type Vcpu, type VmmPart } from './hypervisor.ts';

/** Function numbers (RAX). */
export const VMCALL_PING = 0n;
export const VMCALL_WRITE = 1n;
export const VMCALL_EXIT_COUNT = 2n;

/** Results (RAX), as 64-bit two's complement: 0, or a negative Linux errno. */
export const VMCALL_OK = 0n;
export const VMCALL_EPERM = BigInt.asUintN(64, -1n);
export const VMCALL_EFAULT = BigInt.asUintN(64, -14n);
export const VMCALL_EINVAL = BigInt.asUintN(64, -22n);
export const VMCALL_ENOSYS = BigInt.asUintN(64, -38n);

/** What PING returns in RBX: "VMXLab" in ASCII, little-endian. */
export const VMCALL_SIGNATURE = 0x62614c584d56n;
/** The most bytes one WRITE may ask for. */
export const VMCALL_MAX_WRITE = 4096n;

/**
 * The CPL of the guest: SS.DPL (bits 6:5 of the access rights). SS.DPL always equals the CPL, even where CS.DPL
 * does not (a conforming code segment). See SDM Vol. 3C, "Checks on Guest Segment Registers".
 */
export function guestCpl(cpu: HostCpu): VmxResult<number> {
  // TODO
  throw new Error('TODO: guestCpl');
}

/**
 * Is [pa, pa + length) inside the guest's memory? Without EPT a guest-physical address is a host-physical address,
 * and the guest owns exactly its block: 4096 << order bytes from guest.pa. Check without overflow.
 */
export function inGuestMemory(guest: GuestImage, pa: bigint, length: bigint): boolean {
  // TODO
  throw new Error('TODO: inGuestMemory');
}

export interface Hypercalls {
  readonly part: VmmPart;
  /** Everything the guest wrote with VMCALL_WRITE. */
  output(): string;
}

/**
 * The VMCALL part (exit reason 18):
 *  - a VMCALL from CPL > 0 gets RAX = VMCALL_EPERM and does nothing else (user code must not reach the hypervisor);
 *  - PING: RAX = 0, RBX = VMCALL_SIGNATURE;
 *  - WRITE (RBX = guest-physical address, RCX = length): RAX = VMCALL_EINVAL above VMCALL_MAX_WRITE bytes,
 *    VMCALL_EFAULT unless the bytes are inside the guest's memory; else the bytes are appended to output(), printk'd,
 *    and RAX = the length;
 *  - EXIT_COUNT: RAX = 0, RBX = VM exits so far, this one included;
 *  - any other RAX: VMCALL_ENOSYS.
 * Then SKIP. Nothing but RAX and RBX changes.
 */
export function vmcallPart(): Hypercalls {
  const out: number[] = [];

  function handle(v: Vcpu): ExitAction {
    // TODO: the CPL check first (guestCpl), then the function in RAX; results with cpu.writeGpr; return SKIP.
    // For WRITE: check the length, then inGuestMemory(v.guest, …); read the bytes with
    // v.k.readBytes(v.k.phys_to_virt(pa), n), push them on `out` and printk them.
    throw new Error('TODO: the VMCALL handler');
  }

  return {
    part: { name: 'vmcall', handlers: { [EXIT_REASON.EXIT_REASON_VMCALL]: handle } },
    output: () => new TextDecoder().decode(new Uint8Array(out)),
  };
}

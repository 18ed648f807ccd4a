// What a playground hypervisor module imports from 'vmxlab': the project's own constants (field
// encodings, control bits, exit reasons, MSR numbers, errno values) and a few kit helpers for the
// parts of chapter 4 that are exercises (the guest's memory and guest-state area, the host TSS
// base), taken from the chapter's kit-side support code so the page never shows a solution.
import type { Host } from '../../../../src/kernel/boot-host.ts';
import type { HostCpu } from '../../../../src/kernel/host-cpu.ts';
import type { Kernel } from '../../../../src/kernel/kernel.ts';
import * as errno from '../../../../src/kernel/errno.ts';
import { assembleOrThrow } from '../../../../src/guest/assembler.ts';
import { VMX_CONTROL } from '../../../../src/vmx/controls.ts';
import { EXIT_REASON, VMX_EXIT_REASONS_FAILED_VMENTRY, exitReasonByNumber } from '../../../../src/vmx/exit-reasons.ts';
import { VMCS } from '../../../../src/vmx/fields.ts';
import * as vmxMsrs from '../../../../src/vmx/msrs.ts';
import * as x86Msrs from '../../../../src/x86/msr.ts';
import { CR0, CR4 } from '../../../../src/x86/control-registers.ts';
import { RFLAGS } from '../../../../src/x86/flags.ts';
import { buildReferenceGuest, writeReferenceGuestState, type ReferenceGuest } from '../../../../chapters/04-first-launch/support.ts';
import { buildIdentityEpt } from '../../../../src/kernel/testing/reference-vm.ts';

/** Pages in the kit's guest block (order 3: page tables, GDT, TSS, code, stack). */
const GUEST_ORDER = 3;

/** The 'vmxlab' module a playground hypervisor imports, bound to the host it runs on. */
export function createKit(host: Host) {
  return {
    VMCS,
    VMX_CONTROL,
    EXIT_REASON,
    VMX_EXIT_REASONS_FAILED_VMENTRY,
    exitReasonByNumber,
    CR0,
    CR4,
    RFLAGS,
    ...errno,
    ...x86Msrs,
    ...vmxMsrs,
    assemble: assembleOrThrow,
    /**
     * A tiny 64-bit guest in 8 physically contiguous pages: identity-mapped page tables, a GDT with a 64-bit code
     * segment, a data segment and a busy TSS, and `source` assembled at its physical address.
     */
    buildGuest(k: Kernel, source: string): ReferenceGuest {
      return buildReferenceGuest(k, source);
    },
    freeGuest(k: Kernel, guest: ReferenceGuest): void {
      k.free_pages(guest.va, GUEST_ORDER);
    },
    /** The guest-state area for `buildGuest`'s guest, taken from its own GDT (exercise 4.2 writes this). */
    writeGuestState(cpu: HostCpu, guest: ReferenceGuest): void {
      writeReferenceGuestState(host, cpu, guest);
    },
    /**
     * EPT paging structures that map guest-physical = host-physical for the first GiB (2-MByte pages, RWX, WB), and
     * the EPTP for them (WB, 4-level walk). Exercise 6.2 writes this.
     */
    buildIdentityEpt(k: Kernel): bigint {
      return buildIdentityEpt(k);
    },
    /** Base of this CPU's TSS, read from its GDT (exercise 4.1 computes this; no instruction reads it). */
    trBase(cpu: HostCpu): bigint {
      return cpu.lp.snapshot().segments.tr.base;
    },
  };
}

export type Kit = ReturnType<typeof createKit>;

// Exercise 9.3 — re-injecting the event whose delivery a VM exit interrupted. When a VM exit happens while the
// processor delivers an event through the guest IDT (an EPT violation on the stack page it pushes to, a #PF the
// bitmap intercepts, …), IDT_VECTORING_INFO_FIELD describes that event (same layout as the interruption
// information: vector, type, bit 11 error code in IDT_VECTORING_ERROR_CODE, bit 31 valid) and for software
// interrupts and exceptions VM_EXIT_INSTRUCTION_LEN is defined. The event was NOT delivered: unless the hypervisor
// injects it again at the next VM entry it is lost — an external interrupt or an injected event never comes back.
// Read chapters/09-events/README.md. Yours to write: reinjection, reinjectFromIdtVectoring and the EPT-violation handler
// of stackGuardPart (its setup is chapter 6's write-watch setup, given).
// See SDM Vol. 3C, "Information for VM Exits That Occur During Event Delivery" and "Event Injection".
import type { HostCpu } from '../../src/kernel/host-cpu.ts';
import type { Kernel } from '../../src/kernel/kernel.ts';
import { EXIT_REASON } from '../../src/vmx/exit-reasons.ts';
import { VMX_CONTROL } from '../../src/vmx/controls.ts';
import { describeVmxError, vmread, vmwrite } from '../02-vmcs/vmx-access.ts';
import { RESUME, stop, type VmmPart, type Vcpu } from '../05-exits/hypervisor.ts';
import { eptpFromCapabilities, readEptCapability } from '../06-ept/eptp.ts';
import { buildIdentityMap, EPT_EXECUTE, EPT_READ, EPT_RWX, freeEptTables, maxPhysAddrOf, type EptTables } from '../06-ept/identity-map.ts';
import { invalidateEpt, splitToPte } from '../06-ept/write-watch.ts';
import { inject, INTR_TYPE, type InjectedEvent } from './inject.ts';

const VALID = 1 << 31;
const HAS_ERROR_CODE = 1 << 11;

/**
 * The event to inject again from IDT-vectoring information: null if bit 31 is 0 (the exit did not interrupt a
 * delivery). The error code only if bit 11 is set; the instruction length only for software interrupts (4),
 * privileged software exceptions (5) and software exceptions (6).
 */
export function reinjection(info: number, errorCode: number, instructionLength: number): InjectedEvent | null {
  // TODO: null unless bit 31; vector 7:0, type 10:8; errorCode only if bit 11; instructionLength only for types 4, 5, 6. Do not copy the raw field: bit 12 is undefined there and reserved in the injection field.
  throw new Error('TODO: reinjection');
}

/** Read the IDT-vectoring fields and inject the event again; the event (or null: nothing was being delivered). */
export function reinjectFromIdtVectoring(cpu: HostCpu): { ok: true; event: InjectedEvent | null } | { ok: false; error: string } {
  // TODO: VMREAD IDT_VECTORING_INFO_FIELD (not valid → { ok: true, event: null }), IDT_VECTORING_ERROR_CODE, and VM_EXIT_INSTRUCTION_LEN only for types 4–6 (undefined otherwise); reinjection(...), then inject.
  throw new Error('TODO: reinjectFromIdtVectoring');
}

/** One EPT violation the stack guard handled. */
export interface GuardedFault {
  readonly gpa: bigint;
  /** IDT_VECTORING_INFO_FIELD at the exit. */
  readonly idtVectoring: number;
}

/**
 * Identity-map the guest with EPT and make one 4-KByte page (the guest's stack) read/execute only. A write to it —
 * the processor pushing an event's frame — is an EPT violation during event delivery: log it, make the page
 * writable (RWX: granting needs no INVEPT), re-inject the interrupted event, RESUME.
 */
export function stackGuardPart(opts: { page(v: Vcpu): bigint }): VmmPart & { readonly faults: readonly GuardedFault[] } {
  const faults: GuardedFault[] = [];
  let tables: EptTables | null = null;
  let pte = 0n, page = 0n;
  return {
    name: 'stack-guard',
    faults,
    controls: { proc2: { want: VMX_CONTROL.SECONDARY_EXEC_ENABLE_EPT } },
    setup(v) {
      const c = readEptCapability((msr) => v.cpu.rdmsr(msr));
      if (!c.ok) return { ok: false, error: c.error };
      const map = buildIdentityMap(v.k, c.cap, BigInt(v.k.ramBytes));
      if (!map.ok) return { ok: false, error: map.error };
      tables = map.tables;
      page = opts.page(v) & ~0xfffn;
      const at = splitToPte(v.k, tables, page);
      if (at === null) return { ok: false, error: `cannot split the EPT down to the page 0x${page.toString(16)}` };
      pte = at;
      v.k.write64(pte, (v.k.read64(pte) & ~EPT_RWX) | EPT_READ | EPT_EXECUTE);
      const e = eptpFromCapabilities(c.cap, tables.pml4, { maxPhysAddr: maxPhysAddrOf(v) });
      if (!e.ok) return { ok: false, error: e.error };
      const w = vmwrite(v.cpu, 'EPT_POINTER', e.eptp);
      if (!w.ok) return { ok: false, error: `VMWRITE EPT_POINTER: ${describeVmxError(w.error)}` };
      return invalidateEpt(v.cpu, c.cap, e.eptp);
    },
    release(k: Kernel) {
      if (tables !== null) freeEptTables(k, tables);
      tables = null;
    },
    handlers: {
      [EXIT_REASON.EXIT_REASON_EPT_VIOLATION]: (v) => {
        // TODO: GUEST_PHYSICAL_ADDRESS must be in `page` (else stop); faults.push({ gpa, idtVectoring:
        // IDT_VECTORING_INFO_FIELD }); make the PTE RWX (v.k.write64(pte, v.k.read64(pte) | EPT_RWX)); then
        // reinjectFromIdtVectoring(v.cpu) and RESUME (failure → stop).
        throw new Error('TODO: stackGuardPart EPT violation handler');
      },
    },
  };
}

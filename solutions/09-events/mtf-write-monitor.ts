// Exercise 9.6 — an MTF-assisted write monitor: every write to one EPT-protected page is seen, and the page is
// never left writable. On the EPT violation the hypervisor lets the ONE write through: it grants write access and
// sets the monitor trap flag; the write is retried and completes, and the MTF exit at the next instruction boundary
// re-protects the page, invalidates the cached mapping (INVEPT) and clears the flag. Chapter 6's write-watch let the
// page stay writable until the guest asked; here nothing but the faulting instruction runs with it writable.
// See SDM Vol. 3C, "Monitor Trap Flag", "EPT Violations" and "Invalidating Cached Translation Information".
import type { HostCpu } from '../../src/kernel/host-cpu.ts';
import type { Kernel } from '../../src/kernel/kernel.ts';
import { EXIT_REASON } from '../../src/vmx/exit-reasons.ts';
import { VMX_CONTROL } from '../../src/vmx/controls.ts';
import { describeVmxError, vmread, vmwrite } from '../02-vmcs/vmx-access.ts';
import { RESUME, SETUP_OK, stop, type SetupResult, type VmmPart, type Vcpu } from '../05-exits/hypervisor.ts';
import { eptpFromCapabilities, readEptCapability } from '../06-ept/eptp.ts';
import { buildIdentityMap, EPT_EXECUTE, EPT_READ, EPT_RWX, freeEptTables, maxPhysAddrOf, type EptTables } from '../06-ept/identity-map.ts';
import { decodeEptViolation } from '../06-ept/violation.ts';
import { invalidateEpt, splitToPte } from '../06-ept/write-watch.ts';

/** Set or clear the monitor trap flag (CPU_BASED_VM_EXEC_CONTROL bit 27). */
export function setMonitorTrapFlag(cpu: HostCpu, on: boolean): SetupResult {
  const p = vmread(cpu, 'CPU_BASED_VM_EXEC_CONTROL');
  if (!p.ok) return { ok: false, error: `VMREAD CPU_BASED_VM_EXEC_CONTROL: ${describeVmxError(p.error)}` };
  const bit = VMX_CONTROL.CPU_BASED_MONITOR_TRAP_FLAG;
  const w = vmwrite(cpu, 'CPU_BASED_VM_EXEC_CONTROL', (on ? p.value | bit : p.value & ~bit) >>> 0);
  return w.ok ? SETUP_OK : { ok: false, error: `VMWRITE CPU_BASED_VM_EXEC_CONTROL: ${describeVmxError(w.error)}` };
}

/** One write the monitor let through. */
export interface MonitoredWrite {
  readonly gpa: bigint;
  /** GUEST_RIP at the EPT violation: the writing instruction. */
  readonly rip: bigint;
  /** GUEST_RIP at the MTF exit that re-protected the page: the instruction after it. */
  readonly reprotectedAt: bigint;
}

/**
 * Identity-map the guest and make the page `watch` names read/execute only. EPT violation (a write to it): note it,
 * grant RWX, set MTF, RESUME. MTF exit: re-protect, INVEPT, clear MTF, RESUME (an MTF exit is not caused by an
 * instruction: never SKIP). Needs "enable EPT" and "monitor trap flag".
 */
export function mtfWriteMonitorPart(opts: { watch(v: Vcpu): bigint }): VmmPart & { readonly writes: readonly MonitoredWrite[] } {
  const writes: MonitoredWrite[] = [];
  let tables: EptTables | null = null;
  let pte = 0n, page = 0n, cap = 0n, eptp = 0n;
  let open: { gpa: bigint; rip: bigint } | null = null;
  const protect = (k: Kernel): void => k.write64(pte, (k.read64(pte) & ~EPT_RWX) | EPT_READ | EPT_EXECUTE);
  return {
    name: 'mtf-write-monitor',
    writes,
    controls: { proc: { want: VMX_CONTROL.CPU_BASED_MONITOR_TRAP_FLAG }, proc2: { want: VMX_CONTROL.SECONDARY_EXEC_ENABLE_EPT } },
    setup(v) {
      // Asked for so that a model without MTF refuses the part; off until a write is let through.
      const m = setMonitorTrapFlag(v.cpu, false);
      if (!m.ok) return m;
      const c = readEptCapability((msr) => v.cpu.rdmsr(msr));
      if (!c.ok) return { ok: false, error: c.error };
      cap = c.cap;
      const map = buildIdentityMap(v.k, cap, BigInt(v.k.ramBytes));
      if (!map.ok) return { ok: false, error: map.error };
      tables = map.tables;
      page = opts.watch(v) & ~0xfffn;
      const at = splitToPte(v.k, tables, page);
      if (at === null) return { ok: false, error: `cannot split the EPT down to the page 0x${page.toString(16)}` };
      pte = at;
      protect(v.k);
      const e = eptpFromCapabilities(cap, tables.pml4, { maxPhysAddr: maxPhysAddrOf(v) });
      if (!e.ok) return { ok: false, error: e.error };
      eptp = e.eptp;
      const w = vmwrite(v.cpu, 'EPT_POINTER', eptp);
      if (!w.ok) return { ok: false, error: `VMWRITE EPT_POINTER: ${describeVmxError(w.error)}` };
      return invalidateEpt(v.cpu, cap, eptp);
    },
    release(k) {
      if (tables !== null) freeEptTables(k, tables);
      tables = null;
    },
    handlers: {
      [EXIT_REASON.EXIT_REASON_EPT_VIOLATION]: (v, exit) => {
        const gpa = vmread(v.cpu, 'GUEST_PHYSICAL_ADDRESS');
        if (!gpa.ok) return stop(`VMREAD GUEST_PHYSICAL_ADDRESS: ${describeVmxError(gpa.error)}`);
        if ((gpa.value & ~0xfffn) !== page || !decodeEptViolation(exit.qualification).write) {
          return stop(`unexpected EPT violation at guest-physical 0x${gpa.value.toString(16)}, qualification 0x${exit.qualification.toString(16)}`);
        }
        const rip = vmread(v.cpu, 'GUEST_RIP');
        open = { gpa: gpa.value, rip: rip.ok ? rip.value : -1n };
        // Granting a permission needs no INVEPT: the violation itself dropped the cached translation.
        v.k.write64(pte, v.k.read64(pte) | EPT_RWX);
        const m = setMonitorTrapFlag(v.cpu, true);
        return m.ok ? RESUME : stop(m.error);
      },
      [EXIT_REASON.EXIT_REASON_MONITOR_TRAP_FLAG]: (v) => {
        if (open === null) return stop('an MTF exit without a write in progress');
        const rip = vmread(v.cpu, 'GUEST_RIP');
        writes.push({ ...open, reprotectedAt: rip.ok ? rip.value : -1n });
        open = null;
        protect(v.k);
        const inv = invalidateEpt(v.cpu, cap, eptp);
        if (!inv.ok) return stop(inv.error);
        const m = setMonitorTrapFlag(v.cpu, false);
        return m.ok ? RESUME : stop(m.error);
      },
    },
  };
}

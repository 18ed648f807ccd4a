// EPT in the CPU: VM entry with "enable EPT" installs the guest-physical translation in the LP's memory path
// (`lp.gpaTranslate`, called by the page walker in src/machine/paging.ts for every guest paging-structure entry,
// every A/D update and every final page), and a VM exit removes it. The translation is walk.ts's `eptTranslate`;
// this file adds what the processor around the walk does: the guest-physical mappings it caches (tagged by EP4TA,
// kept until INVEPT), the TLB context of the combined mappings, and the VM exits for EPT violations (reason 48) and
// misconfigurations (reason 49). See SDM Vol. 3C, "EPT Translation Mechanism", "EPT-Induced VM Exits", "Caching
// Translation Information" and "Basic VM-Exit Information".
import type { LogicalProcessor } from '../../machine/lp.ts';
import { ACCESS_EXEC, ACCESS_READ, ACCESS_WRITE, type Access, type GpaAccessInfo } from '../../machine/paging.ts';
import { PERM_EXEC_S, PERM_EXEC_U, PERM_READ_S, PERM_READ_U, PERM_WRITE_S, PERM_WRITE_U } from '../../machine/tlb.ts';
import { PendingVmExit, type EventInDelivery } from '../../machine/vmx-seam.ts';
import { VMX_CONTROL as C } from '../controls.ts';
import { recordDiagnosis } from '../diagnosis.ts';
import { EPTP } from '../eptp.ts';
import { EXIT_REASON } from '../exit-reasons.ts';
import type { VmExitCause } from '../exit/info.ts';
import { secondaryControls, type NonRootContext } from '../nonroot/context.ts';
import { idtVectoring } from '../nonroot/exceptions.ts';
import { INTR_TYPE } from '../transition/interruption-info.ts';
import { bitOf, EPT_BIT } from './entry.ts';
import { asDiagnosis, explainEpt } from './explain.ts';
import { EPT_QUAL } from './qualification.ts';
import { enterGuestMappings, invalidateEptMappings, leaveGuestMappings, NO_EPT, switchGuestMappings } from '../vpid.ts';
import { eptTranslate, type EptTranslateInput, type EptWalkEntry } from './walk.ts';

/**
 * A cached guest-physical mapping: one 4-KByte guest-physical page (a piece of a larger EPT page) → host-physical,
 * with the permissions of the translation (the AND over the EPT entries used) and, with EPT accessed/dirty flags,
 * whether the leaf's dirty flag was set. See SDM Vol. 3C, "Information That May Be Cached When Using EPT".
 */
interface GuestPhysicalMapping {
  readonly hpa: number;
  /** Bit 0 R, bit 1 W, bit 2 X, bit 3 XU (mode-based execute control). */
  readonly rwx: number;
  readonly dirty: boolean;
  /** The leaf's memory type | "ignore PAT" << 3, as GpaAccessInfo.memoryType reports it (device pages use it). */
  readonly memoryType: number;
}
const M_READ = 1, M_WRITE = 2, M_EXEC = 4, M_USER_EXEC = 8;
/** A bound on the cache per EP4TA: dropping mappings is always allowed, keeping them is only allowed. */
const MAX_MAPPINGS = 1 << 16;

/** What one LP caches derived from EPT alone: guest-physical mappings by EP4TA (combined mappings: ../vpid.ts). */
class EptCaches {
  readonly byEp4ta = new Map<number, Map<number, GuestPhysicalMapping>>();

  mappings(ep4ta: number): Map<number, GuestPhysicalMapping> {
    let m = this.byEp4ta.get(ep4ta);
    if (m === undefined) this.byEp4ta.set(ep4ta, (m = new Map()));
    return m;
  }
}

const CACHES = new WeakMap<LogicalProcessor, EptCaches>();
function cachesOf(lp: LogicalProcessor): EptCaches {
  let c = CACHES.get(lp);
  if (c === undefined) CACHES.set(lp, (c = new EptCaches()));
  return c;
}

/** The EPT PML4 table address (bits 51:12 of the EPTP): the tag of guest-physical mappings. */
const ep4taOf = (eptp: bigint): number => Number((eptp & ((1n << 52n) - 1n)) >> 12n);

/**
 * The end of VM entry, after guest state and MSRs are loaded (before an injected event is delivered, which already
 * uses guest memory), and EPTP switching (`how`): with "activate secondary controls" and "enable EPT", install the
 * translation for the EPTP in the VMCS (VM entry has checked it). The guest's linear or combined mappings get the TLB
 * context of (VPID, EP4TA) (../vpid.ts). See SDM Vol. 3C, "VM-Execution Control Fields" and "VMX Transitions" (in
 * "Caching Translation Information").
 */
export function attachEpt(ctx: NonRootContext, how: 'vm-entry' | 'eptp-switch' = 'vm-entry'): void {
  const lp = ctx.lp;
  const proc2 = secondaryControls(ctx);
  const vpid = (proc2 & C.SECONDARY_EXEC_ENABLE_VPID) !== 0 ? ctx.read32('VIRTUAL_PROCESSOR_ID') & 0xffff : 0;
  if ((proc2 & C.SECONDARY_EXEC_ENABLE_EPT) === 0) {
    lp.gpaTranslate = null;
    enterGuestMappings(lp, vpid, NO_EPT);
    return;
  }
  const eptp = ctx.read64('EPT_POINTER');
  const ep4ta = ep4taOf(eptp);
  if (how === 'vm-entry') enterGuestMappings(lp, vpid, ep4ta);
  else switchGuestMappings(lp, vpid, ep4ta);
  lp.gpaTranslate = translator(ctx, eptp, (proc2 & C.SECONDARY_EXEC_MODE_BASED_EPT_EXEC) !== 0, cachesOf(lp).mappings(ep4ta));
}

/** The start of every VM exit: guest-physical addresses no longer exist; the TLB is back in the root context. */
export function detachEpt(lp: LogicalProcessor): void {
  lp.gpaTranslate = null;
  leaveGuestMappings(lp);
}

/**
 * INVEPT: single-context (`eptp`) drops the guest-physical mappings of that EP4TA and the combined mappings made with
 * it (every VPID), all-context (null) those of every EP4TA. MOV to CR3 does not come here: it invalidates combined
 * mappings only. See SDM Vol. 3C, "INVEPT—Invalidate Translations Derived from EPT" and "Operations that Invalidate
 * Cached Mappings".
 */
export function invalidateEpt(lp: LogicalProcessor, eptp: bigint | null): void {
  const caches = cachesOf(lp);
  if (eptp === null) caches.byEp4ta.clear();
  else caches.byEp4ta.delete(ep4taOf(eptp));
  invalidateEptMappings(lp, eptp === null ? null : ep4taOf(eptp));
}

/** The guest-physical translation `lp.gpaTranslate` runs while the guest is in VMX non-root operation. */
function translator(ctx: NonRootContext, eptp: bigint, mbec: boolean, cache: Map<number, GuestPhysicalMapping>) {
  const lp = ctx.lp;
  const ad = (eptp & EPTP.ACCESSED_DIRTY) !== 0n;
  const readPhys64 = (hpa: bigint): bigint => lp.memory.read64(Number(hpa));
  const writePhys64 = (hpa: bigint, value: bigint): void => lp.memory.write64(Number(hpa), value);

  return (gpa: number, access: Access, info: GpaAccessInfo): number => {
    const offset = gpa % 4096;
    const page = (gpa - offset) / 4096;
    const paging = info.pagingStructure;
    // A guest A/D-flag update is a locked read-modify-write: a read and a write ("whether it also sets bit 0 is
    // implementation-specific"; this processor sets it). With EPT A/D flags every paging-structure access counts as
    // a write (walk.ts adds that). See SDM Vol. 3C, "Exit Qualification for EPT Violations".
    const read = access === ACCESS_READ || (paging && access === ACCESS_WRITE);
    const write = access === ACCESS_WRITE;
    const execute = access === ACCESS_EXEC;
    const needsDirty = write || (ad && paging);

    const hit = cache.get(page);
    if (hit !== undefined && allows(hit, read, needsDirty, execute, mbec && info.user)) {
      info.perm = tlbPermissions(hit, mbec && info.user);
      info.memoryType = hit.memoryType;
      return hit.hpa + offset;
    }

    const gla = lp.bits === 64 ? BigInt.asUintN(64, BigInt(info.linear)) : BigInt(info.linear >>> 0);
    const input: EptTranslateInput = {
      eptp, gpa: BigInt(gpa), access: { read, write, execute, user: info.user }, caps: ctx.caps,
      maxPhysAddr: lp.maxPhysAddr, mbec, readPhys64, writePhys64,
      guestLinear: paging
        ? { address: gla, isPagingStructureAccess: true }
        : { address: gla, isPagingStructureAccess: false, attributes: { user: info.user, readWrite: info.readWrite, executeDisable: info.executeDisable } },
    };
    const r = eptTranslate(input);
    if (r.kind === 'ok') {
      const leaf = r.entries[r.entries.length - 1]!;
      const mapping: GuestPhysicalMapping = {
        hpa: Number(r.hpa) - offset,
        rwx: permissionsOf(r.entries),
        dirty: !ad || needsDirty || bitOf(leaf.value, EPT_BIT.DIRTY),
        memoryType: r.memoryType | (r.ignorePat ? 8 : 0),
      };
      if (cache.size >= MAX_MAPPINGS) cache.clear();
      cache.set(page, mapping);
      info.perm = tlbPermissions(mapping, mbec && info.user);
      info.memoryType = mapping.memoryType;
      return mapping.hpa + offset;
    }

    // A VM exit, performed where the interpreter delivers faults (fault-like: GUEST_RIP is the instruction's; the
    // instruction length is undefined, except during delivery of a software interrupt or exception).
    const gpaField = BigInt(gpa);
    const diagnosis = explainEpt(input, r)!;
    const cause: VmExitCause = r.kind === 'violation'
      // "Guest-linear address": valid (qualification bit 7) for every violation the walker reports. "Guest-physical
      // address": the address of the access, offset included. See SDM Vol. 3C, "Basic VM-Exit Information".
      ? { reason: EXIT_REASON.EXIT_REASON_EPT_VIOLATION, qualification: r.qualification, guestLinearAddress: gla, guestPhysicalAddress: gpaField }
      // A misconfiguration has no exit qualification (the field is cleared) and no guest-linear address.
      : { reason: EXIT_REASON.EXIT_REASON_EPT_MISCONFIG, guestPhysicalAddress: gpaField };
    throw new PendingVmExit(diagnosis.message, diagnosis.sdm, (during, nmiUnblockedByIret) => {
      recordDiagnosis(ctx.state, asDiagnosis(diagnosis, 'guest memory access (EPT)'));
      ctx.exit({ ...cause, ...duringDelivery(ctx, cause, during, nmiUnblockedByIret) });
    });
  };
}

/** Can a cached mapping serve this access? Otherwise the walk decides (it may find the entries changed). */
function allows(m: GuestPhysicalMapping, read: boolean, write: boolean, execute: boolean, userExec: boolean): boolean {
  if (read && (m.rwx & M_READ) === 0) return false;
  if (write && ((m.rwx & M_WRITE) === 0 || !m.dirty)) return false;
  if (execute && (m.rwx & (userExec ? M_USER_EXEC : M_EXEC)) === 0) return false;
  return true;
}

/**
 * The TLB permission bits a guest-physical mapping allows (the walker ANDs them with guest paging's). Writes only
 * once the dirty flag is set, so that the first write walks EPT and sets it. See SDM Vol. 3C, "Accessed and Dirty
 * Flags for EPT".
 */
function tlbPermissions(m: GuestPhysicalMapping, userExec: boolean): number {
  let p = 0;
  if (m.rwx & M_READ) p |= PERM_READ_S | PERM_READ_U;
  if (m.rwx & M_WRITE && m.dirty) p |= PERM_WRITE_S | PERM_WRITE_U;
  if (m.rwx & (userExec ? M_USER_EXEC : M_EXEC)) p |= PERM_EXEC_S | PERM_EXEC_U;
  return p;
}

/** The AND of R, W, X and XU over the entries of a successful walk. */
function permissionsOf(entries: readonly EptWalkEntry[]): number {
  let all = M_READ | M_WRITE | M_EXEC | M_USER_EXEC;
  for (const e of entries) {
    if (!bitOf(e.value, EPT_BIT.READ)) all &= ~M_READ;
    if (!bitOf(e.value, EPT_BIT.WRITE)) all &= ~M_WRITE;
    if (!bitOf(e.value, EPT_BIT.EXECUTE)) all &= ~M_EXEC;
    if (!bitOf(e.value, EPT_BIT.USER_EXECUTE)) all &= ~M_USER_EXEC;
  }
  return all;
}

const isSoftware = (type: number): boolean =>
  type === INTR_TYPE.SOFTWARE_INTERRUPT || type === INTR_TYPE.PRIVILEGED_SOFTWARE_EXCEPTION || type === INTR_TYPE.SOFTWARE_EXCEPTION;

/**
 * The exit fields that depend on when the access happened: during event delivery, the IDT-vectoring information
 * (and, for a software interrupt or exception, its instruction length); otherwise, for a violation by an IRET that
 * unblocked NMIs, qualification bit 12 — undefined (written 0) with "NMI exiting" = 1 and "virtual NMIs" = 0. See
 * SDM Vol. 3C, "Information for VM Exits During Event Delivery" and "Exit Qualification for EPT Violations".
 */
function duringDelivery(ctx: NonRootContext, cause: VmExitCause, during: EventInDelivery | null, nmiUnblockedByIret: boolean): Partial<VmExitCause> {
  if (during !== null) return { ...idtVectoring(during), ...(isSoftware(during.type) ? { instructionLength: during.length } : {}) };
  if (!nmiUnblockedByIret || cause.reason !== EXIT_REASON.EXIT_REASON_EPT_VIOLATION) return {};
  const pin = ctx.read32('PIN_BASED_VM_EXEC_CONTROL');
  if ((pin & C.PIN_BASED_NMI_EXITING) !== 0 && (pin & C.PIN_BASED_VIRTUAL_NMIS) === 0) return {};
  return { qualification: (cause.qualification ?? 0n) | (1n << BigInt(EPT_QUAL.NMI_UNBLOCKING)) };
}

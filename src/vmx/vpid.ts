// VPIDs in the CPU: which TLB context (src/machine/tlb.ts) tags the linear and combined mappings the LP caches,
// what VM entries and VM exits invalidate, and what INVVPID and INVEPT drop.
//
// A context is one (VPID, EP4TA) pair: linear mappings (EPT off) have no EP4TA, combined mappings (EPT on) carry the
// EP4TA of the EPTP they were made with. VMX root operation and a guest without "enable VPID" are VPID 0000H, so a
// guest without VPID and without EPT shares context 0 with the host. With "enable VPID" = 1, VM entries and VM exits
// invalidate nothing: the guest's entries wait, tagged, for its next VM entry and the host's for the next VM exit,
// and only INVVPID (or INVEPT, for combined mappings) makes a changed guest PTE visible. With "enable VPID" = 0,
// every VM entry and VM exit invalidates the mappings of VPID 0000H (for all EP4TAs). The contexts of one VPID are
// a TLB group: the guest's own MOV CR3, INVLPG, … invalidate its VPID for every EP4TA, never another VPID. See SDM
// Vol. 3C, "Virtual-Processor Identifiers (VPIDs)", "VMX Transitions" (in "Caching Translation Information"),
// "Operations that Invalidate Cached Mappings" and "INVVPID—Invalidate Translations Based on VPID".
import type { LogicalProcessor } from '../machine/lp.ts';
import { pagingModeKey, type Tlb } from '../machine/tlb.ts';

/** The EP4TA of linear mappings (made with EPT off). */
export const NO_EPT = -1;
/** VPID 0000H without EPT: VMX root operation. */
const ROOT_CONTEXT = 0;

/** One LP's contexts: which (VPID, EP4TA) each TLB context number stands for. */
class TlbTags {
  readonly vpidOf: number[] = [0];
  readonly ep4taOf: number[] = [NO_EPT];
  private readonly byVpid = new Map<number, Map<number, number>>([[0, new Map([[NO_EPT, ROOT_CONTEXT]])]]);
  /** The VPID of the context the current VM exit left. */
  exitedVpid = 0;

  constructor(private readonly tlb: Tlb) {
    tlb.setGroup(ROOT_CONTEXT, 0);
  }

  context(vpid: number, ep4ta: number): number {
    let m = this.byVpid.get(vpid);
    if (m === undefined) this.byVpid.set(vpid, (m = new Map()));
    let c = m.get(ep4ta);
    if (c === undefined) {
      c = this.vpidOf.length;
      this.vpidOf.push(vpid);
      this.ep4taOf.push(ep4ta);
      m.set(ep4ta, c);
      // The contexts of one VPID are one TLB group: MOV CR3, INVLPG and the like invalidate the current VPID's
      // linear and combined mappings for every EP4TA. See SDM Vol. 3C, "Operations that Invalidate Cached Mappings".
      this.tlb.setGroup(c, vpid);
    }
    return c;
  }
}

const TAGS = new WeakMap<LogicalProcessor, TlbTags>();
/** The last LP asked about: every VM transition asks up to three times, and a WeakMap lookup shows in profiles. */
let lastLp: LogicalProcessor | null = null;
let lastTags: TlbTags | null = null;
function tagsOf(lp: LogicalProcessor): TlbTags {
  if (lp === lastLp) return lastTags!;
  let t = TAGS.get(lp);
  if (t === undefined) TAGS.set(lp, (t = new TlbTags(lp.tlb)));
  lastLp = lp;
  lastTags = t;
  return t;
}

const modeOf = (lp: LogicalProcessor): number => pagingModeKey(lp.cr0, lp.cr4, lp.efer);

/** The start of VM entry, before guest state is loaded: the host's entries were made under the host's paging mode. */
export function noteHostMappings(lp: LogicalProcessor): void {
  lp.tlb.noteMode(modeOf(lp));
}

/**
 * The end of a successful VM entry (guest state loaded, before an injected event is delivered): tag the guest's
 * accesses with its VPID (0 without "enable VPID") and EP4TA (NO_EPT without "enable EPT"). Without VPID, the
 * mappings of VPID 0000H are invalidated — for every EP4TA. See SDM Vol. 3C, "VMX Transitions".
 */
export function enterGuestMappings(lp: LogicalProcessor, vpid: number, ep4ta: number): void {
  const tags = tagsOf(lp);
  lp.tlb.setContext(tags.context(vpid, ep4ta));
  // Entries the guest made under another paging mode (the VMCS's CR0/CR4/EFER changed) have stale permissions.
  lp.tlb.checkMode(modeOf(lp));
  if (vpid === 0) lp.tlb.flushAll(); // the group of VPID 0000H: every EP4TA, and the host's linear mappings
}

/**
 * EPTP switching (VMFUNC 0) in VMX non-root operation: the guest's accesses now make combined mappings for the new
 * EP4TA; those of the old one stay (tagged with it). No invalidation: this is not a VM transition. See SDM Vol. 3C,
 * "EPTP Switching".
 */
export function switchGuestMappings(lp: LogicalProcessor, vpid: number, ep4ta: number): void {
  lp.tlb.noteMode(modeOf(lp));
  lp.tlb.setContext(tagsOf(lp).context(vpid, ep4ta));
  lp.tlb.checkMode(modeOf(lp));
}

/** The start of a VM exit, before guest state is saved: back to the host's context (the guest's entries stay). */
export function leaveGuestMappings(lp: LogicalProcessor): void {
  const tags = tagsOf(lp);
  lp.tlb.noteMode(modeOf(lp));
  tags.exitedVpid = tags.vpidOf[lp.tlb.getContext()]!;
  lp.tlb.setContext(ROOT_CONTEXT);
}

/**
 * The end of a VM exit, host state loaded: the host's own entries are valid again — unless the guest ran without
 * VPID (then the VM exit invalidates VPID 0000H, which is the host's) or the host's paging mode differs from the
 * one its entries were made under. See SDM Vol. 3C, "VMX Transitions".
 */
export function resumeHostMappings(lp: LogicalProcessor): void {
  lp.tlb.checkMode(modeOf(lp));
  if (tagsOf(lp).exitedVpid === 0) lp.tlb.flushAll(); // VPID 0000H, every EP4TA
}

/**
 * A VM-entry failure during or after loading guest state (host state is loaded as by a VM exit): the host's context
 * held guest CR0/CR3/CR4 for a moment; invalidate it (always allowed). See SDM Vol. 3C, "VM-Entry Failures During or
 * After Loading Guest State".
 */
export function afterFailedVmEntry(lp: LogicalProcessor): void {
  lp.tlb.flushAll();
  lp.tlb.noteMode(modeOf(lp));
}

/**
 * INVVPID: invalidate the linear and combined mappings (any EP4TA) of `vpid`, or of every VPID but 0000H (`vpid`
 * null); only those for the page of `linear` if it is non-null. "Retaining global translations" needs no case: this
 * TLB keeps no global entries across MOV to CR3 either, and invalidating more than asked is allowed. See SDM Vol. 3C,
 * "INVVPID—Invalidate Translations Based on VPID".
 */
export function invalidateVpidMappings(lp: LogicalProcessor, vpid: number | null, linear: bigint | null): void {
  const tags = tagsOf(lp);
  const vpn = linear === null ? 0 : Math.floor(Number(BigInt.asIntN(64, linear)) / 4096);
  for (let c = 0; c < tags.vpidOf.length; c++) {
    const v = tags.vpidOf[c]!;
    if (vpid === null ? v === 0 : v !== vpid) continue;
    if (linear === null) lp.tlb.flushContext(c);
    else lp.tlb.flushPageInContext(c, vpn);
  }
}

/**
 * INVEPT: invalidate the combined mappings made with EP4TA `ep4ta`, or with any EP4TA (`ep4ta` null), for every
 * VPID; linear mappings (EPT off) are not derived from EPT and stay. See SDM Vol. 3C, "INVEPT—Invalidate
 * Translations Derived from EPT".
 */
export function invalidateEptMappings(lp: LogicalProcessor, ep4ta: number | null): void {
  const tags = tagsOf(lp);
  for (let c = 0; c < tags.ep4taOf.length; c++) {
    const e = tags.ep4taOf[c]!;
    if (e !== NO_EPT && (ep4ta === null || e === ep4ta)) lp.tlb.flushContext(c);
  }
}

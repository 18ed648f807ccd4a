// Loading MSRs from the VM-entry MSR-load area, the last step of VM entry. Each 16-byte entry is checked and
// written in order; the first bad entry ends VM entry with exit reason 34 and its 1-based position as the exit
// qualification. Entries before it stay loaded. See SDM Vol. 3C, "Loading MSRs".
import type { MsrLoadCheck, CheckResult, CheckFailure } from './rule.ts';
import { fail } from './rule.ts';
import { hex } from '../../util/hex.ts';
import type { EntryView } from './view.ts';
import { isFsGsBaseMsr, isX2apicMsr, readMsrAreaEntry, type MsrAreaEntry } from '../transition/msr-area.ts';
import { MSR_IA32_SMM_MONITOR_CTL } from '../../x86/msr.ts';

const SECTION = 'Loading MSRs';
const OUTCOME = { kind: 'exit', reason: 34, qualification: 'entry-index' } as const;

function msrCheck(id: string, check: (v: EntryView, e: MsrAreaEntry) => CheckResult, explain: string): MsrLoadCheck {
  return { id, group: 'msr-load', section: SECTION, fields: ['VM_ENTRY_MSR_LOAD_COUNT', 'VM_ENTRY_MSR_LOAD_ADDR'], outcome: OUTCOME, checkEntry: check, explain };
}

const where = (e: MsrAreaEntry): string => `VM-entry MSR-load entry ${e.position} (MSR ${hex(e.index)})`;

export const MSR_LOAD_CHECKS: readonly MsrLoadCheck[] = [
  msrCheck('msr-load-entry-reserved', (_v, e) =>
    e.reserved === 0 || fail('VM_ENTRY_MSR_LOAD_ADDR', e.reserved, 'bits 63:32 clear', `${where(e)}: bits 63:32 of the entry are reserved`),
  'Bits 63:32 of each MSR-load entry are reserved and must be 0.'),
  msrCheck('msr-load-fs-gs-base', (_v, e) =>
    !isFsGsBaseMsr(e.index) || fail('VM_ENTRY_MSR_LOAD_ADDR', e.index, 'not C0000100H/C0000101H', `${where(e)}: FS/GS base come from the guest-state area, not the MSR-load area`),
  'The MSR-load area cannot load IA32_FS_BASE or IA32_GS_BASE; use GUEST_FS_BASE/GUEST_GS_BASE.'),
  msrCheck('msr-load-x2apic', (_v, e) =>
    !isX2apicMsr(e.index) || fail('VM_ENTRY_MSR_LOAD_ADDR', e.index, 'not 800H–8FFH', `${where(e)}: x2APIC MSRs cannot be loaded on VM entry`),
  'The MSR-load area cannot load x2APIC MSRs (indices 800H–8FFH).'),
  msrCheck('msr-load-smm-only', (_v, e) =>
    e.index !== MSR_IA32_SMM_MONITOR_CTL || fail('VM_ENTRY_MSR_LOAD_ADDR', e.index, 'not 9BH', `${where(e)}: IA32_SMM_MONITOR_CTL is writable only in SMM`),
  'The MSR-load area cannot load IA32_SMM_MONITOR_CTL (9BH) outside SMM.'),
  msrCheck('msr-load-wrmsr', (v, e) =>
    // The write itself: it fails exactly when WRMSR of this value would raise #GP.
    v.writeMsr(e.index, e.value) || fail('VM_ENTRY_MSR_LOAD_ADDR', e.value, `a value WRMSR accepts for MSR ${hex(e.index)}`, `${where(e)}: WRMSR of ${hex(e.value)} would raise #GP`),
  'Each entry is loaded as if by WRMSR at CPL 0; a value (or an MSR) that would make WRMSR raise #GP fails VM entry.'),
];

/**
 * An MSR list longer than the recommended maximum (512 × (IA32_VMX_MISC[27:25] + 1) entries) is undefined
 * behaviour that "may result in a machine check". This CPU takes that machine check: a VM-entry failure with exit
 * reason 41. (It also keeps a learner's count of 0xFFFFFFFF from looping for minutes.)
 * See SDM Vol. 3C, "VM-Entry Controls for MSRs" and "Machine-Check Events During VM Entry".
 */
export const MSR_LIST_TOO_LONG_RULE = 'msr-list-exceeds-recommended-maximum';

/** Process the VM-entry MSR-load area; returns the first failure (rule and entry), or null when all loaded. */
export function loadEntryMsrs(v: EntryView): { check: MsrLoadCheck; entry: MsrAreaEntry; failure: CheckFailure } | 'machine-check' | null {
  const count = v.u32('VM_ENTRY_MSR_LOAD_COUNT');
  const base = v.u64('VM_ENTRY_MSR_LOAD_ADDR');
  if (count > v.caps.misc.maxMsrListEntries) return 'machine-check';
  for (let i = 0; i < count; i++) {
    const entry = readMsrAreaEntry(v.ctx.cpu, base, i);
    for (const check of MSR_LOAD_CHECKS) {
      const r = check.checkEntry(v, entry);
      if (r !== true) {
        const failure = r === false ? fail('VM_ENTRY_MSR_LOAD_ADDR', entry.index, check.explain, `${where(entry)}: ${check.explain}`) : r;
        return { check, entry, failure };
      }
    }
  }
  return null;
}

// The catalogue of VM-entry checks for the reference site and the closing note: the implemented rules grouped by
// SDM section (in the order VM entry runs them), and the SDM checks this CPU deliberately does not implement,
// each with the reason.
import { ENTRY_CHECKS } from './index.ts';
import type { EntryCheck, EntryCheckGroup } from './rule.ts';

export interface EntryCheckSection {
  readonly group: EntryCheckGroup;
  /** SDM Vol. 3C section title. */
  readonly section: string;
  readonly checks: readonly EntryCheck[];
}

/** Implemented checks by SDM section, in run order. */
export function entryChecksBySection(): EntryCheckSection[] {
  const out: { group: EntryCheckGroup; section: string; checks: EntryCheck[] }[] = [];
  for (const c of ENTRY_CHECKS) {
    let s = out.find((x) => x.section === c.section);
    if (!s) out.push((s = { group: c.group, section: c.section, checks: [] }));
    s.checks.push(c);
  }
  return out;
}

export interface OmittedEntryCheck {
  /** SDM Vol. 3C section title the check belongs to. */
  readonly section: string;
  readonly check: string;
  readonly reason: string;
}

/** SDM checks not implemented, and why. */
export const OMITTED_ENTRY_CHECKS: readonly OmittedEntryCheck[] = [
  { section: 'Checks on VM-Execution Control Fields', check: 'EPT-violation #VE: virtualization-exception information address', reason: 'the field is not modelled, so every model reports "EPT-violation #VE" allowed-0 (src/vmx/emulated-msrs.ts) and the allowed-1 check rejects it' },
  { section: 'Checks on VM-Execution Control Fields', check: 'Sub-page write permissions (SPPTP), PASID translation, HLAT, IPI virtualization (PID-pointer table), instruction timeout, ENCLV', reason: 'features not modelled: the controls whose fields are not modelled are reported allowed-0 (src/vmx/emulated-msrs.ts), the others stay 0 on every supplied model; the allowed-1 check rejects them' },
  { section: 'Checks on VM-Exit Control Fields', check: 'Secondary VM-exit controls (activate secondary VM-exit controls)', reason: 'the field is not modelled, so every model reports "activate secondary controls" (VM-exit bit 31) allowed-0 (src/vmx/emulated-msrs.ts)' },
  { section: 'Checks on VM-Entry Control Fields', check: 'Checks that apply only in SMM (entry to SMM, deactivate dual-monitor treatment, executive-VMCS pointer)', reason: 'the emulated processor never runs in SMM; the "smm-controls-outside-smm" rule rejects both controls' },
  { section: 'Checks on Host Control Registers, MSRs, and SSP', check: 'IA32_PERF_GLOBAL_CTRL (load on exit)', reason: 'reserved bits depend on the PMU (CPUID leaf 0AH), which is not modelled' },
  { section: 'Checks on Host Control Registers, MSRs, and SSP', check: 'CET state (S_CET, SSP, interrupt SSP table address), PKRS, FRED', reason: 'CET, PKS and FRED are not modelled: their controls are reported allowed-0 (src/vmx/emulated-msrs.ts)' },
  { section: 'Checks on Guest Control Registers, Debug Registers, and MSRs', check: 'IA32_PERF_GLOBAL_CTRL, IA32_RTIT_CTL, CET state, PKRS, IA32_LBR_CTL, UINV', reason: 'the corresponding features are not modelled' },
  { section: 'Checks on Guest Non-Register State', check: 'Activity state not wait-for-SIPI and blocking by SMI set when "entry to SMM" is 1', reason: 'unreachable: "entry to SMM" is rejected by an earlier control check' },
  { section: 'Checks on Guest Non-Register State', check: 'RTM-related pending debug exception (bit 16) beyond "the CPU must support RTM"', reason: 'RTM is not modelled, so any set bit 16 fails "guest-pending-dbg-rtm"' },
  { section: 'Checks on Guest Non-Register State', check: 'VMCS link pointer checks in SMM (executive VMCS)', reason: 'the processor never runs in SMM' },
  { section: 'Loading MSRs', check: 'MSRs that cannot be loaded "for model-specific reasons"', reason: 'no model documents such MSRs beyond those with explicit rules; any MSR the LP refuses with #GP fails "msr-load-wrmsr"' },
];

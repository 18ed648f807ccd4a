import { describe, expect, it } from 'vitest';
import { ENTRY_CHECKS } from './index.ts';
import { entryChecksBySection, OMITTED_ENTRY_CHECKS } from './catalogue.ts';

describe('entry-check catalogue', () => {
  it('groups every check once, sections in SDM run order', () => {
    const sections = entryChecksBySection();
    expect(sections.flatMap((s) => s.checks).map((c) => c.id)).toEqual(ENTRY_CHECKS.map((c) => c.id));
    const order = ['controls', 'host-state', 'guest-state', 'msr-load'];
    const groups = sections.map((s) => order.indexOf(s.group));
    expect([...groups].sort((a, b) => a - b)).toEqual(groups);
    expect(sections.map((s) => s.section)).toEqual([
      'Checks on VM-Execution Control Fields', 'Checks on VM-Exit Control Fields', 'Checks on VM-Entry Control Fields',
      'Checks on Host Control Registers, MSRs, and SSP', 'Checks on Host Segment and Descriptor-Table Registers',
      'Checks Related to Address-Space Size', 'Checks on Guest Control Registers, Debug Registers, and MSRs',
      'Checks on Guest Segment Registers', 'Checks on Guest Descriptor-Table Registers', 'Checks on Guest RIP, RFLAGS, and SSP',
      'Checks on Guest Non-Register State', 'Checks on Guest Page-Directory-Pointer-Table Entries', 'Loading MSRs',
    ]);
  });
  it('every omission names a section and a reason', () => {
    for (const o of OMITTED_ENTRY_CHECKS) {
      expect(o.section.length).toBeGreaterThan(0);
      expect(o.reason.length).toBeGreaterThan(10);
    }
  });
});

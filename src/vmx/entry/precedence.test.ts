// SDM precedence between groups of VM-entry checks: with several rules broken at once, the VMX-control checks
// win (VMfailValid 7), then the host-state checks (VMfailValid 8), then the guest-state checks (exit 33), then
// MSR loading (exit 34). See SDM Vol. 3C, "VM Entries" (the order of "Checks on VMX Controls and Host-State
// Area", "Checking and Loading Guest State" and "Loading MSRs").
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { CPU_MODELS } from '../../machine/cpu-model.ts';
import { ENTRY_CHECKS, vmEntry } from './index.ts';
import { buildValidVmcs, vmcsChoices, writeMsrEntry } from '../testing/vmcs-fixture.ts';
import { M, rnd } from '../testing/entry-mutations.ts';

const ids = (group: string): string[] => ENTRY_CHECKS.filter((c) => c.group === group && M[c.id]).map((c) => c.id);
const groupOf = new Map(ENTRY_CHECKS.map((c) => [c.id, c.group]));
const CONTROLS = ids('controls');
const HOST = ids('host-state');
const GUEST = ids('guest-state');

describe('precedence between check groups', () => {
  it('controls before host state before guest state before MSR loading', () => {
    fc.assert(fc.property(
      fc.constantFrom(...CPU_MODELS.map((m) => m.name)), vmcsChoices(),
      fc.option(fc.constantFrom(...CONTROLS)), fc.option(fc.constantFrom(...HOST)), fc.constantFrom(...GUEST),
      rnd, rnd, rnd, fc.boolean(),
      (name, c, control, host, guest, r1, r2, r3, badMsr) => {
        const f = buildValidVmcs(CPU_MODELS.find((m) => m.name === name)!, { ...c, msrLoadCount: 0 });
        // Apply the guest breakage first and the control breakage last, so each keeps its own fields.
        // A bad MSR-load entry first: mutations that own the MSR-load fields override it.
        if (badMsr) {
          writeMsrEntry(f.cpu, f.page(6), 0, 0x808, 0, 0n);
          f.set('VM_ENTRY_MSR_LOAD_COUNT', 1);
        }
        const applied: string[] = [];
        // A mutation that turns out not to apply on this model is rolled back (it may have changed fields first).
        const apply = (id: string, r: typeof r1): void => {
          const data = f.active.data.slice();
          const msrs = new Map(f.cpu.msrs);
          if (M[id]!(f, r)) applied.push(id);
          else { f.active.data.set(data); f.cpu.msrs = msrs; }
        };
        apply(guest, r3);
        if (host !== null) apply(host, r2);
        if (control !== null) apply(control, r1);
        fc.pre(applied.length > 0);
        const groups = applied.map((id) => groupOf.get(id));
        const out = vmEntry(f.ctx);
        if (groups.includes('controls')) {
          expect(out.kind === 'VMfailValid' && out.error).toBe(7);
        } else if (groups.includes('host-state')) {
          expect(out.kind === 'VMfailValid' && out.error).toBe(8);
        } else {
          expect(out.kind === 'entry-failure-exit' && out.reason).toBe(33);
        }
        if (out.kind !== 'entered') {
          const top = groups.includes('controls') ? 'controls' : groups.includes('host-state') ? 'host-state' : 'guest-state';
          expect(groupOf.get(out.diagnosis.rule), `${applied.join(' + ')} → ${out.diagnosis.rule}`).toBe(top);
        }
      }), { seed: 41, numRuns: 400 });
  });

  it('a bad MSR-load entry is reported only when all state checks pass', () => {
    const f = buildValidVmcs(CPU_MODELS[0]!, { ...fc.sample(vmcsChoices(), { seed: 2, numRuns: 1 })[0]!, msrLoadCount: 0 });
    writeMsrEntry(f.cpu, f.page(6), 0, 0x808, 0, 0n);
    f.set('VM_ENTRY_MSR_LOAD_COUNT', 1);
    const out = vmEntry(f.ctx);
    expect(out.kind === 'entry-failure-exit' && [out.reason, out.qualification]).toEqual([34, 1]);
  });
});

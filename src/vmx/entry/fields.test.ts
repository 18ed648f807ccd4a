// The `fields` of each rule are data the site and the diagnosis rely on: check that a rule's predicate reads no
// VMCS field it does not declare, over valid VMCSs and over every rule's violating mutation.
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { CPU_MODELS } from '../../machine/cpu-model.ts';
import { STATE_CHECKS } from './index.ts';
import { EntryView } from './view.ts';
import type { EntryContext } from './context.ts';
import type { VmcsFullFieldName } from '../fields.ts';
import { buildValidVmcs, vmcsChoices } from '../testing/vmcs-fixture.ts';
import { M, rnd } from '../testing/entry-mutations.ts';

/** Decoded controls and derived facts of EntryView, and the VMCS fields they come from. */
const DERIVED: Record<string, readonly VmcsFullFieldName[]> = {
  pin: ['PIN_BASED_VM_EXEC_CONTROL'],
  proc: ['CPU_BASED_VM_EXEC_CONTROL'],
  proc2: ['SECONDARY_VM_EXEC_CONTROL'],
  exitCtls: ['VM_EXIT_CONTROLS'],
  entryCtls: ['VM_ENTRY_CONTROLS'],
  ia32eModeGuest: ['VM_ENTRY_CONTROLS'],
  hostAddressSpaceSize: ['VM_EXIT_CONTROLS'],
  unrestrictedGuest: ['SECONDARY_VM_EXEC_CONTROL'],
  v8086: ['GUEST_RFLAGS'],
};

describe('declared fields', () => {
  it('each state check reads only the VMCS fields it declares (directly or through the view\'s decoded controls)', () => {
    const undeclared = new Map<string, Set<VmcsFullFieldName>>();
    const samples = fc.sample(fc.tuple(fc.constantFrom(...CPU_MODELS), vmcsChoices(), rnd, fc.constantFrom(...Object.keys(M))), { seed: 51, numRuns: 400 });
    for (const [model, c, r, mutation] of samples) {
      const f = buildValidVmcs(model, c);
      M[mutation]!(f, r);
      for (const check of STATE_CHECKS) {
        const reads = new Set<VmcsFullFieldName>();
        const ctx: EntryContext = { ...f.ctx, vmcs: { read: (n) => (reads.add(n), f.vmcs.read(n)), write: f.vmcs.write } };
        const view = new EntryView(ctx);
        reads.clear(); // the view's constructor reads the control fields and RFLAGS for every rule
        // The view's decoded controls and derived facts count as reads of the fields they come from.
        const v = new Proxy(view, {
          get(target, prop, receiver) {
            for (const n of DERIVED[prop as string] ?? []) reads.add(n);
            return Reflect.get(target, prop, receiver) as unknown;
          },
        });
        check.check(v);
        for (const n of reads) {
          if (!check.fields.includes(n)) {
            if (!undeclared.has(check.id)) undeclared.set(check.id, new Set());
            undeclared.get(check.id)!.add(n);
          }
        }
      }
    }
    expect(Object.fromEntries([...undeclared].map(([k, v]) => [k, [...v]]))).toEqual({});
  });
});

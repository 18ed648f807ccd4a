// VMRESUME re-runs only the VM-entry checks whose inputs changed (./incremental.ts). The outcome must be the one a
// full run of every check gives — the same first failing check, hence the same error number or exit reason and
// qualification and the same diagnosis — whatever happened to the VMCS in between: VMWRITEs that break a rule
// (the per-rule mutations of rules.test.ts), random values in random fields, writes of a field's own value, and
// changes of the cached VMCS that are not VMWRITEs (a VM exit saving guest state writes the cache directly).
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { CPU_MODELS } from '../../machine/cpu-model.ts';
import { STATE_CHECKS } from './index.ts';
import { EntryView } from './view.ts';
import { ReadRecorder, firstFailingCheck, type FirstFailure } from './incremental.ts';
import type { StateCheck } from './rule.ts';
import { buildValidVmcs, vmcsChoices, type Fixture } from '../testing/vmcs-fixture.ts';
import { M, rnd, type Rnd } from '../testing/entry-mutations.ts';
import { SLOT, VMCS_SLOT_COUNT } from '../vmcs.ts';

const U64 = (1n << 64n) - 1n;
const MUTATIONS = Object.keys(M);

type Step =
  | { readonly kind: 'break'; readonly rule: string; readonly r: Rnd }
  | { readonly kind: 'vmwrite'; readonly slot: number; readonly value: bigint }
  | { readonly kind: 'same'; readonly slot: number }
  | { readonly kind: 'resume-valid'; readonly direct: boolean };

const step: fc.Arbitrary<Step> = fc.oneof(
  { weight: 3, arbitrary: fc.record({ kind: fc.constant('break' as const), rule: fc.constantFrom(...MUTATIONS), r: rnd }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('vmwrite' as const), slot: fc.nat({ max: VMCS_SLOT_COUNT - 1 }), value: fc.bigInt({ min: 0n, max: U64 }) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('same' as const), slot: fc.nat({ max: VMCS_SLOT_COUNT - 1 }) }) },
  { weight: 3, arbitrary: fc.record({ kind: fc.constant('resume-valid' as const), direct: fc.boolean() }) },
);

function apply(f: Fixture, valid: Uint32Array, s: Step): void {
  switch (s.kind) {
    case 'break': M[s.rule]!(f, s.r); break;
    case 'vmwrite': f.active.write(s.slot, s.value); break;
    case 'same': f.active.write(s.slot, f.active.read(s.slot)); break;
    case 'resume-valid':
      // Back to the valid VMCS: field by field as VMWRITEs would, or all at once as the processor's own writes.
      if (s.direct) f.active.data.set(valid);
      else for (let slot = 0; slot < VMCS_SLOT_COUNT; slot++) f.active.write(slot, (BigInt(valid[2 * slot + 1]!) << 32n) | BigInt(valid[2 * slot]!));
      break;
  }
}

/** What VM entry makes of a check result: the rule, its outcome and the failure record (the diagnosis's content). */
function summary(r: FirstFailure): unknown {
  return r === null ? 'all pass' : { rule: r.check.id, outcome: r.check.outcome, result: r.result };
}

describe('VMRESUME re-runs only the checks whose inputs changed, with the outcome of running them all', () => {
  it('random VMWRITE sequences (rule-breaking ones included) between entries: incremental = full, every time', () => {
    const recorder = new ReadRecorder();
    fc.assert(fc.property(fc.constantFrom(...CPU_MODELS.map((m) => m.name)), vmcsChoices(), fc.array(step, { minLength: 1, maxLength: 16 }), (name, c, steps) => {
      const f = buildValidVmcs(CPU_MODELS.find((m) => m.name === name)!, c);
      const valid = f.active.data.slice();
      // The first entry checks everything and remembers; then each step changes the VMCS and both must agree.
      expect(summary(firstFailingCheck(new EntryView(f.ctx, recorder), STATE_CHECKS, f.active, recorder))).toBe('all pass');
      for (const s of steps) {
        apply(f, valid, s);
        const incremental = firstFailingCheck(new EntryView(f.ctx, recorder), STATE_CHECKS, f.active, recorder);
        const full = firstFailingCheck(new EntryView(f.ctx), STATE_CHECKS);
        expect(summary(incremental), `after ${JSON.stringify(s, (_k, v: unknown) => (typeof v === 'bigint' ? `0x${v.toString(16)}` : v))}`).toEqual(summary(full));
      }
    }), { seed: 42, numRuns: 300 });
  });

  it('after a VM exit that changed only GUEST_RIP, the entry runs the checks that read it (and those reading memory or processor state), not all', () => {
    const f = buildValidVmcs(CPU_MODELS[0]!, fc.sample(vmcsChoices(), { seed: 7, numRuns: 1 })[0]!);
    const ran = new Map<string, number>();
    const counted: StateCheck[] = STATE_CHECKS.map((c) => ({ ...c, check: (v: EntryView) => { ran.set(c.id, (ran.get(c.id) ?? 0) + 1); return c.check(v); } }));
    const recorder = new ReadRecorder();
    const enter = (): FirstFailure => firstFailingCheck(new EntryView(f.ctx, recorder), counted, f.active, recorder);
    expect(enter()).toBeNull();
    expect(ran.size, 'the first entry runs every check').toBe(STATE_CHECKS.length);
    ran.clear();
    f.active.write(SLOT.GUEST_RIP, f.active.read(SLOT.GUEST_RIP) + 2n);
    expect(enter()).toBeNull();
    // Which ones depends on the path each check took (a check that did not read GUEST_RIP last time need not run);
    // the property above is what says the choice is right. Here: some ran, and far fewer than all.
    expect(ran.size).toBeGreaterThan(0);
    expect(ran.size, [...ran.keys()].join(', ')).toBeLessThan(STATE_CHECKS.length / 4);
    // Back to the value of the last entry but one: still only a few checks run (compared with the last entry's values).
    ran.clear();
    f.active.write(SLOT.GUEST_RIP, f.active.read(SLOT.GUEST_RIP) - 2n);
    expect(enter()).toBeNull();
    expect(ran.size).toBeLessThan(STATE_CHECKS.length / 4);
  });
});

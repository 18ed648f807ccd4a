// For every VM-entry rule: a generator breaks exactly that rule in a valid VMCS, on every CPU model where the rule
// can be broken, and VM entry must fail with that rule's documented outcome (error number, or exit reason and
// qualification) and name that rule in its diagnosis. Rules earlier in SDM order still pass, so this also checks
// the order (controls before host state before guest state before MSR loading).
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { CPU_MODELS } from '../../machine/cpu-model.ts';
import type { CpuModel } from '../../machine/cpu-model.ts';
import { ENTRY_CHECKS, vmEntry } from './index.ts';
import { buildValidVmcs, nonCanonical, vmcsChoices, writeMsrEntry } from '../testing/vmcs-fixture.ts';
import { M, MSR_BREAKS, SHADOWED, rnd, type Mutation } from '../testing/entry-mutations.ts';
import { VMX_CONTROL as C } from '../controls.ts';
import { MSR_LSTAR, MSR_STAR } from '../../x86/msr.ts';
import { exitReasonByNumber } from '../exit-reasons.ts';

const byId = new Map(ENTRY_CHECKS.map((c) => [c.id, c]));

describe('every VM-entry rule has a generator that breaks exactly it', () => {
  it('the mutation tables cover ENTRY_CHECKS exactly', () => {
    const covered = new Set([...Object.keys(M), ...Object.keys(MSR_BREAKS), ...Object.keys(SHADOWED)]);
    expect([...byId.keys()].filter((id) => !covered.has(id))).toEqual([]);
    expect([...covered].filter((id) => !byId.has(id))).toEqual([]);
  });

  for (const check of ENTRY_CHECKS) {
    if (check.group === 'msr-load' || SHADOWED[check.id]) continue;
    const mutate = M[check.id]!;
    it(`${check.id} → ${describeOutcome(check.outcome)}`, () => {
      const models = CPU_MODELS.filter((m) => applicable(m, mutate));
      expect(models.length, `no CPU model can break ${check.id}`).toBeGreaterThan(0);
      fc.assert(fc.property(fc.constantFrom(...models.map((m) => m.name)), vmcsChoices(), rnd, (name, c, r) => {
        const f = buildValidVmcs(models.find((m) => m.name === name)!, c);
        fc.pre(mutate(f, r));
        const out = vmEntry(f.ctx);
        const o = check.outcome;
        const got = out.kind === 'entered' ? 'entered' : `${out.kind} ${out.kind === 'VMfailValid' ? out.error : `${out.reason}/${out.qualification}`} (${out.diagnosis.rule}: ${out.diagnosis.message})`;
        if (o.kind === 'VMfailValid') {
          expect(out.kind, got).toBe('VMfailValid');
          if (out.kind === 'VMfailValid') expect(out.error).toBe(o.error);
        } else {
          expect(out.kind, got).toBe('entry-failure-exit');
          if (out.kind === 'entry-failure-exit') {
            expect(out.reason).toBe(o.reason);
            expect(out.qualification).toBe(o.qualification);
            // Architectural channel: bit 31 set in the exit reason, the qualification recorded.
            expect(f.get('VM_EXIT_REASON')).toBe(BigInt((o.reason | 2 ** 31) >>> 0));
            expect(f.get('EXIT_QUALIFICATION')).toBe(BigInt(o.qualification as number));
          }
        }
        if (out.kind !== 'entered') expect(out.diagnosis.rule, got).toBe(check.id);
      }), { seed: 6, numRuns: 60 });
    });
  }

  for (const [id, breakEntry] of Object.entries(MSR_BREAKS)) {
    it(`${id} → exit 34 with the failing entry's index`, () => {
      fc.assert(fc.property(fc.constantFrom(...CPU_MODELS.map((m) => m.name)), vmcsChoices(), rnd, fc.nat({ max: 5 }), fc.nat({ max: 5 }), (name, c, r, before, after) => {
        const f = buildValidVmcs(CPU_MODELS.find((m) => m.name === name)!, { ...c, msrLoadCount: 0 });
        const area = f.page(6);
        const good: [number, bigint][] = [[MSR_STAR, 0x0023001000000000n], [MSR_LSTAR, 0xffffffff81000000n & ((1n << 64n) - 1n)]];
        for (let i = 0; i < before; i++) writeMsrEntry(f.cpu, area, i, good[i % 2]![0], 0, good[i % 2]![1] + BigInt(i));
        const [index, reserved, value] = breakEntry(f, r);
        writeMsrEntry(f.cpu, area, before, index, reserved, value);
        for (let i = 0; i < after; i++) writeMsrEntry(f.cpu, area, before + 1 + i, MSR_STAR, 0, BigInt(i));
        f.set('VM_ENTRY_MSR_LOAD_COUNT', before + 1 + after);
        const out = vmEntry(f.ctx);
        expect(out.kind).toBe('entry-failure-exit');
        if (out.kind !== 'entry-failure-exit') return;
        expect(out.reason).toBe(34);
        expect(out.qualification).toBe(before + 1);
        expect(out.diagnosis.rule).toBe(id);
        expect(f.get('VM_EXIT_REASON')).toBe(BigInt((34 | 2 ** 31) >>> 0));
        expect(f.get('EXIT_QUALIFICATION')).toBe(BigInt(before + 1));
        // Entries before the bad one were loaded (STAR/LSTAR); host state was loaded afterwards.
        if (before > 0) expect(f.cpu.msrs.get(good[(before - 1) % 2]![0])).toBe(good[(before - 1) % 2]![1] + BigInt(before - 1));
        expect(f.cpu.rip).toBe(f.get('HOST_RIP'));
      }), { seed: 7, numRuns: 40 });
    });
  }

  it('shadowed rules still hold as predicates', () => {
    // host-32-bit-no-ia32e-guest: evaluated directly, since VM entry never reaches it with these inputs.
    const check = byId.get('host-32-bit-no-ia32e-guest')!;
    if (check.group === 'msr-load') throw new Error('unexpected');
    const f = buildValidVmcs(CPU_MODELS[0]!, fc.sample(vmcsChoices(), { seed: 1, numRuns: 1 })[0]!);
    f.clear('VM_EXIT_CONTROLS', C.VM_EXIT_HOST_ADDR_SPACE_SIZE);
    const { EntryView } = viewModule;
    expect(check.check(new EntryView(f.ctx))).not.toBe(true);
    f.clear('VM_ENTRY_CONTROLS', C.VM_ENTRY_IA32E_MODE);
    expect(check.check(new EntryView(f.ctx))).toBe(true);
  });
});

import * as viewModule from './view.ts';

function applicable(model: CpuModel, mutate: Mutation): boolean {
  const samples = fc.sample(fc.tuple(vmcsChoices(), rnd), { seed: 11, numRuns: 8 });
  return samples.some(([c, r]) => mutate(buildValidVmcs(model, c), r));
}
function describeOutcome(o: (typeof ENTRY_CHECKS)[number]['outcome']): string {
  if (o.kind === 'VMfailValid') return `VMfailValid(${o.error})`;
  return `exit ${o.reason} (${exitReasonByNumber(o.reason)?.name ?? '?'}), qualification ${o.qualification}`;
}

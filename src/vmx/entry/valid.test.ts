import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { CPU_MODELS } from '../../machine/cpu-model.ts';
import { vmEntry, ENTRY_CHECKS } from './index.ts';
import { buildValidVmcs, vmcsChoices } from '../testing/vmcs-fixture.ts';

describe('a valid VMCS (64-bit host, 64-bit guest) built from each model\'s capabilities', () => {
  for (const model of CPU_MODELS) {
    it(`passes every entry check on ${model.name}`, () => {
      fc.assert(fc.property(vmcsChoices(), (c) => {
        const f = buildValidVmcs(model, c);
        const out = vmEntry(f.ctx);
        if (out.kind !== 'entered') expect.fail(`${out.kind}: ${JSON.stringify(out.diagnosis, (_k, v) => typeof v === 'bigint' ? '0x' + v.toString(16) : v)}`);
      }), { seed: 4, numRuns: 40 });
    });
  }

  it('check ids are unique and kebab-case', () => {
    const ids = ENTRY_CHECKS.map((c) => c.id);
    expect(new Set(ids).size).toBe(ids.length);
    for (const id of ids) expect(id).toMatch(/^[a-z0-9]+(-[a-z0-9]+)*$/);
  });
});

// Whole-instruction-set properties: random instruction sequences never throw and always leave the architectural
// state the SDM's conventions require; every VM-instruction error number this layer owns is reachable.
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { RFLAGS, RFLAGS_STATUS } from '../../x86/flags.ts';
import { VM_INSTRUCTION_ERRORS } from '../errors.ts';
import { lastDiagnosis } from '../diagnosis.ts';
import { VMCS } from '../fields.ts';
import { VMCS_SLOT } from '../vmcs.ts';
import type { VmEntryOutcome } from '../entry/index.ts';
import { invept, invvpid } from './invept-invvpid.ts';
import type { VmxOutcome } from './outcome.ts';
import { vmclear } from './vmclear.ts';
import { vmlaunch, vmresume } from './vmlaunch.ts';
import { vmptrld, vmptrst } from './vmptrld.ts';
import { vmread, vmwrite } from './vmread-vmwrite.ts';
import { vmxoff, vmxon } from './vmxon.ts';
import { FLAGS_BEFORE, VMCS2_PA, VMCS_PA, VMXON_PA, setup, setupWithVmcs } from '../testing/instruction-harness.ts';

const v = (value: bigint | number) => ({ kind: 'value', value: BigInt(value) }) as const;
const R = { kind: 'result' } as const;
const ERR = VMCS_SLOT.VM_INSTRUCTION_ERROR!;
const entered = (): VmEntryOutcome => ({ kind: 'entered' });

type Ctx = ReturnType<typeof setup>;
type Op = (ctx: Ctx) => VmxOutcome;

const addr = fc.constantFrom(VMXON_PA, VMCS_PA, VMCS2_PA, VMCS_PA + 0x10n, 1n << 50n, 0n);
const enc = fc.oneof(fc.constantFrom(VMCS.GUEST_RIP, VMCS.VM_EXIT_REASON, VMCS.TSC_OFFSET_HIGH, VMCS.EPT_POINTER, VMCS.GUEST_ES_SELECTOR), fc.nat());
const op: fc.Arbitrary<[string, Op]> = fc.oneof(
  addr.map((a) => ['vmxon', (c: Ctx) => vmxon(c, v(a))] as [string, Op]),
  fc.constant(['vmxoff', (c: Ctx) => vmxoff(c)] as [string, Op]),
  addr.map((a) => ['vmclear', (c: Ctx) => vmclear(c, v(a))] as [string, Op]),
  addr.map((a) => ['vmptrld', (c: Ctx) => vmptrld(c, v(a))] as [string, Op]),
  fc.constant(['vmptrst', (c: Ctx) => vmptrst(c, R)] as [string, Op]),
  enc.map((e) => ['vmread', (c: Ctx) => vmread(c, v(e), R)] as [string, Op]),
  fc.tuple(enc, fc.bigInt({ min: 0n, max: (1n << 64n) - 1n })).map(([e, x]) => ['vmwrite', (c: Ctx) => vmwrite(c, v(e), v(x))] as [string, Op]),
  fc.tuple(fc.integer({ min: 0, max: 4 }), fc.bigInt({ min: 0n, max: 0xffffn })).map(([t, x]) => ['invept', (c: Ctx) => invept(c, v(t), { kind: 'descriptor', low: x, high: 0n })] as [string, Op]),
  fc.tuple(fc.integer({ min: 0, max: 4 }), fc.bigInt({ min: 0n, max: 0x1ffffn })).map(([t, x]) => ['invvpid', (c: Ctx) => invvpid(c, v(t), { kind: 'descriptor', low: x, high: 0x1000n })] as [string, Op]),
  fc.constant(['vmlaunch', (c: Ctx) => vmlaunch(c, entered)] as [string, Op]),
  fc.constant(['vmresume', (c: Ctx) => vmresume(c, entered)] as [string, Op]),
  // "A VM exit": back to root operation.
  fc.constant(['exit', (c: Ctx) => { c.state.nonRoot = false; return { kind: 'vm-exit', reason: 0 }; }] as [string, Op]),
  fc.integer({ min: 0, max: 3 }).map((cpl) => ['cpl', (c: Ctx) => { c.cpu.cplValue = cpl; return { kind: 'vm-exit', reason: 0 }; }] as [string, Op]),
  fc.boolean().map((b) => ['movss', (c: Ctx) => { c.cpu.movSs = b; return { kind: 'vm-exit', reason: 0 }; }] as [string, Op]),
);

describe('random VMX instruction sequences', () => {
  for (const model of ['skylake-i5-6300u', 'penryn-core2-duo-t9600', 'nehalem-lynnfield-i7-870']) {
    it(`${model}: no throw; RFLAGS, error field and diagnosis match each outcome`, () => {
      fc.assert(
        fc.property(fc.array(op, { maxLength: 40 }), (ops) => {
          const ctx = setup(model);
          for (const [, run] of ops) {
            ctx.cpu.rflags = FLAGS_BEFORE;
            ctx.state.lastDiagnosis = null;
            const o = run(ctx);
            const status = ctx.cpu.rflags & RFLAGS_STATUS;
            switch (o.kind) {
              case 'VMsucceed':
              case 'vm-entered':
                expect(status).toBe(0);
                break;
              case 'VMfailInvalid':
                expect(status).toBe(RFLAGS.CF);
                expect(lastDiagnosis(ctx.state)?.outcome).toBe('VMfailInvalid');
                break;
              case 'VMfailValid':
                expect(status).toBe(RFLAGS.ZF);
                expect(ctx.state.current).not.toBeNull();
                expect(ctx.state.current!.readLow(ERR)).toBe(o.error);
                expect(lastDiagnosis(ctx.state)?.outcome).toBe(`VMfailValid(${o.error})`);
                expect(VM_INSTRUCTION_ERRORS.some((e) => e.number === o.error)).toBe(true);
                break;
              case 'fault':
                expect(ctx.cpu.rflags).toBe(FLAGS_BEFORE);
                expect([6, 13, 14]).toContain(o.fault.vector);
                expect(lastDiagnosis(ctx.state)?.sdm).toMatch(/^SDM Vol\. 3[CD], "/);
                break;
              case 'vm-exit':
                expect(ctx.cpu.rflags).toBe(FLAGS_BEFORE);
                break;
              case 'vm-entry-failed':
                throw new Error('not produced with the stub entry');
            }
            // Invariants of the VMX state.
            if (!ctx.state.inVmxOperation) expect(ctx.state.current).toBeNull();
            if (ctx.state.current !== null) expect(ctx.state.active).toContain(ctx.state.current);
          }
        }),
        { numRuns: 150, seed: 99 },
      );
    });
  }
});

describe('every VM-instruction error number this layer produces is reachable', () => {
  const inRoot = () => setupWithVmcs();
  const scenarios: Record<number, () => VmxOutcome> = {
    2: () => vmclear(inRoot(), v(VMCS_PA + 1n)),
    3: () => vmclear(inRoot(), v(VMXON_PA)),
    4: () => { const c = inRoot(); vmlaunch(c, entered); c.state.nonRoot = false; return vmlaunch(c, entered); },
    5: () => vmresume(inRoot(), entered),
    6: () => { const c = inRoot(); vmlaunch(c, entered); c.state.nonRoot = false; vmxoff(c); vmxon(c, v(VMXON_PA)); vmptrld(c, v(VMCS_PA)); return vmresume(c, entered); },
    9: () => vmptrld(inRoot(), v(1n << 50n)),
    10: () => vmptrld(inRoot(), v(VMXON_PA)),
    11: () => { const c = inRoot(); c.cpu.writePhysical32(VMCS2_PA, 0); return vmptrld(c, v(VMCS2_PA)); },
    12: () => vmread(inRoot(), v(0x7777), R),
    13: () => vmwrite(setupWithVmcs('nehalem-lynnfield-i7-870'), v(VMCS.EXIT_QUALIFICATION), v(0)),
    15: () => vmxon(inRoot(), v(VMXON_PA)),
    26: () => { const c = inRoot(); c.cpu.movSs = true; return vmlaunch(c, entered); },
    28: () => invept(inRoot(), v(0), { kind: 'descriptor', low: 0n, high: 0n }),
  };
  it.each(Object.entries(scenarios))('error %s', (n, run) => {
    expect(run()).toEqual({ kind: 'VMfailValid', error: Number(n) });
  });
  it('the remaining numbers belong elsewhere or to SMM features this emulator does not model', () => {
    // 1: VMCALL in VMX root operation (unit.ts); 7, 8: VM-entry checks (entry/); 16–25: dual-monitor treatment of
    // SMIs and SMM (not modelled).
    const elsewhere = [1, 7, 8, 16, 17, 18, 19, 20, 22, 23, 24, 25];
    const all = VM_INSTRUCTION_ERRORS.map((e) => e.number).sort((a, b) => a - b);
    expect([...Object.keys(scenarios).map(Number), ...elsewhere].sort((a, b) => a - b)).toEqual(all);
  });
});

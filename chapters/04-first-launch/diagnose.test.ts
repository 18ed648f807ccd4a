// Exercise 4.4 — diagnoseLaunch: every way VMLAUNCH can end, classified exactly as the processor reports it.
// A valid VMCS is built by the test support (not by your code); fast-check breaks one field of it, and the test
// compares your classification with the architectural channel (RFLAGS, VM_INSTRUCTION_ERROR, VM_EXIT_REASON,
// EXIT_QUALIFICATION read by the test itself) and with the rule the emulator's diagnosis names.
import { describe, expect, test } from 'vitest';
import fc from 'fast-check';
import { diagnoseLaunch, type LaunchDiagnosis } from '#impl/04-first-launch/diagnose';
import { CPU_MODELS } from '../../src/machine/cpu-model.ts';
import { ENTRY_CHECKS } from '../../src/vmx/entry/index.ts';
import type { EntryCheckGroup } from '../../src/vmx/entry/rule.ts';
import type { VmcsFieldName } from '../../src/vmx/fields.ts';
import { AR } from '../../src/x86/segments.ts';
import { CR0, CR4 } from '../../src/x86/control-registers.ts';
import { RFLAGS } from '../../src/x86/flags.ts';
import type { HostCpu } from '../../src/kernel/host-cpu.ts';
import { bootHost, enterVmx, explain, read, runGuests, write, writeReferenceVmcs, type Host } from './support.ts';
import { showValue } from '../lib/show.ts';

const CF = 1n, ZF = 1n << 6n;
const BIT31 = 1n << 31n;
const EXIT_REASON_CPUID = 10;

/** Material a mutation may use, drawn by fast-check. */
interface Rnd { n: number; m: number }
interface Ctx { host: Host; cpu: HostCpu; setup: { vmcsPa: bigint } }
/** One field of a valid VMCS, broken. `group` is what it is meant to break (checked, to keep the test honest). */
interface Mutation {
  readonly name: string;
  readonly group: EntryCheckGroup | 'none' | 'basic';
  /** Returns false if this model cannot be broken this way (e.g. no must-be-0 control bit to set). */
  apply(c: Ctx, r: Rnd): boolean;
}

const SELECTORS = ['CS', 'SS', 'DS', 'ES', 'FS', 'GS', 'TR'] as const;
const CONTROLS = [
  ['pin', 'PIN_BASED_VM_EXEC_CONTROL'], ['proc', 'CPU_BASED_VM_EXEC_CONTROL'], ['exit', 'VM_EXIT_CONTROLS'], ['entry', 'VM_ENTRY_CONTROLS'],
] as const;
const bitsOf = (v: number): number[] => [...Array(32).keys()].filter((b) => ((v >>> b) & 1) === 1);
const orField = (c: Ctx, f: VmcsFieldName, bits: bigint): void => write(c.host, c.cpu, f, read(c.cpu, f) | bits);
const andNotField = (c: Ctx, f: VmcsFieldName, bits: bigint): void => write(c.host, c.cpu, f, read(c.cpu, f) & ~bits);

const MUTATIONS: readonly Mutation[] = [
  { name: 'none (a valid VMCS)', group: 'none', apply: () => true },
  { name: 'no current VMCS (VMCLEAR before VMLAUNCH)', group: 'basic', apply: (c) => { c.cpu.vmclear(c.setup.vmcsPa); return true; } },
  { name: 'host selector with RPL or TI set', group: 'host-state', apply: (c, r) => {
    orField(c, `HOST_${SELECTORS[r.n % SELECTORS.length]!}_SELECTOR`, BigInt(1 + (r.m % 7)));
    return true;
  } },
  { name: 'host TR selector null', group: 'host-state', apply: (c) => { write(c.host, c.cpu, 'HOST_TR_SELECTOR', 0); return true; } },
  { name: 'host CR4.PAE clear with a 64-bit host', group: 'host-state', apply: (c) => { andNotField(c, 'HOST_CR4', BigInt(CR4.PAE)); return true; } },
  { name: 'host RIP not canonical', group: 'host-state', apply: (c, r) => { write(c.host, c.cpu, 'HOST_RIP', (1n << 62n) | BigInt(r.n)); return true; } },
  { name: 'control bit the CPU does not support', group: 'controls', apply: (c, r) => {
    const [kind, field] = CONTROLS[r.n % CONTROLS.length]!;
    const must0 = bitsOf(~c.host.vmx[0]!.caps.effective[kind].allowed1 >>> 0);
    if (must0.length === 0) return false;
    orField(c, field, 1n << BigInt(must0[r.m % must0.length]!));
    return true;
  } },
  { name: 'must-be-1 control bit cleared', group: 'controls', apply: (c, r) => {
    const [kind, field] = CONTROLS[r.n % CONTROLS.length]!;
    const must1 = bitsOf(c.host.vmx[0]!.caps.effective[kind].allowed0 >>> 0);
    if (must1.length === 0) return false;
    andNotField(c, field, 1n << BigInt(must1[r.m % must1.length]!));
    return true;
  } },
  { name: 'guest CS access rights broken', group: 'guest-state', apply: (c, r) => {
    const breaks = [
      // (Not the unusable bit: VM entry checks CS whether or not it is marked unusable.)
      (ar: number) => (ar & ~AR.TYPE_MASK) | 0x3, // a data segment in CS
      (ar: number) => ar & ~AR.P,
      (ar: number) => ar | AR.DB, // L and D/B both set in IA-32e mode
      (ar: number) => ar | (1 << (8 + (r.m % 4))), // reserved bits 11:8
    ];
    const ar = Number(read(c.cpu, 'GUEST_CS_AR_BYTES'));
    write(c.host, c.cpu, 'GUEST_CS_AR_BYTES', breaks[r.n % breaks.length]!(ar) >>> 0);
    return true;
  } },
  { name: 'guest TR not a busy 64-bit TSS', group: 'guest-state', apply: (c, r) => {
    const ar = Number(read(c.cpu, 'GUEST_TR_AR_BYTES'));
    write(c.host, c.cpu, 'GUEST_TR_AR_BYTES', r.n % 2 === 0 ? (ar & ~AR.TYPE_MASK) | 0x9 : ar | AR.UNUSABLE);
    return true;
  } },
  { name: 'guest activity state reserved', group: 'guest-state', apply: (c, r) => { write(c.host, c.cpu, 'GUEST_ACTIVITY_STATE', 4 + (r.n % 100)); return true; } },
  { name: 'guest RFLAGS bit 1 clear', group: 'guest-state', apply: (c) => { andNotField(c, 'GUEST_RFLAGS', BigInt(RFLAGS.FIXED1)); return true; } },
  { name: 'guest CR0.PG clear in an IA-32e mode guest', group: 'guest-state', apply: (c) => { andNotField(c, 'GUEST_CR0', BigInt(CR0.PG)); return true; } },
  { name: 'external interrupt injected while the guest has RFLAGS.IF = 0 or STI blocking', group: 'guest-state', apply: (c, r) => {
    // Valid bit 31, type 0 (external interrupt), vector 32–255. See SDM Vol. 3C, "VM-Entry Controls for Event Injection".
    write(c.host, c.cpu, 'VM_ENTRY_INTR_INFO_FIELD', (2 ** 31 + 32 + (r.n % 224)) >>> 0);
    if (r.m % 2 === 0) andNotField(c, 'GUEST_RFLAGS', BigInt(RFLAGS.IF));
    else {
      orField(c, 'GUEST_RFLAGS', BigInt(RFLAGS.IF));
      write(c.host, c.cpu, 'GUEST_INTERRUPTIBILITY_INFO', 1); // blocking by STI
    }
    return true;
  } },
  { name: 'VMCS link pointer not all ones', group: 'guest-state', apply: (c, r) => { write(c.host, c.cpu, 'VMCS_LINK_POINTER', BigInt(1 + (r.n % 0x1000)) << 12n); return true; } },
  { name: 'VM-entry MSR-load entry with reserved bits', group: 'msr-load', apply: (c, r) => {
    const k = c.host.kernel;
    const va = k.get_zeroed_page();
    const count = 1 + (r.n % 3);
    for (let i = 0; i < count; i++) k.write32(va + BigInt(16 * i), 0x174); // IA32_SYSENTER_CS: loadable
    k.write32(va + BigInt(16 * (count - 1) + 4), 1 + (r.m % 0xffff)); // bits 63:32 of the last entry
    write(c.host, c.cpu, 'VM_ENTRY_MSR_LOAD_ADDR', k.virt_to_phys(va));
    write(c.host, c.cpu, 'VM_ENTRY_MSR_LOAD_COUNT', count);
    return true;
  } },
];

/** What the architecture says happened, read by the test with raw VMREADs. */
type Architectural =
  | { kind: 'VMfailInvalid' }
  | { kind: 'VMfailValid'; error: number }
  | { kind: 'at-host-rip'; exitReason: bigint; qualification: bigint };

interface Outcome { yours: LaunchDiagnosis[]; arch: Architectural | null }

function launch(model: string, m: Mutation, r: Rnd): Outcome & { host: Host; applied: boolean } {
  const host = bootHost({ model, ramMiB: 64 });
  const k = host.kernel;
  const cpu = k.cpu();
  const out: Outcome = { yours: [], arch: null };
  const rip = k.hostEntry('test_vmexit', (_k, c) => {
    out.arch = { kind: 'at-host-rip', exitReason: read(c, 'VM_EXIT_REASON'), qualification: read(c, 'EXIT_QUALIFICATION') };
    out.yours.push(diagnoseLaunch(c, 'host-rip'));
  });
  const setup = enterVmx(host);
  writeReferenceVmcs(host, cpu, rip);
  const applied = m.apply({ host, cpu, setup }, r);
  if (!applied) return { ...out, host, applied };
  cpu.vmlaunch();
  // RFLAGS first (a later VMREAD, yours or ours, clears them), then your diagnosis, then the error field.
  const inGuest = cpu.lp.vmx?.nonRoot === true;
  const rflags = cpu.rflags();
  out.yours.push(diagnoseLaunch(cpu, 'fallthrough'));
  if (!inGuest && (rflags & CF) !== 0n) out.arch = { kind: 'VMfailInvalid' };
  else if (!inGuest && (rflags & ZF) !== 0n) out.arch = { kind: 'VMfailValid', error: Number(read(cpu, 'VM_INSTRUCTION_ERROR')) };
  if (out.arch === null) runGuests(host, 10_000);
  return { ...out, host, applied };
}

/** The classification the architectural channel implies. */
function expected(arch: Architectural | null): LaunchDiagnosis['kind'][] {
  if (arch === null) return ['no-vmfail'];
  if (arch.kind !== 'at-host-rip') return [arch.kind];
  return ['no-vmfail', (arch.exitReason & BIT31) !== 0n ? 'entry-failure' : 'vm-exit'];
}

describe('diagnoseLaunch', () => {
  test('a valid VMCS: no VMfail after VMLAUNCH, then an ordinary VM exit (CPUID) at HOST_RIP, on every CPU model', () => {
    for (const model of CPU_MODELS) {
      const o = launch(model.name, MUTATIONS[0]!, { n: 0, m: 0 });
      const why = explain(o.host, `model ${model.name}: your diagnoses ${showValue(o.yours)}`);
      expect(o.yours.map((d) => d.kind), why).toEqual(['no-vmfail', 'vm-exit']);
      const exit = o.yours[1]!;
      expect(exit.kind === 'vm-exit' && exit.reason, why).toBe(EXIT_REASON_CPUID);
    }
  });

  // Each mutation on a few CPU models and parameters chosen by fast-check (a fixed seed keeps runs replayable).
  test.each(MUTATIONS.slice(1).map((m) => [m.name, m] as const))('%s: classified exactly as the processor reports it', (_name, m) => {
    const models = CPU_MODELS.map((x) => x.name);
    fc.assert(
      fc.property(
        fc.constantFrom(...models),
        fc.record({ n: fc.nat(1000), m: fc.nat(1000) }),
        (model, r) => {
          const o = launch(model, m, r);
          if (!o.applied) return;
          const d = o.host.vmx[0]!.lastDiagnosis();
          const why = explain(o.host, `model ${model}, mutation "${m.name}" ${JSON.stringify(r)}\narchitectural: ${showValue(o.arch)}\nyour diagnoses: ${showValue(o.yours)}`);
          // Your classification, call by call, follows the architectural channel.
          expect(o.yours.map((x) => x.kind), why).toEqual(expected(o.arch));
          const arch = o.arch;
          const last = o.yours[o.yours.length - 1]!;
          if (arch?.kind === 'VMfailValid') {
            expect(last.kind === 'VMfailValid' && last.error, why).toBe(arch.error);
          }
          if (arch?.kind === 'at-host-rip' && (arch.exitReason & BIT31) !== 0n) {
            expect(last.kind === 'entry-failure' && last.reason, why).toBe(Number(arch.exitReason & 0xffffn));
            expect(last.kind === 'entry-failure' && last.qualification, why).toBe(arch.qualification);
          }
          // The emulator's explanation channel names the rule; its documented outcome must match, and the rule must
          // be in the group this mutation meant to break (so the test really tests what it says).
          if (m.group === 'basic') {
            expect(arch?.kind, why).toBe('VMfailInvalid');
            return;
          }
          const rule = ENTRY_CHECKS.find((c) => c.id === d?.rule);
          expect(rule, why).toBeDefined();
          expect(rule!.group, why).toBe(m.group);
          const doc = rule!.outcome;
          if (doc.kind === 'VMfailValid') {
            expect(last, why).toMatchObject({ kind: 'VMfailValid', error: doc.error });
          } else {
            expect(last, why).toMatchObject({ kind: 'entry-failure', reason: doc.reason });
            if (doc.qualification !== 'entry-index') expect(last.kind === 'entry-failure' && last.qualification, why).toBe(BigInt(doc.qualification));
          }
        },
      ),
      { numRuns: 4, seed: 4004 },
    );
  });

  test('VMfailValid carries the error number and its name; VMfailInvalid has none', () => {
    const valid = launch(CPU_MODELS[0]!.name, MUTATIONS.find((m) => m.name === 'host TR selector null')!, { n: 0, m: 0 });
    const d = valid.yours[0]!;
    const why = explain(valid.host, showValue(valid.yours));
    expect(valid.arch?.kind, why).toBe('VMfailValid');
    expect(d.kind === 'VMfailValid' && d.error, why).toBe(valid.arch?.kind === 'VMfailValid' ? valid.arch.error : -1);
    expect(d.kind === 'VMfailValid' && d.name.length > 0, why).toBe(true);
    const invalid = launch(CPU_MODELS[0]!.name, MUTATIONS[1]!, { n: 0, m: 0 });
    expect(invalid.yours, explain(invalid.host)).toEqual([{ kind: 'VMfailInvalid' }]);
  });
});

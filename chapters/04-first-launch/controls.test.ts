// Exercise 4.3 — the controls for a first launch, adjusted to what each CPU model allows. Checked against the
// model's capability MSRs as the kit decodes them, and by launching a reference guest with them.
import { describe, expect, test } from 'vitest';
import fc from 'fast-check';
import { firstLaunchControls, writeControls } from '#impl/04-first-launch/controls';
import { CPU_MODELS } from '../../src/machine/cpu-model.ts';
import { VMX_CONTROL } from '../../src/vmx/controls.ts';
import type { AllowedSettings } from '../../src/vmx/capabilities.ts';
import {
  bootHost, buildReferenceGuest, enterVmx, explain, read, runGuests, write, writeReferenceGuestState, writeReferenceHostState,
} from './support.ts';
import { showValue } from '../lib/show.ts';

const EXIT_REASON_CPUID = 10;
const EXIT_REASON_HLT = 12;
type Kind = 'pin' | 'proc' | 'exit' | 'entry';
const KINDS: readonly Kind[] = ['pin', 'proc', 'exit', 'entry'];
const bitsOf = (v: number): number[] => [...Array(32).keys()].filter((b) => ((v >>> b) & 1) === 1);
const legal = (v: number, a: AllowedSettings): boolean => ((v & a.allowed0) >>> 0) === a.allowed0 >>> 0 && (v & ~a.allowed1) >>> 0 === 0;

describe('firstLaunchControls', () => {
  test.each(CPU_MODELS.map((m) => [m.name]))('%s: legal values with exactly what a first launch needs, and a guest that runs with them', (model) => {
    const host = bootHost({ model, ramMiB: 64 });
    const k = host.kernel;
    const cpu = k.cpu();
    const eff = host.vmx[0]!.caps.effective;
    const r = firstLaunchControls((msr) => cpu.rdmsr(msr));
    const why = (s = ''): string => explain(host, `${s}\nyour result: ${showValue(r)}`);
    expect(r.ok, why('a first launch is possible on every model')).toBe(true);
    if (!r.ok) return;
    const c = r.controls;
    const wanted: Record<Kind, number> = {
      pin: 0,
      proc: VMX_CONTROL.CPU_BASED_HLT_EXITING,
      exit: VMX_CONTROL.VM_EXIT_HOST_ADDR_SPACE_SIZE,
      entry: VMX_CONTROL.VM_ENTRY_IA32E_MODE,
    };
    for (const kind of KINDS) {
      expect(legal(c[kind], eff[kind]), why(`${kind} is not allowed by the capability MSR (allowed-0 ${eff[kind].allowed0.toString(16)}H, allowed-1 ${eff[kind].allowed1.toString(16)}H)`)).toBe(true);
      expect((c[kind] & wanted[kind]) >>> 0, why(`${kind} lacks a control the first launch needs`)).toBe(wanted[kind] >>> 0);
      // Nothing beyond the must-be-1 bits and what was asked for: with the TRUE_* MSRs, default1 controls such
      // as CR3-load/store exiting are 0.
      expect((c[kind] & ~(eff[kind].allowed0 | wanted[kind])) >>> 0, why(`${kind} sets bits nobody asked for`)).toBe(0);
    }
    expect(c.proc2, why('no secondary controls are needed')).toBe(0);
    expect(c.proc & VMX_CONTROL.CPU_BASED_ACTIVATE_SECONDARY_CONTROLS, why()).toBe(0);

    // Launch a reference guest with these controls: it prints, exits on CPUID, and (resumed) on HLT.
    const exits: bigint[] = [];
    const rip = k.hostEntry('test_vmexit', (_k, hc) => {
      const reason = read(hc, 'VM_EXIT_REASON');
      exits.push(reason);
      if (reason === BigInt(EXIT_REASON_CPUID)) {
        write(host, hc, 'GUEST_RIP', read(hc, 'GUEST_RIP') + read(hc, 'VM_EXIT_INSTRUCTION_LEN'));
        hc.vmresume();
      }
    });
    enterVmx(host);
    const w = writeControls(cpu, c);
    expect(w, why('writeControls')).toEqual({ ok: true, value: undefined });
    writeReferenceHostState(host, cpu, rip);
    writeReferenceGuestState(host, cpu, buildReferenceGuest(k));
    cpu.vmlaunch();
    expect(cpu.lp.vmx?.nonRoot, why('VMLAUNCH with your controls did not enter the guest')).toBe(true);
    runGuests(host, 10_000);
    expect(exits, why('HLT exiting on, I/O exiting off (the guest\'s OUT to E9H must not exit)')).toEqual([BigInt(EXIT_REASON_CPUID), BigInt(EXIT_REASON_HLT)]);
    expect(host.console.text(), why()).toBe('V');
  });

  test('impossible requests are reported — which field, which bit, why — never dropped', () => {
    fc.assert(
      fc.property(fc.constantFrom(...CPU_MODELS.map((m) => m.name)), fc.constantFrom(...KINDS), fc.nat(), fc.boolean(), (model, kind, n, setIt) => {
        const host = bootHost({ model, ramMiB: 64 });
        const cpu = host.kernel.cpu();
        const eff = host.vmx[0]!.caps.effective[kind];
        // A bit the model cannot set (allowed-1 = 0), or a bit it cannot clear (allowed-0 = 1).
        const candidates = setIt ? bitsOf(~eff.allowed1 >>> 0) : bitsOf(eff.allowed0);
        if (candidates.length === 0) return;
        const bit = candidates[n % candidates.length]!;
        const request = setIt ? { [kind]: { want: 2 ** bit } } : { [kind]: { avoid: 2 ** bit } };
        const r = firstLaunchControls((msr) => cpu.rdmsr(msr), request);
        const why = explain(host, `model ${model}: ${setIt ? 'set' : 'clear'} ${kind} bit ${bit}; your result: ${showValue(r)}`);
        expect(r.ok, why).toBe(false);
        if (r.ok) return;
        expect(r.errors.some((e) => e.kind === kind && e.bit === bit && e.reason === (setIt ? 'not allowed to be 1' : 'must be 1')), why).toBe(true);
      }),
      { numRuns: 60, seed: 43 },
    );
  });

  test('asking for a secondary control turns on "activate secondary controls" where the CPU has it', () => {
    for (const model of CPU_MODELS) {
      const host = bootHost({ model: model.name, ramMiB: 64 });
      const cpu = host.kernel.cpu();
      const caps = host.vmx[0]!.caps;
      const rdtscp = VMX_CONTROL.SECONDARY_EXEC_ENABLE_RDTSCP;
      const can = (caps.effective.proc.allowed1 & VMX_CONTROL.CPU_BASED_ACTIVATE_SECONDARY_CONTROLS) !== 0 &&
        (caps.effective.proc2.allowed1 & rdtscp) !== 0;
      const r = firstLaunchControls((msr) => cpu.rdmsr(msr), { proc2: { want: rdtscp } });
      const why = explain(host, `model ${model.name}: ${showValue(r)}`);
      expect(r.ok, why).toBe(can);
      if (r.ok) {
        expect(r.controls.proc2 & rdtscp, why).toBe(rdtscp);
        expect(r.controls.proc & VMX_CONTROL.CPU_BASED_ACTIVATE_SECONDARY_CONTROLS, why).not.toBe(0);
      }
    }
  });
});

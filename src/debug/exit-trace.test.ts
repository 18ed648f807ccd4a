// The exit trace against a real guest: a loop of CPUID under a handler that skips it and resumes. Counts are exact
// (the guest's loop count is the CPUID count), the ring keeps only the last exits, and recording changes nothing.
import { describe, expect, test } from 'vitest';
import { explain, runGuests, write } from '../kernel/testing/reference-vm.ts';
import { EXIT_REASON, VMX_EXIT_REASONS_FAILED_VMENTRY } from '../vmx/exit-reasons.ts';
import { traceExits } from './exit-trace.ts';
import { prepareCpuidLoop } from './testing/cpuid-loop.ts';

const CPUID = EXIT_REASON.EXIT_REASON_CPUID;
const HLT = EXIT_REASON.EXIT_REASON_HLT;

describe('traceExits', () => {
  test('n CPUID exits and one HLT exit, counted exactly; each with the guest RIP and length the VMCS reported', () => {
    const n = 37;
    const loop = prepareCpuidLoop(n);
    const { host } = loop;
    const trace = traceExits(host);
    host.kernel.cpu().vmlaunch();
    const run = runGuests(host);
    const why = explain(host, trace.format());
    expect(run.reason, why).toBe('idle');
    expect(trace.total, why).toBe(n + 1);
    expect(trace.summary(), why).toEqual([
      { basicReason: CPUID, name: 'EXIT_REASON_CPUID', count: n, share: n / (n + 1) },
      { basicReason: HLT, name: 'EXIT_REASON_HLT', count: 1, share: 1 / (n + 1) },
    ]);
    const entries = trace.entries;
    expect(entries.map((e) => e.index), why).toEqual(Array.from({ length: n + 1 }, (_, i) => i + 1));
    expect(entries.slice(0, n).every((e) => e.basicReason === CPUID && e.guestRip === loop.cpuidRip && e.instructionLength === 2), why).toBe(true);
    expect(entries[n], why).toMatchObject({ lp: 0, reason: HLT, name: 'EXIT_REASON_HLT', entryFailure: false, qualification: 0n, guestRip: loop.hltRip, instructionLength: 1 });
    // The LP's instruction count: one loop iteration (the same number of instructions) between two CPUID exits.
    const deltas = entries.slice(1, n).map((e, i) => e.instructions - entries[i]!.instructions);
    expect(new Set(deltas), why).toEqual(new Set([deltas[0]]));
    expect(deltas[0], why).toBeGreaterThanOrEqual(3);
  });

  test('the ring keeps the last `capacity` exits; counts and indices still cover the whole run', () => {
    const n = 100;
    const { host, hltRip } = prepareCpuidLoop(n);
    const trace = traceExits(host, { capacity: 8 });
    host.kernel.cpu().vmlaunch();
    runGuests(host);
    expect(trace.total).toBe(n + 1);
    expect(trace.entries.map((e) => e.index)).toEqual([94, 95, 96, 97, 98, 99, 100, 101]);
    expect(trace.entries.at(-1)?.guestRip).toBe(hltRip);
    expect(trace.summary().map((s) => [s.name, s.count])).toEqual([['EXIT_REASON_CPUID', n], ['EXIT_REASON_HLT', 1]]);
  });

  test('format: the last exits as a table, then the exact counts per reason', () => {
    const { host } = prepareCpuidLoop(5);
    const trace = traceExits(host);
    host.kernel.cpu().vmlaunch();
    runGuests(host);
    const text = trace.format({ last: 2 });
    expect(text).toContain('VM exits: the last 2 of 6:');
    const rows = text.split('\n').filter((l) => /^\s+\d+\s+0\s/.test(l));
    expect(rows.map((l) => l.trim().split(/\s+/)[0])).toEqual(['5', '6']);
    expect(text).toMatch(/10 EXIT_REASON_CPUID\s+5\s+83\.3%/);
    expect(text).toMatch(/12 EXIT_REASON_HLT\s+1\s+16\.7%/);
    expect(traceExits([]).format()).toBe('VM exits: none.');
  });

  test('explain() shows the last exits of an attached trace, and nothing of them without one', () => {
    const { host } = prepareCpuidLoop(20);
    const trace = traceExits(host);
    host.kernel.cpu().vmlaunch();
    runGuests(host);
    expect(explain(host, 'why', trace)).toContain('VM exits: the last 8 of 21:');
    expect(explain(host, 'why', trace)).toMatch(/10 EXIT_REASON_CPUID\s+20\s+95\.2%/);
    expect(explain(host, 'why')).not.toContain('VM exits');
  });

  test('a VM-entry failure is an exit with bit 31; its instruction length is not reported (the field is not written)', () => {
    const loop = prepareCpuidLoop(1);
    const { host } = loop;
    const cpu = host.kernel.cpu();
    // The link pointer may not be the current-VMCS pointer: exit 33, qualification 4.
    // See SDM Vol. 3C, "Checks on Guest Non-Register State".
    write(host, cpu, 'VMCS_LINK_POINTER', cpu.vmptrst());
    const trace = traceExits(host);
    cpu.vmlaunch();
    const why = explain(host, trace.format());
    expect(trace.entries, why).toEqual([expect.objectContaining({
      reason: (EXIT_REASON.EXIT_REASON_INVALID_STATE | VMX_EXIT_REASONS_FAILED_VMENTRY) >>> 0,
      basicReason: EXIT_REASON.EXIT_REASON_INVALID_STATE,
      entryFailure: true,
      qualification: 4n,
      guestRip: loop.guest.rip,
      instructionLength: undefined,
    })]);
    expect(trace.format(), why).toContain('33 EXIT_REASON_INVALID_STATE (entry failed)');
  });

  test('recording changes nothing: the same run, the same CPU state, with or without a trace', () => {
    const traced = prepareCpuidLoop(10);
    const trace = traceExits(traced.host);
    traced.host.kernel.cpu().vmlaunch();
    const a = runGuests(traced.host);
    expect(trace.total).toBe(11);

    const plain = prepareCpuidLoop(10);
    plain.host.kernel.cpu().vmlaunch();
    const b = runGuests(plain.host);
    expect(a).toEqual(b);
    expect(traced.host.kernel.cpu().lp.snapshot()).toEqual(plain.host.kernel.cpu().lp.snapshot());
  });

  test('stop() ends recording; what was recorded stays', () => {
    const { host } = prepareCpuidLoop(3);
    const trace = traceExits(host);
    const cpu = host.kernel.cpu();
    cpu.vmlaunch();
    runGuests(host, 6); // mov, xor, cpuid: the first exit; the handler resumes
    const seen = trace.total;
    expect(seen).toBeGreaterThan(0);
    trace.stop();
    runGuests(host);
    expect(trace.total).toBe(seen);
    expect(trace.entries).toHaveLength(seen);
  });
});

// VMFUNC from a real guest, against SDM Vol. 3C, "VMFUNC—Invoke VM function" and "EPTP Switching": with "enable
// VM functions" = 0 it is #UD; a function not enabled, an EPTP-list index ≥ 512 or an invalid EPTP-list entry
// exits (reason 59); a valid entry becomes the EPT pointer without a VM exit.
import { describe, expect, it } from 'vitest';
import { buildIdentityEpt, enableControls, enableUnrestrictedGuest, read, runRecordedGuest, write, type Host } from '../../kernel/testing/reference-vm.ts';
import type { HostCpu } from '../../kernel/host-cpu.ts';
import { VMX_CONTROL as C } from '../controls.ts';
import { EXIT_REASON } from '../exit-reasons.ts';
import { POISON_32 } from './operand-testkit.ts';

const VMFUNC = BigInt(EXIT_REASON.EXIT_REASON_VMFUNC);
const MODEL = 'skylake-i5-6300u';

/** EPT on, VM functions on with EPTP switching; the EPTP list holds [current EPTP, 0 (invalid), another EPTP]. */
function eptpSwitching(host: Host, cpu: HostCpu): { other: bigint } {
  expect(enableUnrestrictedGuest(host, cpu)).toBe(true);
  expect(enableControls(host, cpu, { proc2: C.SECONDARY_EXEC_ENABLE_VMFUNC })).toBe(true);
  const k = host.kernel;
  const list = k.get_zeroed_page();
  const other = buildIdentityEpt(k);
  k.write64(list, read(cpu, 'EPT_POINTER'));
  k.write64(list + 16n, other);
  write(host, cpu, 'VM_FUNCTION_CONTROL', 1);
  write(host, cpu, 'EPTP_LIST_ADDRESS', k.virt_to_phys(list));
  return { other };
}

describe('VMFUNC', () => {
  it('EPTP switching to a valid entry loads the EPT pointer and goes on; an invalid entry exits', () => {
    let other = 0n;
    const run = runRecordedGuest({
      model: MODEL,
      source: 'bits 64\nxor eax, eax\nmov ecx, 2\nvmfunc\nmov ecx, 1\nat: vmfunc\nafter: cpuid',
      setup: (host, cpu) => { other = eptpSwitching(host, cpu).other; },
    });
    const e = run.exits[0]!;
    const at = (l: string) => BigInt(run.guest.labels.get(l)!);
    expect(e.reason, run.why()).toBe(VMFUNC);
    expect(e.guestRip, 'the second VMFUNC').toBe(at('at'));
    expect(e.instructionLength).toBe(at('after') - at('at'));
    expect(e.qualification).toBe(0n);
    expect(e.instructionInfo).toBe(BigInt(POISON_32));
    expect(read(run.host.kernel.cpu(), 'EPT_POINTER'), 'the first VMFUNC switched the EPTP').toBe(other);
  });

  for (const [what, regs] of [['a function that is not enabled (EAX = 1)', 'mov eax, 1\nxor ecx, ecx'], ['an index ≥ 512', 'xor eax, eax\nmov ecx, 512']] as const) {
    it(`${what} exits`, () => {
      const run = runRecordedGuest({ model: MODEL, source: `bits 64\n${regs}\nvmfunc\ncpuid`, setup: (host, cpu) => { eptpSwitching(host, cpu); } });
      expect(run.exits[0]?.reason, run.why()).toBe(VMFUNC);
    });
  }

  it('with "enable VM functions" = 0, VMFUNC is #UD (no guest IDT: a triple fault)', () => {
    const run = runRecordedGuest({ model: MODEL, source: 'bits 64\nxor eax, eax\nxor ecx, ecx\nvmfunc\ncpuid' });
    expect(run.exits[0]?.reason, run.why()).toBe(BigInt(EXIT_REASON.EXIT_REASON_TRIPLE_FAULT));
  });
});

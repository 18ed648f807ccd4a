// A guest that starts its application processors with INIT-SIPI-SIPI, one vCPU per host CPU, each launched from
// its own CPU. The BSP vCPU's WRMSRs to the x2APIC ICR exit (no MSR bitmaps); the handler forwards INIT and
// start-up IPIs through the host's local APIC to the target's CPU. There the INIT interrupts the halted AP vCPU
// (exit 3) and the handler puts it in wait-for-SIPI; the first SIPI exits (4) with the vector, and the handler
// loads the AP's real-mode start state; the second SIPI finds the AP running and is ignored. Real mode under EPT
// and "unrestricted guest" all the way. See SDM Vol. 3C, "Other Causes of VM Exits" (INIT signals, SIPIs),
// "Guest Non-Register State" and "Unrestricted Guests", and SDM Vol. 3A, "MP Initialization Protocol Algorithm".
import { describe, expect, it } from 'vitest';
import { CPU_MODELS, DEFAULT_CPU_MODEL } from '../../machine/cpu-model.ts';
import type { HostCpu } from '../../kernel/host-cpu.ts';
import { bootHost, explain, read, runGuests, write, type Host } from '../../kernel/testing/reference-vm.ts';
import {
  ACTIVITY, ICR, MSR_X2APIC_ICR, SMP_GUEST_LAYOUT, allocGuestMemory, canRunMpGuest, launchMpVcpus, loadSmpPrograms, startupState,
  writeRealModeGuestState,
} from '../../kernel/testing/smp-guest.ts';
import { EXIT_REASON } from '../exit-reasons.ts';

const { EXIT_REASON_INIT_SIGNAL: INIT, EXIT_REASON_SIPI_SIGNAL: SIPI, EXIT_REASON_MSR_WRITE: WRMSR, EXIT_REASON_HLT: HLT } = EXIT_REASON;

/** What the handler saw at one VM exit of one vCPU. */
interface Exit {
  readonly reason: number;
  readonly qualification: bigint;
  /** GUEST_ACTIVITY_STATE as the exit saved it. */
  readonly activity: number;
  readonly csSelector: number;
  readonly csBase: bigint;
  readonly rip: bigint;
}

/** An IPI the handler forwarded, and the state of the target CPU when it did. */
interface Forwarded {
  readonly from: number;
  readonly to: number;
  readonly mode: 'init' | 'startup';
  readonly vector: number;
  readonly target: string;
}

interface SmpRun {
  readonly host: Host;
  readonly exits: Exit[][];
  readonly forwarded: Forwarded[];
  readonly apHalt: number;
  readonly counter: number;
  why(): string;
}

/** The LP's VMX operation and activity, as the forwarded-IPI log shows it. */
function describeCpu(cpu: HostCpu): string {
  return `${cpu.inVmxNonRoot() ? 'non-root' : 'root'} ${cpu.lp.activity}`;
}

/** Boot `cpus` CPUs, launch one real-mode vCPU on each (APs halted, the BSP at its program) and run to the end. */
function runSmpGuest(opts: { cpus: number; seed?: number; model?: string }): SmpRun {
  const host = bootHost({ cpus: opts.cpus, seed: opts.seed ?? 1, model: opts.model ?? DEFAULT_CPU_MODEL.name });
  const k = host.kernel;
  const apCount = opts.cpus - 1;
  const mem = allocGuestMemory(k);
  const { apLabels } = loadSmpPrograms(k, mem, apCount);
  const exits: Exit[][] = Array.from({ length: opts.cpus }, () => []);
  const forwarded: Forwarded[] = [];
  const cpus = k.allCpus();

  // The hypervisor: one exit handler for every vCPU (HOST_RIP is the same); c.id says which one exited.
  const rip = k.hostEntry('smp_guest_exit', (_k, c) => {
    const reason = Number(read(c, 'VM_EXIT_REASON') & 0xffffn);
    const qualification = read(c, 'EXIT_QUALIFICATION');
    exits[c.id]!.push({
      reason, qualification, activity: Number(read(c, 'GUEST_ACTIVITY_STATE')),
      csSelector: Number(read(c, 'GUEST_CS_SELECTOR')), csBase: read(c, 'GUEST_CS_BASE'), rip: read(c, 'GUEST_RIP'),
    });
    switch (reason) {
      case WRMSR: {
        if ((c.readGpr('rcx') & 0xffffffffn) !== BigInt(MSR_X2APIC_ICR)) return; // not expected: stop the vCPU
        const low = Number(c.readGpr('rax') & 0xffffffffn);
        const to = Number(c.readGpr('rdx') & 0xffffffffn);
        const dm = (low >> ICR.DM_SHIFT) & 7;
        if ((dm !== ICR.DM_INIT && dm !== ICR.DM_STARTUP) || to >= cpus.length) return;
        // vCPU n runs on host CPU n, whose APIC ID is n: the guest's destination is the host's.
        forwarded.push({ from: c.id, to, mode: dm === ICR.DM_INIT ? 'init' : 'startup', vector: low & 0xff, target: describeCpu(cpus[to]!) });
        k.apic_icr_write(ICR.LEVEL_ASSERT | (dm << ICR.DM_SHIFT) | (low & 0xff), to);
        write(host, c, 'GUEST_RIP', read(c, 'GUEST_RIP') + read(c, 'VM_EXIT_INSTRUCTION_LEN'));
        c.vmresume();
        return;
      }
      case INIT:
        // INIT in VMX non-root operation only exits; the hypervisor gives the vCPU INIT's effect: wait for SIPI.
        write(host, c, 'GUEST_ACTIVITY_STATE', ACTIVITY.WAIT_FOR_SIPI);
        c.vmresume();
        return;
      case SIPI:
        writeRealModeGuestState(host, c, startupState(Number(qualification & 0xffn)));
        c.vmresume();
        return;
      default:
        return; // HLT (and anything unexpected): the vCPU stops, its CPU idles
    }
  });

  // One vCPU per CPU, each VMCS filled and launched on its own CPU (host state is per CPU). APs first: they sit in
  // the HLT activity state until the BSP's INIT reaches them.
  launchMpVcpus(host, mem, rip);
  const r = runGuests(host, 2_000_000);
  const counter = k.read16(mem.va + BigInt(SMP_GUEST_LAYOUT.counter));
  const why = (): string => explain(host, `run ended: ${r.reason}; exits per CPU: ${JSON.stringify(exits.map((e) => e.map((x) => x.reason)))}\nforwarded: ${JSON.stringify(forwarded)}`);
  expect(r.reason, why()).toBe('idle');
  return { host, exits, forwarded, apHalt: apLabels.get('ap_halt')!, counter, why };
}

/** Models whose VMX can run this guest: EPT, unrestricted guest, the HLT and wait-for-SIPI activity states. */
const capable = CPU_MODELS.filter(canRunMpGuest).map((m) => m.name);

describe('a guest starts its APs with INIT-SIPI-SIPI', () => {
  it('the default model can run it', () => {
    expect(capable).toContain(DEFAULT_CPU_MODEL.name);
  });

  it.each([2, 4])('%i CPUs: every AP runs, with exits 3, 4, 12 on each AP and WRMSRs then HLT on the BSP', (n) => {
    const t = runSmpGuest({ cpus: n });
    const aps = n - 1;
    expect(t.counter, `every AP checked in: ${t.why()}`).toBe(aps);
    const tickets = Array.from({ length: aps }, (_, i) => String(i + 1)).join('');
    expect(t.host.console.text(), 'each AP wrote its ticket, then the BSP its B').toBe(`${tickets}B`);
    expect(t.exits[0]!.map((e) => e.reason), t.why()).toEqual([...Array<number>(3 * aps).fill(WRMSR), HLT]);
    for (const e of t.exits[0]!.filter((x) => x.reason === WRMSR)) {
      expect(e.qualification, 'a WRMSR exit has no qualification (cleared)').toBe(0n);
    }
    for (let ap = 1; ap < n; ap++) {
      const ex = t.exits[ap]!;
      expect(ex.map((e) => e.reason), `CPU ${ap}: ${t.why()}`).toEqual([INIT, SIPI, HLT]);
      const [init, sipi, hlt] = ex as [Exit, Exit, Exit];
      expect(init.qualification, 'INIT exits clear the qualification').toBe(0n);
      expect(init.activity, 'the INIT found the vCPU halted, and the exit saved that state').toBe(ACTIVITY.HLT);
      expect(sipi.qualification, 'the SIPI exit\'s qualification is the vector').toBe(BigInt(SMP_GUEST_LAYOUT.sipiVector));
      expect(sipi.activity, 'the SIPI found the vCPU waiting for it').toBe(ACTIVITY.WAIT_FOR_SIPI);
      // The AP ran from the state the handler loaded: CS 0800H, base 8000H, and stopped at its HLT.
      expect({ sel: hlt.csSelector, base: hlt.csBase, rip: hlt.rip, activity: hlt.activity }).toEqual({
        sel: SMP_GUEST_LAYOUT.sipiVector << 8, base: BigInt(SMP_GUEST_LAYOUT.sipiVector << 12), rip: BigInt(t.apHalt), activity: ACTIVITY.ACTIVE,
      });
    }
  });

  // The active (and HLT) state blocks SIPIs in VMX non-root operation: they are discarded, no VM exit. See SDM
  // Vol. 3C, "Activity State" (in "Special Features of VM Entry"). An INIT found the AP halted; it exits directly, so
  // the saved activity state is still HLT. See SDM Vol. 3C, "Saving Non-Register State".
  it('the second SIPI arrives while the AP runs and is ignored: no exit, the AP goes on', () => {
    const t = runSmpGuest({ cpus: 4 });
    const expected: Forwarded[] = [];
    for (let ap = 1; ap < 4; ap++) {
      const v = SMP_GUEST_LAYOUT.sipiVector;
      expected.push(
        { from: 0, to: ap, mode: 'init', vector: 0, target: 'non-root hlt' },
        { from: 0, to: ap, mode: 'startup', vector: v, target: 'non-root wait-for-sipi' },
        { from: 0, to: ap, mode: 'startup', vector: v, target: 'non-root active' },
      );
    }
    expect(t.forwarded, t.why()).toEqual(expected);
    // Still exactly one SIPI exit per AP (the test above checks the whole sequence).
    for (let ap = 1; ap < 4; ap++) expect(t.exits[ap]!.filter((e) => e.reason === SIPI), t.why()).toHaveLength(1);
  });

  it('is deterministic: the same exits, IPIs and output on several seeds', () => {
    const runs = [1, 2, 7].map((seed) => runSmpGuest({ cpus: 4, seed }));
    const summary = (t: SmpRun) => ({ exits: t.exits, forwarded: t.forwarded, console: t.host.console.text() });
    for (const t of runs.slice(1)) expect(summary(t)).toEqual(summary(runs[0]!));
  });

  it.each(capable.filter((m) => m !== DEFAULT_CPU_MODEL.name))('%s: 2 CPUs', (model) => {
    const t = runSmpGuest({ cpus: 2, model });
    expect(t.exits.map((e) => e.map((x) => x.reason)), t.why()).toEqual([[WRMSR, WRMSR, WRMSR, HLT], [INIT, SIPI, HLT]]);
    expect(t.host.console.text()).toBe('1B');
  });
});

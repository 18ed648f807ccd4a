// VPIDs end to end: a guest run by the reference VM reads one linear address in a loop with a CPUID (an exit) after
// each read, while the hypervisor changes the guest PTE behind it. With "enable VPID" the guest keeps using the
// translation it cached until INVVPID; without, the next VM entry makes the change visible. The host's own
// translations are tagged VPID 0000H: they survive VM entries and exits with VPID and are never the guest's. See SDM
// Vol. 3C, "Virtual-Processor Identifiers (VPIDs)", "VMX Transitions" (in "Caching Translation Information") and
// "INVVPID—Invalidate Translations Based on VPID".
import { describe, expect, it } from 'vitest';
import { bootHost, buildIdentityEpt, enableControls, enterVmx, explain, read, runGuests, write, writeReferenceVmcs, type Host } from '../kernel/testing/reference-vm.ts';
import type { HostCpu } from '../kernel/host-cpu.ts';
import type { Kernel } from '../kernel/kernel.ts';
import type { LogicalProcessor } from '../machine/lp.ts';
import { Machine } from '../machine/machine.ts';
import { ACCESS_READ } from '../machine/paging.ts';
import { PERM_ALL, TLB_MASK } from '../machine/tlb.ts';
import { CR0 } from '../x86/control-registers.ts';
import { VMX_CONTROL } from './controls.ts';
import { VMXERR } from './errors.ts';
import {
  INVVPID_ALL_CONTEXT, INVVPID_INDIVIDUAL_ADDRESS, INVVPID_SINGLE_CONTEXT, INVVPID_SINGLE_CONTEXT_RETAINING_GLOBALS,
} from './instructions/invept-invvpid.ts';
import { enterGuestMappings, leaveGuestMappings, switchGuestMappings } from './vpid.ts';

const SKYLAKE = 'skylake-i5-6300u';
const PRESENT = 1n, PRESENT_RW = 3n;
const EXIT_REASON_EXCEPTION_NMI = 0n;
/** VM-exit interruption information of a #PF: valid, error code valid, hardware exception (3), vector 14. */
const PF_HARDWARE_EXCEPTION_WITH_ERROR_CODE = (1n << 31n) | (1n << 11n) | (3n << 8n) | 14n;
const EXIT_REASON_CPUID = 10n;
const ZF = 1n << 6n;
const GUEST_VPID = 1;
/** Guest linear address the test maps (PML4 slot 100: unused by the reference guest and by the host kernel). */
const L_BASE = 100n << 39n;
const MARK_OLD = 0x01d0_01d0n, MARK_NEW = 0x0e30_0e30n;

/** Map the 4-KByte page at linear `la` → `pa` in the 4-level tables at `pml4` (missing tables made); returns the PTE's address. */
function mapPage(k: Kernel, pml4: bigint, la: bigint, pa: bigint): bigint {
  let table = pml4;
  for (const shift of [39n, 30n, 21n]) {
    const slot = k.phys_to_virt(table) + 8n * ((la >> shift) & 511n);
    let e = k.read64(slot);
    if ((e & 1n) === 0n) {
      e = k.virt_to_phys(k.get_zeroed_page()) | PRESENT_RW;
      k.write64(slot, e);
    }
    table = e & 0x000f_ffff_ffff_f000n;
  }
  const pte = k.phys_to_virt(table) + 8n * ((la >> 12n) & 511n);
  k.write64(pte, pa | PRESENT_RW);
  return pte;
}

/** A zeroed page holding `mark` at offset 0; its physical address. */
function markedPage(k: Kernel, mark: bigint): bigint {
  const va = k.get_zeroed_page();
  k.write64(va, mark);
  return k.virt_to_phys(va);
}

interface VpidRun {
  readonly host: Host;
  /** Guest RAX (the value it last read at `linear`) at each exit. */
  readonly seen: bigint[];
  /** The exits other than CPUID (reason, VM-exit interruption information); the guest stays stopped after one. */
  readonly others: { reason: bigint; intrInfo: bigint }[];
  why(): string;
}

interface ExitStep {
  readonly n: number; readonly cpu: HostCpu; readonly host: Host;
  /** Make the guest PTE of `linear` point at the page marked MARK_NEW. */
  remap(): void;
  /** Make the guest PTE of `linear` read-only (same page). */
  readOnly(): void;
  readonly linear: bigint;
}

/**
 * The guest reads [linear] then exits on CPUID, forever; `onExit` runs at each exit in the host (VMX root operation)
 * and says whether to resume. `vpid` null: "enable VPID" = 0.
 */
function runReader(opts: { vpid: number | null; ept?: boolean; source?: string; onExit: (s: ExitStep) => 'resume' | 'stop'; before?: (host: Host, cpu: HostCpu) => void }): VpidRun {
  const host = bootHost({ model: SKYLAKE });
  const k = host.kernel, cpu = k.cpu();
  enterVmx(host, cpu);
  const oldPage = markedPage(k, MARK_OLD), newPage = markedPage(k, MARK_NEW);
  const seen: bigint[] = [];
  const others: { reason: bigint; intrInfo: bigint }[] = [];
  let pte = 0n, linear = 0n;
  const rip = k.hostEntry('vpid_exit_handler', (_k, c) => {
    if (read(c, 'VM_EXIT_REASON') !== EXIT_REASON_CPUID) {
      others.push({ reason: read(c, 'VM_EXIT_REASON'), intrInfo: read(c, 'VM_EXIT_INTR_INFO') });
      return;
    }
    seen.push(c.readGpr('rax'));
    const next = opts.onExit({ n: seen.length, cpu: c, host, linear, remap: () => k.write64(pte, newPage | PRESENT_RW), readOnly: () => k.write64(pte, oldPage | PRESENT) });
    if (next === 'stop') return;
    write(host, c, 'GUEST_RIP', read(c, 'GUEST_RIP') + read(c, 'VM_EXIT_INSTRUCTION_LEN'));
    c.vmresume();
  });
  // RBX (not in the VMCS: the host's value at VMLAUNCH) holds the address.
  const g = writeReferenceVmcs(host, cpu, rip, opts.source ?? 'bits 64\nagain: mov rax, [rbx]\n cpuid\n jmp again');
  // The page's TLB slot (the TLB is direct-mapped) well away from the guest's code, stack and tables.
  linear = L_BASE + (((g.pa >> 12n) + 512n) & 1023n) * 4096n;
  pte = mapPage(k, g.cr3, linear, oldPage);
  cpu.writeGpr('rbx', linear);
  // The guest pages under the host's paging mode (CR0.WP, CR4.PGE, SMEP, …): a mode change alone may invalidate, and
  // then what VPID does would not show.
  write(host, cpu, 'GUEST_CR0', cpu.readCr0());
  write(host, cpu, 'GUEST_CR4', cpu.readCr4());
  const proc2 = (opts.vpid !== null ? VMX_CONTROL.SECONDARY_EXEC_ENABLE_VPID : 0) | (opts.ept === true ? VMX_CONTROL.SECONDARY_EXEC_ENABLE_EPT : 0);
  if (proc2 !== 0 && !enableControls(host, cpu, { proc2 })) throw new Error(`${SKYLAKE} cannot enable VPID/EPT`);
  if (opts.vpid !== null) write(host, cpu, 'VIRTUAL_PROCESSOR_ID', opts.vpid);
  if (opts.ept === true) write(host, cpu, 'EPT_POINTER', buildIdentityEpt(k));
  opts.before?.(host, cpu);
  cpu.vmlaunch();
  runGuests(host, 200_000);
  return { host, seen, others, why: () => explain(host, `guest saw: ${seen.map((v) => v.toString(16)).join(', ')}; other exits: ${others.map((o) => o.reason).join(', ')}`) };
}

/** Remap at the first exit; at the second run `invalidate`; stop at the third. */
function remapThenInvalidate(invalidate: (s: ExitStep) => void) {
  return (s: ExitStep): 'resume' | 'stop' => {
    if (s.n === 1) s.remap();
    if (s.n === 2) invalidate(s);
    return s.n >= 3 ? 'stop' : 'resume';
  };
}

describe('linear mappings and VM transitions', () => {
  for (const ept of [false, true]) {
    const what = ept ? 'combined mappings (EPT)' : 'linear mappings';
    it(`${what}, VPID enabled: a changed guest PTE stays invisible across VM exits and entries until INVVPID single-context`, () => {
      const run = runReader({ vpid: GUEST_VPID, ept, onExit: remapThenInvalidate((s) => s.cpu.invvpid(BigInt(INVVPID_SINGLE_CONTEXT), GUEST_VPID)) });
      expect(run.seen, run.why()).toEqual([MARK_OLD, MARK_OLD, MARK_NEW]);
    });
    it(`${what}, VPID disabled: VM entry invalidates VPID 0000H, the change is seen at the next entry`, () => {
      const run = runReader({ vpid: null, ept, onExit: remapThenInvalidate(() => undefined) });
      expect(run.seen, run.why()).toEqual([MARK_OLD, MARK_NEW, MARK_NEW]);
    });
  }

  it('a different VPID in the VMCS at the next entry is a different context: the change is seen there', () => {
    const run = runReader({
      vpid: GUEST_VPID,
      onExit: (s) => {
        if (s.n === 1) s.remap();
        if (s.n === 2) write(s.host, s.cpu, 'VIRTUAL_PROCESSOR_ID', GUEST_VPID + 1);
        return s.n >= 3 ? 'stop' : 'resume';
      },
    });
    expect(run.seen, run.why()).toEqual([MARK_OLD, MARK_OLD, MARK_NEW]);
  });

  it("the host's translations are tagged VPID 0000H: never the guest's, and they survive VM entries and exits with VPID", () => {
    const hostView: { sameAddress: number[]; survivor: number[] } = { sameAddress: [], survivor: [] };
    let hostOwn = 0n, hostMoved = 0n, survivorLa = 0n, survivorPte = 0n;
    const onExit = (s: ExitStep): 'resume' | 'stop' => {
      const lp = s.cpu.lp;
      if (s.n === 1) {
        // The host maps the guest's linear address to a page of its own, and a second address it keeps using.
        const k = s.host.kernel, cr3 = s.cpu.readCr3() & 0x000f_ffff_ffff_f000n;
        hostOwn = markedPage(k, 0x4057n);
        hostMoved = markedPage(k, 0x4058n);
        mapPage(k, cr3, s.linear, hostOwn);
        survivorLa = s.linear + 4096n * 7n;
        survivorPte = mapPage(k, cr3, survivorLa, hostOwn);
      }
      hostView.sameAddress.push(lp.translate(Number(s.linear), ACCESS_READ));
      hostView.survivor.push(lp.translate(Number(survivorLa), ACCESS_READ));
      // Changed without INVLPG: only an invalidation of VPID 0000H makes the host see it.
      if (s.n === 1) s.host.kernel.write64(survivorPte, hostMoved | PRESENT_RW);
      return s.n >= 2 ? 'stop' : 'resume';
    };
    const withVpid = runReader({ vpid: GUEST_VPID, onExit });
    // The guest read its own page at both exits, the host its own at the same linear address.
    expect(withVpid.seen, withVpid.why()).toEqual([MARK_OLD, MARK_OLD]);
    expect(hostView.sameAddress).toEqual([Number(hostOwn), Number(hostOwn)]);
    // VM entry and VM exit with VPID invalidate nothing: the host still has the old translation.
    expect(hostView.survivor).toEqual([Number(hostOwn), Number(hostOwn)]);

    hostView.sameAddress = [];
    hostView.survivor = [];
    const withoutVpid = runReader({ vpid: null, onExit });
    expect(withoutVpid.seen, withoutVpid.why()).toEqual([MARK_OLD, MARK_OLD]);
    expect(hostView.sameAddress).toEqual([Number(hostOwn), Number(hostOwn)]);
    // Without VPID the VM exit invalidated VPID 0000H: the host sees its new PTE.
    expect(hostView.survivor).toEqual([Number(hostOwn), Number(hostMoved)]);
  });
});

describe("the guest's own invalidations", () => {
  it.each([
    ['INVLPG', 'bits 64\nagain: invlpg [rbx]\n mov rax, [rbx]\n cpuid\n jmp again'],
    ['MOV to CR3', 'bits 64\nagain: mov rcx, cr3\n mov cr3, rcx\n mov rax, [rbx]\n cpuid\n jmp again'],
  ])('%s in the guest invalidates its own context (VPID 1), not the host\'s (VPID 0000H)', (_n, source) => {
    let hostOwn = 0n, hostMoved = 0n, survivorLa = 0n, survivorPte = 0n;
    const hostSaw: number[] = [];
    const run = runReader({
      vpid: GUEST_VPID, source,
      onExit: (s) => {
        if (s.n === 1) {
          const k = s.host.kernel;
          hostOwn = markedPage(k, 0x4057n);
          hostMoved = markedPage(k, 0x4058n);
          survivorLa = s.linear + 4096n * 7n;
          survivorPte = mapPage(k, s.cpu.readCr3() & 0x000f_ffff_ffff_f000n, survivorLa, hostOwn);
        }
        hostSaw.push(s.cpu.lp.translate(Number(survivorLa), ACCESS_READ));
        if (s.n === 1) {
          s.remap();
          s.host.kernel.write64(survivorPte, hostMoved | PRESENT_RW); // no INVLPG in the host
        }
        return s.n >= 2 ? 'stop' : 'resume';
      },
    });
    expect(run.seen, run.why()).toEqual([MARK_OLD, MARK_NEW]);
    expect(hostSaw).toEqual([Number(hostOwn), Number(hostOwn)]);
  });
});

describe('cached permissions and the paging mode', () => {
  it('with VPID, a guest write allowed under CR0.WP = 0 faults once the VMCS sets CR0.WP (permissions follow the current mode)', () => {
    const run = runReader({
      vpid: GUEST_VPID,
      source: 'bits 64\nagain: mov byte [rbx], 1\n cpuid\n jmp again',
      before: (host, cpu) => {
        // The page is read-only for the guest; a supervisor write to it succeeds only while CR0.WP = 0.
        write(host, cpu, 'GUEST_CR0', read(cpu, 'GUEST_CR0') & ~BigInt(CR0.WP));
        write(host, cpu, 'EXCEPTION_BITMAP', 1n << 14n);
      },
      onExit: (s) => {
        if (s.n === 1) {
          s.readOnly();
          s.cpu.invvpid(BigInt(INVVPID_SINGLE_CONTEXT), GUEST_VPID); // the PTE change is made visible on purpose
        }
        if (s.n === 2) write(s.host, s.cpu, 'GUEST_CR0', read(s.cpu, 'GUEST_CR0') | BigInt(CR0.WP)); // no INVVPID
        return 'resume';
      },
    });
    // Two writes under WP = 0 (the second through the cached entry), then #PF(W/R = 1, P = 1) under WP = 1.
    expect(run.seen.length, run.why()).toBe(2);
    expect(run.others).toEqual([{ reason: EXIT_REASON_EXCEPTION_NMI, intrInfo: PF_HARDWARE_EXCEPTION_WITH_ERROR_CODE }]);
  });
});

describe('the contexts of one VPID', () => {
  // The TLB of a bare LP, driven through ./vpid.ts as VM entry, EPTP switching and the guest's MOV CR3 drive it.
  const cached = (lp: LogicalProcessor, vpn: number): boolean => {
    const i = vpn & TLB_MASK;
    return lp.tlb.vpn[i] === vpn && lp.tlb.stamp[i] === lp.tlb.current;
  };
  const fill = (lp: LogicalProcessor, vpn: number): void => { lp.tlb.fill(vpn, vpn * 4096, PERM_ALL, null, null); };
  it("the guest's MOV CR3 under one EP4TA invalidates its VPID's mappings for every EP4TA, not another VPID's", () => {
    const lp = new Machine().cpus[0]!;
    const EP4TA_A = 0x100, EP4TA_B = 0x200;
    enterGuestMappings(lp, 2, EP4TA_A);
    fill(lp, 40); // VPID 2, another guest
    leaveGuestMappings(lp);
    enterGuestMappings(lp, 1, EP4TA_A);
    fill(lp, 41);
    switchGuestMappings(lp, 1, EP4TA_B); // EPTP switching
    fill(lp, 42);
    lp.tlb.flushAll(); // what MOV to CR3 does
    switchGuestMappings(lp, 1, EP4TA_A);
    expect(cached(lp, 41)).toBe(false);
    leaveGuestMappings(lp);
    enterGuestMappings(lp, 2, EP4TA_A);
    expect(cached(lp, 40)).toBe(true);
  });
});

describe('INVVPID on the real processor', () => {
  const invvpid = (type: number, vpid: number, linear = 0n) => (s: ExitStep) => {
    s.cpu.invvpid(BigInt(type), vpid, linear === -1n ? s.linear : linear);
    expect(s.cpu.rflags() & ZF, explain(s.host)).toBe(0n);
  };
  it.each([
    ['individual-address (type 0) of the page', invvpid(INVVPID_INDIVIDUAL_ADDRESS, GUEST_VPID, -1n)],
    ['all-context (type 2)', invvpid(INVVPID_ALL_CONTEXT, 0)],
    ['single-context retaining globals (type 3)', invvpid(INVVPID_SINGLE_CONTEXT_RETAINING_GLOBALS, GUEST_VPID)],
  ])('%s makes the new PTE visible', (_n, invalidate) => {
    const run = runReader({ vpid: GUEST_VPID, onExit: remapThenInvalidate(invalidate) });
    expect(run.seen, run.why()).toEqual([MARK_OLD, MARK_OLD, MARK_NEW]);
  });

  it.each([
    ['single-context of another VPID', invvpid(INVVPID_SINGLE_CONTEXT, GUEST_VPID + 1)],
    ['individual-address of the page, another VPID', invvpid(INVVPID_INDIVIDUAL_ADDRESS, GUEST_VPID + 1, -1n)],
  ])('%s leaves the old translation in use', (_n, invalidate) => {
    const run = runReader({ vpid: GUEST_VPID, onExit: remapThenInvalidate(invalidate) });
    expect(run.seen, run.why()).toEqual([MARK_OLD, MARK_OLD, MARK_OLD]);
  });

  it.each([
    ['type 4 (none such)', 4, GUEST_VPID, 0n],
    ['single-context of VPID 0', INVVPID_SINGLE_CONTEXT, 0, 0n],
    ['single-context retaining globals of VPID 0', INVVPID_SINGLE_CONTEXT_RETAINING_GLOBALS, 0, 0n],
    ['individual-address of VPID 0', INVVPID_INDIVIDUAL_ADDRESS, 0, 0x1000n],
    ['individual-address of a non-canonical address', INVVPID_INDIVIDUAL_ADDRESS, GUEST_VPID, 0x8000_0000_0000n],
  ])('%s: VMfailValid(28), nothing invalidated', (_n, type, vpid, linear) => {
    const errors: bigint[] = [];
    const run = runReader({
      vpid: GUEST_VPID,
      onExit: remapThenInvalidate((s) => {
        s.cpu.invvpid(BigInt(type), vpid, linear);
        expect(s.cpu.rflags() & ZF).toBe(ZF);
        errors.push(read(s.cpu, 'VM_INSTRUCTION_ERROR'));
      }),
    });
    expect(errors).toEqual([BigInt(VMXERR.VMXERR_INVALID_OPERAND_TO_INVEPT_INVVPID)]);
    expect(run.seen, run.why()).toEqual([MARK_OLD, MARK_OLD, MARK_OLD]);
  });
});

// Test support for chapter 7 (imported by the tests only, never by learner code):
//  - the runs every test makes: each CPU model on each firmware board that fits it (the pc board on every model;
//    the Surface Book 3's recorded MTRRs only where MAXPHYADDR is 39 and there are enough variable pairs);
//  - the kit's reading of the MTRRs (src/machine/memtype/read-mtrrs.ts) turned into the chapter's map, so the tests
//    of 7.2 and 7.4 never depend on your 7.1 (the parts of 7.3 and 7.5 call your readMtrrs, as a hypervisor would);
//  - MTRR register banks for processors no model has (FIX = 0, few variable pairs, no SMRR), with an RDMSR that
//    raises #GP for an MSR the bank does not have, as the processor does;
//  - generated MTRR layouts (fast-check) and the kit's answers: mtrrType, mtrrRuns, explainMemoryType.
//  - runSerial (exercise 7.5): one of your parts on the kit's hypervisor, on either board, with a guest that prints
//    through the MMIO UART; the bytes the UART has received are recorded at every VM exit.
// Only types come from your code here (erased at run time).
import fc from 'fast-check';
import type { MtrrMap, VariableRange } from '#impl/07-mtrr/read-mtrrs';
import type { Vcpu, VmmPart } from '#impl/05-exits/hypervisor';
import type { HostCpu } from '../../src/kernel/host-cpu.ts';
import { bootHost, enterVmx, explain, read, runGuests, write, writeReferenceVmcs, type Host, type ReferenceGuest } from '../../src/kernel/testing/reference-vm.ts';
import { MMIO_UART_BASE } from '../../src/machine/devices/mmio-uart.ts';
import { explainDevicePage } from '../../src/machine/memtype/explain-device.ts';
import { VMX_CONTROL } from '../../src/vmx/controls.ts';
import { eptFacts } from '../06-ept/support.ts';
import { CPU_MODELS } from '../../src/machine/cpu-model.ts';
import { explainMemoryType, explainPageMtrrTypes } from '../../src/machine/memtype/explain.ts';
import { BOARDS, type BoardName } from '../../src/machine/memtype/firmware.ts';
import { MtrrRegisters } from '../../src/machine/memtype/mtrr-registers.ts';
import { defaultTypeOf, fixedFieldRange, fixedFieldType, hasFixedRanges, hasSmrr, vcntOf, type MtrrPair, type MtrrState } from '../../src/machine/memtype/mtrr-state.ts';
import { mtrrCapOf } from '../../src/machine/memtype/mtrrcap.ts';
import { mtrrRuns, mtrrType, type MtrrResolvedType } from '../../src/machine/memtype/mtrr-type.ts';
import { readMtrrState } from '../../src/machine/memtype/read-mtrrs.ts';
import { rangePair } from '../../src/machine/memtype/test-layouts.ts';
import { hex } from '../../src/util/hex.ts';
import { MEMORY_TYPE, memoryTypeName, type MtrrMemoryType } from '../../src/x86/memory-types.ts';
import { FIXED_RANGE_MTRRS, MTRRCAP, MTRR_DEF_TYPE, MTRR_PHYS, physAddressBits } from '../../src/x86/mtrr.ts';
import { MSR_IA32_MTRRCAP } from '../../src/x86/msr.ts';

export { bootHost, CPU_MODELS, explainDevicePage, explainMemoryType, explainPageMtrrTypes, hex, mtrrRuns, mtrrType, type Host, type MtrrState };
export { runPart } from '../05-exits/support.ts';
export { EPT_MODELS, eptFacts, eptpRefusal, inspect, show } from '../06-ept/support.ts';

export const BOARD_NAMES = Object.keys(BOARDS) as BoardName[];

/** Can `board`'s firmware layout be programmed on `model` (the surface-book-3 masks are 39-bit, and it needs 7 pairs)? */
export function boardFits(model: string, board: BoardName): boolean {
  const m = CPU_MODELS.find((x) => x.name === model)!;
  try {
    BOARDS[board].layout(m.maxPhysAddr, vcntOf(mtrrCapOf(m)));
    return true;
  } catch {
    return false;
  }
}

/** Every (model, board) that fits, among `models` (default: every model). */
export function boardRuns(models: readonly string[] = CPU_MODELS.map((m) => m.name)): [string, BoardName][] {
  return models.flatMap((model) => BOARD_NAMES.filter((b) => boardFits(model, b)).map((b): [string, BoardName] => [model, b]));
}

/** The MTRRs of LP 0 as the kit reads them (every MSR IA32_MTRRCAP announces). */
export function kitState(host: Host): MtrrState {
  const s = readMtrrState(host.machine.cpus[0]!);
  if (s === null) throw new Error(`kit: ${host.model.name} has no MTRRs`);
  return s;
}

/** The kit's decoding of an MTRR state into the chapter's map (independent of your 7.1). */
export function kitMap(s: MtrrState): MtrrMap {
  const bits = physAddressBits(s.maxPhysAddr);
  const pair = (p: MtrrPair, addressBits: bigint): VariableRange => ({
    base: p.base & addressBits, mask: p.mask & addressBits, type: Number(p.base & MTRR_PHYS.TYPE_MASK), valid: (p.mask & MTRR_PHYS.VALID) !== 0n,
  });
  const fixed = hasFixedRanges(s.cap)
    ? FIXED_RANGE_MTRRS.flatMap((_, index) => Array.from({ length: 8 }, (_x, field) => {
      const r = fixedFieldRange(index, field);
      return { base: r.base, size: r.end - r.base, type: fixedFieldType(s.fixed[index]!, field) };
    }))
    : [];
  return {
    maxPhysAddr: s.maxPhysAddr,
    vcnt: vcntOf(s.cap),
    fixedSupported: hasFixedRanges(s.cap),
    wcSupported: (s.cap & MTRRCAP.WC) !== 0n,
    smrrSupported: hasSmrr(s.cap),
    enabled: (s.defType & MTRR_DEF_TYPE.E) !== 0n,
    fixedEnabled: (s.defType & MTRR_DEF_TYPE.FE) !== 0n,
    defaultType: defaultTypeOf(s),
    fixed,
    variable: s.variable.map((p) => pair(p, bits)),
    smrr: s.smrr === null ? null : pair(s.smrr, 0xfffff000n),
  };
}

/** "WB", "UC", …, or "undefined". */
export function typeName(t: number | 'undefined'): string {
  return t === 'undefined' ? 'undefined' : memoryTypeName(t);
}

// ---------------------------------------------------------------------------------------------------------------
// Register banks no CPU model has
// ---------------------------------------------------------------------------------------------------------------

export interface BankSpec {
  readonly vcnt: number;
  readonly fix: boolean;
  readonly smrr: boolean;
  readonly maxPhysAddr: number;
  /** IA32_MTRR_DEF_TYPE, the 11 fixed-range values, the variable pairs (PHYSBASE, PHYSMASK), the SMRR pair. */
  readonly defType: bigint;
  readonly fixed?: readonly bigint[];
  readonly variable?: readonly MtrrPair[];
  readonly smrrPair?: MtrrPair;
}

export interface Bank {
  readonly state: MtrrState;
  /** RDMSR: the value, or #GP(0) (an exception) for an MSR this bank does not have. Every call is logged. */
  readonly rdmsr: (msr: number) => bigint;
  readonly reads: number[];
  /** The MSRs this processor has, IA32_MTRRCAP first. */
  readonly msrs: readonly number[];
}

/** MTRR MSRs as the CPU holds them (src/machine/memtype/mtrr-registers.ts), programmed as a BIOS would. */
export function bank(spec: BankSpec): Bank {
  const cap = BigInt(spec.vcnt) | (spec.fix ? MTRRCAP.FIX : 0n) | MTRRCAP.WC | (spec.smrr ? MTRRCAP.SMRR : 0n);
  const regs = new MtrrRegisters(cap, spec.maxPhysAddr);
  const put = (msr: number, value: bigint, smm = false) => {
    const refused = regs.write(msr, value, smm);
    if (refused !== null) throw new Error(`kit bug: the test bank refuses WRMSR ${hex(msr)} ← ${hex(value)}: ${refused.reason}`);
  };
  if (spec.fix) FIXED_RANGE_MTRRS.forEach((r, i) => put(r.msr, spec.fixed?.[i] ?? 0x0606060606060606n));
  (spec.variable ?? []).slice(0, spec.vcnt).forEach((p, n) => { put(0x200 + 2 * n, p.base); put(0x201 + 2 * n, p.mask); });
  if (spec.smrr && spec.smrrPair !== undefined) { put(0x1f2, spec.smrrPair.base, true); put(0x1f3, spec.smrrPair.mask, true); }
  put(0x2ff, spec.defType);
  const reads: number[] = [];
  const msrs = regs.msrIndices();
  return {
    state: regs.state(),
    reads,
    msrs,
    rdmsr: (msr) => {
      reads.push(msr);
      const v = regs.read(msr);
      if (v === undefined) {
        throw new Error(`#GP(0) on RDMSR ${hex(msr)}: this processor has no such MSR (IA32_MTRRCAP ${hex(cap)}: VCNT ${spec.vcnt}, FIX ${spec.fix ? 1 : 0}, SMRR ${spec.smrr ? 1 : 0}) — in a kernel module, an oops. See SDM Vol. 3A, "MTRR Feature Identification"`);
      }
      return v;
    },
  };
}

/** The MSRs of a booted model's LP 0 (which exist, which were read), with RDMSR logged. */
export function hostRdmsr(host: Host): { rdmsr: (msr: number) => bigint; reads: number[] } {
  const cpu = host.kernel.cpu();
  const reads: number[] = [];
  return { reads, rdmsr: (msr) => { reads.push(msr); return cpu.rdmsr(msr); } };
}

export const MTRRCAP_MSR = MSR_IA32_MTRRCAP;

// ---------------------------------------------------------------------------------------------------------------
// Generated layouts
// ---------------------------------------------------------------------------------------------------------------

const { UC, WC, WT, WP, WB } = MEMORY_TYPE;
export const MTRR_TYPES: readonly MtrrMemoryType[] = [UC, WC, WT, WP, WB];
/** Generated ranges and addresses stay in the low 8 GiB, so they overlap often. */
export const SPAN = 1n << 33n;

const typeArb = fc.constantFrom(...MTRR_TYPES);
const rangeArb = (minLog: number, maxLog: number, span: bigint) =>
  fc.record({ log: fc.integer({ min: minLog, max: maxLog }), at: fc.bigInt({ min: 0n, max: span - 1n }), type: typeArb, valid: fc.boolean() })
    .map((r) => ({ ...r, size: 1n << BigInt(r.log), base: r.at & ~((1n << BigInt(r.log)) - 1n) }));

/** MTRR states: FIX on or off, E and FE, any default, the fixed bytes, up to 10 variable pairs (some invalid), an SMRR. */
export const mtrrStates: fc.Arbitrary<MtrrState> = fc.record({
  maxPhysAddr: fc.constantFrom(36, 39, 46),
  fix: fc.boolean(),
  enabled: fc.oneof({ arbitrary: fc.constant(true), weight: 4 }, { arbitrary: fc.constant(false), weight: 1 }),
  fixedEnabled: fc.boolean(),
  defaultType: typeArb,
  fixedTypes: fc.array(typeArb, { minLength: 88, maxLength: 88 }),
  variable: fc.array(rangeArb(12, 32, SPAN), { maxLength: 10 }),
  smrr: fc.option(rangeArb(12, 23, 1n << 32n), { nil: undefined }),
}).map((g): MtrrState => {
  const pair = (r: { base: bigint; size: bigint; type: MtrrMemoryType; valid: boolean }, bits: number) => {
    const p = rangePair(r.base, r.size, r.type, bits);
    return r.valid ? p : { base: p.base, mask: p.mask & ~MTRR_PHYS.VALID };
  };
  const fixed = Array.from({ length: 11 }, (_, i) => (g.fix ? g.fixedTypes.slice(i * 8, i * 8 + 8).reduce((a, t, f) => a | (BigInt(t) << BigInt(8 * f)), 0n) : 0n));
  return {
    maxPhysAddr: g.maxPhysAddr,
    cap: BigInt(g.variable.length) | (g.fix ? MTRRCAP.FIX : 0n) | MTRRCAP.WC | (g.smrr !== undefined ? MTRRCAP.SMRR : 0n),
    defType: BigInt(g.defaultType) | (g.enabled ? MTRR_DEF_TYPE.E : 0n) | (g.fixedEnabled ? MTRR_DEF_TYPE.FE : 0n),
    fixed,
    variable: g.variable.map((r) => pair(r, g.maxPhysAddr)),
    smrr: g.smrr === undefined ? null : pair(g.smrr, 32),
  };
});

/** The addresses where an answer can change: every range's first and last byte and their neighbours. */
export function edges(s: MtrrState, span: bigint = SPAN): bigint[] {
  const out = [0n, 0x9ffffn, 0xa0000n, 0xbffffn, 0xc0000n, 0xfffffn, 0x100000n];
  for (const p of [...s.variable, ...(s.smrr ? [s.smrr] : [])]) {
    const base = p.base & ~0xfffn, m = p.mask & ~0xfffn, size = m & -m;
    if (size === 0n) continue;
    out.push(base, base + size - 1n, base + size);
    if (base > 0n) out.push(base - 1n);
  }
  return [...new Set(out)].filter((a) => a >= 0n && a < span);
}

/** The kit's MTRR type (outside SMM). */
export function kitType(s: MtrrState, pa: bigint): MtrrResolvedType {
  return mtrrType(s, pa).type;
}

/** The kit's explanation of one physical address, for failure messages. */
export function explainPa(s: MtrrState, pa: bigint): string {
  return explainMemoryType({ pa, cr0Cd: false, mtrrs: s, paging: null }).join('\n');
}

// ---------------------------------------------------------------------------------------------------------------
// Exercise 7.5: a guest that prints through the MMIO UART, watched byte by byte
// ---------------------------------------------------------------------------------------------------------------

/** One VM exit of a serial run, and what the UART had received (transmitted) by then. */
export interface SerialExit {
  readonly n: number;
  readonly reason: number;
  readonly rip: bigint;
  /** Every byte the UART had transmitted when the exit happened (before any handler ran). */
  readonly received: readonly number[];
  then: string;
}

export interface SerialRun {
  readonly host: Host;
  readonly exits: readonly SerialExit[];
  readonly outcome: string;
  readonly halted: boolean;
  readonly freeBeforeSetup: number;
  readonly freeAfterRelease: number;
  readonly eptp: bigint;
  qword(label: string): bigint;
  /** What happened, the exits with the UART's bytes at each, the memory type of the UART page, dmesg. */
  why(extra?: string): string;
}

export interface SerialOptions {
  readonly model: string;
  readonly board: BoardName;
  readonly part: VmmPart;
  readonly source: string;
  /** Bytes the UART receives (the guest can read them from RBR): before the guest starts, or at the first exit `inputOn`. */
  readonly input?: string;
  readonly inputOn?: number;
  /** Budget in guest instructions (default 20 000). */
  readonly budget?: number;
}

const EXIT_CPUID = 10, EXIT_HLT = 12;
const GIB3 = 3n << 30n;

/**
 * Boot `model` on `board`, enter VMX with the kit, write the reference VMCS for `source`, add the guest's own
 * mapping of the MMIO hole (C0000000H–FFFFFFFFH in 2-MByte pages, PAT entry 0 = WB: like firmware, the guest relies
 * on the MTRRs to make it UC), run the part's setup inside a module init, VMLAUNCH. CPUID exits are the kit's: they
 * record what the UART has received and skip the instruction, so a guest that executes CPUID after each store shows
 * when each byte reached the device. HLT ends the run; every other exit goes to the part's handler.
 */
export function runSerial(opts: SerialOptions): SerialRun {
  const host = bootHost({ model: opts.model, board: opts.board });
  const k = host.kernel, cpu = k.cpu();
  const part = opts.part;
  const exits: SerialExit[] = [];
  const reasons: number[] = [];
  let outcome: string | null = null;
  let halted = false;
  let vcpu: Vcpu | null = null;
  let guest: ReferenceGuest | null = null;
  let freeBeforeSetup = 0;
  const handler = (_k: typeof k, c: HostCpu): void => {
    const exitReason = Number(read(c, 'VM_EXIT_REASON'));
    const reason = exitReason & 0xffff;
    const e: SerialExit = { n: exits.length + 1, reason, rip: read(c, 'GUEST_RIP'), received: [...host.mmioUart.raw()], then: '' };
    exits.push(e);
    if ((exitReason & 0x80000000) !== 0) {
      e.then = 'VM-entry failure';
      outcome = `the VM entry failed: exit reason ${reason} with bit 31 set`;
      return;
    }
    reasons.push(reason);
    if (opts.input !== undefined && opts.inputOn === reason && !reasons.slice(0, -1).includes(reason)) host.mmioUart.pushInput(opts.input);
    if (reason === EXIT_HLT) {
      e.then = 'the guest is done (kit)';
      halted = true;
      outcome = 'the guest ran to its HLT';
      return;
    }
    let action: { kind: string; why?: string };
    if (reason === EXIT_CPUID) {
      action = { kind: 'skip' };
      e.then = 'CPUID (kit): skip';
    } else {
      const h = part.handlers[reason];
      if (h === undefined) {
        e.then = 'no handler';
        outcome = `VM exit ${reason} arrived and your part has no handler for it`;
        return;
      }
      try {
        action = h(vcpu!, { reason, qualification: read(c, 'EXIT_QUALIFICATION') }) as { kind: string; why?: string };
      } catch (err) {
        e.then = 'your handler threw (oops)';
        outcome = `your handler for exit ${reason} raised an exception and the kernel oopsed: ${(err as Error).message}`;
        throw err; // the kernel prints the oops, with your file and line
      }
      e.then = `your handler: ${action.kind}${action.why === undefined ? '' : ` (${action.why})`}`;
      if (action.kind === 'stop') {
        outcome = `your handler stopped the guest: ${action.why}`;
        return;
      }
    }
    if (action.kind === 'skip') write(host, c, 'GUEST_RIP', read(c, 'GUEST_RIP') + read(c, 'VM_EXIT_INSTRUCTION_LEN'));
    c.vmresume();
    if (!c.inVmxNonRoot() && (c.rflags() & 0x41n) !== 0n) outcome = 'VMRESUME failed';
  };
  const init = (): number => {
    enterVmx(host, cpu);
    const rip = k.hostEntry('kit_serial_vmexit', handler);
    const g = writeReferenceVmcs(host, cpu, rip, opts.source);
    guest = g;
    const pd = k.get_zeroed_page();
    for (let i = 0n; i < 512n; i++) k.write64(pd + 8n * i, (GIB3 | (i << 21n)) | 0x83n);
    k.write64(g.va + 0x1000n + 3n * 8n, k.virt_to_phys(pd) | 3n);
    const want = part.controls?.proc2?.want ?? 0;
    if (want !== 0) {
      const eff = host.vmx[cpu.id]!.caps.effective;
      const proc2 = (eff.proc2.allowed0 | want) >>> 0;
      if ((proc2 & ~eff.proc2.allowed1) !== 0) {
        outcome = `the secondary controls ${hex(proc2)} are not possible on this CPU`;
        return -22;
      }
      write(host, cpu, 'CPU_BASED_VM_EXEC_CONTROL', read(cpu, 'CPU_BASED_VM_EXEC_CONTROL') | BigInt(VMX_CONTROL.CPU_BASED_ACTIVATE_SECONDARY_CONTROLS));
      write(host, cpu, 'SECONDARY_VM_EXEC_CONTROL', proc2);
    }
    if (opts.input !== undefined && opts.inputOn === undefined) host.mmioUart.pushInput(opts.input);
    vcpu = { k, cpu, guest: { va: g.va, pa: g.pa, order: 3, cr3: g.cr3, gdtBase: g.gdtBase, gdtLimit: 0x27, rip: g.rip, rsp: g.rsp, labels: g.labels }, exits: reasons };
    freeBeforeSetup = k.pages.freeCount();
    const r = part.setup?.(vcpu) ?? { ok: true };
    if (!r.ok) {
      outcome = `your part's setup failed: ${r.error}`;
      return -22;
    }
    cpu.vmlaunch();
    if (!cpu.inVmxNonRoot()) {
      outcome = 'VMLAUNCH failed';
      return -5;
    }
    return 0;
  };
  const loaded = k.insmod({ name: 'kit_serial', init });
  if (!loaded.ok && loaded.oops !== undefined) outcome = `your code raised an exception and the kernel oopsed:\n${loaded.oops.text}`;
  else if (loaded.ok) {
    const r = runGuests(host, opts.budget ?? 20_000);
    outcome ??= `the guest did not reach its HLT within ${r.instructions} instructions`;
  }
  outcome ??= 'the module did not load';
  const eptp = read(cpu, 'EPT_POINTER');
  let freeAfterRelease = k.pages.freeCount();
  if (vcpu !== null) {
    part.release?.(k);
    freeAfterRelease = k.pages.freeCount();
  }
  const final = outcome;
  return {
    host, exits, outcome: final, halted, freeBeforeSetup, freeAfterRelease, eptp,
    qword: (label) => {
      const g = guest as ReferenceGuest | null;
      const at = g?.labels.get(label);
      if (g === null || at === undefined) throw new Error(`test bug: no guest label ${label}`);
      return k.read64(g.va + (BigInt(at) - g.pa));
    },
    why: (extra = '') => [
      extra,
      `what happened: ${final}`,
      `VM exits (${exits.length}), with the bytes the UART had transmitted at each:\n${exits.map((e) => `  #${e.n} reason ${e.reason} at RIP ${hex(e.rip)}: UART so far ${JSON.stringify(String.fromCharCode(...e.received))}${e.then === '' ? '' : ` → ${e.then}`}`).join('\n')}`,
      `UART at the end: ${JSON.stringify(host.mmioUart.text())}; accesses that reached it: reads per register ${JSON.stringify(host.mmioUart.reads)}, writes ${JSON.stringify(host.mmioUart.writes)}`,
      `what the processor did with the UART page (explainDevicePage, src/machine/memtype/explain-device.ts):\n${explainDevicePage(host.machine.cpus[0]!, MMIO_UART_BASE).join('\n')}`,
      explain(host),
    ].filter((s) => s !== '').join('\n'),
  };
}

/**
 * The tutorial's quick map, built by the kit: guest-physical [0, 4 GiB) → the same host-physical addresses, RWX,
 * every leaf WB (plus `extraLeafBits`, e.g. "ignore PAT"), 1-GByte pages where the capability allows them, else
 * 2-MByte pages. Tables from get_zeroed_page, all listed in `pages` (the PML4 first).
 */
export function quickMap(host: Host, extraLeafBits = 0n): { pml4: bigint; pages: bigint[]; pageSize: bigint } {
  const k = host.kernel;
  const cap = eptFacts(host).cap;
  const pageSize = ((cap >> 17n) & 1n) === 1n ? 1n << 30n : 1n << 21n;
  const RWX = 7n, WB = 6n << 3n, PS = 1n << 7n;
  const pages: bigint[] = [];
  const page = (): bigint => {
    const va = k.get_zeroed_page();
    if (va === 0n) throw new Error('kit: out of memory');
    pages.push(va);
    return va;
  };
  const pml4 = page(), pdpt = page();
  k.write64(pml4, k.virt_to_phys(pdpt) | RWX);
  for (let g = 0n; g < 4n; g++) {
    if (pageSize === 1n << 30n) {
      k.write64(pdpt + 8n * g, (g << 30n) | RWX | WB | PS | extraLeafBits);
      continue;
    }
    const pd = page();
    k.write64(pdpt + 8n * g, k.virt_to_phys(pd) | RWX);
    for (let i = 0n; i < 512n; i++) k.write64(pd + 8n * i, (g << 30n) | (i << 21n) | RWX | WB | PS | extraLeafBits);
  }
  return { pml4: k.virt_to_phys(pml4), pages, pageSize };
}

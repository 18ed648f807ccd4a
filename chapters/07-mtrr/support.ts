// Test support for chapter 7 (imported by the tests only, never by learner code):
//  - the runs every test makes: each CPU model on each firmware board that fits it (the pc board on every model;
//    the Surface Book 3's recorded MTRRs only where MAXPHYADDR is 39 and there are enough variable pairs);
//  - the kit's reading of the MTRRs (src/machine/memtype/read-mtrrs.ts) turned into the chapter's map, so the tests
//    of 7.2–7.4 never depend on your 7.1;
//  - MTRR register banks for processors no model has (FIX = 0, few variable pairs, no SMRR), with an RDMSR that
//    raises #GP for an MSR the bank does not have, as the processor does;
//  - generated MTRR layouts (fast-check) and the kit's answers: mtrrType, mtrrRuns, explainMemoryType.
// Only types come from your code here (erased at run time).
import fc from 'fast-check';
import type { MtrrMap, VariableRange } from '#impl/07-mtrr/read-mtrrs';
import { bootHost, type Host } from '../../src/kernel/testing/reference-vm.ts';
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

export { bootHost, CPU_MODELS, explainMemoryType, explainPageMtrrTypes, hex, mtrrRuns, mtrrType, type Host, type MtrrState };
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

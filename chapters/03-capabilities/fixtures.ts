// Test fixtures for chapter 3 (not graded on their own): an RDMSR backed by a CPU model's MSR values that
// records every read of an MSR the model does not implement (hardware raises #GP there), and a fast-check
// generator of consistent capability-MSR sets the learner has never seen.
//
// MSR indices are written out here by hand from the SDM (Vol. 4, "Model-Specific Registers", and Vol. 3D,
// "VMX Capability Reporting Facility") so that the tests do not depend on the project's own tables.
import fc from 'fast-check';
import { CPU_MODELS } from '#src/machine/cpu-model';
import { vmxMsrsOf } from '#src/vmx/emulated-msrs';
import { hex } from '../lib/show.ts';

export const IA32_VMX_BASIC = 0x480;
export const IA32_VMX_PINBASED_CTLS = 0x481;
export const IA32_VMX_PROCBASED_CTLS = 0x482;
export const IA32_VMX_EXIT_CTLS = 0x483;
export const IA32_VMX_ENTRY_CTLS = 0x484;
export const IA32_VMX_MISC = 0x485;
export const IA32_VMX_CR0_FIXED0 = 0x486;
export const IA32_VMX_CR0_FIXED1 = 0x487;
export const IA32_VMX_CR4_FIXED0 = 0x488;
export const IA32_VMX_CR4_FIXED1 = 0x489;
export const IA32_VMX_VMCS_ENUM = 0x48a;
export const IA32_VMX_PROCBASED_CTLS2 = 0x48b;
export const IA32_VMX_EPT_VPID_CAP = 0x48c;
export const IA32_VMX_TRUE_PINBASED_CTLS = 0x48d;
export const IA32_VMX_TRUE_PROCBASED_CTLS = 0x48e;
export const IA32_VMX_TRUE_EXIT_CTLS = 0x48f;
export const IA32_VMX_TRUE_ENTRY_CTLS = 0x490;
export const IA32_VMX_VMFUNC = 0x491;

export type Kind = 'pin' | 'proc' | 'proc2' | 'exit' | 'entry';
export const KINDS: readonly Kind[] = ['pin', 'proc', 'proc2', 'exit', 'entry'];

/** The non-TRUE and TRUE capability MSR of each control field (proc2 has no TRUE variant). */
export const CONTROL_MSR: Readonly<Record<Kind, { plain: number; true: number | null }>> = {
  pin: { plain: IA32_VMX_PINBASED_CTLS, true: IA32_VMX_TRUE_PINBASED_CTLS },
  proc: { plain: IA32_VMX_PROCBASED_CTLS, true: IA32_VMX_TRUE_PROCBASED_CTLS },
  proc2: { plain: IA32_VMX_PROCBASED_CTLS2, true: null },
  exit: { plain: IA32_VMX_EXIT_CTLS, true: IA32_VMX_TRUE_EXIT_CTLS },
  entry: { plain: IA32_VMX_ENTRY_CTLS, true: IA32_VMX_TRUE_ENTRY_CTLS },
};

export { hex };

/** An RDMSR for one model. Reading an MSR the model lacks throws (as #GP would) and is recorded in `faults`. */
export interface FakeMsrs {
  readonly name: string;
  readonly msrs: ReadonlyMap<number, bigint>;
  readonly rdmsr: (msr: number) => bigint;
  /** Every read of an unimplemented MSR, in order. A correct solution never causes one. */
  readonly faults: number[];
  /** Every MSR read, in order. */
  readonly reads: number[];
}

export function fakeMsrs(name: string, msrs: ReadonlyMap<number, bigint>): FakeMsrs {
  const faults: number[] = [];
  const reads: number[] = [];
  const rdmsr = (msr: number): bigint => {
    reads.push(msr);
    const v = msrs.get(msr);
    if (v === undefined) {
      faults.push(msr);
      // RDMSR of an MSR the processor does not implement raises #GP(0).
      // See SDM Vol. 2B, "RDMSR—Read From Model Specific Register".
      throw new Error(`#GP(0): RDMSR ${hex(msr)} — ${name} does not implement this MSR`);
    }
    return v;
  };
  return { name, msrs, rdmsr, faults, reads };
}

/** One FakeMsrs per real CPU model (fresh for each call, so fault logs do not leak between tests). */
export function realModels(): FakeMsrs[] {
  return CPU_MODELS.map((m) => fakeMsrs(m.name, vmxMsrsOf(m)));
}
export function realModel(name: string): FakeMsrs {
  const m = CPU_MODELS.find((x) => x.name === name);
  if (m === undefined) throw new Error(`no CPU model ${name}`);
  return fakeMsrs(m.name, vmxMsrsOf(m));
}
export function maxPhysAddrOf(name: string): number {
  const m = CPU_MODELS.find((x) => x.name === name);
  if (m === undefined) throw new Error(`no CPU model ${name}`);
  return m.maxPhysAddr;
}

// The default1 controls: 1 in the non-TRUE MSRs' allowed-0 settings whatever the processor, clearable only as the
// TRUE MSRs say. Written from SDM Vol. 3D, "Pin-Based VM-Execution Controls", "Primary Processor-Based
// VM-Execution Controls", "Primary VM-Exit Controls" and "VM-Entry Controls".
const bitsOf = (...bits: number[]) => bits.reduce((m, b) => (m | 2 ** b) >>> 0, 0);
export const DEFAULT1_BITS: Readonly<Record<'pin' | 'proc' | 'exit' | 'entry', number>> = {
  pin: bitsOf(1, 2, 4),
  proc: bitsOf(1, 4, 5, 6, 8, 13, 14, 15, 16, 26),
  exit: bitsOf(0, 1, 2, 3, 4, 5, 6, 7, 8, 10, 11, 13, 14, 16, 17),
  entry: bitsOf(0, 1, 2, 3, 4, 5, 6, 7, 8, 12),
};

const CR0_PE = 1n << 0n;
const CR0_MP = 1n << 1n;
const CR0_ET = 1n << 4n;
const CR0_NE = 1n << 5n;
const CR0_WP = 1n << 16n;
const CR0_NW = 1n << 29n;
const CR0_CD = 1n << 30n;
const CR0_PG = 1n << 31n;
const CR4_VMXE = 1n << 13n;
const CR4_PAE = 1n << 5n;
const CR4_OSFXSR = 1n << 9n;

const u32 = fc.integer({ min: 0, max: 0xffffffff });
const pair = (allowed0: number, allowed1: number) => (BigInt(allowed1 >>> 0) << 32n) | BigInt(allowed0 >>> 0);

/** Options for the generator, to force a case. */
export interface GenOptions {
  trueCtls?: boolean;
  secondary?: boolean;
}

/**
 * A consistent set of capability MSRs: allowed-0 ⊆ allowed-1 in every control MSR; the default1 bits are
 * allowed-0 in the non-TRUE MSRs; TRUE allowed-0 ⊆ non-TRUE allowed-0 and the allowed-1 halves agree; the TRUE
 * MSRs exist iff BASIC[55] = 1; PROCBASED_CTLS2 exists iff primary bit 63 is 1; EPT_VPID_CAP iff "enable EPT" or
 * "enable VPID" may be 1; FIXED0 ⊆ FIXED1 for CR0 and CR4 (CR0.PE/NE/PG and CR4.VMXE fixed to 1, as on every
 * real processor; CR0.NW/CD always flexible).
 */
export function arbCapabilityMsrs(opts: GenOptions = {}): fc.Arbitrary<FakeMsrs> {
  const control = (default1: number) =>
    fc.tuple(u32, u32).map(([r1, r0]) => {
      const allowed1 = (r1 | default1) >>> 0;
      const trueAllowed0 = (r0 & allowed1 & r1) >>> 0; // sparse: most controls are flexible
      return { allowed1, trueAllowed0, allowed0: (trueAllowed0 | default1) >>> 0 };
    });
  return fc
    .record({
      trueCtls: opts.trueCtls === undefined ? fc.boolean() : fc.constant(opts.trueCtls),
      secondary: opts.secondary === undefined ? fc.boolean() : fc.constant(opts.secondary),
      revision: fc.integer({ min: 1, max: 0x7fffffff }),
      insOuts: fc.boolean(),
      pin: control(DEFAULT1_BITS.pin),
      proc: control(DEFAULT1_BITS.proc),
      exit: control(DEFAULT1_BITS.exit),
      entry: control(DEFAULT1_BITS.entry),
      proc2a1: u32,
      proc2a0: fc.tuple(u32, u32, u32).map(([a, b, c]) => (a & b & c) >>> 0),
      misc: fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }),
      eptVpidCap: fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }),
      cr0Extra0: fc.subarray([CR0_MP, CR0_ET, CR0_WP]),
      cr0Free: u32,
      cr4Extra0: fc.subarray([CR4_PAE, CR4_OSFXSR]),
      cr4Free: u32,
      vmcsEnum: fc.integer({ min: 0, max: 0x3ff }),
      vmfunc: fc.bigInt({ min: 0n, max: 0xffn }),
      id: fc.nat(),
    })
    .map((g) => {
      const m = new Map<number, bigint>();
      const ACTIVATE_SECONDARY = 2 ** 31;
      const ACTIVATE_TERTIARY = 2 ** 17;
      // Decide "activate secondary controls" (allowed-1 bit 31 of the primary controls); never tertiary controls.
      let proc1 = g.secondary ? (g.proc.allowed1 | ACTIVATE_SECONDARY) >>> 0 : (g.proc.allowed1 & ~ACTIVATE_SECONDARY) >>> 0;
      proc1 = (proc1 & ~ACTIVATE_TERTIARY) >>> 0;
      const proc = {
        allowed1: proc1,
        trueAllowed0: (g.proc.trueAllowed0 & proc1) >>> 0,
        allowed0: ((g.proc.trueAllowed0 & proc1) | DEFAULT1_BITS.proc) >>> 0,
      };
      const basic =
        BigInt(g.revision) | (0x1000n << 32n) | (6n << 50n) | (g.insOuts ? 1n << 54n : 0n) | (g.trueCtls ? 1n << 55n : 0n);
      m.set(IA32_VMX_BASIC, basic);
      const ctls = { pin: g.pin, proc, exit: g.exit, entry: g.entry } as const;
      for (const kind of ['pin', 'proc', 'exit', 'entry'] as const) {
        const c = ctls[kind];
        m.set(CONTROL_MSR[kind].plain, pair(c.allowed0, c.allowed1));
        if (g.trueCtls) m.set(CONTROL_MSR[kind].true as number, pair(c.trueAllowed0, c.allowed1));
      }
      m.set(IA32_VMX_MISC, g.misc);
      const cr0f0 = CR0_PE | CR0_NE | CR0_PG | g.cr0Extra0.reduce((a, b) => a | b, 0n);
      m.set(IA32_VMX_CR0_FIXED0, cr0f0);
      // Every processor lets CR0.NW and CR0.CD be 1 in VMX operation (VM entry never checks them in guest CR0).
      m.set(IA32_VMX_CR0_FIXED1, cr0f0 | CR0_NW | CR0_CD | BigInt(g.cr0Free));
      const cr4f0 = CR4_VMXE | g.cr4Extra0.reduce((a, b) => a | b, 0n);
      m.set(IA32_VMX_CR4_FIXED0, cr4f0);
      m.set(IA32_VMX_CR4_FIXED1, cr4f0 | BigInt(g.cr4Free));
      m.set(IA32_VMX_VMCS_ENUM, BigInt(g.vmcsEnum));
      if (g.secondary) {
        const a1 = g.proc2a1 >>> 0;
        m.set(IA32_VMX_PROCBASED_CTLS2, pair(g.proc2a0 & a1, a1));
        const EPT = 1 << 1;
        const VPID = 1 << 5;
        const VMFUNC = 1 << 13;
        if ((a1 & (EPT | VPID)) !== 0) m.set(IA32_VMX_EPT_VPID_CAP, g.eptVpidCap);
        if ((a1 & VMFUNC) !== 0) m.set(IA32_VMX_VMFUNC, g.vmfunc);
      }
      return fakeMsrs(`generated#${g.id}${g.trueCtls ? '' : ' (no TRUE MSRs)'}${g.secondary ? '' : ' (no secondary controls)'}`, m);
    });
}

/** The allowed-0 / allowed-1 halves of a control capability MSR value. */
export function halves(v: bigint): { allowed0: number; allowed1: number } {
  return { allowed0: Number(v & 0xffffffffn), allowed1: Number(v >> 32n) };
}

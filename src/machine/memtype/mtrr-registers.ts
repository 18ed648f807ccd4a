// The MTRR MSRs of one logical processor: IA32_MTRRCAP (read-only, per CPU model), IA32_MTRR_DEF_TYPE, the 11
// fixed-range MTRRs (only when IA32_MTRRCAP.FIX = 1), VCNT variable-range pairs and the SMRR pair (only when
// IA32_MTRRCAP.SMRR = 1). A WRMSR with a reserved bit or an invalid type raises #GP(0); an MSR the model does not
// have raises #GP(0) on RDMSR and WRMSR, as for any unimplemented MSR. INIT leaves the MTRRs alone. A reset clears
// IA32_MTRR_DEF_TYPE.E and the variable ranges' valid flags and leaves every other MTRR bit undefined; this model
// starts all of them at 0, and firmware.ts then programs them as a BIOS does.
// See SDM Vol. 3A, "Memory Type Range Registers (MTRRs)" and "MTRR Initialization".
import * as MSR from '../../x86/msr.ts';
import { FIXED_RANGE_FIELDS, FIXED_RANGE_MTRRS, MTRRCAP, MTRR_DEF_TYPE, MTRR_PHYS, physAddressBits } from '../../x86/mtrr.ts';
import { isMtrrMemoryType, MEMORY_TYPE } from '../../x86/memory-types.ts';
import { intelHex } from '../../util/hex.ts';
import { gp } from '../fault.ts';
import type { LogicalProcessor } from '../lp.ts';
import { hasFixedRanges, hasSmrr, vcntOf, type MtrrPair, type MtrrState } from './mtrr-state.ts';

const SDM_MTRR = 'SDM Vol. 3A, "Memory Type Range Registers (MTRRs)"';
const SDM_VARIABLE = 'SDM Vol. 3A, "Variable Range MTRRs"';
const SDM_SMRR = 'SDM Vol. 3A, "System-Management Range Register Interface"';
/** The SMRR base and mask are 4-KByte granular below 4 GiB: bits 31:12. */
const SMRR_ADDRESS_BITS = 0xfffff000n;

/** Why a WRMSR is refused (it then raises #GP(0)). */
export interface MtrrWriteRefusal {
  readonly reason: string;
  readonly sdm: string;
}

export class MtrrRegisters {
  defType = 0n;
  readonly fixed: bigint[] = FIXED_RANGE_MTRRS.map(() => 0n);
  readonly variable: { base: bigint; mask: bigint }[];
  readonly smrr = { base: 0n, mask: 0n };

  constructor(readonly cap: bigint, readonly maxPhysAddr: number) {
    this.variable = Array.from({ length: vcntOf(cap) }, () => ({ base: 0n, mask: 0n }));
  }

  /** Every MTRR MSR this processor has, IA32_MTRRCAP first. */
  msrIndices(): number[] {
    const list = [MSR.MSR_IA32_MTRRCAP, MSR.MSR_MTRRdefType];
    if (hasFixedRanges(this.cap)) list.push(...FIXED_RANGE_MTRRS.map((r) => r.msr));
    this.variable.forEach((_, n) => list.push(MSR.MTRRphysBase_MSR(n), MSR.MTRRphysMask_MSR(n)));
    if (hasSmrr(this.cap)) list.push(MSR.MSR_IA32_SMRR_PHYSBASE, MSR.MSR_IA32_SMRR_PHYSMASK);
    return list;
  }

  /** RDMSR; undefined for an MSR this processor does not have. */
  read(msr: number): bigint | undefined {
    if (msr === MSR.MSR_IA32_MTRRCAP) return this.cap;
    if (msr === MSR.MSR_MTRRdefType) return this.defType;
    const f = this.fixedIndex(msr);
    if (f >= 0) return this.fixed[f];
    const v = this.variableSlot(msr);
    if (v !== null) return v.isMask ? this.variable[v.n]!.mask : this.variable[v.n]!.base;
    // RDMSR of the SMRR pair works outside SMM too; only WRMSR is limited to SMM.
    if (hasSmrr(this.cap) && msr === MSR.MSR_IA32_SMRR_PHYSBASE) return this.smrr.base;
    if (hasSmrr(this.cap) && msr === MSR.MSR_IA32_SMRR_PHYSMASK) return this.smrr.mask;
    return undefined;
  }

  /**
   * WRMSR: null when accepted, else why it raises #GP(0). `inSmm`: the write comes from SMM (only firmware's SMM
   * code may write the SMRR pair; this machine has no SMM, so only firmware.ts passes true).
   */
  write(msr: number, value: bigint, inSmm = false): MtrrWriteRefusal | null {
    const name = `MSR ${intelHex(msr)}`;
    if (msr === MSR.MSR_IA32_MTRRCAP) return { reason: 'IA32_MTRRCAP is read-only', sdm: 'SDM Vol. 3A, "MTRR Feature Identification"' };
    if (msr === MSR.MSR_MTRRdefType) {
      const allowed = MTRR_DEF_TYPE.TYPE_MASK | MTRR_DEF_TYPE.FE | MTRR_DEF_TYPE.E;
      const bad = reserved(value, allowed, 'IA32_MTRR_DEF_TYPE', 'bits 7:0, 10 (FE) and 11 (E)') ??
        this.badType(value & MTRR_DEF_TYPE.TYPE_MASK, 'the default type of IA32_MTRR_DEF_TYPE');
      if (bad !== null) return { reason: bad, sdm: 'SDM Vol. 3A, "IA32_MTRR_DEF_TYPE MSR"' };
      this.defType = value;
      return null;
    }
    const f = this.fixedIndex(msr);
    if (f >= 0) {
      for (let field = 0; field < FIXED_RANGE_FIELDS; field++) {
        const bad = this.badType((value >> BigInt(8 * field)) & 0xffn, `byte ${field} of ${FIXED_RANGE_MTRRS[f]!.name}`);
        if (bad !== null) return { reason: bad, sdm: 'SDM Vol. 3A, "Fixed Range MTRRs"' };
      }
      this.fixed[f] = value;
      return null;
    }
    const v = this.variableSlot(msr);
    if (v !== null) {
      const reg = `IA32_MTRR_PHYS${v.isMask ? 'MASK' : 'BASE'}${v.n}`;
      const bad = v.isMask
        ? this.checkMask(value, physAddressBits(this.maxPhysAddr), reg, `bits 11 (V) and ${this.maxPhysAddr - 1}:12`)
        : this.checkBase(value, physAddressBits(this.maxPhysAddr), reg, `bits 7:0 and ${this.maxPhysAddr - 1}:12`);
      if (bad !== null) return { reason: bad, sdm: SDM_VARIABLE };
      if (v.isMask) this.variable[v.n]!.mask = value;
      else this.variable[v.n]!.base = value;
      return null;
    }
    if (hasSmrr(this.cap) && (msr === MSR.MSR_IA32_SMRR_PHYSBASE || msr === MSR.MSR_IA32_SMRR_PHYSMASK)) {
      const isMask = msr === MSR.MSR_IA32_SMRR_PHYSMASK;
      const reg = isMask ? 'IA32_SMRR_PHYSMASK' : 'IA32_SMRR_PHYSBASE';
      if (!inSmm) return { reason: `WRMSR to ${reg} outside SMM`, sdm: SDM_SMRR };
      const bad = isMask
        ? this.checkMask(value, SMRR_ADDRESS_BITS, reg, 'bits 11 (V) and 31:12')
        : this.checkBase(value, SMRR_ADDRESS_BITS, reg, 'bits 7:0 and 31:12');
      if (bad !== null) return { reason: bad, sdm: SDM_SMRR };
      if (isMask) this.smrr.mask = value;
      else this.smrr.base = value;
      return null;
    }
    return { reason: `${name} is not an MTRR of this processor`, sdm: SDM_MTRR };
  }

  /** The registers as plain data (a copy). */
  state(): MtrrState {
    const pair = (p: MtrrPair): MtrrPair => ({ base: p.base, mask: p.mask });
    return {
      maxPhysAddr: this.maxPhysAddr,
      cap: this.cap,
      defType: this.defType,
      fixed: [...this.fixed],
      variable: this.variable.map(pair),
      smrr: hasSmrr(this.cap) ? pair(this.smrr) : null,
    };
  }

  /** Make these the LP's MTRR MSRs (RDMSR/WRMSR go through read/write; a refusal is #GP(0)). */
  install(lp: LogicalProcessor): void {
    for (const msr of this.msrIndices()) {
      lp.defineMsr(msr, {
        read: () => this.read(msr) ?? 0n,
        write: msr === MSR.MSR_IA32_MTRRCAP ? undefined : (_lp, value) => {
          const refused = this.write(msr, value);
          if (refused !== null) throw gp(0, refused.reason, refused.sdm);
          // Device pages' memory types are decided again (cache-model.ts); RAM's never depend on them.
          lp.caches.typesChanged();
        },
      });
    }
  }

  private fixedIndex(msr: number): number {
    return hasFixedRanges(this.cap) ? FIXED_RANGE_MTRRS.findIndex((r) => r.msr === msr) : -1;
  }

  private variableSlot(msr: number): { n: number; isMask: boolean } | null {
    const offset = msr - MSR.MSR_MTRRphysBase0;
    if (offset < 0 || offset >= 2 * this.variable.length) return null;
    return { n: offset >> 1, isMask: (offset & 1) === 1 };
  }

  private checkBase(value: bigint, addressBits: bigint, reg: string, allowedText: string): string | null {
    return reserved(value, addressBits | MTRR_PHYS.TYPE_MASK, reg, allowedText) ?? this.badType(value & MTRR_PHYS.TYPE_MASK, `the type of ${reg}`);
  }

  /** Types 2, 3 and 7 and up are reserved; WC only when IA32_MTRRCAP.WC = 1. See SDM Vol. 3A, "MTRR Feature Identification". */
  private badType(type: bigint, what: string): string | null {
    const t = Number(type);
    if (!isMtrrMemoryType(t)) return `${what} is ${t}, not a memory type an MTRR may hold (0, 1, 4, 5 or 6)`;
    if (t === MEMORY_TYPE.WC && (this.cap & MTRRCAP.WC) === 0n) return `${what} is WC (1), which IA32_MTRRCAP.WC = 0 says this processor lacks`;
    return null;
  }

  private checkMask(value: bigint, addressBits: bigint, reg: string, allowedText: string): string | null {
    return reserved(value, addressBits | MTRR_PHYS.VALID, reg, allowedText);
  }
}

function reserved(value: bigint, allowed: bigint, reg: string, allowedText: string): string | null {
  const bad = value & ~allowed;
  return bad === 0n ? null : `reserved bits ${intelHex(bad)} set in ${reg} (only ${allowedText} exist)`;
}


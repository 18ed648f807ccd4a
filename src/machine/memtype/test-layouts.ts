// Test support: MTRR states written the way firmware thinks of them (base, size, type) rather than as raw MSRs.
import { MEMORY_TYPE, type MtrrMemoryType } from '../../x86/memory-types.ts';
import { MTRRCAP, MTRR_DEF_TYPE, MTRR_PHYS, physAddressBits } from '../../x86/mtrr.ts';
import type { MtrrPair, MtrrState } from './mtrr-state.ts';

export interface LayoutSpec {
  maxPhysAddr?: number;
  /** IA32_MTRRCAP.VCNT (default: as many as `variable` needs, at least 8). */
  vcnt?: number;
  fix?: boolean;
  smrrSupported?: boolean;
  enabled?: boolean;
  fixedEnabled?: boolean;
  defaultType?: MtrrMemoryType;
  /** The 88 fixed sub-range types, lowest first (default all WB). */
  fixedTypes?: readonly MtrrMemoryType[];
  /** Variable ranges: size a power of two, base aligned to it. */
  variable?: readonly { base: bigint; size: bigint; type: MtrrMemoryType }[];
  smrr?: { base: bigint; size: bigint; type: MtrrMemoryType };
}

/** A variable pair for [base, base + size): PhysMask has every address bit from log2(size) up. */
export function rangePair(base: bigint, size: bigint, type: MtrrMemoryType, maxPhysAddr: number): MtrrPair {
  return { base: base | BigInt(type), mask: (physAddressBits(maxPhysAddr) & ~(size - 1n)) | MTRR_PHYS.VALID };
}

export function layout(spec: LayoutSpec): MtrrState {
  const maxPhysAddr = spec.maxPhysAddr ?? 39;
  const variable = (spec.variable ?? []).map((v) => rangePair(v.base, v.size, v.type, maxPhysAddr));
  const vcnt = spec.vcnt ?? Math.max(8, variable.length);
  while (variable.length < vcnt) variable.push({ base: 0n, mask: 0n });
  const fix = spec.fix ?? true;
  const types = spec.fixedTypes ?? Array.from({ length: 88 }, () => MEMORY_TYPE.WB);
  const fixed = Array.from({ length: 11 }, (_, i) =>
    fix ? types.slice(i * 8, i * 8 + 8).reduce((acc, t, f) => acc | (BigInt(t) << BigInt(8 * f)), 0n) : 0n);
  const cap = BigInt(vcnt) | (fix ? MTRRCAP.FIX : 0n) | MTRRCAP.WC | (spec.smrrSupported ?? spec.smrr !== undefined ? MTRRCAP.SMRR : 0n);
  const defType = BigInt(spec.defaultType ?? MEMORY_TYPE.WB) | ((spec.enabled ?? true) ? MTRR_DEF_TYPE.E : 0n) |
    ((spec.fixedEnabled ?? true) ? MTRR_DEF_TYPE.FE : 0n);
  const smrr = (cap & MTRRCAP.SMRR) === 0n ? null
    : spec.smrr === undefined ? { base: 0n, mask: 0n } : rangePair(spec.smrr.base, spec.smrr.size, spec.smrr.type, 32);
  return { maxPhysAddr, cap, defType, fixed, variable, smrr };
}

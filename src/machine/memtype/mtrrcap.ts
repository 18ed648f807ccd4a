// IA32_MTRRCAP per CPU model. None of the data files (data/cpu-models/*.json) recorded MSR FEH, so each value here
// is chosen as the architectural value for the model's family, not measured: VCNT variable pairs, FIX = 1 and
// WC = 1 on every Intel 64 processor, SMRR = 1 from Nehalem on (Core 2 parts have their SMRR pair at model-specific
// MSRs A0H/A1H and report no SMRR bit). Bit 12 (PRMRR, SGX's range registers) is not modeled. The one real
// observation, Linux's print of an Ice Lake laptop (data/cpu-models/mtrr/), shows VCNT = 10 and FIX = 1.
// See SDM Vol. 3A, "MTRR Feature Identification".
import { MTRRCAP } from '../../x86/mtrr.ts';
import type { CpuModel } from '../cpu-model.ts';

const cap = (vcnt: number, smrr: boolean): bigint => BigInt(vcnt) | MTRRCAP.FIX | MTRRCAP.WC | (smrr ? MTRRCAP.SMRR : 0n);

/** Core 2 (Penryn, Wolfdale): 8 variable pairs, no architectural SMRR. */
const CORE2 = cap(8, false);
/** Nehalem to Raptor Lake big cores: 10 pairs and SMRR (0xD0A). */
const CORE = cap(10, true);

export const MTRRCAP_BY_MODEL: Readonly<Record<string, bigint>> = {
  'penryn-core2-duo-t9600': CORE2,
  'wolfdale-core2-e7500': CORE2,
  'nehalem-lynnfield-i7-870': CORE,
  'westmere-arrandale-370m': CORE,
  'westmere-clarkdale-i5-650': CORE,
  'sandybridge-i7-2670qm': CORE,
  'ivybridge-i5-3320m': CORE,
  'haswell-i5-4260u': CORE,
  'broadwell-i5-5257u': CORE,
  'skylake-i5-6300u': CORE,
  'skylake-x-i9-9980xe': CORE,
  'coffeelake-i7-8750h': CORE,
  'cometlake-i7-10700': CORE,
  'icelake-i5-1035g1': CORE,
  'tigerlake-i5-1135g7': CORE,
  'alderlake-i7-12700': CORE,
  'raptorlake-core7-150u': CORE,
  'raptorlake-i7-14700': CORE,
  // Silvermont Atoms have 8 variable pairs; Goldmont and Goldmont Plus 10.
  'atom-silvermont-celeron-n2830': cap(8, true),
  'atom-goldmont-celeron-n3350': CORE,
  'atom-goldmontplus-celeron-n4020': CORE,
  // Bochs 2.7 reports 500H | 8 (eight variable pairs, FIX, WC; no SMRR): modeled, like the rest of this model.
  'bochs-corei7-skylake-x': cap(8, false),
};

/** The model's IA32_MTRRCAP; a model missing from the table is a bug in this file. */
export function mtrrCapOf(model: CpuModel): bigint {
  const v = MTRRCAP_BY_MODEL[model.name];
  if (v === undefined) throw new Error(`mtrrcap: no IA32_MTRRCAP chosen for CPU model ${model.name} (add it to MTRRCAP_BY_MODEL)`);
  return v;
}

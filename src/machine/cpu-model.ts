// CPU models: what CPUID and the capability MSRs report for one real (or Bochs-modeled) Intel processor.
//
// The facts come from data/cpu-models/*.json: `msrs` are values read on that processor, `cpuid` holds the leaf-1
// registers, the address sizes and the brand string as measured. Everything else CPUID returns is synthesised here
// from those facts by the rules of SDM Vol. 2A, "CPUID—CPU Identification". The JSON files are imported statically
// so the models bundle for the browser too.
//
// Five files carry no CPUID data (their sources printed only MSRs). For them the signature, brand string and
// MAXPHYADDR come from CPUID_SUPPLEMENTS below, and the leaf-1 feature flags from a measured model of the same or the
// previous generation; `cpuidMeasured` is false for them.

import alderlake_i7_12700 from '../../data/cpu-models/alderlake-i7-12700.json' with { type: 'json' };
import atom_goldmont_celeron_n3350 from '../../data/cpu-models/atom-goldmont-celeron-n3350.json' with { type: 'json' };
import atom_goldmontplus_celeron_n4020 from '../../data/cpu-models/atom-goldmontplus-celeron-n4020.json' with { type: 'json' };
import atom_silvermont_celeron_n2830 from '../../data/cpu-models/atom-silvermont-celeron-n2830.json' with { type: 'json' };
import bochs_corei7_skylake_x from '../../data/cpu-models/bochs-corei7-skylake-x.json' with { type: 'json' };
import broadwell_i5_5257u from '../../data/cpu-models/broadwell-i5-5257u.json' with { type: 'json' };
import coffeelake_i7_8750h from '../../data/cpu-models/coffeelake-i7-8750h.json' with { type: 'json' };
import cometlake_i7_10700 from '../../data/cpu-models/cometlake-i7-10700.json' with { type: 'json' };
import haswell_i5_4260u from '../../data/cpu-models/haswell-i5-4260u.json' with { type: 'json' };
import icelake_i5_1035g1 from '../../data/cpu-models/icelake-i5-1035g1.json' with { type: 'json' };
import ivybridge_i5_3320m from '../../data/cpu-models/ivybridge-i5-3320m.json' with { type: 'json' };
import nehalem_lynnfield_i7_870 from '../../data/cpu-models/nehalem-lynnfield-i7-870.json' with { type: 'json' };
import penryn_core2_duo_t9600 from '../../data/cpu-models/penryn-core2-duo-t9600.json' with { type: 'json' };
import raptorlake_core7_150u from '../../data/cpu-models/raptorlake-core7-150u.json' with { type: 'json' };
import raptorlake_i7_14700 from '../../data/cpu-models/raptorlake-i7-14700.json' with { type: 'json' };
import sandybridge_i7_2670qm from '../../data/cpu-models/sandybridge-i7-2670qm.json' with { type: 'json' };
import skylake_i5_6300u from '../../data/cpu-models/skylake-i5-6300u.json' with { type: 'json' };
import skylake_x_i9_9980xe from '../../data/cpu-models/skylake-x-i9-9980xe.json' with { type: 'json' };
import tigerlake_i5_1135g7 from '../../data/cpu-models/tigerlake-i5-1135g7.json' with { type: 'json' };
import westmere_arrandale_370m from '../../data/cpu-models/westmere-arrandale-370m.json' with { type: 'json' };
import westmere_clarkdale_i5_650 from '../../data/cpu-models/westmere-clarkdale-i5-650.json' with { type: 'json' };
import wolfdale_core2_e7500 from '../../data/cpu-models/wolfdale-core2-e7500.json' with { type: 'json' };
import { CPUID_1_EBX, CPUID_FEATURE, CPUID_LEAF, cpuidBit, decodeSignature, type CpuidFeature } from '../x86/cpuid.ts';

export interface CpuidResult {
  eax: number;
  ebx: number;
  ecx: number;
  edx: number;
}

/**
 * The parts of CPUID output that depend on the executing logical processor rather than on the model.
 * Defaults describe a processor just out of reset: CR4 = 0, XCR0 = 1, APIC enabled, not in 64-bit mode.
 */
export interface CpuidLpState {
  /** Initial APIC ID, reported in CPUID.1:EBX[31:24]. */
  apicId?: number;
  /** Logical processors in the package, reported (rounded up to a power of two) in CPUID.1:EBX[23:16]. */
  logicalProcessorCount?: number;
  /** CR4 low 32 bits: CPUID.1:ECX.OSXSAVE reflects CR4.OSXSAVE. */
  cr4?: number;
  /** XCR0 low 32 bits: CPUID.(EAX=0DH,ECX=0):EBX is the XSAVE area size for the features enabled in XCR0. */
  xcr0?: number;
  /** IA32_APIC_BASE[11]: CPUID.1:EDX.APIC reads 0 while the APIC is globally disabled. */
  apicGlobalEnable?: boolean;
  /** Intel reports CPUID.80000001H:EDX.SYSCALL = 1 only when CPUID executes in 64-bit mode. */
  in64BitMode?: boolean;
}

export interface CpuModel {
  readonly name: string;
  /** The processor, as the data file names it. */
  readonly description: string;
  /** The MSR values were read on real hardware (false for the Bochs model). */
  readonly measured: boolean;
  /** Leaf 1, the brand string and the address sizes were measured (false when taken from CPUID_SUPPLEMENTS). */
  readonly cpuidMeasured: boolean;
  /** Display family, display model and stepping (decoded from CPUID.1:EAX). */
  readonly family: number;
  readonly model: number;
  readonly stepping: number;
  /** MAXPHYADDR, CPUID.80000008H:EAX[7:0]. */
  readonly maxPhysAddr: number;
  /** Linear-address width, CPUID.80000008H:EAX[15:8]. */
  readonly linearAddrBits: number;
  readonly brand: string;
  /** MSR values from the data file: VMX capability MSRs, IA32_FEATURE_CONTROL and others. */
  readonly msrs: ReadonlyMap<number, bigint>;
  /** CPUID for this model; `lp` supplies the per-processor bits (see CpuidLpState). */
  cpuid(leaf: number, subleaf: number, lp?: CpuidLpState): CpuidResult;
}

/** The shape of data/cpu-models/*.json, as far as this module reads it. */
interface CpuModelFile {
  name: string;
  cpu: string;
  brand_string?: string | null;
  measured_or_modeled: string;
  msrs: Record<string, string>;
  cpuid?: {
    '1'?: { eax: string; ecx: string; edx: string };
    '80000008.eax'?: string;
    phys_addr_bits?: number;
    linear_addr_bits?: number;
  };
}

const FILES: readonly CpuModelFile[] = [
  alderlake_i7_12700, atom_goldmont_celeron_n3350, atom_goldmontplus_celeron_n4020, atom_silvermont_celeron_n2830,
  bochs_corei7_skylake_x, broadwell_i5_5257u, coffeelake_i7_8750h, cometlake_i7_10700, haswell_i5_4260u,
  icelake_i5_1035g1, ivybridge_i5_3320m, nehalem_lynnfield_i7_870, penryn_core2_duo_t9600, raptorlake_core7_150u,
  raptorlake_i7_14700, sandybridge_i7_2670qm, skylake_i5_6300u, skylake_x_i9_9980xe, tigerlake_i5_1135g7,
  westmere_arrandale_370m, westmere_clarkdale_i5_650, wolfdale_core2_e7500,
];

/**
 * CPUID facts for the models whose source printed only MSRs: the processor signature (CPUID.1:EAX) and brand
 * string as Intel documents the part, MAXPHYADDR, and a measured model whose leaf-1 feature flags stand in.
 * SMX and PCID are then corrected from IA32_VMX_CR4_FIXED1 (see leaf1Features).
 */
interface CpuidSupplement {
  signature: number;
  brand: string;
  physAddrBits: number;
  featureDonor: string;
}
export const CPUID_SUPPLEMENTS: Readonly<Record<string, CpuidSupplement>> = {
  // Bochs 2.7 corei7_skylake_x reports a Skylake-X signature, this brand string and 36 physical address bits.
  'bochs-corei7-skylake-x': {
    signature: 0x00050654, brand: 'Intel(R) Core(TM) i7-7800X CPU @ 3.50GHz', physAddrBits: 36, featureDonor: 'skylake-i5-6300u',
  },
  'skylake-x-i9-9980xe': {
    signature: 0x00050654, brand: 'Intel(R) Core(TM) i9-9980XE CPU @ 3.00GHz', physAddrBits: 46, featureDonor: 'skylake-i5-6300u',
  },
  'westmere-arrandale-370m': {
    signature: 0x00020655, brand: 'Intel(R) Core(TM) i3 CPU M 370 @ 2.40GHz', physAddrBits: 36, featureDonor: 'nehalem-lynnfield-i7-870',
  },
  'westmere-clarkdale-i5-650': {
    signature: 0x00020655, brand: 'Intel(R) Core(TM) i5 CPU 650 @ 3.20GHz', physAddrBits: 36, featureDonor: 'nehalem-lynnfield-i7-870',
  },
  'wolfdale-core2-e7500': {
    signature: 0x0001067a, brand: 'Intel(R) Core(TM)2 Duo CPU E7500 @ 2.93GHz', physAddrBits: 36, featureDonor: 'penryn-core2-duo-t9600',
  },
};

// Capability MSRs this module reads to derive feature flags. See SDM Vol. 3D, "VMX Capability Reporting Facility".
const IA32_VMX_CR4_FIXED1 = 0x489;
const IA32_VMX_PROCBASED_CTLS2 = 0x48b;
const IA32_VMX_EPT_VPID_CAP = 0x48c;
/** Secondary control "enable RDTSCP" (bit 3); its allowed-1 setting is in bits 63:32 of IA32_VMX_PROCBASED_CTLS2. */
const PROCBASED2_ENABLE_RDTSCP = 3;
/**
 * Secondary controls "enable INVPCID" (bit 12) and "RDSEED exiting" (bit 16): a processor offers them only if it
 * has the instruction, so their allowed-1 settings stand in for CPUID.07H:EBX[10] and [18] (leaf 7 is not in the
 * measured data).
 */
const PROCBASED2_ENABLE_INVPCID = 12;
const PROCBASED2_RDSEED_EXITING = 16;
/** IA32_VMX_EPT_VPID_CAP bit 17: EPT supports 1-GByte pages. */
const EPT_CAP_1G_PAGE = 17;
// CR4 bit positions (IA32_VMX_CR4_FIXED1 bit n = 1 means CR4 bit n may be 1, i.e. the feature exists).
const CR4_BIT = { UMIP: 11, SMXE: 14, FSGSBASE: 16, PCIDE: 17, OSXSAVE: 18, SMEP: 20, SMAP: 21 } as const;

/** The highest basic and extended leaves this emulator models. */
const MAX_BASIC_LEAF = CPUID_LEAF.XSAVE;
const MAX_EXTENDED_LEAF = CPUID_LEAF.ADDRESS_SIZES;
/** XSAVE area: 512-byte legacy region + 64-byte header; AVX state (component 2) is 256 bytes at offset 576. */
const XSAVE_LEGACY_AND_HEADER = 576;
const XSAVE_AVX_SIZE = 256;
const XCR0_X87 = 1 << 0;
const XCR0_SSE = 1 << 1;
const XCR0_AVX = 1 << 2;

export const CPU_MODELS: readonly CpuModel[] = FILES.map((f) => buildModel(f));

/** A Skylake client part measured on bare metal: VMX with EPT A/D, VPID, VMCS shadowing, x2APIC, 1-GByte pages. */
export const DEFAULT_CPU_MODEL: CpuModel = getCpuModel('skylake-i5-6300u')!;

export function getCpuModel(name: string): CpuModel | undefined {
  return CPU_MODELS.find((m) => m.name === name);
}

/** Does the model report `feature` (with the per-processor state `lp`, default: just out of reset)? */
export function hasFeature(model: CpuModel, feature: CpuidFeature, lp?: CpuidLpState): boolean {
  return cpuidBit(model.cpuid(feature.leaf, feature.subleaf, lp)[feature.reg], feature.bit);
}

function buildModel(file: CpuModelFile): CpuModel {
  const msrs = new Map<number, bigint>();
  for (const [index, value] of Object.entries(file.msrs)) msrs.set(Number(index), BigInt(value));

  const supplement = CPUID_SUPPLEMENTS[file.name];
  const leaf1 = file.cpuid?.['1'];
  let eax1: number, ecx1: number, edx1: number, brand: string, physBits: number, linearBits: number;
  if (leaf1 !== undefined && supplement === undefined) {
    eax1 = Number(leaf1.eax);
    ecx1 = Number(leaf1.ecx);
    edx1 = Number(leaf1.edx);
    brand = file.brand_string ?? '';
    const sizes = Number(file.cpuid?.['80000008.eax'] ?? 0);
    physBits = file.cpuid?.phys_addr_bits ?? sizes & 0xff;
    linearBits = file.cpuid?.linear_addr_bits ?? (sizes >>> 8) & 0xff;
  } else if (supplement !== undefined) {
    const donor = FILES.find((d) => d.name === supplement.featureDonor)?.cpuid?.['1'];
    if (donor === undefined) throw new Error(`cpu-model: ${file.name}: feature donor ${supplement.featureDonor} has no CPUID`);
    eax1 = supplement.signature;
    ecx1 = Number(donor.ecx);
    edx1 = Number(donor.edx);
    brand = supplement.brand;
    physBits = supplement.physAddrBits;
    linearBits = 48;
  } else {
    throw new Error(`cpu-model: ${file.name} has no CPUID data and no entry in CPUID_SUPPLEMENTS`);
  }

  const cr4Fixed1 = Number(BigInt.asUintN(32, msrs.get(IA32_VMX_CR4_FIXED1) ?? 0n));
  const ctls2Allowed1 = Number((msrs.get(IA32_VMX_PROCBASED_CTLS2) ?? 0n) >> 32n);
  const eptCap = msrs.get(IA32_VMX_EPT_VPID_CAP) ?? 0n;
  if (supplement !== undefined) {
    ecx1 = withBit(ecx1, CPUID_FEATURE.SMX.bit, cpuidBit(cr4Fixed1, CR4_BIT.SMXE));
    ecx1 = withBit(ecx1, CPUID_FEATURE.PCID.bit, cpuidBit(cr4Fixed1, CR4_BIT.PCIDE));
  }
  // The emulated local APIC has no TSC-deadline mode, so the model does not claim it (a valid configuration:
  // software then uses one-shot or periodic mode). See SDM Vol. 3A, "TSC-Deadline Mode".
  ecx1 = withBit(ecx1, CPUID_FEATURE.TSC_DEADLINE.bit, false);
  ecx1 = withBit(ecx1, CPUID_FEATURE.HYPERVISOR.bit, false);

  const sig = decodeSignature(eax1);
  const brandWords = brandStringWords(brand);
  const hasAvx = cpuidBit(ecx1, CPUID_FEATURE.AVX.bit);
  const hasXsave = cpuidBit(ecx1, CPUID_FEATURE.XSAVE.bit);

  // Leaf 7 subleaf 0: a CR4 control bit exists exactly when its feature does, and IA32_VMX_CR4_FIXED1 lists the
  // CR4 bits the processor lets software set. See SDM Vol. 3D, "VMX-Fixed Bits in CR4". INVPCID and RDSEED come
  // from the VMX controls that exist only with them (see PROCBASED2_ENABLE_INVPCID).
  const leaf7ebx =
    (cpuidBit(cr4Fixed1, CR4_BIT.FSGSBASE) ? 1 << CPUID_FEATURE.FSGSBASE.bit : 0) |
    (cpuidBit(cr4Fixed1, CR4_BIT.SMEP) ? 1 << CPUID_FEATURE.SMEP.bit : 0) |
    (cpuidBit(cr4Fixed1, CR4_BIT.SMAP) ? 1 << CPUID_FEATURE.SMAP.bit : 0) |
    (cpuidBit(ctls2Allowed1, PROCBASED2_ENABLE_INVPCID) ? 1 << CPUID_FEATURE.INVPCID.bit : 0) |
    (cpuidBit(ctls2Allowed1, PROCBASED2_RDSEED_EXITING) ? 1 << CPUID_FEATURE.RDSEED.bit : 0);
  const leaf7ecx = cpuidBit(cr4Fixed1, CR4_BIT.UMIP) ? 1 << CPUID_FEATURE.UMIP.bit : 0;

  // Leaf 80000001H. LAHF/SAHF and Intel 64 exist on every model here; NX is reported by all of them. RDTSCP exists
  // when VMX may enable it for guests; 1-GByte pages are modeled as present when EPT supports 1-GByte pages.
  const ext1ecx = 1 << CPUID_FEATURE.LAHF_LM.bit;
  const ext1edxStatic =
    (1 << CPUID_FEATURE.NX.bit) |
    (1 << CPUID_FEATURE.LM.bit) |
    (cpuidBit(ctls2Allowed1, PROCBASED2_ENABLE_RDTSCP) ? 1 << CPUID_FEATURE.RDTSCP.bit : 0) |
    (((eptCap >> BigInt(EPT_CAP_1G_PAGE)) & 1n) === 1n ? 1 << CPUID_FEATURE.PDPE1GB.bit : 0);

  const xcr0Supported = hasXsave ? XCR0_X87 | XCR0_SSE | (hasAvx ? XCR0_AVX : 0) : 0;

  function cpuid(leafIn: number, subleaf: number, lp: CpuidLpState = {}): CpuidResult {
    let leaf = leafIn >>> 0;
    // "If a value entered for CPUID.EAX is higher than the maximum input value for basic or extended function for
    // that processor then the data for the highest basic information leaf is returned."
    if ((leaf > MAX_BASIC_LEAF && leaf < CPUID_LEAF.EXT_MAX) || leaf > MAX_EXTENDED_LEAF) leaf = MAX_BASIC_LEAF;
    switch (leaf) {
      case CPUID_LEAF.VENDOR:
        // "GenuineIntel" in EBX, EDX, ECX order.
        return { eax: MAX_BASIC_LEAF, ebx: 0x756e6547, ecx: 0x6c65746e, edx: 0x49656e69 };
      case CPUID_LEAF.FEATURES: {
        const apicId = (lp.apicId ?? 0) & 0xff;
        const ebx =
          (8 << CPUID_1_EBX.CLFLUSH_SIZE_SHIFT) | // 8 × 8 = 64-byte cache lines
          (maxLogicalIds(lp.logicalProcessorCount ?? 1) << CPUID_1_EBX.MAX_LOGICAL_SHIFT) |
          (apicId << CPUID_1_EBX.INITIAL_APIC_ID_SHIFT);
        const osxsave = cpuidBit(lp.cr4 ?? 0, CR4_BIT.OSXSAVE);
        const apic = lp.apicGlobalEnable ?? true;
        return {
          eax: eax1,
          ebx: ebx >>> 0,
          ecx: withBit(ecx1, CPUID_FEATURE.OSXSAVE.bit, hasXsave && osxsave),
          edx: withBit(edx1, CPUID_FEATURE.APIC.bit, apic && cpuidBit(edx1, CPUID_FEATURE.APIC.bit)),
        };
      }
      case CPUID_LEAF.EXTENDED_FEATURES:
        // Subleaf 0 reports the highest subleaf (0) in EAX; other subleaves are all zero.
        return subleaf === 0 ? { eax: 0, ebx: leaf7ebx >>> 0, ecx: leaf7ecx, edx: 0 } : zero();
      case CPUID_LEAF.TOPOLOGY:
        return topologyLeaf(subleaf, (lp.apicId ?? 0) >>> 0, lp.logicalProcessorCount ?? 1);
      case CPUID_LEAF.XSAVE:
        return xsaveLeaf(subleaf, lp.xcr0 ?? XCR0_X87);
      case CPUID_LEAF.EXT_MAX:
        return { eax: MAX_EXTENDED_LEAF, ebx: 0, ecx: 0, edx: 0 };
      case CPUID_LEAF.EXT_FEATURES: {
        const syscall = lp.in64BitMode === true ? 1 << CPUID_FEATURE.SYSCALL.bit : 0;
        return { eax: 0, ebx: 0, ecx: ext1ecx, edx: (ext1edxStatic | syscall) >>> 0 };
      }
      case CPUID_LEAF.BRAND_0:
      case CPUID_LEAF.BRAND_1:
      case CPUID_LEAF.BRAND_2: {
        const i = (leaf - CPUID_LEAF.BRAND_0) * 4;
        return { eax: brandWords[i]!, ebx: brandWords[i + 1]!, ecx: brandWords[i + 2]!, edx: brandWords[i + 3]! };
      }
      case CPUID_LEAF.ADDRESS_SIZES:
        return { eax: (physBits & 0xff) | ((linearBits & 0xff) << 8), ebx: 0, ecx: 0, edx: 0 };
      default:
        // Leaves 2–6, 8–0AH, 0CH and 80000005H–80000007H (caches, power, performance monitoring) are not modeled:
        // all zero.
        return zero();
    }
  }

  // See SDM Vol. 1, "Enumeration of CPU Support for XSAVE Instructions and XSAVE-Supported Features".
  function xsaveLeaf(subleaf: number, xcr0: number): CpuidResult {
    if (!hasXsave) return zero();
    const size = (mask: number) => XSAVE_LEGACY_AND_HEADER + ((mask & XCR0_AVX) !== 0 ? XSAVE_AVX_SIZE : 0);
    if (subleaf === 0) return { eax: xcr0Supported, ebx: size(xcr0 & xcr0Supported), ecx: size(xcr0Supported), edx: 0 };
    if (subleaf === 2 && hasAvx) return { eax: XSAVE_AVX_SIZE, ebx: XSAVE_LEGACY_AND_HEADER, ecx: 0, edx: 0 };
    return zero(); // subleaf 1 (XSAVEOPT etc.) and other components: not modeled
  }

  return {
    name: file.name,
    description: file.cpu,
    measured: file.measured_or_modeled.startsWith('measured'),
    cpuidMeasured: supplement === undefined,
    family: sig.family,
    model: sig.model,
    stepping: sig.stepping,
    maxPhysAddr: physBits,
    linearAddrBits: linearBits,
    brand,
    msrs,
    cpuid,
  };
}

/**
 * Leaf 0BH: every logical processor is modeled as a core with one thread. Level 0 (SMT) holds one logical
 * processor; level 1 (core) holds the whole package, and its shift is the width of the core ID in the x2APIC ID.
 * An invalid level returns EAX = EBX = 0 and ECX[15:8] = 0. EDX is always the x2APIC ID.
 * See SDM Vol. 2A, "CPUID—CPU Identification", "Extended Topology Enumeration Leaf".
 */
function topologyLeaf(subleaf: number, x2apicId: number, count: number): CpuidResult {
  const SMT = 1;
  const CORE = 2;
  const level = subleaf & 0xff;
  if (level === 0) return { eax: 0, ebx: 1, ecx: (SMT << 8) | level, edx: x2apicId };
  if (level === 1) {
    const shift = Math.ceil(Math.log2(Math.max(1, count)));
    return { eax: shift, ebx: Math.max(1, count) & 0xffff, ecx: (CORE << 8) | level, edx: x2apicId };
  }
  return { eax: 0, ebx: 0, ecx: level, edx: x2apicId };
}

function zero(): CpuidResult {
  return { eax: 0, ebx: 0, ecx: 0, edx: 0 };
}

function withBit(value: number, bit: number, on: boolean): number {
  return (on ? value | (1 << bit) : value & ~(1 << bit)) >>> 0;
}

/** CPUID.1:EBX[23:16]: addressable logical-processor IDs, a power of two (at most 255 fits the field). */
function maxLogicalIds(count: number): number {
  let n = 1;
  while (n < count && n < 128) n <<= 1;
  return n;
}

/**
 * The brand string as 12 little-endian dwords (leaves 80000002H–80000004H, EAX..EDX each), null-terminated and
 * null-padded to 48 bytes. See SDM Vol. 2A, "CPUID—CPU Identification", "The Processor Brand String Method".
 */
export function brandStringWords(brand: string): number[] {
  const bytes = new Uint8Array(48);
  for (let i = 0; i < Math.min(brand.length, 47); i++) bytes[i] = brand.charCodeAt(i) & 0x7f;
  const words: number[] = [];
  for (let i = 0; i < 48; i += 4) {
    words.push((bytes[i]! | (bytes[i + 1]! << 8) | (bytes[i + 2]! << 16) | (bytes[i + 3]! << 24)) >>> 0);
  }
  return words;
}

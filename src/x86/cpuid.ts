// CPUID leaves and feature-bit names. See SDM Vol. 2A, "CPUID—CPU Identification".
//
// Each feature is `{ leaf, subleaf, reg, bit }`, so code reads `hasFeature(model, CPUID_FEATURE.VMX)` instead of
// "leaf 1, ECX bit 5". Bit names follow the SDM's feature tables (and Linux's X86_FEATURE_* where they differ only
// in spelling).

export const CPUID_LEAF = {
  /** Maximum basic leaf and the vendor string. */
  VENDOR: 0x0,
  /** Version information (family/model/stepping), EBX misc, feature flags in ECX/EDX. */
  FEATURES: 0x1,
  /** Structured extended feature flags (subleaf 0). */
  EXTENDED_FEATURES: 0x7,
  /** Extended topology enumeration (x2APIC ID in EDX). */
  TOPOLOGY: 0xb,
  /** Processor extended state (XSAVE) enumeration. */
  XSAVE: 0xd,
  /** Maximum extended leaf. */
  EXT_MAX: 0x80000000,
  /** Extended feature flags (LM, NX, SYSCALL, RDTSCP, 1-GByte pages). */
  EXT_FEATURES: 0x80000001,
  /** Processor brand string, 16 bytes per leaf. */
  BRAND_0: 0x80000002,
  BRAND_1: 0x80000003,
  BRAND_2: 0x80000004,
  /** Physical and linear address sizes. */
  ADDRESS_SIZES: 0x80000008,
} as const;

export type CpuidRegister = 'eax' | 'ebx' | 'ecx' | 'edx';

export interface CpuidFeature {
  readonly leaf: number;
  readonly subleaf: number;
  readonly reg: CpuidRegister;
  readonly bit: number;
}

const f = (leaf: number, reg: CpuidRegister, bit: number, subleaf = 0): CpuidFeature => ({ leaf, subleaf, reg, bit });

/** The feature bits the emulator and the course refer to. */
export const CPUID_FEATURE = {
  // Leaf 1, ECX. See "Feature Information Returned in the ECX Register".
  SSE3: f(1, 'ecx', 0),
  PCLMULQDQ: f(1, 'ecx', 1),
  MONITOR: f(1, 'ecx', 3),
  /** Virtual Machine Extensions: the bit chapter 1 starts from. */
  VMX: f(1, 'ecx', 5),
  SMX: f(1, 'ecx', 6),
  SSSE3: f(1, 'ecx', 9),
  FMA: f(1, 'ecx', 12),
  CX16: f(1, 'ecx', 13),
  PCID: f(1, 'ecx', 17),
  SSE4_1: f(1, 'ecx', 19),
  SSE4_2: f(1, 'ecx', 20),
  X2APIC: f(1, 'ecx', 21),
  MOVBE: f(1, 'ecx', 22),
  POPCNT: f(1, 'ecx', 23),
  TSC_DEADLINE: f(1, 'ecx', 24),
  AES: f(1, 'ecx', 25),
  XSAVE: f(1, 'ecx', 26),
  /** Reflects CR4.OSXSAVE; not a static property of the processor. */
  OSXSAVE: f(1, 'ecx', 27),
  AVX: f(1, 'ecx', 28),
  F16C: f(1, 'ecx', 29),
  RDRAND: f(1, 'ecx', 30),
  /** Always 0 on bare metal; hypervisors set it for their guests. */
  HYPERVISOR: f(1, 'ecx', 31),

  // Leaf 1, EDX. See "Feature Information Returned in the EDX Register".
  FPU: f(1, 'edx', 0),
  VME: f(1, 'edx', 1),
  DE: f(1, 'edx', 2),
  PSE: f(1, 'edx', 3),
  TSC: f(1, 'edx', 4),
  MSR: f(1, 'edx', 5),
  PAE: f(1, 'edx', 6),
  MCE: f(1, 'edx', 7),
  CX8: f(1, 'edx', 8),
  /** On-chip APIC; reads 0 while IA32_APIC_BASE[11] (global enable) is 0. */
  APIC: f(1, 'edx', 9),
  SEP: f(1, 'edx', 11),
  MTRR: f(1, 'edx', 12),
  PGE: f(1, 'edx', 13),
  MCA: f(1, 'edx', 14),
  CMOV: f(1, 'edx', 15),
  PAT: f(1, 'edx', 16),
  PSE36: f(1, 'edx', 17),
  CLFSH: f(1, 'edx', 19),
  MMX: f(1, 'edx', 23),
  FXSR: f(1, 'edx', 24),
  SSE: f(1, 'edx', 25),
  SSE2: f(1, 'edx', 26),
  HTT: f(1, 'edx', 28),

  // Leaf 7 subleaf 0. See "Structured Extended Feature Flags Enumeration Leaf".
  FSGSBASE: f(7, 'ebx', 0),
  /** Bit-manipulation group 1; F3 0F BC is TZCNT (not BSF) when set. */
  BMI1: f(7, 'ebx', 3),
  SMEP: f(7, 'ebx', 7),
  INVPCID: f(7, 'ebx', 10),
  RDSEED: f(7, 'ebx', 18),
  SMAP: f(7, 'ebx', 20),
  UMIP: f(7, 'ecx', 2),
  PKU: f(7, 'ecx', 3),
  LA57: f(7, 'ecx', 16),

  // Leaf 80000001H. See "Extended Function CPUID Information".
  LAHF_LM: f(0x80000001, 'ecx', 0),
  /** LZCNT (ABM); F3 0F BD is LZCNT (not BSR) when set. */
  LZCNT: f(0x80000001, 'ecx', 5),
  SYSCALL: f(0x80000001, 'edx', 11),
  NX: f(0x80000001, 'edx', 20),
  PDPE1GB: f(0x80000001, 'edx', 26),
  RDTSCP: f(0x80000001, 'edx', 27),
  /** Intel 64 architecture (long mode). */
  LM: f(0x80000001, 'edx', 29),
} as const satisfies Record<string, CpuidFeature>;

export type CpuidFeatureName = keyof typeof CPUID_FEATURE;

/** Leaf 1 EAX, the version information. See "Version Information Returned by CPUID in EAX". */
export const CPUID_VERSION = {
  STEPPING_SHIFT: 0,
  MODEL_SHIFT: 4,
  FAMILY_SHIFT: 8,
  TYPE_SHIFT: 12,
  EXT_MODEL_SHIFT: 16,
  EXT_FAMILY_SHIFT: 20,
} as const;

/** Leaf 1 EBX fields. See "CPUID—CPU Identification", leaf 01H, EBX. */
export const CPUID_1_EBX = {
  BRAND_INDEX_SHIFT: 0,
  /** CLFLUSH line size in 8-byte units (bits 15:8). */
  CLFLUSH_SIZE_SHIFT: 8,
  /** Maximum number of addressable IDs for logical processors in this package (bits 23:16). */
  MAX_LOGICAL_SHIFT: 16,
  /** Initial APIC ID of the executing logical processor (bits 31:24). */
  INITIAL_APIC_ID_SHIFT: 24,
} as const;

export interface CpuSignature {
  stepping: number;
  /** Display model: (extended model << 4) + model when family is 6 or 15. */
  model: number;
  /** Display family: family + extended family when family is 15. */
  family: number;
  type: number;
}

/** Decode leaf 1 EAX with the SDM's display-family/display-model rules. See "CPUID—CPU Identification", leaf 01H. */
export function decodeSignature(eax: number): CpuSignature {
  const stepping = (eax >>> CPUID_VERSION.STEPPING_SHIFT) & 0xf;
  const baseModel = (eax >>> CPUID_VERSION.MODEL_SHIFT) & 0xf;
  const baseFamily = (eax >>> CPUID_VERSION.FAMILY_SHIFT) & 0xf;
  const type = (eax >>> CPUID_VERSION.TYPE_SHIFT) & 0x3;
  const extModel = (eax >>> CPUID_VERSION.EXT_MODEL_SHIFT) & 0xf;
  const extFamily = (eax >>> CPUID_VERSION.EXT_FAMILY_SHIFT) & 0xff;
  // The extended family is added only when Family_ID is 0FH; the extended model is used for families 06H and 0FH.
  const family = baseFamily === 0xf ? baseFamily + extFamily : baseFamily;
  const model = baseFamily === 0x6 || baseFamily === 0xf ? (extModel << 4) + baseModel : baseModel;
  return { stepping, model, family, type };
}

/** Is `bit` of `value` set? (Registers are unsigned 32-bit.) */
export function cpuidBit(value: number, bit: number): boolean {
  return ((value >>> bit) & 1) === 1;
}

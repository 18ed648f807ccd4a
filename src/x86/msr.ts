// Model-specific register indices, with their Linux names. See SDM Vol. 4, "Model-Specific Registers (MSRs)".
export const MSR_IA32_TIME_STAMP_COUNTER = 0x10;
export const MSR_IA32_APICBASE = 0x1b;
export const MSR_IA32_FEATURE_CONTROL = 0x3a;
export const MSR_IA32_TSC_ADJUST = 0x3b;
export const MSR_IA32_SPEC_CTRL = 0x48;
export const MSR_IA32_BIOS_SIGN_ID = 0x8b;
/** Writable only in SMM. See SDM Vol. 3C, "Dual-Monitor Treatment of SMIs and SMM". */
export const MSR_IA32_SMM_MONITOR_CTL = 0x9b;
/** Readable only in SMM. */
export const MSR_IA32_SMBASE = 0x9e;
/** IA32_MTRRCAP (Linux: MSR_MTRRcap). Layout in src/x86/mtrr.ts. See SDM Vol. 3A, "MTRR Feature Identification". */
export const MSR_IA32_MTRRCAP = 0xfe;
export const MSR_IA32_SYSENTER_CS = 0x174;
export const MSR_IA32_SYSENTER_ESP = 0x175;
export const MSR_IA32_SYSENTER_EIP = 0x176;
export const MSR_IA32_MISC_ENABLE = 0x1a0;
export const MSR_IA32_DEBUGCTLMSR = 0x1d9;
/** SMRR pair: present when IA32_MTRRCAP.SMRR = 1; writable only in SMM. See SDM Vol. 3A, "System-Management Range Register Interface". */
export const MSR_IA32_SMRR_PHYSBASE = 0x1f2;
export const MSR_IA32_SMRR_PHYSMASK = 0x1f3;
/** Variable-range MTRR pair n (n < IA32_MTRRCAP.VCNT): IA32_MTRR_PHYSBASEn at 200H + 2n, IA32_MTRR_PHYSMASKn right after. */
export const MSR_MTRRphysBase0 = 0x200;
export const MTRRphysBase_MSR = (n: number): number => MSR_MTRRphysBase0 + 2 * n;
export const MTRRphysMask_MSR = (n: number): number => MSR_MTRRphysBase0 + 2 * n + 1;
/** The 11 fixed-range MTRRs (their address ranges: FIXED_RANGE_MTRRS in src/x86/mtrr.ts). */
export const MSR_MTRRfix64K_00000 = 0x250;
export const MSR_MTRRfix16K_80000 = 0x258;
export const MSR_MTRRfix16K_A0000 = 0x259;
export const MSR_MTRRfix4K_C0000 = 0x268;
export const MSR_MTRRfix4K_C8000 = 0x269;
export const MSR_MTRRfix4K_D0000 = 0x26a;
export const MSR_MTRRfix4K_D8000 = 0x26b;
export const MSR_MTRRfix4K_E0000 = 0x26c;
export const MSR_MTRRfix4K_E8000 = 0x26d;
export const MSR_MTRRfix4K_F0000 = 0x26e;
export const MSR_MTRRfix4K_F8000 = 0x26f;
export const MSR_IA32_CR_PAT = 0x277;
/** IA32_MTRR_DEF_TYPE. Layout in src/x86/mtrr.ts. */
export const MSR_MTRRdefType = 0x2ff;
export const MSR_IA32_VMX_BASIC = 0x480;
export const MSR_IA32_VMX_VMFUNC = 0x491;
export const MSR_IA32_TSC_DEADLINE = 0x6e0;
/** MPX bound configuration (supervisor). */
export const MSR_IA32_BNDCFGS = 0xd90;
/** x2APIC registers occupy MSRs 800H–8FFH. See SDM Vol. 3A, "x2APIC Register Address Space". */
export const MSR_X2APIC_FIRST = 0x800;
export const MSR_X2APIC_LAST = 0x8ff;
export const MSR_EFER = 0xc0000080;
export const MSR_STAR = 0xc0000081;
export const MSR_LSTAR = 0xc0000082;
export const MSR_CSTAR = 0xc0000083;
export const MSR_SYSCALL_MASK = 0xc0000084;
export const MSR_FS_BASE = 0xc0000100;
export const MSR_GS_BASE = 0xc0000101;
export const MSR_KERNEL_GS_BASE = 0xc0000102;
export const MSR_TSC_AUX = 0xc0000103;

/** IA32_FEATURE_CONTROL bits. See SDM Vol. 3C, "Enabling and Entering VMX Operation". */
export const FEATURE_CONTROL = {
  LOCKED: 1 << 0,
  VMXON_INSIDE_SMX: 1 << 1,
  VMXON_OUTSIDE_SMX: 1 << 2,
} as const;

/** IA32_DEBUGCTL bits that exist (all others reserved). See SDM Vol. 3B, "IA32_DEBUGCTL MSR". */
export const DEBUGCTL = {
  LBR: 1n << 0n,
  BTF: 1n << 1n,
  /** Bits 5:2 and 63:16 are reserved. */
  RESERVED: 0x3cn | (~0n << 16n & 0xffffffffffffffffn),
} as const;

/** IA32_APIC_BASE bits. See SDM Vol. 3A, "Local APIC Status and Location". */
export const APIC_BASE = {
  BSP: 1 << 8,
  EXTD: 1 << 10,
  ENABLE: 1 << 11,
  DEFAULT_BASE: 0xfee00000,
} as const;

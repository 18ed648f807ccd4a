// VM-entry checks on the host-state area. A failure ends VMLAUNCH/VMRESUME with VMfailValid(8),
// "VM entry with invalid host-state field(s)". See SDM Vol. 3C, "Checks on Host Control Registers, MSRs, and
// SSP", "Checks on Host Segment and Descriptor-Table Registers" and "Checks Related to Address-Space Size".
import type { StateCheck, CheckResult } from './rule.ts';
import { ERROR_INVALID_HOST_STATE, fail } from './rule.ts';
import { hex } from '../../util/hex.ts';
import type { EntryView } from './view.ts';
import { VMX_CONTROL } from '../controls.ts';
import { CR4, EFER, EFER_DEFINED } from '../../x86/control-registers.ts';
import type { VmcsFullFieldName } from '../fields.ts';

const CRS = 'Checks on Host Control Registers, MSRs, and SSP';
const SEGS = 'Checks on Host Segment and Descriptor-Table Registers';
const SIZE = 'Checks Related to Address-Space Size';

function host(section: string, id: string, fields: readonly VmcsFullFieldName[], check: (v: EntryView) => CheckResult, explain: string): StateCheck {
  return { id, group: 'host-state', section, fields, outcome: ERROR_INVALID_HOST_STATE, check, explain };
}

/** A CR0/CR4 value against IA32_VMX_CRn_FIXED0/FIXED1: FIXED0 bits must be 1, bits clear in FIXED1 must be 0. */
export function fixedBits(field: VmcsFullFieldName, value: bigint, fixed0: bigint, fixed1: bigint, msr: string, exempt = 0n): CheckResult {
  const missing = fixed0 & ~value & ~exempt;
  const forbidden = value & ~fixed1 & ~exempt & 0xffffffffffffffffn;
  if (missing === 0n && forbidden === 0n) return true;
  const parts: string[] = [];
  if (missing) parts.push(`bits ${hex(missing)} must be 1 (${msr}_FIXED0)`);
  if (forbidden) parts.push(`bits ${hex(forbidden)} must be 0 (not set in ${msr}_FIXED1)`);
  return fail(field, value, `FIXED0 ${hex(fixed0)} ⊆ value ⊆ FIXED1 ${hex(fixed1)}`, parts.join('; '));
}

/** Every byte of a PAT value must be a valid memory type: 0, 1, 4, 5, 6 or 7. See SDM Vol. 3A, "IA32_PAT MSR". */
export function validPat(pat: bigint): number {
  for (let i = 0; i < 8; i++) {
    const t = Number((pat >> BigInt(8 * i)) & 0xffn);
    if (t === 2 || t === 3 || t > 7) return i;
  }
  return -1;
}

function canonicalField(v: EntryView, field: VmcsFullFieldName, what: string): CheckResult {
  const a = v.u64(field);
  return v.canonical(a) || fail(field, a, `canonical (${v.linearAddrWidth}-bit)`, `${what} must be a canonical address`);
}

const HOST_SELECTORS = ['ES', 'CS', 'SS', 'DS', 'FS', 'GS', 'TR'] as const;
const HOST_BASES = ['FS', 'GS', 'GDTR', 'IDTR', 'TR'] as const;
const has = (value: number, bit: number): boolean => (value & bit) !== 0;

export const HOST_STATE_CHECKS: readonly StateCheck[] = [
  host(CRS, 'host-cr0-fixed-bits', ['HOST_CR0'],
    (v) => fixedBits('HOST_CR0', v.u64('HOST_CR0'), v.caps.cr0Fixed0, v.caps.cr0Fixed1, 'IA32_VMX_CR0'),
    'Host CR0 must have every bit that IA32_VMX_CR0_FIXED0 sets, and no bit that IA32_VMX_CR0_FIXED1 clears.'),
  host(CRS, 'host-cr4-fixed-bits', ['HOST_CR4'],
    (v) => fixedBits('HOST_CR4', v.u64('HOST_CR4'), v.caps.cr4Fixed0, v.caps.cr4Fixed1, 'IA32_VMX_CR4'),
    'Host CR4 must have every bit that IA32_VMX_CR4_FIXED0 sets (including VMXE), and no bit that IA32_VMX_CR4_FIXED1 clears.'),
  host(CRS, 'host-cr3-width', ['HOST_CR3'], (v) => {
    const cr3 = v.u64('HOST_CR3');
    return v.withinPhysWidth(cr3) || fail('HOST_CR3', cr3, `< 2^${v.physAddrWidth}`, 'host CR3 sets bits beyond the physical-address width');
  }, 'Host CR3 must not set bits beyond the physical-address width.'),
  host(CRS, 'host-sysenter-esp-canonical', ['HOST_IA32_SYSENTER_ESP'],
    (v) => canonicalField(v, 'HOST_IA32_SYSENTER_ESP', 'Host IA32_SYSENTER_ESP'),
    'The host IA32_SYSENTER_ESP field must hold a canonical address.'),
  host(CRS, 'host-sysenter-eip-canonical', ['HOST_IA32_SYSENTER_EIP'],
    (v) => canonicalField(v, 'HOST_IA32_SYSENTER_EIP', 'Host IA32_SYSENTER_EIP'),
    'The host IA32_SYSENTER_EIP field must hold a canonical address.'),
  host(CRS, 'host-pat', ['VM_EXIT_CONTROLS', 'HOST_IA32_PAT'], (v) => {
    if (!has(v.exitCtls, VMX_CONTROL.VM_EXIT_LOAD_IA32_PAT)) return true;
    const pat = v.u64('HOST_IA32_PAT');
    const bad = validPat(pat);
    return bad < 0 || fail('HOST_IA32_PAT', pat, 'each byte 0, 1, 4, 5, 6 or 7', `PAT entry ${bad} holds an invalid memory type`);
  }, 'With "load IA32_PAT", each byte of the host PAT must be a valid memory type (0, 1, 4, 5, 6 or 7).'),
  host(CRS, 'host-efer-reserved', ['VM_EXIT_CONTROLS', 'HOST_IA32_EFER'], (v) => {
    if (!has(v.exitCtls, VMX_CONTROL.VM_EXIT_LOAD_IA32_EFER)) return true;
    const efer = v.u64('HOST_IA32_EFER');
    return (efer & ~BigInt(EFER_DEFINED)) === 0n || fail('HOST_IA32_EFER', efer, `⊆ ${hex(EFER_DEFINED)}`, 'host EFER sets reserved bits');
  }, 'With "load IA32_EFER", reserved bits of the host IA32_EFER field must be 0.'),
  host(CRS, 'host-efer-lma-lme', ['VM_EXIT_CONTROLS', 'HOST_IA32_EFER'], (v) => {
    if (!has(v.exitCtls, VMX_CONTROL.VM_EXIT_LOAD_IA32_EFER)) return true;
    const efer = v.u64('HOST_IA32_EFER');
    const want = v.hostAddressSpaceSize;
    const lma = (efer & BigInt(EFER.LMA)) !== 0n;
    const lme = (efer & BigInt(EFER.LME)) !== 0n;
    return (lma === want && lme === want) ||
      fail('HOST_IA32_EFER', efer, `LMA = LME = ${want ? 1 : 0} ("host address-space size")`, 'host EFER.LMA/LME must match the "host address-space size" exit control');
  }, 'With "load IA32_EFER", host EFER.LMA and EFER.LME must each equal the "host address-space size" exit control.'),

  ...HOST_SELECTORS.map((s) => host(SEGS, `host-${s.toLowerCase()}-selector-rpl-ti`, [`HOST_${s}_SELECTOR`], (v) => {
    const sel = v.u32(`HOST_${s}_SELECTOR`);
    return (sel & 7) === 0 || fail(`HOST_${s}_SELECTOR`, sel, 'bits 2:0 (RPL, TI) clear', `host ${s} selector must have RPL = 0 and TI = 0 (mask with ~7, not 0xF8)`);
  }, `The host ${s} selector must have RPL (bits 1:0) and TI (bit 2) clear.`)),
  host(SEGS, 'host-cs-selector-not-null', ['HOST_CS_SELECTOR'],
    (v) => v.u32('HOST_CS_SELECTOR') !== 0 || fail('HOST_CS_SELECTOR', 0, '≠ 0000H', 'the host CS selector must not be null'),
    'The host CS selector must not be 0000H.'),
  host(SEGS, 'host-tr-selector-not-null', ['HOST_TR_SELECTOR'],
    (v) => v.u32('HOST_TR_SELECTOR') !== 0 || fail('HOST_TR_SELECTOR', 0, '≠ 0000H', 'the host needs a TSS: TR selector must not be null'),
    'The host TR selector must not be 0000H.'),
  host(SEGS, 'host-ss-selector-not-null', ['VM_EXIT_CONTROLS', 'HOST_SS_SELECTOR'],
    (v) => v.hostAddressSpaceSize || v.u32('HOST_SS_SELECTOR') !== 0 ||
      fail('HOST_SS_SELECTOR', 0, '≠ 0000H', 'a 32-bit host needs a non-null SS'),
    'If "host address-space size" is 0, the host SS selector must not be 0000H.'),
  ...HOST_BASES.map((s) => host(SEGS, `host-${s.toLowerCase()}-base-canonical`, [`HOST_${s}_BASE`],
    (v) => canonicalField(v, `HOST_${s}_BASE`, `The host ${s} base`),
    `The host ${s} base address must be canonical.`)),

  host(SIZE, 'host-outside-ia32e-mode', ['VM_ENTRY_CONTROLS', 'VM_EXIT_CONTROLS'], (v) => {
    if (v.hostInIa32eMode) return true;
    if (v.ia32eModeGuest) return fail('VM_ENTRY_CONTROLS', v.entryCtls, '"IA-32e mode guest" = 0', 'a processor outside IA-32e mode cannot enter a 64-bit guest');
    if (v.hostAddressSpaceSize) return fail('VM_EXIT_CONTROLS', v.exitCtls, '"host address-space size" = 0', 'a processor outside IA-32e mode cannot return to a 64-bit host');
    return true;
  }, 'Outside IA-32e mode (IA32_EFER.LMA = 0), "IA-32e mode guest" and "host address-space size" must both be 0.'),
  host(SIZE, 'host-inside-ia32e-mode', ['VM_EXIT_CONTROLS'],
    (v) => !v.hostInIa32eMode || v.hostAddressSpaceSize ||
      fail('VM_EXIT_CONTROLS', v.exitCtls, '"host address-space size" = 1', 'a processor in IA-32e mode must return to a 64-bit host'),
    'In IA-32e mode, the "host address-space size" exit control must be 1.'),
  host(SIZE, 'host-32-bit-no-ia32e-guest', ['VM_EXIT_CONTROLS', 'VM_ENTRY_CONTROLS'],
    (v) => v.hostAddressSpaceSize || !v.ia32eModeGuest ||
      fail('VM_ENTRY_CONTROLS', v.entryCtls, '"IA-32e mode guest" = 0', 'a 32-bit host cannot run a 64-bit guest'),
    'If "host address-space size" is 0, "IA-32e mode guest" must be 0.'),
  host(SIZE, 'host-32-bit-no-pcide', ['VM_EXIT_CONTROLS', 'HOST_CR4'], (v) => {
    if (v.hostAddressSpaceSize) return true;
    const cr4 = v.u64('HOST_CR4');
    return (cr4 & BigInt(CR4.PCIDE)) === 0n || fail('HOST_CR4', cr4, 'PCIDE (bit 17) clear', 'a 32-bit host cannot use PCIDs');
  }, 'If "host address-space size" is 0, host CR4.PCIDE must be 0.'),
  host(SIZE, 'host-32-bit-rip', ['VM_EXIT_CONTROLS', 'HOST_RIP'], (v) => {
    if (v.hostAddressSpaceSize) return true;
    const rip = v.u64('HOST_RIP');
    return rip >> 32n === 0n || fail('HOST_RIP', rip, 'bits 63:32 clear', 'a 32-bit host RIP must fit in 32 bits');
  }, 'If "host address-space size" is 0, bits 63:32 of host RIP must be 0.'),
  host(SIZE, 'host-64-bit-pae', ['VM_EXIT_CONTROLS', 'HOST_CR4'], (v) => {
    if (!v.hostAddressSpaceSize) return true;
    const cr4 = v.u64('HOST_CR4');
    return (cr4 & BigInt(CR4.PAE)) !== 0n || fail('HOST_CR4', cr4, 'PAE (bit 5) set', 'a 64-bit host needs CR4.PAE = 1');
  }, 'If "host address-space size" is 1, host CR4.PAE must be 1.'),
  host(SIZE, 'host-64-bit-rip-canonical', ['VM_EXIT_CONTROLS', 'HOST_RIP'],
    (v) => !v.hostAddressSpaceSize || canonicalField(v, 'HOST_RIP', 'The host RIP'),
    'If "host address-space size" is 1, host RIP must be canonical.'),
];

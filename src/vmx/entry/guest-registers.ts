// VM-entry checks on guest control registers, debug registers, MSRs, descriptor-table registers, RIP and RFLAGS.
// A failure is a VM-entry failure exit with reason 33 ("invalid guest state"), qualification 0.
// See SDM Vol. 3C, "Checks on Guest Control Registers, Debug Registers, and MSRs",
// "Checks on Guest Descriptor-Table Registers" and "Checks on Guest RIP, RFLAGS, and SSP".
import type { StateCheck, CheckResult } from './rule.ts';
import { EXIT_INVALID_GUEST_STATE, fail } from './rule.ts';
import { hex } from '../../util/hex.ts';
import type { EntryView } from './view.ts';
import { VMX_CONTROL } from '../controls.ts';
import { INTR_TYPE } from '../transition/interruption-info.ts';
import { DEBUGCTL } from '../../x86/msr.ts';
import { fixedBits, validPat } from './host-state.ts';
import { entryInterruptionInfo } from './controls.ts';
import { CR0, CR4, EFER, EFER_DEFINED } from '../../x86/control-registers.ts';
import { RFLAGS } from '../../x86/flags.ts';
import { AR } from '../../x86/segments.ts';
import type { VmcsFullFieldName } from '../fields.ts';

const CRS = 'Checks on Guest Control Registers, Debug Registers, and MSRs';
const DTS = 'Checks on Guest Descriptor-Table Registers';
const RIP = 'Checks on Guest RIP, RFLAGS, and SSP';

function guest(section: string, id: string, fields: readonly VmcsFullFieldName[], check: (v: EntryView) => CheckResult, explain: string): StateCheck {
  return { id, group: 'guest-state', section, fields, outcome: EXIT_INVALID_GUEST_STATE, check, explain };
}

const has = (value: number, bit: number): boolean => (value & bit) !== 0;
const bit = (value: bigint, mask: number): boolean => (value & BigInt(mask)) !== 0n;

/** IA32_BNDCFGS bits 11:2 are reserved. See SDM Vol. 1, "Intel MPX" (IA32_BNDCFGS). */
const BNDCFGS_RESERVED = 0xffcn;
/** RFLAGS bits 63:22, 15, 5 and 3 are reserved (0); bit 1 is reserved (1). See SDM Vol. 1, "EFLAGS Register". */
const RFLAGS_RESERVED_ZERO = (0xffffffffffffffffn & ~0x3fffffn) | (1n << 15n) | (1n << 5n) | (1n << 3n);

export const GUEST_REGISTER_CHECKS: readonly StateCheck[] = [
  // --- Control registers, debug registers, MSRs -------------------------------------------------------------
  guest(CRS, 'guest-cr0-fixed-bits', ['GUEST_CR0', 'SECONDARY_VM_EXEC_CONTROL'], (v) => {
    // PE and PG are exempt with "unrestricted guest"; NW and CD are never checked because VM entry does not
    // change them.
    const exempt = BigInt(CR0.NW | CR0.CD) | (v.unrestrictedGuest ? BigInt(CR0.PE | CR0.PG) : 0n);
    return fixedBits('GUEST_CR0', v.u64('GUEST_CR0'), v.caps.cr0Fixed0, v.caps.cr0Fixed1, 'IA32_VMX_CR0', exempt);
  }, 'Guest CR0 must respect IA32_VMX_CR0_FIXED0/FIXED1, except NW and CD (never checked) and PE/PG with "unrestricted guest".'),
  guest(CRS, 'guest-cr0-pg-needs-pe', ['GUEST_CR0'], (v) => {
    const cr0 = v.u64('GUEST_CR0');
    return !bit(cr0, CR0.PG) || bit(cr0, CR0.PE) || fail('GUEST_CR0', cr0, 'PE = 1 when PG = 1', 'paging requires protected mode');
  }, 'If CR0.PG is 1, CR0.PE must be 1.'),
  guest(CRS, 'guest-cr4-fixed-bits', ['GUEST_CR4'],
    (v) => fixedBits('GUEST_CR4', v.u64('GUEST_CR4'), v.caps.cr4Fixed0, v.caps.cr4Fixed1, 'IA32_VMX_CR4'),
    'Guest CR4 must have every bit IA32_VMX_CR4_FIXED0 sets (VMXE included) and none that IA32_VMX_CR4_FIXED1 clears.'),
  guest(CRS, 'guest-debugctl-reserved', ['VM_ENTRY_CONTROLS', 'GUEST_IA32_DEBUGCTL'], (v) => {
    if (!has(v.entryCtls, VMX_CONTROL.VM_ENTRY_LOAD_DEBUG_CONTROLS)) return true;
    const d = v.u64('GUEST_IA32_DEBUGCTL');
    return (d & DEBUGCTL.RESERVED) === 0n || fail('GUEST_IA32_DEBUGCTL', d, `bits ${hex(DEBUGCTL.RESERVED)} clear`, 'guest IA32_DEBUGCTL sets reserved bits');
  }, 'With "load debug controls", reserved bits of IA32_DEBUGCTL (5:2, 63:16) must be 0.'),
  guest(CRS, 'guest-ia32e-needs-paging', ['VM_ENTRY_CONTROLS', 'GUEST_CR0', 'GUEST_CR4'], (v) => {
    if (!v.ia32eModeGuest) return true;
    const cr0 = v.u64('GUEST_CR0');
    const cr4 = v.u64('GUEST_CR4');
    if (!bit(cr0, CR0.PG)) return fail('GUEST_CR0', cr0, 'PG = 1', 'an IA-32e mode guest needs paging');
    if (!bit(cr4, CR4.PAE)) return fail('GUEST_CR4', cr4, 'PAE = 1', 'an IA-32e mode guest needs CR4.PAE');
    return true;
  }, 'If "IA-32e mode guest" is 1, CR0.PG and CR4.PAE must be 1.'),
  guest(CRS, 'guest-pcide-needs-ia32e', ['VM_ENTRY_CONTROLS', 'GUEST_CR4'], (v) => {
    const cr4 = v.u64('GUEST_CR4');
    return v.ia32eModeGuest || !bit(cr4, CR4.PCIDE) || fail('GUEST_CR4', cr4, 'PCIDE = 0', 'PCIDs exist only in IA-32e mode');
  }, 'If "IA-32e mode guest" is 0, CR4.PCIDE must be 0.'),
  guest(CRS, 'guest-cr3-width', ['GUEST_CR3'], (v) => {
    const cr3 = v.u64('GUEST_CR3');
    return v.withinPhysWidth(cr3) || fail('GUEST_CR3', cr3, `< 2^${v.physAddrWidth}`, 'guest CR3 sets bits beyond the physical-address width');
  }, 'Guest CR3 must not set bits beyond the physical-address width.'),
  guest(CRS, 'guest-dr7-high', ['VM_ENTRY_CONTROLS', 'GUEST_DR7'], (v) => {
    if (!has(v.entryCtls, VMX_CONTROL.VM_ENTRY_LOAD_DEBUG_CONTROLS)) return true;
    const dr7 = v.u64('GUEST_DR7');
    return dr7 >> 32n === 0n || fail('GUEST_DR7', dr7, 'bits 63:32 clear', 'DR7 bits 63:32 are reserved');
  }, 'With "load debug controls", bits 63:32 of DR7 must be 0.'),
  guest(CRS, 'guest-sysenter-esp-canonical', ['GUEST_SYSENTER_ESP'], (v) => {
    const a = v.u64('GUEST_SYSENTER_ESP');
    return v.canonical(a) || fail('GUEST_SYSENTER_ESP', a, 'canonical', 'guest IA32_SYSENTER_ESP must be canonical');
  }, 'The guest IA32_SYSENTER_ESP field must hold a canonical address.'),
  guest(CRS, 'guest-sysenter-eip-canonical', ['GUEST_SYSENTER_EIP'], (v) => {
    const a = v.u64('GUEST_SYSENTER_EIP');
    return v.canonical(a) || fail('GUEST_SYSENTER_EIP', a, 'canonical', 'guest IA32_SYSENTER_EIP must be canonical');
  }, 'The guest IA32_SYSENTER_EIP field must hold a canonical address.'),
  guest(CRS, 'guest-pat', ['VM_ENTRY_CONTROLS', 'GUEST_IA32_PAT'], (v) => {
    if (!has(v.entryCtls, VMX_CONTROL.VM_ENTRY_LOAD_IA32_PAT)) return true;
    const pat = v.u64('GUEST_IA32_PAT');
    const bad = validPat(pat);
    return bad < 0 || fail('GUEST_IA32_PAT', pat, 'each byte 0, 1, 4, 5, 6 or 7', `PAT entry ${bad} holds an invalid memory type`);
  }, 'With "load IA32_PAT", each byte of the guest PAT must be a valid memory type (0, 1, 4, 5, 6 or 7).'),
  guest(CRS, 'guest-efer-reserved', ['VM_ENTRY_CONTROLS', 'GUEST_IA32_EFER'], (v) => {
    if (!has(v.entryCtls, VMX_CONTROL.VM_ENTRY_LOAD_IA32_EFER)) return true;
    const efer = v.u64('GUEST_IA32_EFER');
    return (efer & ~BigInt(EFER_DEFINED)) === 0n || fail('GUEST_IA32_EFER', efer, `⊆ ${hex(EFER_DEFINED)}`, 'guest EFER sets reserved bits');
  }, 'With "load IA32_EFER", reserved bits of the guest IA32_EFER field must be 0.'),
  guest(CRS, 'guest-efer-lma', ['VM_ENTRY_CONTROLS', 'GUEST_IA32_EFER'], (v) => {
    if (!has(v.entryCtls, VMX_CONTROL.VM_ENTRY_LOAD_IA32_EFER)) return true;
    const efer = v.u64('GUEST_IA32_EFER');
    return bit(efer, EFER.LMA) === v.ia32eModeGuest || fail('GUEST_IA32_EFER', efer, `LMA = ${v.ia32eModeGuest ? 1 : 0} ("IA-32e mode guest")`, 'guest EFER.LMA must match the "IA-32e mode guest" entry control');
  }, 'With "load IA32_EFER", guest EFER.LMA must equal the "IA-32e mode guest" entry control.'),
  guest(CRS, 'guest-efer-lme', ['VM_ENTRY_CONTROLS', 'GUEST_IA32_EFER', 'GUEST_CR0'], (v) => {
    if (!has(v.entryCtls, VMX_CONTROL.VM_ENTRY_LOAD_IA32_EFER) || !bit(v.u64('GUEST_CR0'), CR0.PG)) return true;
    const efer = v.u64('GUEST_IA32_EFER');
    return bit(efer, EFER.LME) === v.ia32eModeGuest || fail('GUEST_IA32_EFER', efer, `LME = ${v.ia32eModeGuest ? 1 : 0} ("IA-32e mode guest")`, 'with paging on, guest EFER.LME must match the "IA-32e mode guest" entry control');
  }, 'With "load IA32_EFER" and CR0.PG = 1, guest EFER.LME must equal the "IA-32e mode guest" entry control.'),

  guest(CRS, 'guest-bndcfgs', ['VM_ENTRY_CONTROLS', 'GUEST_BNDCFGS'], (v) => {
    if (!has(v.entryCtls, VMX_CONTROL.VM_ENTRY_LOAD_BNDCFGS)) return true;
    const b = v.u64('GUEST_BNDCFGS');
    if ((b & BNDCFGS_RESERVED) !== 0n) return fail('GUEST_BNDCFGS', b, 'bits 11:2 clear', 'IA32_BNDCFGS bits 11:2 are reserved');
    return v.canonical(b & ~0xfffn) || fail('GUEST_BNDCFGS', b, 'bits 63:12 canonical', 'the bound-directory base in IA32_BNDCFGS must be canonical');
  }, 'With "load IA32_BNDCFGS", bits 11:2 of the guest IA32_BNDCFGS must be 0 and its base (bits 63:12) canonical.'),

  // --- Descriptor-table registers ---------------------------------------------------------------------------
  ...(['GDTR', 'IDTR'] as const).flatMap((r) => [
    guest(DTS, `guest-${r.toLowerCase()}-base-canonical`, [`GUEST_${r}_BASE`], (v) => {
      const base = v.u64(`GUEST_${r}_BASE`);
      return v.canonical(base) || fail(`GUEST_${r}_BASE`, base, 'canonical', `the guest ${r} base must be canonical`);
    }, `The guest ${r} base address must be canonical.`),
    guest(DTS, `guest-${r.toLowerCase()}-limit`, [`GUEST_${r}_LIMIT`], (v) => {
      const limit = v.u32(`GUEST_${r}_LIMIT`);
      return (limit & 0xffff0000) === 0 || fail(`GUEST_${r}_LIMIT`, limit, 'bits 31:16 clear', `the ${r} limit is 16 bits`);
    }, `Bits 31:16 of the guest ${r} limit must be 0.`),
  ]),

  // --- RIP and RFLAGS --------------------------------------------------------------------------------------
  guest(RIP, 'guest-rip-high', ['GUEST_RIP', 'VM_ENTRY_CONTROLS', 'GUEST_CS_AR_BYTES'], (v) => {
    if (v.ia32eModeGuest && has(v.u32('GUEST_CS_AR_BYTES'), AR.L)) return true;
    const rip = v.u64('GUEST_RIP');
    return rip >> 32n === 0n || fail('GUEST_RIP', rip, 'bits 63:32 clear', 'outside 64-bit mode RIP is a 32-bit EIP');
  }, 'Unless the guest is IA-32e mode with CS.L = 1, bits 63:32 of RIP must be 0.'),
  guest(RIP, 'guest-rip-canonical', ['GUEST_RIP', 'VM_ENTRY_CONTROLS', 'GUEST_CS_AR_BYTES'], (v) => {
    if (!v.ia32eModeGuest || !has(v.u32('GUEST_CS_AR_BYTES'), AR.L)) return true;
    const rip = v.u64('GUEST_RIP');
    return v.canonical(rip) || fail('GUEST_RIP', rip, 'canonical', 'a 64-bit guest RIP must be canonical');
  }, 'For an IA-32e mode guest with CS.L = 1, RIP must be canonical.'),
  guest(RIP, 'guest-rflags-reserved', ['GUEST_RFLAGS'], (v) => {
    const f = v.u64('GUEST_RFLAGS');
    if ((f & RFLAGS_RESERVED_ZERO) !== 0n) return fail('GUEST_RFLAGS', f, 'bits 63:22, 15, 5, 3 clear', 'RFLAGS sets reserved bits');
    return bit(f, RFLAGS.FIXED1) || fail('GUEST_RFLAGS', f, 'bit 1 set', 'RFLAGS bit 1 is reserved and must be 1');
  }, 'RFLAGS bits 63:22, 15, 5 and 3 must be 0, and bit 1 must be 1.'),
  guest(RIP, 'guest-rflags-vm', ['GUEST_RFLAGS', 'VM_ENTRY_CONTROLS', 'GUEST_CR0'], (v) => {
    const f = v.u64('GUEST_RFLAGS');
    if (!bit(f, RFLAGS.VM)) return true;
    if (v.ia32eModeGuest) return fail('GUEST_RFLAGS', f, 'VM = 0', 'virtual-8086 mode does not exist in IA-32e mode');
    if (!bit(v.u64('GUEST_CR0'), CR0.PE)) return fail('GUEST_RFLAGS', f, 'VM = 0', 'virtual-8086 mode needs CR0.PE = 1');
    return true;
  }, 'RFLAGS.VM must be 0 for an IA-32e mode guest or when CR0.PE is 0.'),
  guest(RIP, 'guest-rflags-if-for-external-interrupt', ['GUEST_RFLAGS', 'VM_ENTRY_INTR_INFO_FIELD'], (v) => {
    const e = entryInterruptionInfo(v);
    if (!e.valid || e.type !== INTR_TYPE.EXTERNAL_INTERRUPT) return true;
    const f = v.u64('GUEST_RFLAGS');
    return bit(f, RFLAGS.IF) || fail('GUEST_RFLAGS', f, 'IF = 1', 'an external interrupt cannot be injected while the guest has interrupts disabled');
  }, 'When injecting an external interrupt, RFLAGS.IF must be 1.'),
];

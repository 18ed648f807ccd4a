// VM-entry checks on the guest segment registers (selector, base, limit, access rights of CS, SS, DS, ES, FS, GS,
// TR and LDTR). A failure is a VM-entry failure exit with reason 33 ("invalid guest state"), qualification 0.
// See SDM Vol. 3C, "Checks on Guest Segment Registers".
import type { StateCheck, CheckResult } from './rule.ts';
import { EXIT_INVALID_GUEST_STATE, fail } from './rule.ts';
import { hex } from '../../util/hex.ts';
import type { EntryView } from './view.ts';
import { AR, arDpl } from '../../x86/segments.ts';
import type { VmcsFullFieldName } from '../fields.ts';
import type { SegmentName } from '../transition/transition-cpu.ts';
import { GUEST_SEGMENT_FIELDS } from '../transition/segment-fields.ts';

const SECTION = 'Checks on Guest Segment Registers';

type Seg = SegmentName;
const CODE_DATA: readonly Seg[] = ['CS', 'SS', 'DS', 'ES', 'FS', 'GS'];
const DATA: readonly Seg[] = ['DS', 'ES', 'FS', 'GS'];

/** Bits 11:8 and 31:17 of an access-rights field are reserved. */
const AR_RESERVED_11_8 = 0xf00;
const AR_RESERVED_31_17 = 0xfffe0000;
/** The only access rights a virtual-8086 segment may have: present, DPL 3, read/write accessed data. */
const AR_V8086 = 0xf3;

function guest(id: string, fields: readonly VmcsFullFieldName[], check: (v: EntryView) => CheckResult, explain: string): StateCheck {
  return { id, group: 'guest-state', section: SECTION, fields, outcome: EXIT_INVALID_GUEST_STATE, check, explain };
}

/** Field names per register. */
const F = GUEST_SEGMENT_FIELDS;

const sel = (v: EntryView, s: Seg): number => v.u32(F[s].selector);
const ar = (v: EntryView, s: Seg): number => v.u32(F[s].ar);
const usable = (v: EntryView, s: Seg): boolean => (ar(v, s) & AR.UNUSABLE) === 0;
const type = (a: number): number => a & AR.TYPE_MASK;
const arField = (s: Seg): VmcsFullFieldName => F[s].ar;
/** The access-rights checks on CS always apply; on the others only when the register is usable. */
const arChecked = (v: EntryView, s: Seg): boolean => !v.v8086 && (s === 'CS' || usable(v, s));

/** Limit vs granularity: a limit with any of bits 11:0 clear needs G = 0; one with any of bits 31:20 set needs G = 1. */
function granularity(v: EntryView, s: Seg): CheckResult {
  const limit = v.u32(F[s].limit);
  const a = ar(v, s);
  const g = (a & AR.G) !== 0;
  if ((limit & 0xfff) !== 0xfff && g) return fail(arField(s), a, 'G = 0', `${s} limit ${hex(limit)} has a bit of 11:0 clear, which a page-granular limit cannot express`);
  if ((limit & 0xfff00000) !== 0 && !g) return fail(arField(s), a, 'G = 1', `${s} limit ${hex(limit)} exceeds 1 MByte, which a byte-granular limit cannot express`);
  return true;
}

function perSegment(segs: readonly Seg[], make: (s: Seg) => StateCheck): StateCheck[] {
  return segs.map(make);
}

export const GUEST_SEGMENT_CHECKS: readonly StateCheck[] = [
  // --- Selector fields ---------------------------------------------------------------------------------------
  guest('guest-tr-selector-ti', ['GUEST_TR_SELECTOR'], (v) => {
    const s = sel(v, 'TR');
    return (s & 4) === 0 || fail('GUEST_TR_SELECTOR', s, 'TI (bit 2) clear', 'TR must select a TSS descriptor in the GDT');
  }, 'The TI flag (bit 2) of the guest TR selector must be 0.'),
  guest('guest-ldtr-selector-ti', ['GUEST_LDTR_SELECTOR', 'GUEST_LDTR_AR_BYTES'], (v) => {
    const s = sel(v, 'LDTR');
    return !usable(v, 'LDTR') || (s & 4) === 0 || fail('GUEST_LDTR_SELECTOR', s, 'TI (bit 2) clear', 'a usable LDTR must select an LDT descriptor in the GDT');
  }, 'If LDTR is usable, the TI flag (bit 2) of its selector must be 0.'),
  guest('guest-ss-selector-rpl', ['GUEST_SS_SELECTOR', 'GUEST_CS_SELECTOR', 'GUEST_RFLAGS', 'SECONDARY_VM_EXEC_CONTROL'], (v) => {
    if (v.v8086 || v.unrestrictedGuest) return true;
    const ss = sel(v, 'SS');
    const cs = sel(v, 'CS');
    return (ss & 3) === (cs & 3) || fail('GUEST_SS_SELECTOR', ss, `RPL = CS.RPL = ${cs & 3}`, 'SS.RPL and CS.RPL are both the CPL and must agree');
  }, 'Unless the guest is in virtual-8086 mode or "unrestricted guest" is 1, the RPL of SS must equal the RPL of CS.'),

  // --- Base-address fields -----------------------------------------------------------------------------------
  ...perSegment(CODE_DATA, (s) => guest(`guest-${s.toLowerCase()}-base-v8086`, [`GUEST_${s}_BASE`, `GUEST_${s}_SELECTOR`, 'GUEST_RFLAGS'], (v) => {
    if (!v.v8086) return true;
    const base = v.u64(F[s].base);
    const want = BigInt(sel(v, s)) << 4n;
    return base === want || fail(F[s].base, base, hex(want), `in virtual-8086 mode the ${s} base is the selector times 16`);
  }, `If the guest will be in virtual-8086 mode, the ${s} base must equal the selector shifted left by 4.`)),
  ...perSegment(['TR', 'FS', 'GS'], (s) => guest(`guest-${s.toLowerCase()}-base-canonical`, [`GUEST_${s}_BASE`], (v) => {
    const base = v.u64(F[s].base);
    return v.canonical(base) || fail(F[s].base, base, 'canonical', `the ${s} base must be canonical`);
  }, `The guest ${s} base address must be canonical.`)),
  guest('guest-ldtr-base-canonical', ['GUEST_LDTR_BASE', 'GUEST_LDTR_AR_BYTES'], (v) => {
    const base = v.u64('GUEST_LDTR_BASE');
    return !usable(v, 'LDTR') || v.canonical(base) || fail('GUEST_LDTR_BASE', base, 'canonical', 'the LDTR base must be canonical');
  }, 'If LDTR is usable, its base address must be canonical.'),
  ...perSegment(['CS', 'SS', 'DS', 'ES'], (s) => guest(`guest-${s.toLowerCase()}-base-high`, [`GUEST_${s}_BASE`, `GUEST_${s}_AR_BYTES`], (v) => {
    if (s !== 'CS' && !usable(v, s)) return true;
    const base = v.u64(F[s].base);
    return base >> 32n === 0n || fail(F[s].base, base, 'bits 63:32 clear', `the ${s} base is a 32-bit value even in 64-bit mode`);
  }, s === 'CS' ? 'Bits 63:32 of the guest CS base must be 0.' : `If ${s} is usable, bits 63:32 of its base must be 0.`)),

  // --- Limit fields ------------------------------------------------------------------------------------------
  ...perSegment(CODE_DATA, (s) => guest(`guest-${s.toLowerCase()}-limit-v8086`, [`GUEST_${s}_LIMIT`, 'GUEST_RFLAGS'], (v) => {
    if (!v.v8086) return true;
    const limit = v.u32(F[s].limit);
    return limit === 0xffff || fail(F[s].limit, limit, '0000FFFFH', `in virtual-8086 mode the ${s} limit is 64 KBytes - 1`);
  }, `If the guest will be in virtual-8086 mode, the ${s} limit must be 0000FFFFH.`)),

  // --- Access-rights fields: CS, SS, DS, ES, FS, GS -------------------------------------------------------------
  ...perSegment(CODE_DATA, (s) => guest(`guest-${s.toLowerCase()}-ar-v8086`, [arField(s), 'GUEST_RFLAGS'], (v) => {
    if (!v.v8086) return true;
    const a = ar(v, s);
    return a === AR_V8086 || fail(arField(s), a, '000000F3H', `in virtual-8086 mode ${s} must be a present, DPL-3, read/write accessed data segment`);
  }, `If the guest will be in virtual-8086 mode, the ${s} access rights must be 000000F3H.`)),
  guest('guest-cs-ar-type', ['GUEST_CS_AR_BYTES', 'SECONDARY_VM_EXEC_CONTROL', 'GUEST_RFLAGS'], (v) => {
    if (v.v8086) return true;
    const a = ar(v, 'CS');
    const t = type(a);
    const ok = t === 9 || t === 11 || t === 13 || t === 15 || (v.unrestrictedGuest && t === 3);
    return ok || fail('GUEST_CS_AR_BYTES', a, v.unrestrictedGuest ? 'type 3, 9, 11, 13 or 15' : 'type 9, 11, 13 or 15', `CS type ${t} is not an accessed code segment`);
  }, 'CS must be an accessed code segment (type 9, 11, 13 or 15); with "unrestricted guest" also type 3 (read/write accessed data, real mode).'),
  guest('guest-ss-ar-type', ['GUEST_SS_AR_BYTES', 'GUEST_RFLAGS'], (v) => {
    if (!arChecked(v, 'SS')) return true;
    const a = ar(v, 'SS');
    const t = type(a);
    return t === 3 || t === 7 || fail('GUEST_SS_AR_BYTES', a, 'type 3 or 7', `SS type ${t} is not a read/write accessed data segment`);
  }, 'If SS is usable, its type must be 3 or 7 (read/write accessed data, expand-up or expand-down).'),
  ...perSegment(DATA, (s) => guest(`guest-${s.toLowerCase()}-ar-type`, [arField(s), 'GUEST_RFLAGS'], (v) => {
    if (!arChecked(v, s)) return true;
    const a = ar(v, s);
    if ((a & AR.ACCESSED) === 0) return fail(arField(s), a, 'type bit 0 (accessed) set', `a usable ${s} must be marked accessed`);
    if ((a & AR.CODE) !== 0 && (a & AR.RW) === 0) return fail(arField(s), a, 'readable code', `a code segment in ${s} must be readable`);
    return true;
  }, `If ${s} is usable, its type must have the accessed bit set, and a code type must be readable.`)),
  ...perSegment(CODE_DATA, (s) => guest(`guest-${s.toLowerCase()}-ar-s`, [arField(s), 'GUEST_RFLAGS'], (v) => {
    if (!arChecked(v, s)) return true;
    const a = ar(v, s);
    return (a & AR.S) !== 0 || fail(arField(s), a, 'S (bit 4) set', `${s} must hold a code or data segment, not a system descriptor`);
  }, s === 'CS' ? 'The S bit (bit 4) of CS must be 1.' : `If ${s} is usable, its S bit (bit 4) must be 1.`)),
  guest('guest-cs-ar-dpl', ['GUEST_CS_AR_BYTES', 'GUEST_SS_AR_BYTES', 'GUEST_RFLAGS'], (v) => {
    if (v.v8086) return true;
    const a = ar(v, 'CS');
    const t = type(a);
    const dpl = arDpl(a);
    const ssDpl = arDpl(ar(v, 'SS'));
    if (t === 3 && dpl !== 0) return fail('GUEST_CS_AR_BYTES', a, 'DPL 0', 'a real-mode (type 3) CS must have DPL 0');
    if ((t === 9 || t === 11) && dpl !== ssDpl) return fail('GUEST_CS_AR_BYTES', a, `DPL = SS.DPL = ${ssDpl}`, 'a non-conforming CS must have DPL = SS.DPL (the CPL)');
    if ((t === 13 || t === 15) && dpl > ssDpl) return fail('GUEST_CS_AR_BYTES', a, `DPL ≤ SS.DPL = ${ssDpl}`, 'a conforming CS must have DPL ≤ SS.DPL (the CPL)');
    return true;
  }, 'CS DPL: 0 for type 3; equal to SS.DPL for non-conforming code (9, 11); at most SS.DPL for conforming code (13, 15).'),
  guest('guest-ss-ar-dpl', ['GUEST_SS_AR_BYTES', 'GUEST_SS_SELECTOR', 'GUEST_CS_AR_BYTES', 'GUEST_CR0', 'SECONDARY_VM_EXEC_CONTROL', 'GUEST_RFLAGS'], (v) => {
    if (v.v8086) return true;
    const a = ar(v, 'SS');
    const dpl = arDpl(a);
    if (!v.unrestrictedGuest && dpl !== (sel(v, 'SS') & 3)) return fail('GUEST_SS_AR_BYTES', a, `DPL = SS.RPL = ${sel(v, 'SS') & 3}`, 'SS.DPL must equal SS.RPL');
    const realMode = type(ar(v, 'CS')) === 3 || (v.u64('GUEST_CR0') & 1n) === 0n;
    if (realMode && dpl !== 0) return fail('GUEST_SS_AR_BYTES', a, 'DPL 0', 'in real mode (CS type 3 or CR0.PE = 0) SS.DPL must be 0');
    return true;
  }, 'SS DPL must equal the SS RPL (unless "unrestricted guest"), and must be 0 if CS type is 3 or CR0.PE is 0.'),
  ...perSegment(DATA, (s) => guest(`guest-${s.toLowerCase()}-ar-dpl`, [arField(s), `GUEST_${s}_SELECTOR`, 'SECONDARY_VM_EXEC_CONTROL', 'GUEST_RFLAGS'], (v) => {
    if (!arChecked(v, s) || v.unrestrictedGuest) return true;
    const a = ar(v, s);
    if (type(a) > 11) return true; // conforming code: no DPL rule
    const rpl = sel(v, s) & 3;
    return arDpl(a) >= rpl || fail(arField(s), a, `DPL ≥ RPL = ${rpl}`, `${s}.DPL is below the selector's RPL`);
  }, `If ${s} is usable, "unrestricted guest" is 0 and the type is 0–11, its DPL must not be less than its selector's RPL.`)),
  ...perSegment(CODE_DATA, (s) => guest(`guest-${s.toLowerCase()}-ar-present`, [arField(s), 'GUEST_RFLAGS'], (v) => {
    if (!arChecked(v, s)) return true;
    const a = ar(v, s);
    return (a & AR.P) !== 0 || fail(arField(s), a, 'P (bit 7) set', `${s} must be present`);
  }, s === 'CS' ? 'The P bit (bit 7) of CS must be 1.' : `If ${s} is usable, its P bit (bit 7) must be 1.`)),
  ...perSegment(CODE_DATA, (s) => guest(`guest-${s.toLowerCase()}-ar-reserved-11-8`, [arField(s), 'GUEST_RFLAGS'], (v) => {
    if (!arChecked(v, s)) return true;
    const a = ar(v, s);
    return (a & AR_RESERVED_11_8) === 0 || fail(arField(s), a, 'bits 11:8 clear', `reserved bits 11:8 of the ${s} access rights are set`);
  }, `Bits 11:8 of the ${s} access rights are reserved${s === 'CS' ? '' : ' (checked if usable)'}.`)),
  guest('guest-cs-ar-db-long-mode', ['GUEST_CS_AR_BYTES', 'VM_ENTRY_CONTROLS', 'GUEST_RFLAGS'], (v) => {
    if (v.v8086 || !v.ia32eModeGuest) return true;
    const a = ar(v, 'CS');
    return (a & AR.L) === 0 || (a & AR.DB) === 0 || fail('GUEST_CS_AR_BYTES', a, 'D/B = 0 when L = 1', 'a 64-bit code segment (L = 1) must have D/B = 0');
  }, 'For an IA-32e mode guest, if CS.L is 1 then CS.D/B must be 0.'),
  ...perSegment(CODE_DATA, (s) => guest(`guest-${s.toLowerCase()}-ar-granularity`, [arField(s), `GUEST_${s}_LIMIT`, 'GUEST_RFLAGS'], (v) => {
    if (!arChecked(v, s)) return true;
    return granularity(v, s);
  }, `${s === 'CS' ? 'For CS' : `If ${s} is usable`}: G must be 0 if any of limit bits 11:0 is 0, and 1 if any of limit bits 31:20 is 1.`)),
  ...perSegment(CODE_DATA, (s) => guest(`guest-${s.toLowerCase()}-ar-reserved-31-17`, [arField(s), 'GUEST_RFLAGS'], (v) => {
    if (!arChecked(v, s)) return true;
    const a = ar(v, s);
    return (a & AR_RESERVED_31_17) === 0 || fail(arField(s), a, 'bits 31:17 clear', `reserved bits 31:17 of the ${s} access rights are set`);
  }, `Bits 31:17 of the ${s} access rights are reserved${s === 'CS' ? '' : ' (checked if usable)'}.`)),

  // --- Access-rights fields: TR ----------------------------------------------------------------------------
  guest('guest-tr-ar-type', ['GUEST_TR_AR_BYTES', 'VM_ENTRY_CONTROLS'], (v) => {
    const a = ar(v, 'TR');
    const t = type(a);
    const ok = t === 11 || (!v.ia32eModeGuest && t === 3);
    return ok || fail('GUEST_TR_AR_BYTES', a, v.ia32eModeGuest ? 'type 11 (busy 64-bit TSS)' : 'type 3 or 11 (busy TSS)', `TR type ${t} is not a busy TSS`);
  }, 'TR must hold a busy TSS: type 11, or type 3 (16-bit busy TSS) for a guest not in IA-32e mode.'),
  guest('guest-tr-ar-s', ['GUEST_TR_AR_BYTES'], (v) => {
    const a = ar(v, 'TR');
    return (a & AR.S) === 0 || fail('GUEST_TR_AR_BYTES', a, 'S (bit 4) clear', 'TR must hold a system descriptor');
  }, 'The S bit (bit 4) of TR must be 0.'),
  guest('guest-tr-ar-present', ['GUEST_TR_AR_BYTES'], (v) => {
    const a = ar(v, 'TR');
    return (a & AR.P) !== 0 || fail('GUEST_TR_AR_BYTES', a, 'P (bit 7) set', 'TR must be present');
  }, 'The P bit (bit 7) of TR must be 1.'),
  guest('guest-tr-ar-reserved-11-8', ['GUEST_TR_AR_BYTES'], (v) => {
    const a = ar(v, 'TR');
    return (a & AR_RESERVED_11_8) === 0 || fail('GUEST_TR_AR_BYTES', a, 'bits 11:8 clear', 'reserved bits 11:8 of the TR access rights are set');
  }, 'Bits 11:8 of the TR access rights are reserved.'),
  guest('guest-tr-ar-granularity', ['GUEST_TR_AR_BYTES', 'GUEST_TR_LIMIT'], (v) => granularity(v, 'TR'),
    'For TR: G must be 0 if any of limit bits 11:0 is 0, and 1 if any of limit bits 31:20 is 1.'),
  guest('guest-tr-ar-usable', ['GUEST_TR_AR_BYTES'], (v) => {
    const a = ar(v, 'TR');
    return (a & AR.UNUSABLE) === 0 || fail('GUEST_TR_AR_BYTES', a, 'unusable (bit 16) clear', 'TR must be usable: every guest needs a TSS');
  }, 'The unusable bit (bit 16) of TR must be 0.'),
  guest('guest-tr-ar-reserved-31-17', ['GUEST_TR_AR_BYTES'], (v) => {
    const a = ar(v, 'TR');
    return (a & AR_RESERVED_31_17) === 0 || fail('GUEST_TR_AR_BYTES', a, 'bits 31:17 clear', 'reserved bits 31:17 of the TR access rights are set');
  }, 'Bits 31:17 of the TR access rights are reserved.'),

  // --- Access-rights fields: LDTR (only if usable) ------------------------------------------------------------
  guest('guest-ldtr-ar-type', ['GUEST_LDTR_AR_BYTES'], (v) => {
    const a = ar(v, 'LDTR');
    return !usable(v, 'LDTR') || type(a) === 2 || fail('GUEST_LDTR_AR_BYTES', a, 'type 2 (LDT)', 'a usable LDTR must hold an LDT descriptor');
  }, 'If LDTR is usable, its type must be 2 (LDT).'),
  guest('guest-ldtr-ar-s', ['GUEST_LDTR_AR_BYTES'], (v) => {
    const a = ar(v, 'LDTR');
    return !usable(v, 'LDTR') || (a & AR.S) === 0 || fail('GUEST_LDTR_AR_BYTES', a, 'S (bit 4) clear', 'LDTR must hold a system descriptor');
  }, 'If LDTR is usable, its S bit (bit 4) must be 0.'),
  guest('guest-ldtr-ar-present', ['GUEST_LDTR_AR_BYTES'], (v) => {
    const a = ar(v, 'LDTR');
    return !usable(v, 'LDTR') || (a & AR.P) !== 0 || fail('GUEST_LDTR_AR_BYTES', a, 'P (bit 7) set', 'a usable LDTR must be present');
  }, 'If LDTR is usable, its P bit (bit 7) must be 1.'),
  guest('guest-ldtr-ar-reserved-11-8', ['GUEST_LDTR_AR_BYTES'], (v) => {
    const a = ar(v, 'LDTR');
    return !usable(v, 'LDTR') || (a & AR_RESERVED_11_8) === 0 || fail('GUEST_LDTR_AR_BYTES', a, 'bits 11:8 clear', 'reserved bits 11:8 of the LDTR access rights are set');
  }, 'If LDTR is usable, bits 11:8 of its access rights are reserved.'),
  guest('guest-ldtr-ar-granularity', ['GUEST_LDTR_AR_BYTES', 'GUEST_LDTR_LIMIT'], (v) => !usable(v, 'LDTR') || granularity(v, 'LDTR'),
    'If LDTR is usable: G must be 0 if any of limit bits 11:0 is 0, and 1 if any of limit bits 31:20 is 1.'),
  guest('guest-ldtr-ar-reserved-31-17', ['GUEST_LDTR_AR_BYTES'], (v) => {
    const a = ar(v, 'LDTR');
    return !usable(v, 'LDTR') || (a & AR_RESERVED_31_17) === 0 || fail('GUEST_LDTR_AR_BYTES', a, 'bits 31:17 clear', 'reserved bits 31:17 of the LDTR access rights are set');
  }, 'If LDTR is usable, bits 31:17 of its access rights are reserved.'),
];

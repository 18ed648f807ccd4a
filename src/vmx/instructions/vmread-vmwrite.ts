// VMREAD and VMWRITE: access a field of the current VMCS by its encoding.
// Follows the "Operation" pseudocode of SDM Vol. 3C, "VMREAD—Read Field from Virtual-Machine Control Structure"
// and "VMWRITE—Write Field to Virtual-Machine Control Structure".
//
// Operand size: 64 bits in 64-bit mode, 32 bits otherwise. A field shorter than the operand is zero-extended on
// VMREAD and takes the low bits on VMWRITE; a field longer than the operand (64-bit and natural-width fields
// outside 64-bit mode) is read in its low 32 bits, and VMWRITE clears its high bits. The HIGH access of a 64-bit
// field reads/writes bits 63:32 only.
//
// These two run on every VM exit of every hypervisor, so the success path avoids BigInt work where it can:
// encodings are handled as numbers and 16/32-bit values go straight into the typed-array cache.
import { EXIT_REASON } from '../exit-reasons.ts';
import { VMXERR } from '../errors.ts';
import { ENC_ACCESS_HIGH, fieldByEncoding, fullFieldName } from '../fields.ts';
import { unsupportedReason } from '../vmcs-support.ts';
import { SLOT_FIELDS, SLOT_READ_ONLY, SLOT_WIDTH, WIDTH64, slotOfEncoding, type ActiveVmcs } from '../vmcs.ts';
import { commitShadowWrite, shadowAccess, type ShadowAccess } from '../nonroot/vmcs-shadowing.ts';
import {
  cplGp, memoryFault, operandSizeOrUd, readSource, vmFailInvalid, vmFailValid, vmSucceed, type DestinationOperand, type SourceOperand, type VmxContext, type VmxOutcome,
} from './outcome.ts';
import { hex } from '../../util/hex.ts';

const READ_SDM = 'SDM Vol. 3C, "VMREAD—Read Field from Virtual-Machine Control Structure"';
const WRITE_SDM = 'SDM Vol. 3C, "VMWRITE—Write Field to Virtual-Machine Control Structure"';
/** Encodings above 7FFFH set reserved bits 31:15 (or bits 63:32 of the register): they name no field. */
const MAX_ENCODING = 0x7fff;

/**
 * VMREAD r/m, r: `field` is the register (or value) holding the field encoding; `dest` receives the value.
 */
export function vmread(ctx: VmxContext, field: SourceOperand, dest: DestinationOperand): VmxOutcome {
  const { cpu, state } = ctx;
  const I = 'VMREAD';
  const size = operandSizeOrUd(ctx, I, READ_SDM);
  if (typeof size !== 'number') return size;
  // In VMX non-root operation VMREAD exits unless VMCS shadowing sends it to the shadow VMCS.
  let current: ActiveVmcs | null = state.current;
  if (state.nonRoot) {
    const s = shadowAccess(ctx, encodingOf(ctx, field, size), 'read');
    if (s.kind === 'exit') return { kind: 'vm-exit', reason: EXIT_REASON.EXIT_REASON_VMREAD };
    current = s.vmcs;
  }
  const gp = cplGp(ctx, I, READ_SDM);
  if (gp !== null) return gp;
  if (current === null) return noVmcs(ctx, I, READ_SDM);
  const enc = encodingOf(ctx, field, size);
  const slot = supportedSlot(ctx, enc);
  if (slot < 0) return unsupported(ctx, I, READ_SDM, field, size);

  let value: bigint;
  if ((enc & ENC_ACCESS_HIGH) !== 0) value = BigInt(current.readHigh(slot));
  else if (size === 4) value = BigInt(current.readLow(slot));
  else value = current.read(slot);

  if (dest.kind === 'result') return vmSucceed(cpu, value);
  if (dest.kind === 'register') cpu.writeGpr(dest.reg, value, size);
  else {
    const w = cpu.writeLinear(dest.linear, size, value);
    if (!w.ok) return memoryFault(ctx, w.fault, I, READ_SDM);
  }
  return vmSucceed(cpu);
}

/** VMWRITE r, r/m: `field` holds the encoding, `source` the value. */
export function vmwrite(ctx: VmxContext, field: SourceOperand, source: SourceOperand): VmxOutcome {
  const { cpu, state } = ctx;
  const I = 'VMWRITE';
  const size = operandSizeOrUd(ctx, I, WRITE_SDM);
  if (typeof size !== 'number') return size;
  let shadow: ShadowAccess | null = null;
  if (state.nonRoot) {
    shadow = shadowAccess(ctx, encodingOf(ctx, field, size), 'write');
    if (shadow.kind === 'exit') return { kind: 'vm-exit', reason: EXIT_REASON.EXIT_REASON_VMWRITE };
  }
  const gp = cplGp(ctx, I, WRITE_SDM);
  if (gp !== null) return gp;
  // The source operand is fetched with the instruction: a #PF on it comes before any VMfail.
  let src: bigint | number;
  if (source.kind === 'value' && typeof source.value === 'number' && source.value >= 0 && source.value <= 0xffffffff) {
    src = source.value;
  } else {
    const r = readSource(ctx, source, size);
    if (!r.ok) return memoryFault(ctx, r.fault, I, WRITE_SDM);
    src = r.value;
  }
  const current = shadow?.kind === 'shadow' ? shadow.vmcs : state.current;
  if (current === null) return noVmcs(ctx, I, WRITE_SDM);
  const enc = encodingOf(ctx, field, size);
  const slot = supportedSlot(ctx, enc);
  if (slot < 0) return unsupported(ctx, I, WRITE_SDM, field, size);
  // VM-exit information fields are read-only unless IA32_VMX_MISC[29] = 1. See SDM Vol. 3D, "Miscellaneous Data".
  if (SLOT_READ_ONLY[slot] === 1 && !cpu.caps.misc.vmwriteAnyField) {
    const f = SLOT_FIELDS[slot]!;
    return vmFailValid(ctx, VMXERR.VMXERR_VMWRITE_READ_ONLY_VMCS_COMPONENT, {
      rule: 'vmwrite-read-only-field', sdm: WRITE_SDM, instruction: I, field: f.name, value: BigInt(enc),
      expected: 'a writable field (or IA32_VMX_MISC[29] = 1)',
      message: `${f.name} is a VM-exit information field: the processor writes it on VM exits; this CPU does not let VMWRITE change it.`,
    });
  }
  const low32 = typeof src === 'number' ? src : Number(src & 0xffffffffn);
  if ((enc & ENC_ACCESS_HIGH) !== 0) current.writeHigh(slot, low32);
  else if (size === 4 || SLOT_WIDTH[slot] !== WIDTH64 || typeof src === 'number') current.writeLow(slot, low32);
  else current.write(slot, src);
  if (shadow !== null) commitShadowWrite(ctx, shadow);
  return vmSucceed(cpu);
}

/**
 * VMfailInvalid: in VMX root operation there is no current VMCS; in VMX non-root operation (VMCS shadowing) the
 * VMCS link pointer is FFFFFFFF_FFFFFFFFH, so there is no shadow VMCS.
 */
function noVmcs(ctx: VmxContext, instruction: 'VMREAD' | 'VMWRITE', sdm: string): VmxOutcome {
  const lower = instruction.toLowerCase();
  return ctx.state.nonRoot
    ? vmFailInvalid(ctx, { rule: `${lower}-no-shadow-vmcs`, sdm, instruction, field: 'VMCS_LINK_POINTER', value: 0xffffffffffffffffn, expected: 'the address of a shadow VMCS', message: `${instruction} in VMX non-root operation with VMCS shadowing, but the VMCS link pointer is FFFFFFFF_FFFFFFFFH: there is no shadow VMCS to access.` })
    : vmFailInvalid(ctx, { rule: `${lower}-no-current-vmcs`, sdm, instruction, message: 'There is no current VMCS: execute VMPTRLD first.' });
}

/** The encoding in the field operand as a number, or -1 if it sets bits above 14 (it then names no field). */
function encodingOf(ctx: VmxContext, op: SourceOperand, size: 4 | 8): number {
  let v: bigint | number;
  if (op.kind === 'value') v = op.value;
  else if (op.kind === 'register') v = ctx.cpu.readGpr(op.reg);
  else return -1; // the field operand is always a register (ModRM.reg); a memory form does not exist
  if (typeof v === 'number') {
    if (!Number.isInteger(v) || v < 0) return -1;
    if (size === 4) v = v % 2 ** 32;
    return v <= MAX_ENCODING ? v : -1;
  }
  // Outside 64-bit mode the register is 32 bits: bits 63:32 of a 64-bit value are not part of the operand.
  if (size === 4) v &= 0xffffffffn;
  return v >= 0n && v <= BigInt(MAX_ENCODING) ? Number(v) : -1;
}

/** The slot of a supported field, or -1 (unknown encoding, reserved bits set, or a field this CPU lacks). */
function toBigInt(v: bigint | number): bigint {
  return typeof v === 'bigint' ? v : Number.isInteger(v) ? BigInt(v) : -1n;
}

function supportedSlot(ctx: VmxContext, enc: number): number {
  if (enc < 0) return -1;
  const slot = slotOfEncoding(enc);
  if (slot < 0 || ctx.state.supportedSlots[slot] !== 1) return -1;
  return slot;
}

function unsupported(ctx: VmxContext, instruction: string, sdm: string, op: SourceOperand, size: 4 | 8): VmxOutcome {
  const raw = op.kind === 'register' ? ctx.cpu.readGpr(op.reg) : op.kind === 'value' ? toBigInt(op.value) : -1n;
  const enc = size === 4 ? raw & 0xffffffffn : raw;
  const f = fieldByEncoding(enc);
  const name = f?.name;
  const base = f === undefined ? undefined : unsupportedReason(fullFieldName(f));
  return vmFailValid(ctx, VMXERR.VMXERR_UNSUPPORTED_VMCS_COMPONENT, {
    rule: 'vmcs-unsupported-component', sdm, instruction, field: name ?? 'field encoding', value: enc,
    expected: f === undefined ? 'an encoding from the VMCS field table' : `a field this CPU supports (${name} needs ${base})`,
    message: f === undefined
      ? `${hex(enc)} is not the encoding of any VMCS field (check width bits 14:13, type bits 11:10, index bits 9:1, access type bit 0; bits 63:15 must be 0).`
      : `${name} exists only on processors with ${base}; this CPU model does not have it.`,
  });
}

// VMREAD and VMWRITE: access a field of the current VMCS by its encoding.
// Follows the "Operation" pseudocode of SDM Vol. 3C, "VMREAD—Read Field from Virtual-Machine Control Structure"
// and "VMWRITE—Write Field to Virtual-Machine Control Structure".
//
// Operand size: 64 bits in 64-bit mode, 32 bits otherwise. A field shorter than the operand is zero-extended on
// VMREAD and takes the low bits on VMWRITE; a field longer than the operand (64-bit and natural-width fields
// outside 64-bit mode) is read in its low 32 bits, and VMWRITE clears its high bits. The HIGH access of a 64-bit
// field reads/writes bits 63:32 only.
import { EXIT_REASON } from '../exit-reasons.ts';
import { VMXERR } from '../errors.ts';
import { fieldByEncoding } from '../fields.ts';
import { unsupportedReason } from '../vmcs-support.ts';
import { isHighEncoding, SLOT_FIELDS, SLOT_READ_ONLY, slotOfEncoding, WIDTH64, SLOT_WIDTH } from '../vmcs.ts';
import {
  commonUd, cplGp, hex, in64BitMode, memoryFault, readSource, vmFailInvalid, vmFailValid, vmSucceed,
  type DestinationOperand, type SourceOperand, type VmxContext, type VmxOutcome,
} from './outcome.ts';

const READ_SDM = 'SDM Vol. 3C, "VMREAD—Read Field from Virtual-Machine Control Structure"';
const WRITE_SDM = 'SDM Vol. 3C, "VMWRITE—Write Field to Virtual-Machine Control Structure"';

/**
 * VMREAD r/m, r: `field` is the register (or value) holding the field encoding; `dest` receives the value.
 */
export function vmread(ctx: VmxContext, field: SourceOperand, dest: DestinationOperand): VmxOutcome {
  const { cpu, state } = ctx;
  const I = 'VMREAD';
  const ud = commonUd(ctx, I, READ_SDM);
  if (ud !== null) return ud;
  // In VMX non-root operation VMREAD exits unless VMCS shadowing handles it; shadowing is not modelled, so it exits.
  if (state.nonRoot) return { kind: 'vm-exit', reason: EXIT_REASON.EXIT_REASON_VMREAD };
  const gp = cplGp(ctx, I, READ_SDM);
  if (gp !== null) return gp;
  const size = in64BitMode(cpu) ? 8 : 4;
  const current = state.current;
  if (current === null) {
    return vmFailInvalid(ctx, { rule: 'vmread-no-current-vmcs', sdm: READ_SDM, instruction: I, message: 'There is no current VMCS: execute VMPTRLD first.' });
  }
  const enc = readSource(ctx, field, size);
  if (!enc.ok) return memoryFault(ctx, enc.fault, I, READ_SDM); // (field operand is a register; cannot fault)
  const slot = supportedSlot(ctx, enc.value);
  if (slot < 0) return unsupported(ctx, I, READ_SDM, enc.value);

  let value: bigint;
  if (isHighEncoding(Number(enc.value))) value = BigInt(current.readHigh(slot));
  else if (size === 4) value = BigInt(current.readLow(slot));
  else value = current.read(slot);

  if (dest.kind === 'register') cpu.writeGpr(dest.reg, value, size);
  else if (dest.kind === 'memory') {
    const w = cpu.writeLinear(dest.linear, size, value);
    if (!w.ok) return memoryFault(ctx, w.fault, I, READ_SDM);
  } else return vmSucceed(cpu, value);
  return vmSucceed(cpu);
}

/** VMWRITE r, r/m: `field` holds the encoding, `source` the value. */
export function vmwrite(ctx: VmxContext, field: SourceOperand, source: SourceOperand): VmxOutcome {
  const { cpu, state } = ctx;
  const I = 'VMWRITE';
  const ud = commonUd(ctx, I, WRITE_SDM);
  if (ud !== null) return ud;
  if (state.nonRoot) return { kind: 'vm-exit', reason: EXIT_REASON.EXIT_REASON_VMWRITE };
  const gp = cplGp(ctx, I, WRITE_SDM);
  if (gp !== null) return gp;
  const size = in64BitMode(cpu) ? 8 : 4;
  // The source operand is fetched with the instruction: a #PF on it comes before any VMfail.
  const src = readSource(ctx, source, size);
  if (!src.ok) return memoryFault(ctx, src.fault, I, WRITE_SDM);
  const current = state.current;
  if (current === null) {
    return vmFailInvalid(ctx, { rule: 'vmwrite-no-current-vmcs', sdm: WRITE_SDM, instruction: I, message: 'There is no current VMCS: execute VMPTRLD first.' });
  }
  const enc = readSource(ctx, field, size);
  if (!enc.ok) return memoryFault(ctx, enc.fault, I, WRITE_SDM);
  const slot = supportedSlot(ctx, enc.value);
  if (slot < 0) return unsupported(ctx, I, WRITE_SDM, enc.value);
  // VM-exit information fields are read-only unless IA32_VMX_MISC[29] = 1. See SDM Vol. 3D, "Miscellaneous Data".
  if (SLOT_READ_ONLY[slot] === 1 && !cpu.caps.misc.vmwriteAnyField) {
    const f = SLOT_FIELDS[slot]!;
    return vmFailValid(ctx, VMXERR.VMXERR_VMWRITE_READ_ONLY_VMCS_COMPONENT, {
      rule: 'vmwrite-read-only-field', sdm: WRITE_SDM, instruction: I, field: f.name, value: enc.value,
      expected: 'a writable field (or IA32_VMX_MISC[29] = 1)',
      message: `${f.name} is a VM-exit information field: the processor writes it on VM exits; this CPU does not let VMWRITE change it.`,
    });
  }
  if (isHighEncoding(Number(enc.value))) current.writeHigh(slot, Number(src.value & 0xffffffffn));
  else if (size === 4 || SLOT_WIDTH[slot] !== WIDTH64) current.writeLow(slot, Number(src.value & 0xffffffffn));
  else current.write(slot, src.value);
  return vmSucceed(cpu);
}

/** The slot of a supported field, or -1 (unknown encoding, bits 63:15 set, or a field this CPU lacks). */
function supportedSlot(ctx: VmxContext, enc: bigint): number {
  if (enc > 0x7fffn) return -1;
  const slot = slotOfEncoding(Number(enc));
  if (slot < 0 || ctx.state.supportedSlots[slot] !== 1) return -1;
  return slot;
}

function unsupported(ctx: VmxContext, instruction: string, sdm: string, enc: bigint): VmxOutcome {
  const f = fieldByEncoding(enc);
  const name = f?.name;
  const base = f === undefined ? undefined : unsupportedReason(f.high ? f.name.slice(0, -'_HIGH'.length) : f.name);
  return vmFailValid(ctx, VMXERR.VMXERR_UNSUPPORTED_VMCS_COMPONENT, {
    rule: 'vmcs-unsupported-component', sdm, instruction, field: name ?? 'field encoding', value: enc,
    expected: f === undefined ? 'an encoding from the VMCS field table' : `a field this CPU supports (${name} needs ${base})`,
    message: f === undefined
      ? `${hex(enc)} is not the encoding of any VMCS field (check width bits 14:13, type bits 11:10, index bits 9:1, access type bit 0; bits 63:15 must be 0).`
      : `${name} exists only on processors with ${base}; this CPU model does not have it.`,
  });
}

// The capability MSRs the emulated processor reports: the model's measured values, made consistent with what VMX
// Lab implements. Two SDM rules tie the capability MSRs to the VMCS:
//  1. A VMCS field exists exactly on processors that support the 1-setting of a control that uses it
//     (SDM Vol. 3D, "Field Encoding in VMCS"). VMX Lab does not model some fields; the controls that need them are
//     reported as allowed-0 (the allowed-1 bit is cleared), so no model offers a control whose field VMREAD and
//     VMWRITE would reject with error 12.
//  2. IA32_VMX_VMCS_ENUM bits 9:1 hold the highest index of any VMCS field the processor supports
//     (SDM Vol. 3D, "VMCS Enumeration"). Real processors often under-report it (e.g. 15H on CPUs that have the
//     VMX-preemption timer value, index 17H); the emulated CPU reports the value the SDM defines.
// Everything that reads a model's VMX capabilities (the VMX units, RDMSR, the site, the tests) goes through
// `vmxMsrsOf` / `capabilitiesOf`, so they all see the same processor.
import type { CpuModel } from '../machine/cpu-model.ts';
import { decodeCapabilities, type VmxCapabilities } from './capabilities.ts';
import type { ControlField } from './controls.ts';
import { encodingIndex } from './fields.ts';
import {
  MSR_IA32_VMX_ENTRY_CTLS, MSR_IA32_VMX_EXIT_CTLS, MSR_IA32_VMX_PROCBASED_CTLS, MSR_IA32_VMX_PROCBASED_CTLS2,
  MSR_IA32_VMX_PROCBASED_CTLS3, MSR_IA32_VMX_TRUE_ENTRY_CTLS, MSR_IA32_VMX_TRUE_EXIT_CTLS, MSR_IA32_VMX_VMCS_ENUM,
  MSR_IA32_VMX_VMFUNC, VMFUNC_EPTP_SWITCHING,
} from './msrs.ts';
import { supportedSlots } from './vmcs-support.ts';
import { SLOT_FIELDS } from './vmcs.ts';
import { intelHex } from '../util/hex.ts';

/** A control VMX Lab reports as allowed-0 because the VMCS fields it uses are not modelled. */
export interface UnmodelledControl {
  readonly field: Exclude<ControlField, 'pin' | 'proc'>;
  readonly bit: number;
  /** The control's SDM name. */
  readonly control: string;
  /** The fields (SDM names, encodings) that exist only with this control. */
  readonly fields: readonly { readonly name: string; readonly encoding: number }[];
}

const f = (name: string, encoding: number) => ({ name, encoding });

/** See SDM Vol. 3D, "Field Encoding in VMCS": each field's row names the control whose 1-setting makes it exist. */
export const UNMODELLED_CONTROLS: readonly UnmodelledControl[] = [
  { field: 'proc2', bit: 18, control: 'EPT-violation #VE', fields: [f('virtualization-exception information address', 0x202a), f('EPTP index', 0x0004)] },
  { field: 'proc2', bit: 21, control: 'enable PASID translation', fields: [f('low PASID directory address', 0x2038), f('high PASID directory address', 0x203a)] },
  { field: 'proc2', bit: 23, control: 'sub-page write permissions for EPT', fields: [f('SPP table pointer', 0x2030)] },
  { field: 'proc2', bit: 27, control: 'enable PCONFIG', fields: [f('PCONFIG-exiting bitmap', 0x203e)] },
  { field: 'proc2', bit: 28, control: 'enable ENCLV exiting', fields: [f('ENCLV-exiting bitmap', 0x2036)] },
  { field: 'proc3', bit: 1, control: 'enable HLAT', fields: [f('HLAT pointer', 0x2040), f('HLAT prefix size', 0x0006)] },
  { field: 'entry', bit: 20, control: 'load CET state', fields: [f('guest IA32_S_CET', 0x6828), f('guest SSP', 0x682a), f('guest IA32_INTERRUPT_SSP_TABLE_ADDR', 0x682c)] },
  { field: 'exit', bit: 28, control: 'load CET state', fields: [f('host IA32_S_CET', 0x6c18), f('host SSP', 0x6c1a), f('host IA32_INTERRUPT_SSP_TABLE_ADDR', 0x6c1c)] },
  { field: 'entry', bit: 21, control: 'load guest IA32_LBR_CTL', fields: [f('guest IA32_LBR_CTL', 0x2816)] },
  { field: 'exit', bit: 26, control: 'clear IA32_LBR_CTL', fields: [f('guest IA32_LBR_CTL', 0x2816)] },
  { field: 'entry', bit: 22, control: 'load PKRS', fields: [f('guest IA32_PKRS', 0x2818)] },
  { field: 'exit', bit: 29, control: 'load PKRS', fields: [f('host IA32_PKRS', 0x2c06)] },
  { field: 'entry', bit: 23, control: 'load UINV', fields: [f('guest UINV', 0x0814)] },
  { field: 'exit', bit: 31, control: 'activate secondary controls', fields: [f('secondary VM-exit controls', 0x2044)] },
];

/** The capability MSRs (and the bits in them) each control field's allowed-1 settings live in. */
const ALLOWED1_MSRS: Readonly<Record<UnmodelledControl['field'], readonly number[]>> = {
  proc2: [MSR_IA32_VMX_PROCBASED_CTLS2],
  proc3: [MSR_IA32_VMX_PROCBASED_CTLS3],
  exit: [MSR_IA32_VMX_EXIT_CTLS, MSR_IA32_VMX_TRUE_EXIT_CTLS],
  entry: [MSR_IA32_VMX_ENTRY_CTLS, MSR_IA32_VMX_TRUE_ENTRY_CTLS],
};

/** One way the emulated MSRs differ from the measured ones, for the site and the notes. */
export interface MsrAdjustment {
  readonly msr: number;
  /** The measured value, or null when the source did not record the MSR. */
  readonly measured: bigint | null;
  readonly emulated: bigint;
  readonly why: string;
}

/** The emulated capability MSRs for measured ones, and what was changed. A pure function of the input. */
export function emulateVmxMsrs(measured: ReadonlyMap<number, bigint>): { msrs: Map<number, bigint>; adjustments: MsrAdjustment[] } {
  const msrs = new Map(measured);
  const adjustments: MsrAdjustment[] = [];
  const adjust = (msr: number, value: bigint, why: string): void => {
    const old = msrs.get(msr);
    if (old === undefined || old === value) return;
    msrs.set(msr, value);
    adjustments.push({ msr, measured: old, emulated: value, why });
  };
  // MSRs the SDM says exist but the source log did not print: the same assumption decodeCapabilities makes,
  // made here once so that RDMSR agrees with it. IA32_VMX_VMFUNC exists when "enable VM functions" may be 1
  // (EPTP switching, the only VM function defined, is assumed); IA32_VMX_PROCBASED_CTLS3 when "activate tertiary
  // controls" may be 1 (assumed 0: no tertiary control may be 1). See SDM Vol. 3D, "VM Functions" and
  // "Tertiary Processor-Based VM-Execution Controls".
  const procAllowed1 = Number((msrs.get(MSR_IA32_VMX_PROCBASED_CTLS) ?? 0n) >> 32n);
  const proc2Allowed1 = (procAllowed1 >>> 31) & 1 ? Number((msrs.get(MSR_IA32_VMX_PROCBASED_CTLS2) ?? 0n) >> 32n) : 0;
  const addMissing = (msr: number, value: bigint, why: string): void => {
    if (msrs.has(msr)) return;
    msrs.set(msr, value);
    adjustments.push({ msr, measured: null, emulated: value, why });
  };
  if ((proc2Allowed1 >>> 13) & 1) addMissing(MSR_IA32_VMX_VMFUNC, VMFUNC_EPTP_SWITCHING, 'not in the source log although "enable VM functions" may be 1: EPTP switching assumed');
  if ((procAllowed1 >>> 17) & 1) addMissing(MSR_IA32_VMX_PROCBASED_CTLS3, 0n, 'not in the source log although "activate tertiary controls" may be 1: no tertiary control assumed');

  for (const u of UNMODELLED_CONTROLS) {
    // Control MSRs hold allowed-1 bits in 63:32; the tertiary MSR is a 64-bit allowed-1 mask.
    const bit = u.field === 'proc3' ? 1n << BigInt(u.bit) : 1n << BigInt(32 + u.bit);
    for (const msr of ALLOWED1_MSRS[u.field]) {
      const v = msrs.get(msr);
      if (v !== undefined && (v & bit) !== 0n) adjust(msr, v & ~bit, `"${u.control}" reported allowed-0: VMX Lab does not model its field(s) ${u.fields.map((x) => x.name).join(', ')}`);
    }
  }
  const enumMsr = msrs.get(MSR_IA32_VMX_VMCS_ENUM);
  if (enumMsr !== undefined) {
    const slots = supportedSlots(decodeCapabilities(msrs));
    let max = 0;
    SLOT_FIELDS.forEach((field, slot) => { if (slots[slot] === 1) max = Math.max(max, encodingIndex(field.encoding)); });
    adjust(MSR_IA32_VMX_VMCS_ENUM, (enumMsr & ~0x3fen) | (BigInt(max) << 1n), `bits 9:1 = ${intelHex(max)}, the highest index of the fields this processor supports`);
  }
  return { msrs, adjustments };
}

const cache = new WeakMap<CpuModel, { msrs: Map<number, bigint>; adjustments: MsrAdjustment[]; caps: VmxCapabilities }>();
function emulated(model: CpuModel) {
  let e = cache.get(model);
  if (e === undefined) {
    const r = emulateVmxMsrs(model.msrs);
    e = { ...r, caps: decodeCapabilities(r.msrs) };
    cache.set(model, e);
  }
  return e;
}

/** The MSR values the emulated processor reports for `model` (RDMSR returns these). */
export function vmxMsrsOf(model: CpuModel): ReadonlyMap<number, bigint> {
  return emulated(model).msrs;
}
/** The decoded VMX capabilities of the emulated processor for `model`. */
export function capabilitiesOf(model: CpuModel): VmxCapabilities {
  return emulated(model).caps;
}
/** How the emulated MSRs differ from the model's measured values. */
export function msrAdjustmentsOf(model: CpuModel): readonly MsrAdjustment[] {
  return emulated(model).adjustments;
}

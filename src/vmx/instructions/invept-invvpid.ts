// INVEPT and INVVPID: invalidate cached translations tagged by EPTP or by VPID.
// Follows the "Operation" pseudocode of SDM Vol. 3C, "INVEPT—Invalidate Translations Derived from EPT" and
// "INVVPID—Invalidate Translations Based on VPID".
import type { CpuFault } from '../../machine/fault.ts';
import { UD_VECTOR } from '../../x86/exceptions.ts';
import { supportsInvept, supportsInvvpid } from '../capabilities.ts';
import { eptpProblem } from '../eptp.ts';
import { EXIT_REASON } from '../exit-reasons.ts';
import { VMXERR } from '../errors.ts';
import { EPT_VPID_CAP } from '../msrs.ts';
import {
  commonUd, cplGp, fault, in64BitMode, memoryFault, readSource, vmFail, vmSucceed, type SourceOperand, type VmxContext, type VmxOutcome,
} from './outcome.ts';
import { hex } from '../../util/hex.ts';

const EPT_SDM = 'SDM Vol. 3C, "INVEPT—Invalidate Translations Derived from EPT"';
const VPID_SDM = 'SDM Vol. 3C, "INVVPID—Invalidate Translations Based on VPID"';

/** The m128 descriptor: in memory, the (invalid) register form, or its contents (host API). */
export type DescriptorOperand =
  | { readonly kind: 'memory'; readonly linear: bigint }
  | { readonly kind: 'register'; readonly reg: number }
  | { readonly kind: 'descriptor'; readonly low: bigint; readonly high: bigint };

/** INVEPT types. */
export const INVEPT_SINGLE_CONTEXT = 1;
export const INVEPT_ALL_CONTEXT = 2;
/** INVVPID types. */
export const INVVPID_INDIVIDUAL_ADDRESS = 0;
export const INVVPID_SINGLE_CONTEXT = 1;
export const INVVPID_ALL_CONTEXT = 2;
export const INVVPID_SINGLE_CONTEXT_RETAINING_GLOBALS = 3;

/** INVEPT r64, m128: `type` is the register operand, `descriptor` the 128-bit memory operand. */
export function invept(ctx: VmxContext, type: SourceOperand, descriptor: DescriptorOperand): VmxOutcome {
  const { cpu, state } = ctx;
  const I = 'INVEPT';
  // #UD also if the processor lacks EPT or the INVEPT instruction.
  if (!supportsInvept(cpu.caps)) {
    return fault(ctx, UD_VECTOR, { rule: 'invept-unsupported', sdm: EPT_SDM, instruction: I, field: 'IA32_VMX_EPT_VPID_CAP', value: cpu.caps.eptVpidCap, expected: '"enable EPT" allowed-1 and bit 20 = 1', message: 'This processor does not support INVEPT.' });
  }
  const ud = commonUd(ctx, I, EPT_SDM) ?? registerOnly(ctx, descriptor, I, EPT_SDM);
  if (ud !== null) return ud;
  if (state.nonRoot) return { kind: 'vm-exit', reason: EXIT_REASON.EXIT_REASON_INVEPT };
  const gp = cplGp(ctx, I, EPT_SDM);
  if (gp !== null) return gp;
  const t = readSource(ctx, type, in64BitMode(cpu) ? 8 : 4);
  if (!t.ok) return memoryFault(ctx, t.fault, I, EPT_SDM);
  const supported =
    (t.value === BigInt(INVEPT_SINGLE_CONTEXT) && (cpu.caps.eptVpidCap & EPT_VPID_CAP.VMX_EPT_EXTENT_CONTEXT_BIT) !== 0n) ||
    (t.value === BigInt(INVEPT_ALL_CONTEXT) && (cpu.caps.eptVpidCap & EPT_VPID_CAP.VMX_EPT_EXTENT_GLOBAL_BIT) !== 0n);
  if (!supported) {
    return vmFail(ctx, VMXERR.VMXERR_INVALID_OPERAND_TO_INVEPT_INVVPID, { rule: 'invept-type', sdm: EPT_SDM, instruction: I, field: 'INVEPT type', value: t.value, expected: '1 (single-context, if EPT_VPID_CAP[25]) or 2 (all-context, if EPT_VPID_CAP[26])', message: `INVEPT type ${t.value} is not supported by this processor.` });
  }
  const desc = readDescriptor(ctx, descriptor);
  if (!desc.ok) return memoryFault(ctx, desc.fault, I, EPT_SDM);
  if (t.value === BigInt(INVEPT_SINGLE_CONTEXT)) {
    const eptp = desc.low;
    const problem = eptpProblem(eptp, cpu.caps, cpu.maxPhysAddr());
    if (problem !== null) {
      return vmFail(ctx, VMXERR.VMXERR_INVALID_OPERAND_TO_INVEPT_INVVPID, { rule: 'invept-eptp', sdm: EPT_SDM, instruction: I, field: 'EPTP (descriptor bits 63:0)', value: eptp, expected: problem.expected, message: `Single-context INVEPT with an invalid EPTP ${hex(eptp)}: ${problem.message}.` });
    }
    cpu.invalidateEpt(eptp);
  } else {
    cpu.invalidateEpt(null);
  }
  return vmSucceed(cpu);
}

/** INVVPID r64, m128. Descriptor: VPID in bits 15:0 (bits 63:16 must be 0), linear address in bits 127:64. */
export function invvpid(ctx: VmxContext, type: SourceOperand, descriptor: DescriptorOperand): VmxOutcome {
  const { cpu, state } = ctx;
  const I = 'INVVPID';
  if (!supportsInvvpid(cpu.caps)) {
    return fault(ctx, UD_VECTOR, { rule: 'invvpid-unsupported', sdm: VPID_SDM, instruction: I, field: 'IA32_VMX_EPT_VPID_CAP', value: cpu.caps.eptVpidCap, expected: '"enable VPID" allowed-1 and bit 32 = 1', message: 'This processor does not support INVVPID.' });
  }
  const ud = commonUd(ctx, I, VPID_SDM) ?? registerOnly(ctx, descriptor, I, VPID_SDM);
  if (ud !== null) return ud;
  if (state.nonRoot) return { kind: 'vm-exit', reason: EXIT_REASON.EXIT_REASON_INVVPID };
  const gp = cplGp(ctx, I, VPID_SDM);
  if (gp !== null) return gp;
  const t = readSource(ctx, type, in64BitMode(cpu) ? 8 : 4);
  if (!t.ok) return memoryFault(ctx, t.fault, I, VPID_SDM);
  const cap = cpu.caps.eptVpidCap;
  const typeBits: readonly bigint[] = [
    EPT_VPID_CAP.VMX_VPID_EXTENT_INDIVIDUAL_ADDR_BIT, EPT_VPID_CAP.VMX_VPID_EXTENT_SINGLE_CONTEXT_BIT,
    EPT_VPID_CAP.VMX_VPID_EXTENT_ALL_CONTEXT_BIT, EPT_VPID_CAP.VMX_VPID_EXTENT_SINGLE_NON_GLOBAL_BIT,
  ];
  const typ = t.value <= 3n ? Number(t.value) : -1;
  if (typ < 0 || (cap & typeBits[typ]!) === 0n) {
    return vmFail(ctx, VMXERR.VMXERR_INVALID_OPERAND_TO_INVEPT_INVVPID, { rule: 'invvpid-type', sdm: VPID_SDM, instruction: I, field: 'INVVPID type', value: t.value, expected: 'a type 0–3 whose IA32_VMX_EPT_VPID_CAP bit (40–43) is 1', message: `INVVPID type ${t.value} is not supported by this processor.` });
  }
  const desc = readDescriptor(ctx, descriptor);
  if (!desc.ok) return memoryFault(ctx, desc.fault, I, VPID_SDM);
  const base = { sdm: VPID_SDM, instruction: I };
  if (desc.low >> 16n !== 0n) {
    return vmFail(ctx, VMXERR.VMXERR_INVALID_OPERAND_TO_INVEPT_INVVPID, { ...base, rule: 'invvpid-descriptor-reserved', field: 'INVVPID descriptor bits 63:16', value: desc.low, expected: '0', message: 'Bits 63:16 of the INVVPID descriptor are reserved and must be 0.' });
  }
  const vpid = Number(desc.low & 0xffffn);
  if (typ !== INVVPID_ALL_CONTEXT && vpid === 0) {
    return vmFail(ctx, VMXERR.VMXERR_INVALID_OPERAND_TO_INVEPT_INVVPID, { ...base, rule: 'invvpid-vpid-zero', field: 'VPID', value: 0n, expected: 'non-zero (VPID 0 is the host\'s)', message: 'This INVVPID type needs a non-zero VPID in descriptor bits 15:0.' });
  }
  if (typ === INVVPID_INDIVIDUAL_ADDRESS) {
    if (!canonical(desc.high, cpu.linearAddrWidth())) {
      return vmFail(ctx, VMXERR.VMXERR_INVALID_OPERAND_TO_INVEPT_INVVPID, { ...base, rule: 'invvpid-address-canonical', field: 'linear address', value: desc.high, expected: 'canonical', message: `The linear address ${hex(desc.high)} in descriptor bits 127:64 is not canonical.` });
    }
    cpu.invalidateVpid(vpid, desc.high, false);
  } else if (typ === INVVPID_SINGLE_CONTEXT) cpu.invalidateVpid(vpid, null, false);
  else if (typ === INVVPID_ALL_CONTEXT) cpu.invalidateVpid(null, null, false);
  else cpu.invalidateVpid(vpid, null, true);
  return vmSucceed(cpu);
}

function registerOnly(ctx: VmxContext, descriptor: DescriptorOperand, instruction: string, sdm: string): VmxOutcome | null {
  if (descriptor.kind !== 'register') return null;
  return fault(ctx, UD_VECTOR, { rule: `${instruction.toLowerCase()}-register-operand`, sdm, instruction, message: `${instruction} takes its descriptor from memory; the register form is an invalid opcode.` });
}

type Descriptor = { ok: true; low: bigint; high: bigint } | { ok: false; fault: CpuFault };

function readDescriptor(ctx: VmxContext, d: DescriptorOperand): Descriptor {
  if (d.kind === 'register') return { ok: true, low: 0n, high: 0n }; // unreachable: #UD earlier
  if (d.kind === 'descriptor') return { ok: true, low: BigInt.asUintN(64, d.low), high: BigInt.asUintN(64, d.high) };
  const lo = ctx.cpu.readLinear(d.linear, 8);
  if (!lo.ok) return lo;
  const hi = ctx.cpu.readLinear(d.linear + 8n, 8);
  if (!hi.ok) return hi;
  return { ok: true, low: lo.value, high: hi.value };
}

function canonical(addr: bigint, width: number): boolean {
  const top = addr >> BigInt(width - 1);
  return top === 0n || top === (1n << BigInt(65 - width)) - 1n;
}

// Control-register accesses in VMX non-root operation: MOV to/from CR0, CR3, CR4 and CR8, CLTS and LMSW.
//  - CR0 and CR4: the guest/host mask says which bits the host owns. A write exits if it would give a host-owned
//    bit a value different from the read shadow; a write that does not exit leaves host-owned bits as they are.
//    A read returns the read shadow for host-owned bits and the real CR for the others.
//  - CR3: "CR3-load exiting" makes MOV to CR3 exit unless the value is one of the first CR3-target-count
//    CR3-target values; "CR3-store exiting" makes MOV from CR3 exit.
//  - CR8: "CR8-load/store exiting"; with "use TPR shadow" MOV from CR8 reads VTPR[7:4] and MOV to CR8 writes
//    VTPR on the virtual-APIC page instead of the real TPR, then exits (TPR below threshold) if VTPR[7:4] dropped
//    below the TPR threshold.
// See SDM Vol. 3C, "Instructions That Cause VM Exits Conditionally", "Guest/Host Masks and Read Shadows for CR0
// and CR4", "CR3-Target Controls", "Changes to Instruction Behavior in VMX Non-Root Operation" and
// "Exit Qualification for Control-Register Accesses".
import { NATIVE, substitute, type InterceptAnswer, type VmxInterceptEvent } from '../../machine/vmx-seam.ts';
import { CR0 } from '../../x86/control-registers.ts';
import { VMX_CONTROL as C } from '../controls.ts';
import { EXIT_REASON } from '../exit-reasons.ts';
import { secondaryControls, type ExitCauseHandler, type NonRootContext } from './context.ts';
import { CR_ACCESS_TYPE, crAccessQualification } from './qualification.ts';

type CrAccess = Extract<VmxInterceptEvent, { kind: 'cr-access' }>;

/** The CR3-target value fields; the processor considers the first CR3_TARGET_COUNT of them. */
const CR3_TARGET_VALUES = ['CR3_TARGET_VALUE0', 'CR3_TARGET_VALUE1', 'CR3_TARGET_VALUE2', 'CR3_TARGET_VALUE3'] as const;

/** Offset of the virtual TPR in the virtual-APIC page. See SDM Vol. 3C, "Virtual-APIC Page". */
const VTPR_OFFSET = 0x80;

export const crAccess: ExitCauseHandler<'cr-access'> = (ctx, e) => {
  switch (e.access) {
    case CR_ACCESS_TYPE.MOV_TO_CR: return movToCr(ctx, e);
    case CR_ACCESS_TYPE.MOV_FROM_CR: return movFromCr(ctx, e);
    case CR_ACCESS_TYPE.CLTS: return clts(ctx, e);
    case CR_ACCESS_TYPE.LMSW: return lmsw(ctx, e);
  }
};

function crExit(ctx: NonRootContext, e: CrAccess): InterceptAnswer {
  const lmswMemory = e.access === CR_ACCESS_TYPE.LMSW && e.lmswLinear !== null;
  return ctx.exit({
    reason: EXIT_REASON.EXIT_REASON_CR_ACCESS,
    instructionLength: e.length,
    qualification: crAccessQualification({ cr: e.cr, access: e.access, gpr: e.gpr, lmswMemory, lmswSource: e.lmswSource }),
    // LMSW with a memory operand also reports its linear address. See SDM Vol. 3C, "Basic VM-Exit Information".
    ...(lmswMemory ? { guestLinearAddress: e.lmswLinear! } : {}),
  });
}

/** CR0 or CR4: its guest/host mask, its read shadow and the real register's value. */
function ownership(ctx: NonRootContext, cr: 0 | 4): { mask: bigint; shadow: bigint; real: bigint } {
  return cr === 0
    ? { mask: ctx.read64('CR0_GUEST_HOST_MASK'), shadow: ctx.read64('CR0_READ_SHADOW'), real: ctx.lp.readCr0() }
    : { mask: ctx.read64('CR4_GUEST_HOST_MASK'), shadow: ctx.read64('CR4_READ_SHADOW'), real: ctx.lp.readCr4() };
}

function movToCr(ctx: NonRootContext, e: CrAccess): InterceptAnswer {
  const proc = ctx.read32('CPU_BASED_VM_EXEC_CONTROL');
  switch (e.cr) {
    case 0:
    case 4: {
      const { mask, shadow, real } = ownership(ctx, e.cr);
      if (mask === 0n) return NATIVE;
      if (((e.value ^ shadow) & mask) !== 0n) return crExit(ctx, e);
      return substitute((e.value & ~mask) | (real & mask));
    }
    case 3: {
      if ((proc & C.CPU_BASED_CR3_LOAD_EXITING) === 0) return NATIVE;
      const count = ctx.read32('CR3_TARGET_COUNT');
      for (let i = 0; i < count && i < CR3_TARGET_VALUES.length; i++) if (ctx.read64(CR3_TARGET_VALUES[i]!) === e.value) return NATIVE;
      return crExit(ctx, e);
    }
    case 8: {
      if (proc & C.CPU_BASED_CR8_LOAD_EXITING) return crExit(ctx, e);
      if ((proc & C.CPU_BASED_TPR_SHADOW) === 0) return NATIVE;
      // VTPR[7:4] = source[3:0]; the rest of VTPR is cleared. The real TPR is not written: the instruction loads
      // CR8 with its current value.
      const page = Number(ctx.read64('VIRTUAL_APIC_PAGE_ADDR'));
      const vtpr = Number(e.value & 0xfn);
      ctx.lp.memory.write32(page + VTPR_OFFSET, vtpr << 4);
      // TPR virtualization without virtual-interrupt delivery: a VTPR[7:4] below TPR threshold[3:0] causes a
      // trap-like VM exit once the instruction has completed, so the saved RIP is the next instruction's. Its
      // qualification is cleared and its instruction length undefined. See SDM Vol. 3C, "TPR Virtualization".
      const vid = (secondaryControls(ctx) & C.SECONDARY_EXEC_VIRTUAL_INTR_DELIVERY) !== 0;
      if (!vid && vtpr < (ctx.read32('TPR_THRESHOLD') & 0xf)) {
        return ctx.exit({ reason: EXIT_REASON.EXIT_REASON_TPR_BELOW_THRESHOLD, guestRip: BigInt.asUintN(64, BigInt(ctx.lp.rip + e.length)) });
      }
      return substitute(ctx.lp.readCr8());
    }
    default:
      return NATIVE; // MOV to CR2 never exits
  }
}

function movFromCr(ctx: NonRootContext, e: CrAccess): InterceptAnswer {
  const proc = ctx.read32('CPU_BASED_VM_EXEC_CONTROL');
  switch (e.cr) {
    case 0:
    case 4: {
      const { mask, shadow, real } = ownership(ctx, e.cr);
      if (mask === 0n) return NATIVE;
      return substitute((real & ~mask) | (shadow & mask));
    }
    case 3:
      return proc & C.CPU_BASED_CR3_STORE_EXITING ? crExit(ctx, e) : NATIVE;
    case 8: {
      if (proc & C.CPU_BASED_CR8_STORE_EXITING) return crExit(ctx, e);
      if ((proc & C.CPU_BASED_TPR_SHADOW) === 0) return NATIVE;
      const page = Number(ctx.read64('VIRTUAL_APIC_PAGE_ADDR'));
      return substitute(BigInt((ctx.lp.memory.read8(page + VTPR_OFFSET) >> 4) & 0xf));
    }
    default:
      return NATIVE;
  }
}

/** CLTS exits if the host owns CR0.TS and the shadow has TS = 1; if the host owns TS, CLTS leaves it alone. */
function clts(ctx: NonRootContext, e: CrAccess): InterceptAnswer {
  const { mask, shadow, real } = ownership(ctx, 0);
  const ts = BigInt(CR0.TS);
  if ((mask & ts) === 0n) return NATIVE;
  if ((shadow & ts) !== 0n) return crExit(ctx, e);
  return substitute(real);
}

/**
 * LMSW exits if it would set a host-owned PE the shadow has clear, or give a host-owned MP, EM or TS a value
 * different from the shadow. Otherwise host-owned bits keep their value.
 */
function lmsw(ctx: NonRootContext, e: CrAccess): InterceptAnswer {
  const { mask, shadow, real: cr0 } = ownership(ctx, 0);
  const owned = Number(mask & 0xfn);
  if (owned === 0) return NATIVE;
  const src = e.lmswSource & 0xf, sh = Number(shadow & 0xfn);
  const pe = CR0.PE;
  if ((owned & pe) !== 0 && (sh & pe) === 0 && (src & pe) !== 0) return crExit(ctx, e);
  if (((src ^ sh) & owned & 0xe) !== 0) return crExit(ctx, e);
  // LMSW loads PE MP EM TS and can set PE but never clear it. See SDM Vol. 2A, "LMSW—Load Machine Status Word".
  const loaded = (cr0 & ~0xen) | BigInt(src) | (cr0 & 1n);
  return substitute((loaded & ~mask) | (cr0 & mask));
}

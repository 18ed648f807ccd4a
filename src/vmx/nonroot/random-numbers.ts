// RDRAND exits if "RDRAND exiting" is 1 (reason 57), RDSEED if "RDSEED exiting" is 1 (reason 61). The exit
// qualification is cleared; the VM-exit instruction-information field names the destination register and the
// operand size, so the VMM can emulate the instruction. See SDM Vol. 3C, "Instructions That Cause VM Exits
// Conditionally" and "VM-Exit Instruction-Information Field".
import { NATIVE } from '../../machine/vmx-seam.ts';
import { VMX_CONTROL as C } from '../controls.ts';
import { EXIT_REASON } from '../exit-reasons.ts';
import { instructionExit } from './causes.ts';
import type { ExitCauseHandler } from './context.ts';
import { randomNumberInstructionInfo } from './qualification.ts';
import { secondaryControls } from './context.ts';

export const rdrand: ExitCauseHandler<'rdrand'> = (ctx, e) =>
  secondaryControls(ctx) & C.SECONDARY_EXEC_RDRAND_EXITING
    ? ctx.exit({ ...instructionExit(EXIT_REASON.EXIT_REASON_RDRAND, e.length), instructionInfo: randomNumberInstructionInfo(e.reg, e.operandSize) })
    : NATIVE;

export const rdseed: ExitCauseHandler<'rdseed'> = (ctx, e) =>
  secondaryControls(ctx) & C.SECONDARY_EXEC_RDSEED_EXITING
    ? ctx.exit({ ...instructionExit(EXIT_REASON.EXIT_REASON_RDSEED, e.length), instructionInfo: randomNumberInstructionInfo(e.reg, e.operandSize) })
    : NATIVE;

// Register names the guest assembler accepts, mapped to iced-x86's Register values.
import { Register, RegisterExt } from 'iced-x86';

const registerByName = new Map<string, Register>();

// Derived from iced-x86's own Register enum: the general-purpose, segment, control, debug and
// SSE registers. NASM spells the low byte of R8..R15 "r8b"; iced calls it R8L — accept both.
for (const [name, value] of Object.entries(Register)) {
  if (typeof value !== 'number') continue;
  const reg = value as Register;
  const wanted =
    RegisterExt.isGPR(reg) ||
    RegisterExt.isSegmentRegister(reg) ||
    RegisterExt.isCR(reg) ||
    RegisterExt.isDR(reg) ||
    (RegisterExt.isXMM(reg) && RegisterExt.number(reg) < 16);
  if (!wanted) continue;
  const lower = name.toLowerCase();
  registerByName.set(lower, reg);
  if (/^r\d+l$/.test(lower)) registerByName.set(lower.slice(0, -1) + 'b', reg);
}

/** The register called `name` (any case), or undefined. RIP is not an operand register. */
export function registerNamed(name: string): Register | undefined {
  return registerByName.get(name.toLowerCase());
}

export function registerName(reg: Register): string {
  return (Register[reg] ?? '?').toLowerCase();
}

/** Size keywords and their operand sizes in bytes. */
export const SIZE_KEYWORDS: Readonly<Record<string, number>> = {
  byte: 1,
  word: 2,
  dword: 4,
  fword: 6,
  qword: 8,
  tword: 10,
  oword: 16,
  yword: 32,
};

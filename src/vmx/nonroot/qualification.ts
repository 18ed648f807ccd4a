// Exit-qualification layouts, built in one place. Each function packs the fields of one SDM table.

/** How a control register was accessed: bits 5:4 of the CR-access exit qualification. */
export const CR_ACCESS_TYPE = { MOV_TO_CR: 0, MOV_FROM_CR: 1, CLTS: 2, LMSW: 3 } as const;

/**
 * Exit qualification for control-register accesses:
 *   3:0 CR number (0 for CLTS and LMSW) · 5:4 access type · 6 LMSW operand type (0 register, 1 memory) ·
 *   11:8 the general-purpose register of MOV CR (0 = RAX … 15 = R15) · 31:16 LMSW source data · 63:32 cleared.
 * See SDM Vol. 3C, "Exit Qualification for Control-Register Accesses".
 */
export function crAccessQualification(q: { cr: number; access: 0 | 1 | 2 | 3; gpr: number; lmswMemory: boolean; lmswSource: number }): bigint {
  const movCr = q.access === CR_ACCESS_TYPE.MOV_TO_CR || q.access === CR_ACCESS_TYPE.MOV_FROM_CR;
  const lmsw = q.access === CR_ACCESS_TYPE.LMSW;
  return BigInt(((movCr ? q.cr & 0xf : 0) | (q.access << 4) | (lmsw && q.lmswMemory ? 1 << 6 : 0) |
    (movCr ? (q.gpr & 0xf) << 8 : 0) | (lmsw ? (q.lmswSource & 0xffff) << 16 : 0)) >>> 0);
}

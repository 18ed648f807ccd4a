// What the firmware ("BIOS") leaves in the MTRRs at boot, per board, the same on every logical processor: the
// default type, the fixed ranges of the first MiB (RAM, the VGA hole, the option-ROM/BIOS area) and variable UC
// ranges for the MMIO hole below 4 GiB, where the I/O APIC (FEC00000H) and local APIC (FEE00000H) pages are.
// Firmware programs every LP alike because the MTRRs must agree across processors: it disables the MTRRs, writes
// them, then enables them. See SDM Vol. 3A, "MTRR Initialization" and "MTRR Considerations in MP Systems".
import surfaceBook3 from '../../../data/cpu-models/mtrr/icelake-surfacebook3-linux-dmesg.json' with { type: 'json' };
import * as MSR from '../../x86/msr.ts';
import { MEMORY_TYPE } from '../../x86/memory-types.ts';
import { FIXED_RANGE_MTRRS, MTRR_DEF_TYPE, MTRR_PHYS, physAddressBits } from '../../x86/mtrr.ts';
import type { MtrrRegisters } from './mtrr-registers.ts';
import type { MtrrPair } from './mtrr-state.ts';

export interface FirmwareMtrrs {
  /** IA32_MTRR_DEF_TYPE to leave (E, FE and the default type). */
  readonly defType: bigint;
  /** The 11 fixed-range MTRRs, in FIXED_RANGE_MTRRS order. */
  readonly fixed: readonly bigint[];
  /** Variable pairs 0, 1, …; the pairs after them are left invalid (zero). */
  readonly variable: readonly MtrrPair[];
}

export interface Board {
  readonly name: string;
  readonly description: string;
  /** The layout for a processor with this MAXPHYADDR and VCNT; throws when the board cannot hold that CPU. */
  layout(maxPhysAddr: number, vcnt: number): FirmwareMtrrs;
}

/** Eight equal one-byte types: one fixed-range MTRR whose 8 sub-ranges share `type`. */
const allFields = (type: number): bigint => BigInt(type) * 0x0101010101010101n;
const GiB = 1n << 30n;

/**
 * A PC with RAM from 0 (at most 3 GiB: src/boot/pc-memory-map.ts) and its MMIO window in the top GiB below 4 GiB.
 * Default WB; 0–9FFFFH WB (conventional RAM), A0000–BFFFFH UC (the VGA frame buffer hole), C0000–FFFFFH WP
 * (option ROMs and the BIOS ROM: reads may be cached, writes go to the bus); one UC range C0000000H–FFFFFFFFH that
 * holds the I/O APIC, the local APIC and the BIOS flash. SMRR left invalid: this machine has no SMRAM.
 */
export const PC_BOARD: Board = {
  name: 'pc',
  description: 'PC: RAM below 3 GiB, MMIO hole 3–4 GiB UC (I/O APIC FEC00000H, local APIC FEE00000H)',
  layout(maxPhysAddr, vcnt) {
    if (vcnt < 1) throw new Error('firmware: the pc board needs one variable MTRR for its MMIO hole');
    const hole: MtrrPair = {
      base: 3n * GiB | BigInt(MEMORY_TYPE.UC),
      mask: (physAddressBits(maxPhysAddr) & ~(GiB - 1n)) | MTRR_PHYS.VALID,
    };
    return {
      defType: MTRR_DEF_TYPE.E | MTRR_DEF_TYPE.FE | BigInt(MEMORY_TYPE.WB),
      fixed: FIXED_RANGE_MTRRS.map((r) =>
        allFields(r.base < 0xa0000 ? MEMORY_TYPE.WB : r.base < 0xc0000 ? MEMORY_TYPE.UC : MEMORY_TYPE.WP)),
      variable: [hole],
    };
  },
};

/**
 * The firmware state Linux printed on a Microsoft Surface Book 3 (Ice Lake, MAXPHYADDR 39): default WB, the same
 * fixed ranges as the pc board, seven UC ranges that carve 91000000H–FFFFFFFFH and everything from 256 GiB up.
 * The MSR values are the data file's reconstruction of that print (firmware.test.ts prints them back).
 */
export const SURFACE_BOOK_3_BOARD: Board = {
  name: 'surface-book-3',
  description: 'Microsoft Surface Book 3 (Ice Lake), as its Linux boot log printed it',
  layout(maxPhysAddr, vcnt) {
    const msrs: Readonly<Record<string, string>> = surfaceBook3.msrs_reconstructed;
    const at = (msr: number): bigint => {
      const key = Object.keys(msrs).find((k) => Number(k) === msr);
      return key === undefined ? 0n : BigInt(msrs[key]!);
    };
    const used = Object.keys(msrs).filter((k) => Number(k) >= MSR.MSR_MTRRphysBase0 && Number(k) < MSR.MSR_MTRRfix64K_00000).length / 2;
    if (maxPhysAddr !== 39) throw new Error(`firmware: the surface-book-3 masks are 39-bit; this CPU has MAXPHYADDR ${maxPhysAddr}`);
    if (vcnt < used) throw new Error(`firmware: the surface-book-3 layout uses ${used} variable MTRRs; this CPU has ${vcnt}`);
    return {
      defType: at(MSR.MSR_MTRRdefType),
      fixed: FIXED_RANGE_MTRRS.map((r) => at(r.msr)),
      variable: Array.from({ length: used }, (_, n) => ({ base: at(MSR.MTRRphysBase_MSR(n)), mask: at(MSR.MTRRphysMask_MSR(n)) })),
    };
  },
};

export const BOARDS = { pc: PC_BOARD, 'surface-book-3': SURFACE_BOOK_3_BOARD } as const;
export type BoardName = keyof typeof BOARDS;

/** Program one LP's MTRRs as the board's firmware does; a value the registers refuse is a bug in the board table. */
export function programFirmwareMtrrs(regs: MtrrRegisters, board: Board): void {
  const layout = board.layout(regs.maxPhysAddr, regs.variable.length);
  const put = (msr: number, value: bigint) => {
    const refused = regs.write(msr, value);
    if (refused !== null) throw new Error(`firmware (${board.name}): WRMSR ${msr.toString(16)}H ← ${value.toString(16)}H refused: ${refused.reason}`);
  };
  put(MSR.MSR_MTRRdefType, 0n); // disable while programming
  if (regs.read(FIXED_RANGE_MTRRS[0].msr) !== undefined) FIXED_RANGE_MTRRS.forEach((r, i) => put(r.msr, layout.fixed[i]!));
  regs.variable.forEach((_, n) => {
    const p = layout.variable[n] ?? { base: 0n, mask: 0n };
    put(MSR.MTRRphysBase_MSR(n), p.base);
    put(MSR.MTRRphysMask_MSR(n), p.mask);
  });
  put(MSR.MSR_MTRRdefType, layout.defType);
}

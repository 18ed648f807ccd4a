// The x87 and SSE register state of a logical processor (the data; the instructions are in x87-minimal.ts and
// fxsave.ts). Kept free of imports so lp.ts can hold one without an import cycle.
// See SDM Vol. 1, "X87 FPU Control Word", "x87 FPU Status Register", "x87 FPU Tag Word" and "MXCSR Control and
// Status Register".

/** FNINIT's control word: all exceptions masked, 64-bit precision, round to nearest. */
export const FCW_INIT = 0x037f;
/** MXCSR after power-up: all SIMD exceptions masked. See SDM Vol. 1, "MXCSR Control and Status Register". */
export const MXCSR_INIT = 0x1f80;
/** The MXCSR bits this processor lets FXRSTOR/LDMXCSR set (DAZ included), reported by FXSAVE as MXCSR_MASK. */
export const MXCSR_MASK = 0xffff;

/**
 * The x87 and SSE state of one LP. Values after power-up: FCW 0040H, FSW 0, FTW 5555H, MXCSR 1F80H, registers
 * zero. INIT leaves this state unchanged. See SDM Vol. 3A, "Processor State Following Power-up, Reset, or INIT".
 */
export class FpuState {
  fcw = 0x0040;
  fsw = 0;
  /** The full tag word: two bits per physical register, 11B = empty. */
  ftw = 0x5555;
  /** Last x87 opcode and instruction/data pointers: always 0 here (no arithmetic instruction runs). */
  fop = 0;
  mxcsr = MXCSR_INIT;
  /** ST0–ST7 (MM0–MM7) images, 10 significant bytes each in 16-byte slots, as FXSAVE lays them out. */
  readonly st = new Uint8Array(8 * 16);
  /** XMM0–XMM15 images: no SSE instruction computes on them, but FXRSTOR loads and FXSAVE stores them. */
  readonly xmm = new Uint8Array(16 * 16);
}


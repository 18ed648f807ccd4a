// What VMX Lab does not emulate, in one table: every instruction group that is valid x86 but that the decoder
// refuses, and (separately) the processor modes and mechanisms the machine refuses when they are entered.
// The decoder's #UD explanation names the row (`notImplementedReason`), the site renders the table
// (/reference/not-implemented), and src/machine/not-implemented.test.ts checks each row's example against iced-x86
// and against the machine. See SDM Vol. 2D, "Opcode Map".

/** The form of a refused instruction that the table matches on (what the decoder knows when it refuses it). */
export interface RefusedForm {
  /** Opcode key: one-byte opcode, 100H + 0F xx, 200H + 0F 38 xx, 300H + 0F 3A xx. */
  readonly key: number;
  readonly bits: 16 | 32 | 64;
  /** ModRM known (checkEncoding) or not (opcode refused before ModRM). */
  readonly mem?: boolean;
  /** ModRM.reg (0–7) and the full ModRM byte when known. */
  readonly reg?: number;
  readonly modrm?: number;
  readonly has66?: boolean;
  readonly rep?: number;
  /** For VEX (C4/C5): the map (1 = 0F, 2 = 0F 38, 3 = 0F 3A), VEX.pp and the opcode byte after the VEX prefix. */
  readonly vex?: { readonly map: number; readonly pp: number; readonly opcode: number };
}

export interface NotImplementedRow {
  readonly id: string;
  /** Short name, used in the #UD explanation. */
  readonly name: string;
  readonly mnemonics: string;
  readonly encoding: string;
  /** The CPUID feature that makes the instruction valid, if any (as the SDM's "CPUID Feature Flag" column). */
  readonly cpuid?: string;
  readonly note: string;
  /** What to use instead, where there is an obvious replacement. */
  readonly instead?: string;
  /** One instance, hand-encoded (hex bytes), with the code size it is valid in. */
  readonly example: { readonly bytes: string; readonly bits: 32 | 64 };
  readonly matches: (f: RefusedForm) => boolean;
}

const T = 0x100;
const inRange = (k: number, a: number, b: number): boolean => k >= a && k <= b;
const vexMap = (f: RefusedForm, map: number): boolean => f.vex !== undefined && f.vex.map === map;

/** BMI1's VEX forms: ANDN (F2), the F3 group BLSR/BLSMSK/BLSI, BEXTR (F7 without prefix). */
const isBmi1 = (f: RefusedForm): boolean =>
  vexMap(f, 2) && (f.vex!.opcode === 0xf2 || f.vex!.opcode === 0xf3 || (f.vex!.opcode === 0xf7 && f.vex!.pp === 0));
/** BMI2's VEX forms: BZHI/PEXT/PDEP (F5), MULX (F6), SHLX/SARX/SHRX (F7 with 66/F3/F2), RORX (0F 3A F0). */
const isBmi2 = (f: RefusedForm): boolean =>
  (vexMap(f, 2) && (f.vex!.opcode === 0xf5 || f.vex!.opcode === 0xf6 || (f.vex!.opcode === 0xf7 && f.vex!.pp !== 0))) ||
  (vexMap(f, 3) && f.vex!.opcode === 0xf0);

/** Instruction groups that are valid x86 and raise #UD "valid x86 but not implemented by VMX Lab". In lookup order. */
export const NOT_IMPLEMENTED: readonly NotImplementedRow[] = [
  {
    id: 'x87-arithmetic', name: 'x87 arithmetic', mnemonics: 'FLD FST FSTP FILD FIST FADD FSUB FMUL FDIV FCOM FXCH FLD1 FSQRT …',
    encoding: 'D8–DF (escape opcodes)', cpuid: 'FPU',
    note: 'FNINIT, FNCLEX, FNSTCW, FLDCW, FNSTSW AX / m16, FNOP and WAIT are implemented (src/machine/isa/x87-minimal.ts), so `-mno-sse` kernels boot; the #NM checks of CR0.EM/TS still come first.',
    instead: 'integer arithmetic', example: { bytes: 'D9 E8', bits: 64 }, matches: (f) => inRange(f.key, 0xd8, 0xdf),
  },
  {
    id: 'bmi1-vex', name: 'BMI1 VEX forms', mnemonics: 'ANDN BEXTR BLSI BLSMSK BLSR', encoding: 'VEX.0F38 F2, F3 /1–/3, F7', cpuid: 'BMI1',
    note: 'TZCNT (F3 0F BC) is implemented where the model reports BMI1.', instead: 'AND/NOT, shifts (compile with -mno-bmi)',
    example: { bytes: 'C4 E2 70 F2 C2', bits: 64 }, matches: isBmi1,
  },
  {
    id: 'bmi2-vex', name: 'BMI2 VEX forms', mnemonics: 'SHLX SARX SHRX RORX MULX PDEP PEXT BZHI', encoding: 'VEX.0F38 F5, F6, F7; VEX.0F3A F0', cpuid: 'BMI2',
    note: 'gcc emits SHLX/SHRX for variable shifts with -mbmi2 or -march=haswell and later.', instead: 'SHL/SHR/SAR r/m, CL; MUL; ROR (compile with -mno-bmi2)',
    example: { bytes: 'C4 E2 71 F7 C0', bits: 64 }, matches: isBmi2,
  },
  {
    id: 'avx', name: 'AVX, AVX2, FMA and F16C', mnemonics: 'VADDPS VMOVDQU VPXOR VFMADD… VZEROUPPER …', encoding: 'VEX (C4, C5)', cpuid: 'AVX, AVX2, FMA, F16C',
    note: 'Outside 64-bit mode C4/C5 with a memory ModRM are LES/LDS (next rows).', instead: 'general-purpose registers (compile with -mno-sse -mno-avx)',
    example: { bytes: 'C5 F0 58 C2', bits: 64 }, matches: (f) => (f.key === 0xc4 || f.key === 0xc5) && f.vex !== undefined,
  },
  {
    id: 'far-pointer-loads', name: 'far-pointer loads', mnemonics: 'LSS LFS LGS; LES LDS outside 64-bit mode', encoding: '0F B2, 0F B4, 0F B5; C4, C5 with memory ModRM',
    note: 'Load a segment register and a general register from memory.', instead: 'MOV Sreg, r/m16 and a separate MOV',
    example: { bytes: '0F B2 00', bits: 64 }, matches: (f) => f.key === T + 0xb2 || f.key === T + 0xb4 || f.key === T + 0xb5 || f.key === 0xc4 || f.key === 0xc5,
  },
  {
    id: 'evex-bound', name: 'AVX-512 (EVEX) and BOUND', mnemonics: 'VADDPS zmm …; BOUND', encoding: '62', cpuid: 'AVX512F',
    note: 'In 64-bit mode VMX Lab reports 62H as invalid (BOUND does not exist there).', example: { bytes: '62 F1 74 48 58 C2', bits: 32 },
    matches: (f) => f.key === 0x62,
  },
  {
    id: 'mmx-sse', name: 'MMX, SSE, SSE2 and SSE3', mnemonics: 'MOVAPS MOVDQA ADDPS PXOR CVTSI2SD MOVQ EMMS MOVNTI SHUFPS …',
    encoding: '0F 10–17, 0F 28–2F, 0F 50–77, 0F 7C–7F, 0F C2–C6, 0F D0–FF', cpuid: 'MMX, SSE, SSE2, SSE3',
    note: 'FXSAVE/FXRSTOR, LDMXCSR/STMXCSR and the fences (0F AE) are implemented; the XMM registers are saved and restored but no instruction computes with them.',
    instead: 'general-purpose registers (compile with -mno-sse -mno-mmx)', example: { bytes: '0F 58 C1', bits: 64 },
    matches: (f) => inRange(f.key, T + 0x10, T + 0x17) || inRange(f.key, T + 0x28, T + 0x2f) || inRange(f.key, T + 0x50, T + 0x77) ||
      inRange(f.key, T + 0x7c, T + 0x7f) || inRange(f.key, T + 0xc2, T + 0xc6) || inRange(f.key, T + 0xd0, T + 0xff),
  },
  {
    id: 'movbe-crc32-adx', name: 'MOVBE, CRC32, ADCX and ADOX', mnemonics: 'MOVBE CRC32 ADCX ADOX', encoding: '0F 38 F0, 0F 38 F1 (F2: CRC32), 0F 38 F6 (66: ADCX, F3: ADOX)',
    cpuid: 'MOVBE, SSE4.2, ADX', note: 'General-purpose instructions in the 0F 38 map.', instead: 'MOV and BSWAP; ADC',
    example: { bytes: '0F 38 F0 00', bits: 64 }, matches: (f) => f.key === 0x2f0 || f.key === 0x2f1 || f.key === 0x2f6,
  },
  {
    id: 'sse-three-byte', name: 'SSSE3, SSE4, AES-NI, SHA and the rest of the 0F 38 / 0F 3A maps', mnemonics: 'PSHUFB PTEST PINSRD ROUNDPS AESENC SHA256RNDS2 PCLMULQDQ …',
    encoding: '0F 38 xx, 0F 3A xx', cpuid: 'SSSE3, SSE4.1, SSE4.2, AESNI, SHA, PCLMULQDQ',
    note: 'INVEPT, INVVPID and INVPCID (66 0F 38 80–82) are implemented. Not every opcode of these maps is defined; VMX Lab does not tell them apart.',
    example: { bytes: '66 0F 38 00 C1', bits: 64 }, matches: (f) => inRange(f.key, 0x200, 0x3ff),
  },
  {
    id: 'xsaveopt', name: 'XSAVEOPT', mnemonics: 'XSAVEOPT', encoding: 'NP 0F AE /6 (memory)', cpuid: 'XSAVEOPT (CPUID.(EAX=0DH,ECX=1):EAX[0])',
    note: 'XSAVE and XRSTOR (0F AE /4, /5) are implemented.', instead: 'XSAVE',
    example: { bytes: '0F AE 30', bits: 64 }, matches: (f) => f.key === T + 0xae && f.mem === true && f.reg === 6 && !f.has66 && !f.rep,
  },
  {
    id: 'clwb', name: 'CLWB', mnemonics: 'CLWB', encoding: '66 0F AE /6 (memory)', cpuid: 'CLWB',
    note: 'CLFLUSH and CLFLUSHOPT (0F AE /7) are implemented.', instead: 'CLFLUSHOPT',
    example: { bytes: '66 0F AE 30', bits: 64 }, matches: (f) => f.key === T + 0xae && f.mem === true && f.reg === 6 && f.has66 === true,
  },
  {
    id: 'fsgsbase', name: 'FSGSBASE and other prefixed 0F AE forms', mnemonics: 'RDFSBASE RDGSBASE WRFSBASE WRGSBASE PTWRITE INCSSP …',
    encoding: 'F3 0F AE /0–/3 (register); 66/F2/F3 0F AE /0–/5', cpuid: 'FSGSBASE',
    note: 'The FS and GS bases are reachable through IA32_FS_BASE and IA32_GS_BASE.', instead: 'RDMSR/WRMSR of C0000100H/C0000101H, or SWAPGS',
    example: { bytes: 'F3 48 0F AE C0', bits: 64 }, matches: (f) => f.key === T + 0xae,
  },
  {
    id: 'xsavec-xsaves', name: 'XSAVEC, XSAVES and XRSTORS', mnemonics: 'XRSTORS XSAVEC XSAVES', encoding: '0F C7 /3, /4, /5 (memory)',
    cpuid: 'XSAVEC, XSS (CPUID.(EAX=0DH,ECX=1):EAX[1], [3])', note: 'The compacted XSAVE format and supervisor state.', instead: 'XSAVE/XRSTOR (standard format)',
    example: { bytes: '0F C7 20', bits: 64 }, matches: (f) => f.key === T + 0xc7 && f.mem === true,
  },
  {
    id: 'rdpid', name: 'RDPID and SENDUIPI', mnemonics: 'RDPID SENDUIPI', encoding: 'F3 0F C7 /7, /6 (register)', cpuid: 'RDPID, UINTR',
    note: 'RDRAND and RDSEED (0F C7 /6, /7) and RDTSCP are implemented.', instead: 'RDTSCP (ECX = IA32_TSC_AUX)',
    example: { bytes: 'F3 0F C7 F8', bits: 64 }, matches: (f) => f.key === T + 0xc7,
  },
  {
    id: 'tsx', name: 'transactional memory (RTM)', mnemonics: 'XBEGIN XABORT XEND XTEST', encoding: 'C7 F8, C6 F8, 0F 01 D5, 0F 01 D6', cpuid: 'RTM',
    note: 'Software must check CPUID for RTM and have a fallback path anyway.', instead: 'the fallback path (locks)',
    example: { bytes: 'C6 F8 00', bits: 64 },
    matches: (f) => f.key === 0xc6 || f.key === 0xc7 || (f.key === T + 0x01 && (f.modrm === 0xd5 || f.modrm === 0xd6)),
  },
  {
    id: 'system-0f01', name: 'other 0F 01 register forms', mnemonics: 'CLAC STAC ENCLS ENCLU RDPKRU WRPKRU SERIALIZE …',
    encoding: '0F 01 C8–FF not listed as implemented', cpuid: 'SMAP, SGX, PKU, SERIALIZE',
    note: 'VMCALL, VMLAUNCH, VMRESUME, VMXOFF, MONITOR, MWAIT, XGETBV, XSETBV, VMFUNC, SWAPGS, RDTSCP and the descriptor-table forms are implemented. 0F 01 /3 (VMRUN …) exists only on AMD.',
    example: { bytes: '0F 01 CA', bits: 64 }, matches: (f) => f.key === T + 0x01,
  },
  {
    id: 'segment-checks', name: 'LAR, LSL, VERR and VERW', mnemonics: 'LAR LSL VERR VERW', encoding: '0F 02, 0F 03, 0F 00 /4, 0F 00 /5',
    note: 'Descriptor checks without loading a segment register.', example: { bytes: '0F 02 C1', bits: 64 },
    matches: (f) => f.key === T + 0x02 || f.key === T + 0x03 || f.key === T + 0x00,
  },
  {
    id: 'prefetchw', name: 'PREFETCHW', mnemonics: 'PREFETCHW PREFETCH', encoding: '0F 0D', cpuid: 'PRFCHW (CPUID.80000001H:ECX[8])',
    note: 'A hint; the PREFETCHh forms (0F 18) are implemented as NOPs.', instead: 'PREFETCHT0 (0F 18 /1)',
    example: { bytes: '0F 0D 08', bits: 64 }, matches: (f) => f.key === T + 0x0d,
  },
  {
    id: 'getsec', name: 'GETSEC (Safer Mode Extensions)', mnemonics: 'GETSEC', encoding: '0F 37', cpuid: 'SMX',
    note: 'Intel TXT\'s leaf functions.', example: { bytes: '0F 37', bits: 64 }, matches: (f) => f.key === T + 0x37,
  },
  {
    id: 'rsm', name: 'RSM (system-management mode)', mnemonics: 'RSM', encoding: '0F AA',
    note: 'VMX Lab has no SMM; outside SMM RSM raises #UD on hardware too.', example: { bytes: '0F AA', bits: 64 }, matches: (f) => f.key === T + 0xaa,
  },
  {
    id: 'xlat', name: 'XLAT', mnemonics: 'XLAT XLATB', encoding: 'D7', note: 'Table lookup AL ← [rBX + AL].', instead: 'MOVZX and MOV with an index',
    example: { bytes: 'D7', bits: 64 }, matches: (f) => f.key === 0xd7,
  },
  {
    id: 'legacy-one-byte', name: 'legacy-mode-only one-byte instructions', mnemonics: 'DAA DAS AAA AAS AAM AAD INTO ARPL; CALL ptr16:32',
    encoding: '27, 2F, 37, 3F, D4, D5, CE, 63, 9A (outside 64-bit mode)',
    note: 'BCD arithmetic and far calls with an immediate pointer; all invalid in 64-bit mode, where VMX Lab reports them as invalid.',
    instead: 'binary arithmetic; far CALL m16:32', example: { bytes: '27', bits: 32 },
    matches: (f) => [0x27, 0x2f, 0x37, 0x3f, 0xd4, 0xd5, 0xce, 0x63, 0x9a].includes(f.key),
  },
];

/** A processor mode or mechanism that the machine refuses when software enters it (not a #UD). */
export interface ModeNotImplemented {
  readonly id: string;
  readonly name: string;
  /** What the machine raises instead of emulating it. */
  readonly fault: string;
  readonly note: string;
}

export const MODES_NOT_IMPLEMENTED = [
  { id: 'legacy-paging', name: '32-bit and PAE paging', fault: '#GP(0) on the first memory access (the next instruction fetch) with CR0.PG = 1 outside IA-32e mode',
    note: 'Paging is 4-level (IA-32e) only: set EFER.LME and CR4.PAE before CR0.PG. Protected mode with paging off works.' },
  { id: 'task-switch', name: 'task switches', fault: '#GP: far JMP/CALL to a TSS or task gate; IRET with NT = 1 outside IA-32e mode',
    note: 'The TSS is used for RSP0/IST stacks only. Hardware task switching does not exist in IA-32e mode either.' },
  { id: 'call-gates', name: 'call gates', fault: '#GP(selector) on a far CALL/JMP through a call gate', note: 'To enter CPL 0 from CPL 3 use INT n through an interrupt gate (IA-32e mode).' },
  { id: 'legacy-privilege-interrupts', name: 'privilege-changing interrupts in legacy protected mode', fault: '#GP(selector)',
    note: 'In IA-32e mode interrupts from CPL 3 to CPL 0 work; in 32-bit protected mode only same-privilege interrupts do.' },
  { id: 'far-ret-outer', name: 'far RET to another privilege level', fault: '#GP(selector)', note: 'Return to user mode with IRET instead.' },
] as const satisfies readonly ModeNotImplemented[];

export type ModeNotImplementedId = (typeof MODES_NOT_IMPLEMENTED)[number]['id'];

/** The fault explanation when software enters a mode or mechanism of the table: what it did, and the row. */
export function modeNotImplementedReason(id: ModeNotImplementedId, detail: string): string {
  const mode = MODES_NOT_IMPLEMENTED.find((m) => m.id === id)!;
  return `${detail}: ${mode.name} not implemented by VMX Lab (see /reference/not-implemented#mode-${id})`;
}

/** The row that names a refused form, or undefined if the table has none. */
export function notImplementedRow(f: RefusedForm): NotImplementedRow | undefined {
  return NOT_IMPLEMENTED.find((r) => r.matches(f));
}

/** The #UD explanation of a valid-but-not-implemented form: what was refused, and the table row that names it. */
export function notImplementedReason(f: RefusedForm, detail: string): string {
  const row = notImplementedRow(f);
  const group = row === undefined ? '' : ` (${row.name}, see /reference/not-implemented#ni-${row.id})`;
  return `${detail}${group}: valid x86 but not implemented by VMX Lab`;
}

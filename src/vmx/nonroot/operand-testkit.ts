// Test kit: random memory operands in Intel syntax, and what the SDM says the VM-exit instruction-information
// field and the exit qualification hold for them. The expectations are written here from the SDM tables
// ("VM-Exit Instruction-Information Field", and "Basic VM-Exit Information" for the displacement), independently
// of ./qualification.ts, so the tests check the implementation against the manual rather than against itself.
import fc from 'fast-check';

export const R64 = ['rax', 'rcx', 'rdx', 'rbx', 'rsp', 'rbp', 'rsi', 'rdi', 'r8', 'r9', 'r10', 'r11', 'r12', 'r13', 'r14', 'r15'] as const;
export const R32 = ['eax', 'ecx', 'edx', 'ebx', 'esp', 'ebp', 'esi', 'edi', 'r8d', 'r9d', 'r10d', 'r11d', 'r12d', 'r13d', 'r14d', 'r15d'] as const;
export const R16 = ['ax', 'cx', 'dx', 'bx', 'sp', 'bp', 'si', 'di', 'r8w', 'r9w', 'r10w', 'r11w', 'r12w', 'r13w', 'r14w', 'r15w'] as const;

/** The poison pattern VMX Lab puts in undefined bits (the same as src/vmx/exit/info.ts UNDEFINED_32). */
export const POISON_32 = 0xdeadbeef;

export interface MemOperandCase {
  /** The operand as the assembler takes it, e.g. `fs:[rbx + rcx*4 - 0x10]` or `[rel data]`. */
  readonly text: string;
  readonly addressSize: 32 | 64;
  /** Segment register number (ES 0 … GS 5) the instruction uses. */
  readonly segment: number;
  readonly base: number | null;
  readonly index: number | null;
  /** log2 of the scale factor. */
  readonly scale: number;
  readonly displacement: bigint;
  /** `[rel data]`: the effective address is the label `data`. */
  readonly ripRelative: boolean;
}

const SEGMENTS = [null, 'fs', 'gs'] as const;
const hex = (n: bigint): string => `0x${n.toString(16)}`;

/** 64- or 32-bit addressing with any base, index (not RSP), scale, displacement and FS/GS override; or RIP-relative. */
export const memOperand: fc.Arbitrary<MemOperandCase> = fc.oneof(
  { weight: 9, arbitrary: fc.record({
    addressSize: fc.constantFrom(64 as const, 32 as const),
    seg: fc.constantFrom(...SEGMENTS),
    base: fc.option(fc.integer({ min: 0, max: 15 }), { nil: null }),
    index: fc.option(fc.integer({ min: 0, max: 15 }).filter((i) => i !== 4), { nil: null }),
    scale: fc.integer({ min: 0, max: 3 }),
    disp: fc.oneof(fc.constant(0), fc.integer({ min: -128, max: 127 }), fc.integer({ min: -(2 ** 31), max: 2 ** 31 - 1 })),
  }).map((r): MemOperandCase => {
    // An operand needs a register unless it is a bare (non-negative) 64-bit absolute displacement.
    const base = r.base === null && r.index === null && (r.addressSize === 32 || r.disp < 0) ? 3 : r.base;
    const names = r.addressSize === 64 ? R64 : R32;
    const parts: string[] = [];
    if (base !== null) parts.push(names[base]!);
    if (r.index !== null) parts.push(`${names[r.index]!}*${1 << r.scale}`);
    let text = parts.join(' + ');
    if (r.disp !== 0 || parts.length === 0) text += parts.length === 0 ? hex(BigInt(r.disp)) : r.disp < 0 ? ` - ${hex(BigInt(-r.disp))}` : ` + ${hex(BigInt(r.disp))}`;
    const defaultSegment = base === 4 || base === 5 ? 2 : 3; // RSP/RBP as base: SS; otherwise DS
    return {
      text: `${r.seg === null ? '' : `${r.seg}:`}[${text}]`, addressSize: r.addressSize,
      segment: r.seg === 'fs' ? 4 : r.seg === 'gs' ? 5 : defaultSegment,
      base, index: r.index, scale: r.index === null ? 0 : r.scale, displacement: BigInt(r.disp), ripRelative: false,
    };
  }) },
  { weight: 1, arbitrary: fc.constantFrom(...SEGMENTS).map((seg): MemOperandCase => ({
    text: `${seg === null ? '' : `${seg}:`}[rel data]`, addressSize: 64, segment: seg === 'fs' ? 4 : seg === 'gs' ? 5 : 3,
    base: null, index: null, scale: 0, displacement: 0n, ripRelative: true,
  })) },
);

/** A field value and which of its bits the SDM defines. */
export interface Expected { readonly value: number; readonly defined: number }

const field = (value: number, pos: number, width: number): Expected =>
  ({ value: (value & ((1 << width) - 1)) * 2 ** pos, defined: ((1 << width) - 1) * 2 ** pos });
/** Combine fields (disjoint bit ranges). */
export function fields(...parts: Expected[]): Expected {
  return parts.reduce((a, b) => ({ value: (a.value + b.value) >>> 0, defined: (a.defined + b.defined) >>> 0 }), { value: 0, defined: 0 });
}

/**
 * The memory-operand part common to the tables: scaling 1:0 (undefined without an index), address size 9:7
 * (0 16-bit, 1 32-bit, 2 64-bit), bit 10 = 0 (memory), segment 17:15, index 21:18 / invalid 22, base 26:23 /
 * invalid 27 (a register field is undefined when its invalid bit is set).
 */
export function memoryInfo(m: MemOperandCase): Expected {
  const parts = [field(m.addressSize === 64 ? 2 : 1, 7, 3), field(0, 10, 1), field(m.segment, 15, 3)];
  if (m.index !== null) parts.push(field(m.scale, 0, 2), field(m.index, 18, 4), field(0, 22, 1));
  else parts.push(field(1, 22, 1));
  if (m.base !== null) parts.push(field(m.base, 23, 4), field(0, 27, 1));
  else parts.push(field(1, 27, 1));
  return fields(...parts);
}

/** A register operand in VMREAD/VMWRITE and LLDT/LTR/SLDT/STR: Reg1 6:3, bit 10 = 1 (register). */
export function registerInfo(reg: number): Expected {
  return fields(field(reg, 3, 4), field(1, 10, 1));
}

export { field };

/**
 * The exit qualification for an operand: the displacement sign-extended, or for RIP-relative addressing the
 * effective address (displacement + next RIP = the label); only the bits within the address size are defined.
 */
export function expectedDisplacement(m: MemOperandCase, labelAddress: number): { value: bigint; defined: bigint } {
  const defined = (1n << BigInt(m.addressSize)) - 1n;
  return { value: (m.ripRelative ? BigInt(labelAddress) : m.displacement) & defined, defined };
}

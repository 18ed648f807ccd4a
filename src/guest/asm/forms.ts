// Instruction forms, derived from iced-x86's own tables rather than written by hand.
//
// Every iced `Code` is one encoding of one mnemonic with fixed operand kinds (e.g. `Add_rm64_imm8`:
// ADD, r/m64, sign-extended imm8). We index all legacy-encoded codes by mnemonic once; the
// encoder then tries each form whose operand kinds accept the parsed operands and keeps the
// shortest encoding — the same choice NASM makes for `add rax, 1` (83 /0 ib, not 81 /0 id).
import { Code, CodeExt, DecoderOptions, EncodingKind, MemorySize, MemorySizeExt, Mnemonic } from 'iced-x86';
import type { OpCodeOperandKind } from 'iced-x86';

export interface Form {
  readonly code: Code;
  /** iced's name for the code, e.g. "Add_rm64_imm8" (used in messages). */
  readonly name: string;
  readonly ops: readonly OpCodeOperandKind[];
  /** Size in bytes of the memory operand, or 0 when it has none or no fixed size (LEA, INVLPG). */
  readonly memSize: number;
  /** The memory operand is a far pointer (m16:16, m16:32, m16:64). */
  readonly farPointer: boolean;
  readonly modes: Readonly<Record<16 | 32 | 64, boolean>>;
  /** In 64-bit mode the operand size defaults to 64 (PUSH, POP, near JMP/CALL through memory). */
  readonly defaultOpSize64: boolean;
  /** Operand size in bits (16, 32, 64), 0 when the form has no operand-size attribute. */
  readonly operandSize: number;
}

let index: Map<string, Form[]> | undefined;

/** 8086-only POP CS (0FH is the two-byte escape on every later CPU). */
const EXCLUDED = new Set<Code>([Code.Popw_CS]);

/** All forms of a mnemonic (lower-case, after `canonicalMnemonic`), in iced's order. */
export function formsOf(mnemonic: string): readonly Form[] {
  index ??= buildIndex();
  return index.get(mnemonic) ?? [];
}

function buildIndex(): Map<string, Form[]> {
  const map = new Map<string, Form[]>();
  for (const [name, value] of Object.entries(Code)) {
    if (typeof value !== 'number') continue;
    const info = CodeExt.opCode(value as Code);
    // Legacy-encoded instructions that a standard decoder decodes (no Cyrix/old-CPU decoder options).
    if (info.isInstruction && info.encoding === EncodingKind.Legacy && info.decoderOption === DecoderOptions.None && !EXCLUDED.has(value as Code)) {
      const ops: OpCodeOperandKind[] = [];
      for (let i = 0; i < info.opCount; i++) ops.push(info.opKind(i));
      const form: Form = {
        code: value as Code,
        name,
        ops,
        memSize: MemorySizeExt.size(info.memorySize),
        farPointer: [MemorySize.SegPtr16, MemorySize.SegPtr32, MemorySize.SegPtr64].includes(info.memorySize),
        // The emulated CPU is an Intel one: only forms Intel's decoders accept in each mode.
        modes: { 16: info.mode16 && info.intelDecoder16, 32: info.mode32 && info.intelDecoder32, 64: info.mode64 && info.intelDecoder64 },
        defaultOpSize64: info.defaultOpSize64,
        operandSize: info.operandSize,
      };
      const mnemonic = (Mnemonic[info.mnemonic] ?? '').toLowerCase();
      const list = map.get(mnemonic) ?? [];
      list.push(form);
      map.set(mnemonic, list);
    }
    info.free();
  }
  return map;
}

// Condition-code synonyms (SDM Vol. 2, "Jcc—Jump if Condition Is Met": JZ = JE, JC = JB, ...).
// iced names each condition once; NASM accepts every synonym for Jcc, SETcc and CMOVcc.
const CONDITION_SYNONYMS: readonly (readonly [string, string])[] = [
  ['z', 'e'], ['nz', 'ne'], ['c', 'b'], ['nae', 'b'], ['nc', 'ae'], ['nb', 'ae'], ['nbe', 'a'],
  ['na', 'be'], ['nge', 'l'], ['nl', 'ge'], ['nle', 'g'], ['ng', 'le'], ['pe', 'p'], ['po', 'np'],
];

const ALIASES = new Map<string, string>([
  ['sal', 'shl'], // same operation; iced's SAL codes are the undocumented /6 encoding
  ['retn', 'ret'],
  ['icebp', 'int1'],
  ['int01', 'int1'],
  ['xlat', 'xlatb'],
  ...['j', 'set', 'cmov'].flatMap((p) => CONDITION_SYNONYMS.map(([a, b]): [string, string] => [p + a, p + b])),
]);

// Mnemonics whose meaning follows the code size, as in NASM: `pushf` in 64-bit code is PUSHFQ.
const BY_BITS = new Map<string, Readonly<Record<16 | 32 | 64, string>>>([
  ['pushf', { 16: 'pushf', 32: 'pushfd', 64: 'pushfq' }],
  ['popf', { 16: 'popf', 32: 'popfd', 64: 'popfq' }],
  ['iret', { 16: 'iret', 32: 'iretd', 64: 'iretd' }],
  ['pusha', { 16: 'pusha', 32: 'pushad', 64: 'pusha' }],
  ['popa', { 16: 'popa', 32: 'popad', 64: 'popa' }],
]);

export function canonicalMnemonic(mnemonic: string, bits: 16 | 32 | 64): string {
  const m = ALIASES.get(mnemonic) ?? mnemonic;
  return BY_BITS.get(m)?.[bits] ?? m;
}

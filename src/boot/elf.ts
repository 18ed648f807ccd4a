// ELF executables as a boot loader sees them: the file header and the loadable program headers (PT_LOAD), for
// ELF32 and ELF64, little-endian x86. Section headers and symbols are not read: a loader needs only segments.
// See the System V ABI, "ELF Header" and "Program Header" (gABI chapters 4 and 5).

/** What parseElf returns: the image, or why it is not one a PC loader can load. */
export type ElfParse = { ok: true; elf: ElfImage } | { ok: false; error: string };

export interface ElfImage {
  /** ELFCLASS32 → 32, ELFCLASS64 → 64. */
  readonly bits: 32 | 64;
  /** EM_386 or EM_X86_64. */
  readonly machine: number;
  /** e_entry, as linked (a virtual address; see entryPhysical). */
  readonly entry: number;
  /** PT_LOAD segments, in file order. */
  readonly segments: readonly ElfSegment[];
}

export interface ElfSegment {
  /** File offset of the segment's bytes. */
  readonly offset: number;
  readonly vaddr: number;
  /** Where a loader with paging off puts it: p_paddr (GRUB and QEMU load there). */
  readonly paddr: number;
  /** Bytes taken from the file; the rest up to memsz is zeroed (.bss). */
  readonly filesz: number;
  readonly memsz: number;
}

export const ELF_MAGIC = [0x7f, 0x45, 0x4c, 0x46] as const; // "\x7fELF"
const EI_CLASS = 4;
const EI_DATA = 5;
const ELFCLASS32 = 1;
const ELFCLASS64 = 2;
const ELFDATA2LSB = 1;
const ET_EXEC = 2;
export const EM_386 = 3;
export const EM_X86_64 = 62;
const PT_LOAD = 1;

/** The header layout of each class: offsets of the fields a loader reads (gABI, "ELF Header", "Program Header"). */
const LAYOUT = {
  32: { entry: 24, phoff: 28, phentsize: 42, phnum: 44, headerSize: 52, ph: { type: 0, offset: 4, vaddr: 8, paddr: 12, filesz: 16, memsz: 20 }, phSize: 32 },
  64: { entry: 24, phoff: 32, phentsize: 54, phnum: 56, headerSize: 64, ph: { type: 0, offset: 8, vaddr: 16, paddr: 24, filesz: 32, memsz: 40 }, phSize: 56 },
} as const;

export function isElf(bytes: Uint8Array): boolean {
  return bytes.length >= 4 && ELF_MAGIC.every((b, i) => bytes[i] === b);
}

export function parseElf(bytes: Uint8Array): ElfParse {
  if (!isElf(bytes)) return { ok: false, error: 'not an ELF file (no \\x7fELF magic)' };
  const cls = bytes[EI_CLASS];
  if (cls !== ELFCLASS32 && cls !== ELFCLASS64) return { ok: false, error: `ELF class ${cls} is neither ELFCLASS32 nor ELFCLASS64` };
  if (bytes[EI_DATA] !== ELFDATA2LSB) return { ok: false, error: 'ELF file is big-endian; x86 images are little-endian (ELFDATA2LSB)' };
  const bits = cls === ELFCLASS32 ? 32 : 64;
  const L = LAYOUT[bits];
  if (bytes.length < L.headerSize) return { ok: false, error: `ELF file is truncated: ${bytes.length} bytes, the ELF${bits} header alone is ${L.headerSize}` };
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const word = (off: number): number => (bits === 32 ? view.getUint32(off, true) : Number(view.getBigUint64(off, true)));
  const type = view.getUint16(16, true);
  if (type !== ET_EXEC) return { ok: false, error: `ELF type ${type} is not ET_EXEC (2): link the kernel as a static executable` };
  const machine = view.getUint16(18, true);
  if (machine !== EM_386 && machine !== EM_X86_64) return { ok: false, error: `ELF machine ${machine} is not x86 (EM_386 = 3, EM_X86_64 = 62)` };
  const phoff = word(L.phoff);
  const phentsize = view.getUint16(L.phentsize, true);
  const phnum = view.getUint16(L.phnum, true);
  if (phnum === 0) return { ok: false, error: 'ELF file has no program headers' };
  if (phentsize < L.phSize) return { ok: false, error: `ELF program header size ${phentsize} is smaller than ELF${bits}'s ${L.phSize}` };
  if (phoff + phnum * phentsize > bytes.length) return { ok: false, error: 'ELF program header table runs past the end of the file' };
  const segments: ElfSegment[] = [];
  for (let i = 0; i < phnum; i++) {
    const ph = phoff + i * phentsize;
    if (view.getUint32(ph + L.ph.type, true) !== PT_LOAD) continue;
    const seg = { offset: word(ph + L.ph.offset), vaddr: word(ph + L.ph.vaddr), paddr: word(ph + L.ph.paddr), filesz: word(ph + L.ph.filesz), memsz: word(ph + L.ph.memsz) };
    if (seg.filesz > seg.memsz) return { ok: false, error: `ELF segment ${i}: p_filesz ${hex(seg.filesz)} is larger than p_memsz ${hex(seg.memsz)}` };
    if (seg.offset + seg.filesz > bytes.length) return { ok: false, error: `ELF segment ${i}: its bytes (offset ${hex(seg.offset)}, size ${hex(seg.filesz)}) run past the end of the file` };
    segments.push(seg);
  }
  if (segments.length === 0) return { ok: false, error: 'ELF file has no loadable (PT_LOAD) segment' };
  return { ok: true, elf: { bits, machine, entry: word(L.entry), segments } };
}

/**
 * The entry point as a physical address. Kernels linked to run high (vaddr ≠ paddr) still enter with paging off,
 * so an entry that falls inside a segment's virtual range is moved by that segment's vaddr → paddr offset, as GRUB
 * does; any other entry is taken as physical already.
 */
export function entryPhysical(elf: ElfImage): number {
  for (const s of elf.segments) {
    if (elf.entry >= s.vaddr && elf.entry < s.vaddr + s.memsz) return elf.entry - s.vaddr + s.paddr;
  }
  return elf.entry;
}

function hex(n: number): string {
  return `${n.toString(16).toUpperCase()}H`;
}

// A Multiboot 1 boot loader, as QEMU's `-kernel` (and GRUB's `multiboot`) load a kernel: find the multiboot header
// in the image's first 8 KiB, load the ELF program headers (or the header's a.out-kludge addresses), build the
// multiboot information structure (memory sizes, command line, memory map, boot loader name) after the image, and
// leave the bootstrap processor in the machine state the specification promises: 32-bit protected mode with paging
// off, flat CS/DS, EAX = 2BADB002H, EBX = the information structure's physical address.
// See the Multiboot Specification version 0.6.96, "Header layout", "Machine state", "Boot information format".
//
//   const r = bootMultiboot(machine, elfBytes, { cmdline: 'kernel console=ttyS0' });
//   if (!r.ok) console.error(r.error); else machine.run({ maxInstructions: 1e8 });

import type { Machine } from '../machine/machine.ts';
import type { PhysicalMemory } from '../machine/memory.ts';
import type { LogicalProcessor } from '../machine/lp.ts';
import { AR, encodeDescriptor } from '../x86/segments.ts';
import { CR0 } from '../x86/control-registers.ts';
import { RFLAGS } from '../x86/flags.ts';
import { entryPhysical, isElf, parseElf } from './elf.ts';
import { PC_LAYOUT, pcMemoryMap } from './pc-memory-map.ts';

/** "The magic number identifying the header". */
export const MULTIBOOT_HEADER_MAGIC = 0x1badb002;
/** "EAX must contain the magic value 0x2BADB002". */
export const MULTIBOOT_BOOTLOADER_MAGIC = 0x2badb002;
/** "The Multiboot header must be contained completely within the first 8192 bytes of the OS image". */
export const MULTIBOOT_SEARCH = 8192;

/** Header `flags` bits. Bits 0–15 are requirements: a loader that does not know one must refuse the image. */
export const MULTIBOOT_HEADER_FLAGS = {
  PAGE_ALIGN: 1 << 0, // modules page-aligned (no modules are loaded here, so always met)
  MEMORY_INFO: 1 << 1, // mem_* and mmap_* must be provided (they always are)
  VIDEO_MODE: 1 << 2, // a preferred video mode: there is no display; ignored, as QEMU does
  AOUT_KLUDGE: 1 << 16, // the header's address fields are valid and take precedence over ELF
} as const;
const KNOWN_REQUIRED = MULTIBOOT_HEADER_FLAGS.PAGE_ALIGN | MULTIBOOT_HEADER_FLAGS.MEMORY_INFO | MULTIBOOT_HEADER_FLAGS.VIDEO_MODE;
const REQUIRED_MASK = 0xffff;

/** Offsets of the header fields ("Header layout"). */
const HEADER = { magic: 0, flags: 4, checksum: 8, headerAddr: 12, loadAddr: 16, loadEndAddr: 20, bssEndAddr: 24, entryAddr: 28 } as const;

/** The information structure's `flags` bits ("Boot information format"): which fields are valid. */
export const MULTIBOOT_INFO_FLAGS = {
  MEMORY: 1 << 0,
  BOOTDEV: 1 << 1,
  CMDLINE: 1 << 2,
  MODS: 1 << 3,
  MEM_MAP: 1 << 6,
  BOOT_LOADER_NAME: 1 << 9,
} as const;

/** Offsets of the information structure's fields ("Boot information format"). */
export const MULTIBOOT_INFO = {
  flags: 0, memLower: 4, memUpper: 8, bootDevice: 12, cmdline: 16, modsCount: 20, modsAddr: 24,
  mmapLength: 44, mmapAddr: 48, bootLoaderName: 64,
  size: 116, // up to and including the framebuffer fields
} as const;
/** One module entry: mod_start, mod_end (exclusive), string, reserved ("Boot information format", mods_addr). */
const MODULE_ENTRY = { start: 0, end: 4, string: 8, bytes: 16 } as const;
/** One memory-map entry: size (of the rest, 20), base_addr (8 bytes), length (8 bytes), type. */
const MMAP_ENTRY = { size: 0, baseAddr: 4, length: 12, type: 20, bytes: 24 } as const;
/** "No boot device": BIOS drive FFH (QEMU reports 8000FFFFH: drive 80H, no partition). */
const BOOT_DEVICE_NONE = 0x8000ffff;

/** Where the loader's own GDT goes: in the BIOS ROM area, reserved in the memory map, so a kernel never overwrites it. */
export const BOOT_GDT = PC_LAYOUT.biosRom;
/** Selectors of that GDT. The specification leaves them undefined; QEMU's multiboot ROM uses these too. */
export const BOOT_SELECTORS = { CODE32: 0x08, DATA32: 0x10 } as const;

export interface MultibootOptions {
  /** The command line the kernel receives, whole (QEMU passes "<kernel file> <-append text>"). */
  cmdline?: string;
  /** Boot modules (QEMU's -initrd "file args,file2"): loaded page-aligned after the kernel, each with its string. */
  modules?: readonly MultibootModule[];
  /** boot_loader_name (default "vmxlab"). */
  bootLoaderName?: string;
}

export interface MultibootModule {
  readonly bytes: Uint8Array;
  /** The module's string (QEMU: the -initrd entry as written, file name first). */
  readonly cmdline: string;
}

export type MultibootLoad = { ok: true; boot: MultibootBoot } | { ok: false; error: string };

export interface MultibootBoot {
  /** Physical address of the first instruction (EIP). */
  readonly entry: number;
  /** Physical address of the multiboot information structure (EBX). */
  readonly infoAddress: number;
  /** [start, end) of the loaded image, .bss included. */
  readonly loaded: { readonly start: number; readonly end: number };
  /** [start, end) of each module, in order. */
  readonly modules: readonly { readonly start: number; readonly end: number }[];
  /** The image's format: an ELF class, or the header's a.out-kludge addresses. */
  readonly format: 'elf32' | 'elf64' | 'aout-kludge';
}

export interface MultibootHeader {
  /** File offset of the header. */
  readonly offset: number;
  readonly flags: number;
  /** The a.out-kludge address fields (valid only with AOUT_KLUDGE). */
  readonly headerAddr: number;
  readonly loadAddr: number;
  readonly loadEndAddr: number;
  readonly bssEndAddr: number;
  readonly entryAddr: number;
}

/** Load `image` into `machine` and put its bootstrap processor at the kernel's entry, as the spec's machine state. */
export function bootMultiboot(machine: Machine, image: Uint8Array, opts: MultibootOptions = {}): MultibootLoad {
  const header = findMultibootHeader(image);
  if (!header.ok) return header;
  const loaded = loadImage(machine.memory, image, header.header);
  if (!loaded.ok) return loaded;
  const { entry, start, end, format } = loaded;
  // Modules follow the image, each on a page boundary (what header flag 0 asks for, and harmless otherwise).
  const modules: { start: number; end: number; cmdline: string }[] = [];
  let next = alignUp(end, 4096);
  for (const [i, m] of (opts.modules ?? []).entries()) {
    if (next + m.bytes.length > machine.memory.ramBytes) {
      return { ok: false, error: `module ${i} (${m.bytes.length} bytes) does not fit in RAM after ${hex(next)}: RAM ends at ${hex(machine.memory.ramBytes)} (try a larger --mem)` };
    }
    machine.memory.writeBytes(next, m.bytes);
    modules.push({ start: next, end: next + m.bytes.length, cmdline: m.cmdline });
    next = alignUp(next + m.bytes.length, 4096);
  }
  const infoAddress = next;
  const infoEnd = writeMultibootInfo(machine.memory, infoAddress, {
    ramBytes: machine.memory.ramBytes,
    cmdline: opts.cmdline ?? '',
    bootLoaderName: opts.bootLoaderName ?? 'vmxlab',
    modules,
  });
  if (infoEnd > machine.memory.ramBytes) {
    return { ok: false, error: `no room after the image for the multiboot information (${hex(infoAddress)}–${hex(infoEnd)}): RAM ends at ${hex(machine.memory.ramBytes)}` };
  }
  writeBootGdt(machine.memory);
  enterMultibootState(machine.cpus[0]!, entry, infoAddress);
  return { ok: true, boot: { entry, infoAddress, loaded: { start, end }, modules: modules.map(({ start: s, end: e }) => ({ start: s, end: e })), format } };
}

/** The first valid multiboot header in the first 8 KiB, 4-byte aligned, whose magic + flags + checksum is 0. */
export function findMultibootHeader(image: Uint8Array): { ok: true; header: MultibootHeader } | { ok: false; error: string } {
  const view = new DataView(image.buffer, image.byteOffset, image.byteLength);
  const limit = Math.min(image.length, MULTIBOOT_SEARCH) - 12;
  let badChecksumAt = -1;
  for (let off = 0; off <= limit; off += 4) {
    if (view.getUint32(off + HEADER.magic, true) !== MULTIBOOT_HEADER_MAGIC) continue;
    const flags = view.getUint32(off + HEADER.flags, true);
    if (((MULTIBOOT_HEADER_MAGIC + flags + view.getUint32(off + HEADER.checksum, true)) >>> 0) !== 0) {
      if (badChecksumAt < 0) badChecksumAt = off;
      continue;
    }
    const unknown = flags & REQUIRED_MASK & ~KNOWN_REQUIRED;
    if (unknown !== 0) return { ok: false, error: `multiboot header at offset ${hex(off)} requires flags ${hex(unknown)} this loader does not know` };
    const field = (f: number): number => (off + f + 4 <= image.length ? view.getUint32(off + f, true) : 0);
    if (flags & MULTIBOOT_HEADER_FLAGS.AOUT_KLUDGE && off + HEADER.entryAddr + 4 > image.length) {
      return { ok: false, error: `multiboot header at offset ${hex(off)} sets flag 16 (address fields) but the file ends inside them` };
    }
    return {
      ok: true,
      header: {
        offset: off, flags, headerAddr: field(HEADER.headerAddr), loadAddr: field(HEADER.loadAddr), loadEndAddr: field(HEADER.loadEndAddr),
        bssEndAddr: field(HEADER.bssEndAddr), entryAddr: field(HEADER.entryAddr),
      },
    };
  }
  if (badChecksumAt >= 0) return { ok: false, error: `the multiboot header magic at offset ${hex(badChecksumAt)} has a bad checksum (magic + flags + checksum must be 0 mod 2^32)` };
  return { ok: false, error: `no multiboot header (magic 1BADB002H, 4-byte aligned) in the first ${MULTIBOOT_SEARCH} bytes: not a Multiboot 1 kernel` };
}

type Loaded = { ok: true; entry: number; start: number; end: number; format: MultibootBoot['format'] } | { ok: false; error: string };

/**
 * Copy the image into RAM. With the a.out kludge (header flag 16) the header's addresses say where, even in an ELF
 * file (GRUB and QEMU both give them precedence); otherwise the ELF program headers do, at their physical addresses.
 */
function loadImage(memory: PhysicalMemory, image: Uint8Array, h: MultibootHeader): Loaded {
  if (h.flags & MULTIBOOT_HEADER_FLAGS.AOUT_KLUDGE) {
    // header_addr is where the header itself lands: that fixes the file offset of load_addr.
    const fileStart = h.offset - (h.headerAddr - h.loadAddr);
    if (h.loadAddr > h.headerAddr || fileStart < 0) return { ok: false, error: `multiboot address fields: load_addr ${hex(h.loadAddr)} is above header_addr ${hex(h.headerAddr)} or before the file's start` };
    const fileBytes = h.loadEndAddr === 0 ? image.length - fileStart : h.loadEndAddr - h.loadAddr;
    if (fileBytes < 0 || fileStart + fileBytes > image.length) return { ok: false, error: `multiboot address fields: load_end_addr ${hex(h.loadEndAddr)} is before load_addr or past the end of the file` };
    const end = Math.max(h.loadAddr + fileBytes, h.bssEndAddr);
    const bad = checkRange(memory, h.loadAddr, end, 'the image');
    if (bad !== null) return { ok: false, error: bad };
    memory.writeBytes(h.loadAddr, image.subarray(fileStart, fileStart + fileBytes));
    if (end > h.loadAddr + fileBytes) memory.writeBytes(h.loadAddr + fileBytes, new Uint8Array(end - h.loadAddr - fileBytes));
    return { ok: true, entry: h.entryAddr, start: h.loadAddr, end, format: 'aout-kludge' };
  }
  if (!isElf(image)) return { ok: false, error: 'not an ELF file, and the multiboot header has no address fields (flag 16) to load it by' };
  const parsed = parseElf(image);
  if (!parsed.ok) return parsed;
  const elf = parsed.elf;
  let start = Infinity;
  let end = 0;
  for (const [i, s] of elf.segments.entries()) {
    const bad = checkRange(memory, s.paddr, s.paddr + s.memsz, `ELF segment ${i}`);
    if (bad !== null) return { ok: false, error: bad };
    memory.writeBytes(s.paddr, image.subarray(s.offset, s.offset + s.filesz));
    if (s.memsz > s.filesz) memory.writeBytes(s.paddr + s.filesz, new Uint8Array(s.memsz - s.filesz));
    start = Math.min(start, s.paddr);
    end = Math.max(end, s.paddr + s.memsz);
  }
  const entry = entryPhysical(elf);
  if (entry >= PC_LAYOUT.top32) return { ok: false, error: `ELF entry point ${hex(entry)} is above 4 GiB: a multiboot kernel starts in 32-bit mode` };
  return { ok: true, entry, start, end, format: elf.bits === 32 ? 'elf32' : 'elf64' };
}

/** Images go in RAM, and not over the VGA/ROM window of the first megabyte (reserved in the memory map). */
function checkRange(memory: PhysicalMemory, start: number, end: number, what: string): string | null {
  if (end > memory.ramBytes) return `${what} (${hex(start)}–${hex(end)}) does not fit in RAM, which ends at ${hex(memory.ramBytes)} (try a larger --mem)`;
  if (start < PC_LAYOUT.extendedBase && end > PC_LAYOUT.conventionalEnd) {
    return `${what} (${hex(start)}–${hex(end)}) overlaps the VGA and BIOS ROM window A0000H–FFFFFH`;
  }
  return null;
}

/**
 * Write the multiboot information structure at `at`, followed by the memory map, the module list, the command line,
 * the modules' strings and the boot loader name. Returns the first byte after them. mem_lower and mem_upper are in
 * KiB: conventional memory below 640 KiB, and the memory from 1 MiB up to the first hole ("Boot information format").
 */
export function writeMultibootInfo(memory: PhysicalMemory, at: number, info: {
  ramBytes: number; cmdline: string; bootLoaderName: string; modules?: readonly { start: number; end: number; cmdline: string }[];
}): number {
  const mods = info.modules ?? [];
  const F = MULTIBOOT_INFO_FLAGS;
  const I = MULTIBOOT_INFO;
  memory.writeBytes(at, new Uint8Array(I.size));
  const map = pcMemoryMap(info.ramBytes);
  const mmapAddr = at + I.size;
  map.forEach((r, i) => {
    const e = mmapAddr + i * MMAP_ENTRY.bytes;
    memory.write32(e + MMAP_ENTRY.size, MMAP_ENTRY.bytes - 4); // the size field does not count itself
    memory.write64(e + MMAP_ENTRY.baseAddr, BigInt(r.base));
    memory.write64(e + MMAP_ENTRY.length, BigInt(r.length));
    memory.write32(e + MMAP_ENTRY.type, r.type);
  });
  const modsAddr = mmapAddr + map.length * MMAP_ENTRY.bytes;
  const cmdlineAddr = modsAddr + mods.length * MODULE_ENTRY.bytes;
  let strings = writeCString(memory, cmdlineAddr, info.cmdline);
  mods.forEach((m, i) => {
    const e = modsAddr + i * MODULE_ENTRY.bytes;
    memory.write32(e + MODULE_ENTRY.start, m.start);
    memory.write32(e + MODULE_ENTRY.end, m.end);
    memory.write32(e + MODULE_ENTRY.string, strings);
    memory.write32(e + MODULE_ENTRY.string + 4, 0);
    strings = writeCString(memory, strings, m.cmdline);
  });
  const loaderNameAddr = strings;
  const afterName = writeCString(memory, loaderNameAddr, info.bootLoaderName);
  memory.write32(at + I.flags, F.MEMORY | F.BOOTDEV | F.CMDLINE | F.MODS | F.MEM_MAP | F.BOOT_LOADER_NAME);
  memory.write32(at + I.memLower, PC_LAYOUT.ebda / 1024);
  memory.write32(at + I.memUpper, (info.ramBytes - PC_LAYOUT.extendedBase) / 1024);
  memory.write32(at + I.bootDevice, BOOT_DEVICE_NONE);
  memory.write32(at + I.cmdline, cmdlineAddr);
  memory.write32(at + I.modsCount, mods.length);
  memory.write32(at + I.modsAddr, mods.length === 0 ? 0 : modsAddr);
  memory.write32(at + I.mmapLength, map.length * MMAP_ENTRY.bytes);
  memory.write32(at + I.mmapAddr, mmapAddr);
  memory.write32(at + I.bootLoaderName, loaderNameAddr);
  return afterName;
}

/** A GDT with a flat 32-bit code and a flat data segment (the spec lets GDTR be invalid; a real one is kinder). */
function writeBootGdt(memory: PhysicalMemory): void {
  const entries: [number, number][] = [[0, 0], encodeDescriptor(0, 0xffffffff, CODE32_AR), encodeDescriptor(0, 0xffffffff, DATA32_AR)];
  entries.forEach(([lo, hi], i) => {
    memory.write32(BOOT_GDT + i * 8, lo);
    memory.write32(BOOT_GDT + i * 8 + 4, hi);
  });
}
const CODE32_AR = AR.P | AR.S | AR.CODE | AR.RW | AR.ACCESSED | AR.DB | AR.G;
const DATA32_AR = AR.P | AR.S | AR.RW | AR.ACCESSED | AR.DB | AR.G;
const BOOT_GDT_LIMIT = 3 * 8 - 1;

/**
 * The machine state at the kernel's entry ("Machine state"): CR0.PE = 1 and PG = 0; CS a 32-bit read/execute
 * segment with base 0 and limit FFFFFFFFH; DS, ES, FS, GS, SS 32-bit read/write with the same base and limit;
 * EFLAGS.VM = 0 and IF = 0; EAX = 2BADB002H; EBX = the information structure. ESP is undefined (the kernel sets
 * its own stack): 0 here. The IDT limit is 0, so an exception before the kernel loads its own IDT triple-faults
 * at once instead of running whatever the first bytes of RAM hold.
 */
export function enterMultibootState(lp: LogicalProcessor, entry: number, infoAddress: number): void {
  lp.activity = 'active';
  lp.lgdt(BigInt(BOOT_GDT), BOOT_GDT_LIMIT);
  lp.lidt(0n, 0);
  lp.cr0 = (CR0.PE | CR0.ET) >>> 0;
  lp.setSegment('cs', { selector: BOOT_SELECTORS.CODE32, base: 0n, limit: 0xffffffff, ar: CODE32_AR });
  for (const s of ['ds', 'es', 'fs', 'gs', 'ss'] as const) {
    lp.setSegment(s, { selector: BOOT_SELECTORS.DATA32, base: 0n, limit: 0xffffffff, ar: DATA32_AR });
  }
  lp.setRflags(RFLAGS.FIXED1);
  lp.setReg('rax', BigInt(MULTIBOOT_BOOTLOADER_MAGIC));
  lp.setReg('rbx', BigInt(infoAddress));
  lp.setReg('rsp', 0n);
  lp.rip = entry;
  lp.tlb.flushAll();
  lp.updateMode();
}

function writeCString(memory: PhysicalMemory, at: number, s: string): number {
  const bytes = new TextEncoder().encode(s);
  memory.writeBytes(at, bytes);
  memory.write8(at + bytes.length, 0);
  return at + bytes.length + 1;
}

function alignUp(n: number, a: number): number {
  return Math.ceil(n / a) * a;
}

function hex(n: number): string {
  return `${n.toString(16).toUpperCase()}H`;
}

// A guest with several vCPUs that starts in real mode, for tests and chapter 8 (never imported by learner code):
// 1 MiB of guest-physical memory in one contiguous host block behind a 4-KByte-page EPT, the VMCS of a real-mode
// vCPU under "unrestricted guest", the state a SIPI gives an AP, and the guest programs of an MP start-up — the
// BSP sends INIT, SIPI, SIPI to each AP through the x2APIC ICR, the APs check in, the BSP waits for them.
// See SDM Vol. 3A, "MP Initialization Protocol Algorithm for MP Systems", and SDM Vol. 3C, "Unrestricted Guests".
import { assembleOrThrow } from '../../guest/assembler.ts';
import { APIC_REG, x2apicMsr } from '../../machine/apic.ts';
import type { CpuModel } from '../../machine/cpu-model.ts';
import { capabilitiesOf } from '../../vmx/emulated-msrs.ts';
import { VMX_CONTROL } from '../../vmx/controls.ts';
import { CR0 } from '../../x86/control-registers.ts';
import { RFLAGS } from '../../x86/flags.ts';
import { AR, SYSTEM_TYPE } from '../../x86/segments.ts';
import type { HostCpu } from '../host-cpu.ts';
import type { Kernel, Page } from '../kernel.ts';
import { enterVmx, explain, write, writeReferenceControls, writeReferenceHostState, type Host } from './reference-vm.ts';

/** The guest's memory: 2^8 pages = 1 MiB, guest-physical [0, 100000H). */
export const GUEST_MEMORY_ORDER = 8;
export const GUEST_MEMORY_BYTES = 4096 << GUEST_MEMORY_ORDER;

/** GUEST_ACTIVITY_STATE values. See SDM Vol. 3C, "Guest Non-Register State". */
export const ACTIVITY = { ACTIVE: 0, HLT: 1, SHUTDOWN: 2, WAIT_FOR_SIPI: 3 } as const;

/** System-segment type 3: busy 16-bit TSS (what TR holds after reset). See SDM Vol. 3A, "System Descriptor Types". */
const TSS16_BUSY = 0x3;

/** Where the MP start-up programs live in guest-physical memory. */
export const SMP_GUEST_LAYOUT = {
  /** The BSP starts at 0000:7C00 (where a BIOS starts a boot sector); its stack grows down from there. */
  bspEntry: 0x7c00,
  /** APs start at 8000H: start-up vector 08H (vector × 4 KiB). */
  sipiVector: 0x08,
  /** Word: APs that checked in (each adds 1 with a locked XADD). */
  counter: 0x500,
  /** Byte: set to 1 by the BSP after its last SIPI; APs wait for it, so that SIPI finds them running. */
  go: 0x502,
} as const;

/** x2APIC ICR (MSR 830H). See SDM Vol. 3A, "Interrupt Command Register (ICR) in x2APIC Mode". */
export const MSR_X2APIC_ICR = x2apicMsr(APIC_REG.APIC_ICR);
/** ICR delivery modes (bits 10:8) and the level bit. See SDM Vol. 3A, "Interrupt Command Register (ICR)". */
export const ICR = { DM_INIT: 5, DM_STARTUP: 6, DM_SHIFT: 8, LEVEL_ASSERT: 1 << 14 } as const;

export interface GuestMemory {
  readonly page: Page;
  /** Kernel-virtual and host-physical address of guest-physical 0. */
  readonly va: bigint;
  readonly pa: bigint;
  /** The EPTP that maps guest-physical [0, GUEST_MEMORY_BYTES) onto the block. */
  readonly eptp: bigint;
}

/** alloc_pages(GUEST_MEMORY_ORDER), zeroed, and the EPT that maps it at guest-physical 0. */
export function allocGuestMemory(k: Kernel): GuestMemory {
  const page = k.alloc_pages(GUEST_MEMORY_ORDER);
  if (page === null) throw new Error('smp guest: out of memory for the guest');
  const va = k.page_address(page);
  const pa = k.page_to_phys(page);
  k.memory.writeBytes(Number(pa), new Uint8Array(GUEST_MEMORY_BYTES)); // zeroed (physical writes: k.memset goes byte by byte)
  return { page, va, pa, eptp: buildEpt4k(k, pa, GUEST_MEMORY_BYTES) };
}

/**
 * EPT paging structures mapping guest-physical [0, bytes) to host-physical [hostPa, hostPa + bytes) with 4-KByte
 * pages (read/write/execute, memory type WB): a PML4, a PDPT, a page directory and the page tables under it, in one
 * zeroed block. `bytes` is a multiple of 4 KiB, at most 1 GiB. Returns the EPTP (WB, page-walk length 4).
 * See SDM Vol. 3C, "EPT Translation Mechanism" and "Extended-Page-Table Pointer (EPTP)".
 */
export function buildEpt4k(k: Kernel, hostPa: bigint, bytes: number): bigint {
  const pages = bytes / 4096;
  if (!Number.isInteger(pages) || pages < 1 || pages > 512 * 512) throw new Error(`smp guest: cannot map ${bytes} bytes with one page directory`);
  const tables = Math.ceil(pages / 512);
  const order = Math.ceil(Math.log2(3 + tables));
  const block = k.alloc_pages(order);
  if (block === null) throw new Error('smp guest: out of memory for the EPT');
  const va = k.page_address(block);
  const pa = k.page_to_phys(block);
  k.memory.writeBytes(Number(pa), new Uint8Array(4096 << order));
  const RWX = 7n, WB = 6n, MEMTYPE_SHIFT = 3n;
  k.write64(va, (pa + 0x1000n) | RWX); // PML4E 0 → the PDPT
  k.write64(va + 0x1000n, (pa + 0x2000n) | RWX); // PDPTE 0 → the page directory
  for (let t = 0; t < tables; t++) {
    const pt = 0x3000 + t * 0x1000;
    k.write64(va + 0x2000n + BigInt(8 * t), (pa + BigInt(pt)) | RWX); // PDE t → page table t (bit 7 clear: not a 2-MByte page)
    for (let i = 0; i < 512 && t * 512 + i < pages; i++) {
      const gpa = BigInt((t * 512 + i) * 4096);
      k.write64(va + BigInt(pt + 8 * i), (hostPa + gpa) | RWX | (WB << MEMTYPE_SHIFT));
    }
  }
  const WALK_LENGTH_4 = 3n << 3n; // EPTP bits 5:3: page-walk length minus 1
  return pa | WB | WALK_LENGTH_4;
}

/**
 * The controls of a real-mode vCPU: the processor's must-be-1 bits, HLT exiting, EPT and "unrestricted guest"
 * (which lets CR0.PE and CR0.PG be 0), no "IA-32e mode guest", and no MSR bitmaps — so every RDMSR/WRMSR exits.
 * False (nothing written) if the model lacks EPT or unrestricted guest. See SDM Vol. 3C, "Secondary
 * Processor-Based VM-Execution Controls" and "VM Exits Caused by Instructions" (RDMSR, WRMSR).
 */
export function writeRealModeControls(host: Host, cpu: HostCpu, eptp: bigint): boolean {
  const eff = host.vmx[cpu.id]!.caps.effective;
  const proc = (eff.proc.allowed0 | VMX_CONTROL.CPU_BASED_HLT_EXITING | VMX_CONTROL.CPU_BASED_ACTIVATE_SECONDARY_CONTROLS) >>> 0;
  const proc2 = (eff.proc2.allowed0 | VMX_CONTROL.SECONDARY_EXEC_ENABLE_EPT | VMX_CONTROL.SECONDARY_EXEC_UNRESTRICTED_GUEST) >>> 0;
  if ((eff.proc.allowed1 & proc) >>> 0 !== proc || (eff.proc2.allowed1 & proc2) >>> 0 !== proc2) return false;
  if ((proc & VMX_CONTROL.CPU_BASED_USE_MSR_BITMAPS) !== 0) return false;
  writeReferenceControls(host, cpu);
  write(host, cpu, 'CPU_BASED_VM_EXEC_CONTROL', proc);
  write(host, cpu, 'SECONDARY_VM_EXEC_CONTROL', proc2);
  // A real-mode guest is not an IA-32e mode guest: the entry controls are only the must-be-1 bits.
  write(host, cpu, 'VM_ENTRY_CONTROLS', eff.entry.allowed0 >>> 0);
  write(host, cpu, 'EPT_POINTER', eptp);
  return true;
}

/** Can `model`'s VMX run this guest: EPT, "unrestricted guest", and the HLT and wait-for-SIPI activity states? */
export function canRunMpGuest(model: CpuModel): boolean {
  const c = capabilitiesOf(model);
  const proc2 = VMX_CONTROL.SECONDARY_EXEC_ENABLE_EPT | VMX_CONTROL.SECONDARY_EXEC_UNRESTRICTED_GUEST;
  return c.misc.activityHlt && c.misc.activityWaitForSipi && (c.effective.proc2.allowed1 & proc2) === proc2;
}

/** Where a real-mode vCPU starts: CS selector and base, IP, and the activity state it enters in. */
export interface RealModeStart {
  readonly csSelector: number;
  readonly csBase: number;
  readonly ip: number;
  readonly activity: number;
}

/** A start-up IPI's state for `vector`: CS = vector << 8, CS.base = vector << 12, IP = 0, active. See SDM Vol. 3A, "MP Initialization Protocol Algorithm for MP Systems". */
export function startupState(vector: number): RealModeStart {
  const v = vector & 0xff;
  return { csSelector: v << 8, csBase: v << 12, ip: 0, activity: ACTIVITY.ACTIVE };
}

/**
 * The guest state of a real-mode vCPU as INIT leaves it (SDM Vol. 3A, "Processor State After Reset/INIT"), at
 * `start`: 64-KByte segments with base = selector × 16, CR0 with only ET and NE (NE is one of IA32_VMX_CR0_FIXED0's
 * bits that "unrestricted guest" does not relax; PE and PG are), CR4 with its fixed bits (VMXE), TR a busy 16-bit
 * TSS and LDTR present, as the entry checks want even in real mode. See SDM Vol. 3C, "Checks on Guest Segment
 * Registers" and "Checks on Guest Control Registers, Debug Registers, and MSRs".
 */
export function writeRealModeGuestState(host: Host, cpu: HostCpu, start: RealModeStart): void {
  const caps = host.vmx[cpu.id]!.caps;
  const relaxed = BigInt(CR0.PE | CR0.PG);
  write(host, cpu, 'GUEST_CR0', (BigInt(CR0.ET | CR0.NE) | (caps.cr0Fixed0 & ~relaxed)) & caps.cr0Fixed1);
  write(host, cpu, 'GUEST_CR3', 0);
  write(host, cpu, 'GUEST_CR4', caps.cr4Fixed0 & caps.cr4Fixed1);
  write(host, cpu, 'GUEST_DR7', 0x400);
  write(host, cpu, 'GUEST_IA32_DEBUGCTL', 0);
  for (const f of ['GUEST_SYSENTER_CS', 'GUEST_SYSENTER_ESP', 'GUEST_SYSENTER_EIP'] as const) write(host, cpu, f, 0);
  const DATA_AR = AR.P | AR.S | AR.RW | AR.ACCESSED; // 93H
  const CODE_AR = DATA_AR | AR.CODE; // 9BH
  const seg = (s: 'CS' | 'SS' | 'DS' | 'ES' | 'FS' | 'GS' | 'LDTR' | 'TR', selector: number, base: number, ar: number): void => {
    write(host, cpu, `GUEST_${s}_SELECTOR`, selector);
    write(host, cpu, `GUEST_${s}_BASE`, base);
    write(host, cpu, `GUEST_${s}_LIMIT`, 0xffff);
    write(host, cpu, `GUEST_${s}_AR_BYTES`, ar);
  };
  seg('CS', start.csSelector, start.csBase, CODE_AR);
  for (const s of ['SS', 'DS', 'ES', 'FS', 'GS'] as const) seg(s, 0, 0, DATA_AR);
  seg('LDTR', 0, 0, AR.P | SYSTEM_TYPE.LDT); // 82H
  seg('TR', 0, 0, AR.P | TSS16_BUSY); // 83H: outside IA-32e mode a busy 16-bit TSS is allowed too
  for (const t of ['GDTR', 'IDTR'] as const) {
    write(host, cpu, `GUEST_${t}_BASE`, 0);
    write(host, cpu, `GUEST_${t}_LIMIT`, 0xffff);
  }
  write(host, cpu, 'GUEST_RIP', start.ip);
  write(host, cpu, 'GUEST_RSP', 0);
  write(host, cpu, 'GUEST_RFLAGS', RFLAGS.FIXED1);
  write(host, cpu, 'GUEST_ACTIVITY_STATE', start.activity);
  write(host, cpu, 'GUEST_INTERRUPTIBILITY_INFO', 0);
  write(host, cpu, 'GUEST_PENDING_DBG_EXCEPTIONS', 0);
  write(host, cpu, 'VMCS_LINK_POINTER', 0xffffffffffffffffn);
}

/**
 * The whole VMCS of one real-mode vCPU on `cpu` (call it there: the host state is that CPU's), exits to `hostRip`.
 * False if the model cannot run a real-mode guest.
 */
export function writeRealModeVmcs(host: Host, cpu: HostCpu, eptp: bigint, hostRip: bigint, start: RealModeStart): boolean {
  if (!writeRealModeControls(host, cpu, eptp)) return false;
  writeReferenceHostState(host, cpu, hostRip);
  writeRealModeGuestState(host, cpu, start);
  return true;
}

/**
 * The BSP's program (at 0000:7C00): for each AP (APIC IDs 1 … apCount) INIT, SIPI, SIPI by WRMSR to the x2APIC ICR
 * with a short delay after each (the MP protocol waits 10 ms and 200 µs; here a PAUSE loop of instructions), then
 * sets `go`, waits until `counter` = apCount, writes 'B' to port E9H and HLTs.
 */
export function bspProgram(apCount: number): string {
  const L = SMP_GUEST_LAYOUT;
  const init = ICR.LEVEL_ASSERT | (ICR.DM_INIT << ICR.DM_SHIFT);
  const sipi = ICR.LEVEL_ASSERT | (ICR.DM_STARTUP << ICR.DM_SHIFT) | L.sipiVector;
  return `
    bits 16
    org ${L.bspEntry}
  start:
    xor ax, ax
    mov ds, ax
    mov ss, ax
    mov sp, ${L.bspEntry}
    mov edi, 1                 ; APIC ID of the first AP
    cmp edi, ${apCount}
    ja .started                ; no APs (a one-CPU host)
  .next_ap:
    mov eax, ${init}           ; INIT, level assert
    call send_ipi
    mov eax, ${sipi}           ; start-up, vector ${L.sipiVector}H
    call send_ipi
    mov eax, ${sipi}           ; the second SIPI, as the MP protocol sends it
    call send_ipi
    inc edi
    cmp edi, ${apCount}
    jbe .next_ap
  .started:
    mov byte [${L.go}], 1
  .wait:
    pause
    cmp word [${L.counter}], ${apCount}
    jne .wait
    mov al, 'B'
    out 0xe9, al
    hlt
  send_ipi:                    ; EAX: ICR bits 31:0; EDI: destination APIC ID
    mov ecx, ${MSR_X2APIC_ICR}
    mov edx, edi               ; ICR bits 63:32: destination
    wrmsr
    mov cx, 64                 ; then a delay
  .delay:
    pause
    loop .delay
    ret`;
}

/**
 * The APs' program (at 0800:0000): wait for `go`, take a ticket with LOCK XADD on `counter`, write the ticket
 * ('1', '2', …) to port E9H, HLT.
 */
export const AP_PROGRAM = `
    bits 16
  ap_start:
    xor ax, ax
    mov ds, ax
  .wait:
    pause
    cmp byte [${SMP_GUEST_LAYOUT.go}], 0
    je .wait
    mov ax, 1
    lock xadd word [${SMP_GUEST_LAYOUT.counter}], ax
    add al, '1'
    out 0xe9, al
  ap_halt:
    hlt`;

/** Assemble both programs into the guest's memory; returns the AP program's labels (offsets from CS.base). */
export function loadSmpPrograms(k: Kernel, mem: GuestMemory, apCount: number): { bspLabels: ReadonlyMap<string, number>; apLabels: ReadonlyMap<string, number> } {
  const bsp = assembleOrThrow(bspProgram(apCount), { bits: 16, origin: SMP_GUEST_LAYOUT.bspEntry, fileName: 'bsp.asm' });
  const ap = assembleOrThrow(AP_PROGRAM, { bits: 16, origin: 0, fileName: 'ap.asm' });
  k.writeBytes(mem.va + BigInt(SMP_GUEST_LAYOUT.bspEntry), bsp.bytes);
  k.writeBytes(mem.va + BigInt(SMP_GUEST_LAYOUT.sipiVector << 12), ap.bytes);
  return { bspLabels: bsp.labels, apLabels: ap.labels };
}

/**
 * One real-mode vCPU per CPU, exits to `hostRip`: each VMCS written and launched on its own CPU (the host state is
 * per CPU), the APs first, halted until the BSP's INIT reaches them, then the BSP at its program. Throws (with the
 * VMX diagnosis) if the model cannot run the guest or a VMLAUNCH does not enter it.
 */
export function launchMpVcpus(host: Host, mem: GuestMemory, hostRip: bigint): void {
  const k = host.kernel;
  for (let id = k.num_online_cpus() - 1; id >= 0; id--) {
    const start = id === 0
      ? { csSelector: 0, csBase: 0, ip: SMP_GUEST_LAYOUT.bspEntry, activity: ACTIVITY.ACTIVE }
      : { csSelector: 0, csBase: 0, ip: 0, activity: ACTIVITY.HLT };
    k.smp_call_function_single(id, () => {
      const cpu = k.cpu();
      enterVmx(host, cpu);
      if (!writeRealModeVmcs(host, cpu, mem.eptp, hostRip, start)) throw new Error(`smp guest: model ${host.model.name} cannot run a real-mode guest`);
      cpu.vmlaunch();
      if (!cpu.inVmxNonRoot()) throw new Error(`smp guest: VMLAUNCH on CPU ${id} did not enter the guest\n${explain(host)}`);
    });
  }
}

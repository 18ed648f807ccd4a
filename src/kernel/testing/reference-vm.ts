// A reference VM for tests (never imported by learner code or by the CPU): the kit's own way to enter VMX
// operation, a complete valid VMCS for a 64-bit guest with its own page tables, GDT and TSS, and a run loop
// that dispatches VM exits to host entry points. Chapter tests use it so they grade one chapter's exercise and
// not the learner's earlier code; src/ tests use it to run real guests in VMX non-root operation.
import type { ExitTrace } from '../../debug/exit-trace.ts';
import { assembleOrThrow } from '../../guest/assembler.ts';
import { VMX_CONTROL } from '../../vmx/controls.ts';
import { formatDiagnosis } from '../../vmx/diagnosis.ts';
import { VMCS } from '../../vmx/fields.ts';
import {
  MSR_IA32_FEATURE_CONTROL, MSR_IA32_VMX_BASIC, MSR_IA32_VMX_CR0_FIXED0, MSR_IA32_VMX_CR0_FIXED1,
  MSR_IA32_VMX_CR4_FIXED0, MSR_IA32_VMX_CR4_FIXED1,
} from '../../vmx/msrs.ts';
import { CR0, CR4 } from '../../x86/control-registers.ts';
import { RFLAGS } from '../../x86/flags.ts';
import { MSR_IA32_SYSENTER_CS, MSR_IA32_SYSENTER_EIP, MSR_IA32_SYSENTER_ESP } from '../../x86/msr.ts';
import { AR, SYSTEM_TYPE, encodeDescriptor } from '../../x86/segments.ts';
import { bootHost, type Host, type HostOptions } from '../boot-host.ts';
import type { HostCpu } from '../host-cpu.ts';
import type { Kernel } from '../kernel.ts';

export { bootHost, type Host, type HostOptions };

const CF = 1n, ZF = 1n << 6n, CF_ZF = CF | ZF;
const U64 = 0xffffffffffffffffn;

export interface RunResult {
  readonly reason: 'idle' | 'shutdown' | 'budget';
  readonly instructions: number;
  readonly hostCalls: number;
}

/**
 * Run guests and dispatch VM exits to host entry points (Kernel.run) until every CPU idles, one shuts
 * down, or the budget is spent. Deterministic: CPUs take turns in id order.
 */
export function runGuests(host: Host, maxInstructions = 200_000): RunResult {
  const r = host.kernel.run({ maxInstructions });
  const reason = r.reason === 'shutdown' ? 'shutdown' : r.reason === 'budget' ? 'budget' : 'idle';
  return { reason, instructions: r.instructions, hostCalls: r.hostCalls };
}

// ---------------------------------------------------------------------------------------------------------------
// An independent VMX setup: VMXON and a current VMCS, done with the kit's own knowledge (not the learner's).
// ---------------------------------------------------------------------------------------------------------------

export interface VmxSetup {
  readonly vmxonPa: bigint;
  readonly vmcsPa: bigint;
}

/** VMXON and VMCLEAR+VMPTRLD a fresh VMCS on `cpu` (the kit's setup); throws with the diagnosis if anything fails. */
export function enterVmx(host: Host, cpu: HostCpu = host.kernel.cpu()): VmxSetup {
  try {
    return { vmxonPa: kitVmxOn(host.kernel, cpu), vmcsPa: kitCurrentVmcs(host.kernel, cpu) };
  } catch (e) {
    throw new Error(`reference VM: could not enter VMX operation (${(e as Error).message})\n${explain(host)}`);
  }
}

/** VMWRITE by name, failing loudly (support code must never fail silently). */
export function write(host: Host, cpu: HostCpu, name: string, value: bigint | number): void {
  const enc = (VMCS as Readonly<Record<string, number>>)[name];
  if (enc === undefined) throw new Error(`reference VM: no VMCS field ${name}`);
  cpu.vmwrite(enc, BigInt(value) & U64);
  if ((cpu.rflags() & (CF | ZF)) !== 0n) throw new Error(`reference VM: VMWRITE ${name} failed\n${explain(host)}`);
}

/** VMREAD by name, as the raw 64-bit register value. */
export function read(cpu: HostCpu, name: string): bigint {
  const enc = (VMCS as Readonly<Record<string, number>>)[name];
  if (enc === undefined) throw new Error(`reference VM: no VMCS field ${name}`);
  return cpu.vmread(enc);
}

/** Control-field values: the processor's must-be-1 bits plus what a 64-bit guest with HLT exiting needs. */
export function referenceControls(host: Host, cpuId = 0): { pin: number; proc: number; exit: number; entry: number } {
  const eff = host.vmx[cpuId]!.caps.effective;
  return {
    pin: eff.pin.allowed0 >>> 0,
    proc: (eff.proc.allowed0 | VMX_CONTROL.CPU_BASED_HLT_EXITING) >>> 0,
    exit: (eff.exit.allowed0 | VMX_CONTROL.VM_EXIT_HOST_ADDR_SPACE_SIZE) >>> 0,
    entry: (eff.entry.allowed0 | VMX_CONTROL.VM_ENTRY_IA32E_MODE) >>> 0,
  };
}

export function writeReferenceControls(host: Host, cpu: HostCpu): void {
  const c = referenceControls(host, cpu.id);
  write(host, cpu, 'PIN_BASED_VM_EXEC_CONTROL', c.pin);
  write(host, cpu, 'CPU_BASED_VM_EXEC_CONTROL', c.proc);
  write(host, cpu, 'VM_EXIT_CONTROLS', c.exit);
  write(host, cpu, 'VM_ENTRY_CONTROLS', c.entry);
  for (const f of ['EXCEPTION_BITMAP', 'CR3_TARGET_COUNT', 'VM_EXIT_MSR_STORE_COUNT', 'VM_EXIT_MSR_LOAD_COUNT', 'VM_ENTRY_MSR_LOAD_COUNT', 'VM_ENTRY_INTR_INFO_FIELD']) write(host, cpu, f, 0);
}

/** Host state straight from the logical processor's registers (the kernel's CR3, this CPU's GDT/TSS). */
export function writeReferenceHostState(host: Host, cpu: HostCpu, rip: bigint): void {
  const lp = cpu.lp;
  const s = lp.snapshot();
  write(host, cpu, 'HOST_CR0', lp.readCr0());
  write(host, cpu, 'HOST_CR3', BigInt(host.kernel.cr3));
  write(host, cpu, 'HOST_CR4', lp.readCr4());
  for (const seg of ['es', 'cs', 'ss', 'ds', 'fs', 'gs', 'tr'] as const) {
    write(host, cpu, `HOST_${seg.toUpperCase()}_SELECTOR`, s.segments[seg].selector & ~7);
  }
  write(host, cpu, 'HOST_FS_BASE', s.segments.fs.base);
  write(host, cpu, 'HOST_GS_BASE', s.segments.gs.base);
  write(host, cpu, 'HOST_TR_BASE', s.segments.tr.base);
  write(host, cpu, 'HOST_GDTR_BASE', s.gdtr.base);
  write(host, cpu, 'HOST_IDTR_BASE', s.idtr.base);
  write(host, cpu, 'HOST_IA32_SYSENTER_CS', lp.rdmsr(MSR_IA32_SYSENTER_CS));
  write(host, cpu, 'HOST_IA32_SYSENTER_ESP', lp.rdmsr(MSR_IA32_SYSENTER_ESP));
  write(host, cpu, 'HOST_IA32_SYSENTER_EIP', lp.rdmsr(MSR_IA32_SYSENTER_EIP));
  write(host, cpu, 'HOST_RSP', host.kernel.kernelStackTop(cpu.id));
  write(host, cpu, 'HOST_RIP', rip);
}

// ---------------------------------------------------------------------------------------------------------------
// A reference guest: its own page tables, GDT, TSS, code and stack in 8 contiguous pages.
// ---------------------------------------------------------------------------------------------------------------

export interface ReferenceGuest {
  readonly pa: bigint;
  readonly va: bigint;
  readonly rip: bigint;
  readonly rsp: bigint;
  readonly cr3: bigint;
  readonly gdtBase: bigint;
  readonly labels: ReadonlyMap<string, number>;
}

export const TINY_GUEST = `
bits 64
        mov al, 'V'
        out 0xe9, al
        xor eax, eax
        cpuid
        hlt
`;

const CODE = 0x4000, STACK_TOP = 0x8000, GDT = 0x3000, TSS = 0x3800;

export function buildReferenceGuest(k: Kernel, source = TINY_GUEST): ReferenceGuest {
  const page = k.alloc_pages(3);
  if (page === null) throw new Error('reference VM: out of memory');
  const va = k.page_address(page);
  const pa = k.page_to_phys(page);
  k.memset(va, 0, 8 * 4096);
  k.write64(va, (pa + 0x1000n) | 3n);
  k.write64(va + 0x1000n, (pa + 0x2000n) | 3n);
  for (let i = 0n; i < 512n; i++) k.write64(va + 0x2000n + 8n * i, (i << 21n) | 0x83n);
  const put = (slot: number, [lo, hi]: [number, number]): void => {
    k.write32(va + BigInt(GDT + slot * 8), lo);
    k.write32(va + BigInt(GDT + slot * 8 + 4), hi);
  };
  const { CS, DATA, TR } = REFERENCE_SEGMENTS;
  put(1, encodeDescriptor(0, CS.limit, CS.ar));
  put(2, encodeDescriptor(0, DATA.limit, DATA.ar));
  put(3, encodeDescriptor(Number(pa) + TSS, TR.limit, TR.ar));
  const program = assembleOrThrow(source, { origin: Number(pa) + CODE, bits: 64 });
  k.writeBytes(va + BigInt(CODE), program.bytes);
  return { pa, va, rip: pa + BigInt(CODE), rsp: pa + BigInt(STACK_TOP), cr3: pa, gdtBase: pa + BigInt(GDT), labels: program.labels };
}

/** The reference guest's segments as a 64-bit kernel leaves them: accessed code/data, a busy 64-bit TSS. */
export const REFERENCE_SEGMENTS = {
  CS: { selector: 0x08, ar: 0xb | AR.S | AR.P | AR.L | AR.G, limit: 0xffffffff },
  DATA: { selector: 0x10, ar: 0x3 | AR.S | AR.P | AR.DB | AR.G, limit: 0xffffffff },
  TR: { selector: 0x18, ar: SYSTEM_TYPE.TSS_BUSY | AR.P, limit: 0x67 },
} as const;

export function writeReferenceGuestState(host: Host, cpu: HostCpu, g: ReferenceGuest): void {
  const caps = host.vmx[cpu.id]!.caps;
  write(host, cpu, 'GUEST_CR0', (BigInt(CR0.PE | CR0.NE) | BigInt(CR0.PG) | caps.cr0Fixed0) & caps.cr0Fixed1);
  write(host, cpu, 'GUEST_CR3', g.cr3);
  write(host, cpu, 'GUEST_CR4', (BigInt(CR4.PAE) | caps.cr4Fixed0) & caps.cr4Fixed1);
  write(host, cpu, 'GUEST_DR7', 0x400);
  write(host, cpu, 'GUEST_IA32_DEBUGCTL', 0);
  for (const f of ['GUEST_SYSENTER_CS', 'GUEST_SYSENTER_ESP', 'GUEST_SYSENTER_EIP']) write(host, cpu, f, 0);
  const seg = (s: string, selector: number, base: bigint, limit: number, ar: number): void => {
    write(host, cpu, `GUEST_${s}_SELECTOR`, selector);
    write(host, cpu, `GUEST_${s}_BASE`, base);
    write(host, cpu, `GUEST_${s}_LIMIT`, limit);
    write(host, cpu, `GUEST_${s}_AR_BYTES`, ar);
  };
  const { CS, DATA, TR } = REFERENCE_SEGMENTS;
  seg('CS', CS.selector, 0n, CS.limit, CS.ar);
  for (const s of ['SS', 'DS', 'ES', 'FS', 'GS']) seg(s, DATA.selector, 0n, DATA.limit, DATA.ar);
  seg('LDTR', 0, 0n, 0, AR.UNUSABLE);
  seg('TR', TR.selector, g.pa + BigInt(TSS), TR.limit, TR.ar);
  write(host, cpu, 'GUEST_GDTR_BASE', g.gdtBase);
  write(host, cpu, 'GUEST_GDTR_LIMIT', 0x27);
  write(host, cpu, 'GUEST_IDTR_BASE', 0);
  write(host, cpu, 'GUEST_IDTR_LIMIT', 0);
  write(host, cpu, 'GUEST_RIP', g.rip);
  write(host, cpu, 'GUEST_RSP', g.rsp);
  // Status flags set on purpose: right after a successful VMLAUNCH the CPU's RFLAGS are these, and code that
  // reads them as a VMfail (CF/ZF) is wrong.
  write(host, cpu, 'GUEST_RFLAGS', RFLAGS.FIXED1 | RFLAGS.CF | RFLAGS.ZF);
  write(host, cpu, 'GUEST_ACTIVITY_STATE', 0);
  write(host, cpu, 'GUEST_INTERRUPTIBILITY_INFO', 0);
  write(host, cpu, 'GUEST_PENDING_DBG_EXCEPTIONS', 0);
  write(host, cpu, 'VMCS_LINK_POINTER', U64);
}

/** A complete valid VMCS on the current CPU whose VM exits go to `rip`. */
export function writeReferenceVmcs(host: Host, cpu: HostCpu, rip: bigint, source = TINY_GUEST): ReferenceGuest {
  writeReferenceControls(host, cpu);
  writeReferenceHostState(host, cpu, rip);
  const g = buildReferenceGuest(host.kernel, source);
  writeReferenceGuestState(host, cpu, g);
  return g;
}

// ---------------------------------------------------------------------------------------------------------------
// Kit VMX operation and the failure-message helper.
// ---------------------------------------------------------------------------------------------------------------

/** Boot a host and enter VMX operation on CPU 0 (or fail loudly: that is a kit bug, not the learner's). */
export function hostInVmxOperation(opts: HostOptions = {}): Host & { vmxonRegion: bigint } {
  const host = bootHost(opts);
  const vmxonRegion = kitVmxOn(host.kernel);
  return { ...host, vmxonRegion };
}

/** IA32_FEATURE_CONTROL, CR0/CR4 fixed bits with VMXE, a VMXON region, VMXON — on `cpu`. Returns the region's address. */
export function kitVmxOn(k: Kernel, cpu: HostCpu = k.cpu()): bigint {
  const fc = cpu.rdmsr(MSR_IA32_FEATURE_CONTROL);
  if ((fc & 1n) === 0n) cpu.wrmsr(MSR_IA32_FEATURE_CONTROL, fc | 5n);
  cpu.writeCr4(((cpu.readCr4() | (1n << 13n)) | cpu.rdmsr(MSR_IA32_VMX_CR4_FIXED0)) & cpu.rdmsr(MSR_IA32_VMX_CR4_FIXED1));
  cpu.writeCr0((cpu.readCr0() | cpu.rdmsr(MSR_IA32_VMX_CR0_FIXED0)) & cpu.rdmsr(MSR_IA32_VMX_CR0_FIXED1));
  const pa = kitRegion(k, cpu);
  cpu.vmxon(pa);
  if ((cpu.rflags() & CF_ZF) !== 0n) throw new Error('kit setup: VMXON failed (this is a VMX Lab bug)');
  return pa;
}

/** A fresh, VMCLEARed, zeroed VMCS region with the right revision id, made current on `cpu`. Returns its address. */
export function kitCurrentVmcs(k: Kernel, cpu: HostCpu = k.cpu()): bigint {
  const pa = kitRegion(k, cpu);
  cpu.vmclear(pa);
  cpu.vmptrld(pa);
  if ((cpu.rflags() & CF_ZF) !== 0n) throw new Error('kit setup: VMPTRLD failed (this is a VMX Lab bug)');
  return pa;
}

/** A zeroed page starting with the VMCS revision identifier (for a VMXON region or a VMCS). */
function kitRegion(k: Kernel, cpu: HostCpu): bigint {
  const va = k.get_zeroed_page();
  k.write32(va, Number(cpu.rdmsr(MSR_IA32_VMX_BASIC) & 0x7fffffffn));
  return k.virt_to_phys(va);
}

/** How many of the last VM exits a failure message shows. */
const EXPLAIN_EXITS = 8;

/**
 * What a failing test prints: the VMX diagnosis of every CPU (rule, SDM section, field, value), dmesg, guest
 * output — and, when the test attached an exit trace (`traceExits(host)` from src/debug), the last VM exits.
 */
export function explain(host: Host, extra = '', trace?: ExitTrace): string {
  const lines: string[] = [];
  if (extra !== '') lines.push(extra);
  host.vmx.forEach((u, i) => {
    const d = u.lastDiagnosis();
    if (d === null) return;
    const stale = u.diagnosisOfLastInstruction() === null ? ' — from an earlier VMX instruction; the last one did not fail' : '';
    lines.push(`VMX diagnosis (cpu ${i}${stale}):\n${formatDiagnosis(d)}`);
  });
  lines.push(`dmesg:\n${host.kernel.dmesg()}`);
  if (host.console.text() !== '') lines.push(`guest console (port E9H):\n${host.console.text()}`);
  if (trace !== undefined) lines.push(trace.format({ last: EXPLAIN_EXITS }));
  return lines.join('\n');
}

// ---------------------------------------------------------------------------------------------------------------
// An identity EPT and the unrestricted-guest controls (for guests that run with CR0.PE/PG = 0 or unusual CPL).
// ---------------------------------------------------------------------------------------------------------------

/**
 * EPT paging structures that map guest-physical = host-physical for the first `gib` GiB with 2-MByte pages
 * (read/write/execute, memory type WB). Returns the EPTP: WB (6) in bits 2:0, page-walk length 4 (3 in bits 5:3).
 * See SDM Vol. 3C, "EPT Translation Mechanism" and "Extended-Page-Table Pointer (EPTP)".
 */
export function buildIdentityEpt(k: Kernel, gib = 1): bigint {
  const pages = 2 + gib;
  const block = k.alloc_pages(Math.ceil(Math.log2(pages)));
  if (block === null) throw new Error('reference VM: out of memory for EPT');
  const va = k.page_address(block);
  const pa = k.page_to_phys(block);
  k.memset(va, 0, pages * 4096);
  const RWX = 7n, LARGE = 1n << 7n, WB = 6n;
  k.write64(va, (pa + 0x1000n) | RWX); // PML4E 0 → the PDPT
  for (let g = 0; g < gib; g++) {
    const pd = pa + BigInt(0x2000 + g * 0x1000);
    k.write64(va + 0x1000n + BigInt(8 * g), pd | RWX); // PDPTE g → a page directory
    for (let i = 0n; i < 512n; i++) {
      k.write64(va + BigInt(0x2000 + g * 0x1000) + 8n * i, ((BigInt(g) << 30n) | (i << 21n)) | RWX | LARGE | (WB << 3n));
    }
  }
  return pa | WB | (3n << 3n);
}

/** Turn on EPT (identity) and "unrestricted guest" in the current VMCS; false if the model cannot. */
export function enableUnrestrictedGuest(host: Host, cpu: HostCpu): boolean {
  const caps = host.vmx[cpu.id]!.caps;
  const proc2 = VMX_CONTROL.SECONDARY_EXEC_ENABLE_EPT | VMX_CONTROL.SECONDARY_EXEC_UNRESTRICTED_GUEST;
  if ((caps.effective.proc.allowed1 & VMX_CONTROL.CPU_BASED_ACTIVATE_SECONDARY_CONTROLS) === 0) return false;
  if ((caps.effective.proc2.allowed1 & proc2) !== proc2) return false;
  write(host, cpu, 'CPU_BASED_VM_EXEC_CONTROL', referenceControls(host, cpu.id).proc | VMX_CONTROL.CPU_BASED_ACTIVATE_SECONDARY_CONTROLS);
  write(host, cpu, 'SECONDARY_VM_EXEC_CONTROL', (caps.effective.proc2.allowed0 | proc2) >>> 0);
  write(host, cpu, 'EPT_POINTER', buildIdentityEpt(host.kernel));
  return true;
}

// ---------------------------------------------------------------------------------------------------------------
// Run a guest under a recording exit handler (for src/ tests of exit behaviour).
// ---------------------------------------------------------------------------------------------------------------

/** What the recording handler saw at one VM exit. */
export interface RecordedExit {
  readonly reason: bigint;
  readonly qualification: bigint;
  readonly instructionLength: bigint;
  readonly guestRip: bigint;
  readonly guestLinearAddress: bigint;
  /** Guest RAX, RBX, RCX, RDX as they were at the exit. */
  readonly rax: bigint; readonly rbx: bigint; readonly rcx: bigint; readonly rdx: bigint;
}

export interface RecordedRun {
  readonly host: Host;
  readonly guest: ReferenceGuest;
  readonly exits: RecordedExit[];
  /** explain() for failure messages. */
  why(): string;
}

/**
 * Boot `model`, enter VMX, fill the reference VMCS for `source`, let `setup` adjust the VMCS, VMLAUNCH and run.
 * The handler records every exit; for the basic reasons in `resumeOn` it advances GUEST_RIP by the instruction
 * length and VMRESUMEs, otherwise it leaves the guest stopped.
 */
export function runRecordedGuest(opts: {
  model?: string; source: string; setup?: (host: Host, cpu: HostCpu, guest: ReferenceGuest) => void;
  resumeOn?: readonly number[]; maxInstructions?: number;
}): RecordedRun {
  const host = bootHost({ model: opts.model ?? 'skylake-i5-6300u' });
  const k = host.kernel, cpu = k.cpu();
  enterVmx(host, cpu);
  const exits: RecordedExit[] = [];
  const resumeOn = new Set(opts.resumeOn ?? []);
  const rip = k.hostEntry('recording_exit_handler', (_k, c) => {
    const e: RecordedExit = {
      reason: read(c, 'VM_EXIT_REASON'), qualification: read(c, 'EXIT_QUALIFICATION'),
      instructionLength: read(c, 'VM_EXIT_INSTRUCTION_LEN'), guestRip: read(c, 'GUEST_RIP'),
      guestLinearAddress: read(c, 'GUEST_LINEAR_ADDRESS'),
      rax: c.readGpr('rax'), rbx: c.readGpr('rbx'), rcx: c.readGpr('rcx'), rdx: c.readGpr('rdx'),
    };
    exits.push(e);
    if (!resumeOn.has(Number(e.reason & 0xffffn))) return;
    write(host, c, 'GUEST_RIP', e.guestRip + e.instructionLength);
    c.vmresume();
  });
  const guest = writeReferenceVmcs(host, cpu, rip, opts.source);
  opts.setup?.(host, cpu, guest);
  cpu.vmlaunch();
  runGuests(host, opts.maxInstructions ?? 100_000);
  return { host, guest, exits, why: () => explain(host, `exits: ${exits.map((e) => e.reason).join(', ')}`) };
}

// Test support for chapter 4 (imported by the tests only, never by learner code): an independent way to enter
// VMX operation and to fill a complete, valid VMCS without any of the learner's code, a run loop that dispatches
// VM exits to host entry points, and the failure-message helper every test uses.
import { bootHost, type Host, type HostOptions } from '../../src/kernel/boot-host.ts';
import type { HostCpu } from '../../src/kernel/host-cpu.ts';
import type { Kernel } from '../../src/kernel/kernel.ts';
import { VMX_CONTROL } from '../../src/vmx/controls.ts';
import { VMCS } from '../../src/vmx/fields.ts';
import { CR0, CR4 } from '../../src/x86/control-registers.ts';
import { RFLAGS } from '../../src/x86/flags.ts';
import { AR, SYSTEM_TYPE, encodeDescriptor } from '../../src/x86/segments.ts';
import { assembleOrThrow } from '../../src/guest/assembler.ts';
import { MSR_IA32_SYSENTER_CS, MSR_IA32_SYSENTER_EIP, MSR_IA32_SYSENTER_ESP } from '../../src/x86/msr.ts';
import { explain, kitCurrentVmcs, kitVmxOn } from '../lib/vmx-setup.ts';

export { bootHost, explain, type Host, type HostOptions };

const CF = 1n, ZF = 1n << 6n;
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
    throw new Error(`support: could not enter VMX operation (${(e as Error).message})\n${explain(host)}`);
  }
}

/** VMWRITE by name, failing loudly (support code must never fail silently). */
export function write(host: Host, cpu: HostCpu, name: string, value: bigint | number): void {
  const enc = (VMCS as Readonly<Record<string, number>>)[name];
  if (enc === undefined) throw new Error(`support: no VMCS field ${name}`);
  cpu.vmwrite(enc, BigInt(value) & U64);
  if ((cpu.rflags() & (CF | ZF)) !== 0n) throw new Error(`support: VMWRITE ${name} failed\n${explain(host)}`);
}

/** VMREAD by name, as the raw 64-bit register value. */
export function read(cpu: HostCpu, name: string): bigint {
  const enc = (VMCS as Readonly<Record<string, number>>)[name];
  if (enc === undefined) throw new Error(`support: no VMCS field ${name}`);
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
  if (page === null) throw new Error('support: out of memory');
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

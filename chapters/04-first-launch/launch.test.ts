// Exercise 4.5 — the first-launch module: VMLAUNCH, a VM-exit handler that answers CPUID and resumes, and a
// clean VMXOFF when the guest halts.
import { describe, expect, test } from 'vitest';
import { createFirstLaunch } from '#impl/04-first-launch/launch';
import { CPU_MODELS } from '../../src/machine/cpu-model.ts';
import { CR4 } from '../../src/x86/control-registers.ts';
import type { Kernel } from '../../src/kernel/kernel.ts';
import { ENOMEM } from '../../src/kernel/errno.ts';
import { bootHost, explain, runGuests, traceExits, type Host } from './support.ts';

const EXIT_REASON_TRIPLE_FAULT = 2;
const EXIT_REASON_CPUID = 10;
const EXIT_REASON_HLT = 12;

/** In VMX operation VMPTRST works; outside it raises #UD. */
function inVmxOperation(k: Kernel): boolean {
  try {
    k.cpu().vmptrst();
    return true;
  } catch {
    return false;
  }
}

/** The vendor string as CPUID leaf 0 returns it on this host (EBX, EDX, ECX). */
function vendorOf(k: Kernel): string {
  const r = k.cpu().cpuid(0);
  const bytes: number[] = [];
  for (const w of [r.ebx, r.edx, r.ecx]) for (let i = 0; i < 4; i++) bytes.push((w >>> (8 * i)) & 0xff);
  return String.fromCharCode(...bytes);
}

interface Run {
  host: Host;
  log: ReturnType<typeof createFirstLaunch>['log'];
  loaded: { ok: boolean };
  free: number;
  gdt: { base: bigint; limit: number };
  idt: { base: bigint; limit: number };
  why: string;
}

function runModule(model: string, guest?: string): Run {
  const host = bootHost({ model });
  const k = host.kernel;
  const free = k.pages.freeCount();
  const gdt = k.cpu().sgdt();
  const idt = k.cpu().sidt();
  const fl = createFirstLaunch(guest === undefined ? {} : { guest });
  const trace = traceExits(host);
  const loaded = k.insmod(fl.module);
  if (loaded.ok) runGuests(host, 100_000);
  return { host, log: fl.log, loaded, free, gdt, idt, why: explain(host, `model ${model}; exits seen by your handler: [${fl.log.exits.join(', ')}]; insmod: ${JSON.stringify(loaded)}`, trace) };
}

/** After the guest is gone: VMX off, CR4.VMXE clear, descriptor tables as the kernel had them, no page leaked. */
function expectCleanHost(r: Run): void {
  const k = r.host.kernel;
  expect(inVmxOperation(k), `VMX is still on after the guest stopped\n${r.why}`).toBe(false);
  expect(k.cpu().readCr4() & BigInt(CR4.VMXE), `CR4.VMXE is still set\n${r.why}`).toBe(0n);
  expect(k.cpu().sgdt(), `GDTR after the guest stopped: a VM exit sets the limit to FFFFH; restore the kernel's\n${r.why}`).toEqual(r.gdt);
  expect(k.cpu().sidt(), `IDTR after the guest stopped: a VM exit sets the limit to FFFFH; restore the kernel's\n${r.why}`).toEqual(r.idt);
  expect(k.pages.freeCount(), `pages leaked (VMXON region, VMCS, guest memory must all be freed)\n${r.why}`).toBe(r.free);
}

describe('the first-launch module', () => {
  test.each(CPU_MODELS.map((m) => [m.name]))('%s: launches, sees CPUID then HLT, and turns VMX off cleanly', (model) => {
    const r = runModule(model);
    expect(r.loaded.ok, r.why).toBe(true);
    expect(r.log.failure, r.why).toBeNull();
    expect(r.log.exits, r.why).toEqual([EXIT_REASON_CPUID, EXIT_REASON_HLT]);
    expect(r.log.halted, r.why).toBe(true);
    // The guest printed the vendor string it got from CPUID: your handler's answer reached its registers.
    expect(r.host.console.text(), r.why).toContain(vendorOf(r.host.kernel));
    expectCleanHost(r);
    expect(r.host.kernel.rmmod('first_launch'), r.why).toEqual({ ok: true });
  });

  test('CPUID answers the leaf and subleaf the guest asked for, in RAX–RDX with bits 63:32 clear', () => {
    // The guest sends the 32 bytes of RAX, RBX, RCX, RDX (little-endian) to port E9H after its CPUID.
    const guest = `
      bits 64
              mov rax, 0xdeadbeef00000007     ; leaf 7; bits 63:32 of RAX are not part of the leaf
              mov rcx, 0xfeedface00000000     ; subleaf 0 (ECX); bits 63:32 ignored too
              mov rbx, -1
              mov rdx, -1
              cpuid
              mov r9, rbx
              mov r10, rcx
              mov r11, rdx
              mov r8, rax
              call put8
              mov r8, r9
              call put8
              mov r8, r10
              call put8
              mov r8, r11
              call put8
              hlt
      put8:   mov ecx, 8
      .next:  mov al, r8b
              out 0xe9, al
              shr r8, 8
              dec ecx
              jnz .next
              ret`;
    const r = runModule(CPU_MODELS[0]!.name, guest);
    expect(r.log.exits, r.why).toEqual([EXIT_REASON_CPUID, EXIT_REASON_HLT]);
    const raw = r.host.console.raw();
    expect(raw.length, r.why).toBe(32);
    const view = new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
    const got = [0, 8, 16, 24].map((o) => view.getBigUint64(o, true));
    const want = r.host.kernel.cpu().cpuid(7, 0);
    expect(got.map((v) => `0x${v.toString(16)}`), r.why).toEqual([want.eax, want.ebx, want.ecx, want.edx].map((v) => `0x${(v >>> 0).toString(16)}`));
  });

  test('RIP advances by the VM-exit instruction length (a prefixed CPUID is 3 bytes, not 2)', () => {
    const guest = `
      bits 64
              xor eax, eax
              db 0x2e, 0x0f, 0xa2             ; CS-prefixed CPUID: 3 bytes
              mov al, 'k'
              out 0xe9, al
              hlt`;
    const r = runModule(CPU_MODELS[0]!.name, guest);
    expect(r.log.exits, `${r.why}\n(skipping a fixed 2 bytes lands in the middle of the instruction)`).toEqual([EXIT_REASON_CPUID, EXIT_REASON_HLT]);
    expect(r.host.console.text(), r.why).toBe('k');
    expectCleanHost(r);
  });

  test('an exit the module does not handle (triple fault): it stops the guest and turns VMX off cleanly', () => {
    // No IDT in the guest: UD2 raises #UD, which cannot be delivered — a triple fault, and a VM exit (reason 2).
    const r = runModule(CPU_MODELS[0]!.name, 'bits 64\nud2\n');
    expect(r.log.exits, r.why).toEqual([EXIT_REASON_TRIPLE_FAULT]);
    expect(r.log.halted, r.why).toBe(false);
    expectCleanHost(r);
  });

  test('a guest that does not fit: init fails with -ENOMEM and cleans up (VMX off, nothing leaked)', () => {
    const host = bootHost({});
    const k = host.kernel;
    const free = k.pages.freeCount();
    const gdt = k.cpu().sgdt();
    const fl = createFirstLaunch({ guest: 'bits 64\ntimes 65536 nop\nhlt\n' });
    const loaded = k.insmod(fl.module);
    const why = explain(host, `insmod: ${JSON.stringify(loaded)} (64 KiB of code cannot fit in the guest block: buildGuest returns null)`);
    expect(loaded, why).toMatchObject({ ok: false, errno: ENOMEM });
    expect(inVmxOperation(k), `a failed init must turn VMX off again\n${why}`).toBe(false);
    expect(k.cpu().readCr4() & BigInt(CR4.VMXE), why).toBe(0n);
    expect(k.cpu().sgdt(), why).toEqual(gdt);
    expect(k.pages.freeCount(), `pages leaked on the failure path\n${why}`).toBe(free);
  });

  test('VMX disabled by the firmware: init fails with an errno, says why, and leaves nothing behind', () => {
    const host = bootHost({ featureControl: 'locked-disabled' });
    const k = host.kernel;
    const free = k.pages.freeCount();
    const fl = createFirstLaunch();
    const loaded = k.insmod(fl.module);
    const why = explain(host, JSON.stringify(loaded));
    expect(loaded.ok, why).toBe(false);
    expect(loaded.ok === false && loaded.oops, `init must return -errno, not oops\n${why}`).toBeUndefined();
    expect(k.pages.freeCount(), why).toBe(free);
    expect(k.dmesg().split('\n').length, `printk why the module did not load\n${why}`).toBeGreaterThan(1);
  });
});

// Exercise 4.2 — a small 64-bit guest in memory you allocate, and the guest-state area that starts it. The
// guest-state fields are compared with what the guest's own GDT says (decoded by the kit, not by your code), and
// the guest must really run: in 64-bit mode, at CPL 0, through its own page tables.
import { describe, expect, test } from 'vitest';
import fc from 'fast-check';
import { buildGuest, freeGuest, guestSegment, writeGuestState } from '#impl/04-first-launch/guest-state';
import { CPU_MODELS } from '../../src/machine/cpu-model.ts';
import { AR, SYSTEM_TYPE, decodeDescriptor, encodeDescriptor } from '../../src/x86/segments.ts';
import { CR0, CR4 } from '../../src/x86/control-registers.ts';
import { RFLAGS } from '../../src/x86/flags.ts';
import type { VmcsFieldName } from '../../src/vmx/fields.ts';
import { bootHost, enterVmx, explain, read, runGuests, writeReferenceControls, writeReferenceHostState, type Host } from './support.ts';
import { showValue } from '../lib/show.ts';

const EXIT_REASON_CPUID = 10;
const SEGS = ['CS', 'SS', 'DS', 'ES', 'FS', 'GS', 'TR'] as const;

/** A guest that checks its own mode: 64-bit registers, CPL 0, writable memory through its page tables. */
const SELF_CHECK = `
bits 64
default rel
        mov rax, 0x1122334455667788
        mov [scratch], rax
        mov rbx, [scratch]
        cmp rbx, rax
        jne bad
        mov ax, cs
        test al, 3                ; CPL = CS.RPL
        jnz bad
        mov al, 'O'
        out 0xe9, al
        mov al, 'K'
        out 0xe9, al
        cpuid
        hlt
bad:    mov al, 'X'
        out 0xe9, al
        cpuid
        hlt
align 8
scratch: dq 0
`;

/** The descriptor in the guest's GDT, decoded by the kit. */
function gdtEntry(host: Host, gdtBase: bigint, selector: number): { base: bigint; limit: number; ar: number } {
  const k = host.kernel;
  const at = k.phys_to_virt(gdtBase) + BigInt(selector & ~7);
  const d = decodeDescriptor(k.read32(at), k.read32(at + 4n));
  const system = (d.ar & AR.S) === 0;
  return { base: BigInt(d.base) | (system ? BigInt(k.read32(at + 8n)) << 32n : 0n), limit: d.limit, ar: d.ar };
}

function launchOn(model: string, source: string): { host: Host; exits: bigint[]; free: number; fields: Record<string, bigint>; gdt: Record<string, { base: bigint; limit: number; ar: number }> } {
  const host = bootHost({ model, ramMiB: 64 });
  const k = host.kernel;
  const cpu = k.cpu();
  const exits: bigint[] = [];
  const rip = k.hostEntry('test_vmexit', (_k, c) => { exits.push(read(c, 'VM_EXIT_REASON')); });
  enterVmx(host);
  writeReferenceControls(host, cpu);
  writeReferenceHostState(host, cpu, rip);
  const free = k.pages.freeCount();
  const g = buildGuest(k, source);
  if (g === null) throw new Error(explain(host, 'buildGuest returned null'));
  const r = writeGuestState(k, cpu, g);
  if (!r.ok) throw new Error(explain(host, `writeGuestState failed: ${showValue(r.error)}`));
  const names = [...SEGS.flatMap((s) => [`GUEST_${s}_SELECTOR`, `GUEST_${s}_BASE`, `GUEST_${s}_LIMIT`, `GUEST_${s}_AR_BYTES`]),
    'GUEST_LDTR_AR_BYTES', 'GUEST_CR0', 'GUEST_CR3', 'GUEST_CR4', 'GUEST_RFLAGS', 'GUEST_RIP', 'GUEST_RSP', 'VMCS_LINK_POINTER',
    'GUEST_ACTIVITY_STATE', 'GUEST_GDTR_BASE', 'GUEST_GDTR_LIMIT'];
  const fields = Object.fromEntries(names.map((n) => [n, read(cpu, n as VmcsFieldName)]));
  const gdt = Object.fromEntries(SEGS.map((s) => [s, gdtEntry(host, fields.GUEST_GDTR_BASE!, Number(fields[`GUEST_${s}_SELECTOR`]!))]));
  cpu.vmlaunch();
  if (cpu.lp.vmx?.nonRoot === true) runGuests(host, 20_000);
  freeGuest(k, g);
  return { host, exits, free, fields, gdt };
}

describe('buildGuest + writeGuestState', () => {
  test.each(CPU_MODELS.map((m) => [m.name]))('%s: the guest runs in 64-bit mode at CPL 0 and exits on CPUID', (model) => {
    const o = launchOn(model, SELF_CHECK);
    const why = explain(o.host, `exit reasons at HOST_RIP: [${o.exits.map((e) => `0x${e.toString(16)}`).join(', ')}] (bit 31 = the VM entry failed)`);
    expect(o.exits, why).toEqual([BigInt(EXIT_REASON_CPUID)]);
    expect(o.host.console.text(), why).toBe('OK');
    expect(o.host.kernel.pages.freeCount(), `freeGuest must give back every page buildGuest took\n${why}`).toBe(o.free);
  });

  test('segment registers are exactly what the guest\'s GDT says; LDTR unusable; the rest of the state as a 64-bit kernel runs', () => {
    const o = launchOn(CPU_MODELS[0]!.name, SELF_CHECK);
    const f = o.fields;
    const why = explain(o.host);
    const caps = o.host.vmx[0]!.caps;
    for (const s of SEGS) {
      const d = o.gdt[s]!;
      expect({ base: f[`GUEST_${s}_BASE`], limit: Number(f[`GUEST_${s}_LIMIT`]), ar: Number(f[`GUEST_${s}_AR_BYTES`]) }, `${s} vs its GDT descriptor\n${why}`).toEqual(d);
      expect(Number(f[`GUEST_${s}_SELECTOR`]) & 4, `${s} selector must name the GDT (TI = 0)\n${why}`).toBe(0);
    }
    expect(Number(f.GUEST_CS_AR_BYTES) & AR.L, `CS must be a 64-bit code segment (L = 1)\n${why}`).toBe(AR.L);
    expect(Number(f.GUEST_TR_AR_BYTES) & (AR.TYPE_MASK | AR.S), `TR: a busy 64-bit TSS\n${why}`).toBe(SYSTEM_TYPE.TSS_BUSY);
    expect(Number(f.GUEST_LDTR_AR_BYTES) & AR.UNUSABLE, `LDTR unusable\n${why}`).toBe(AR.UNUSABLE);
    const cr0 = f.GUEST_CR0!, cr4 = f.GUEST_CR4!;
    expect(cr0 & caps.cr0Fixed0, `CR0 vs IA32_VMX_CR0_FIXED0\n${why}`).toBe(caps.cr0Fixed0);
    expect(cr0 & ~caps.cr0Fixed1 & 0xffffffffn, `CR0 vs IA32_VMX_CR0_FIXED1\n${why}`).toBe(0n);
    expect(cr4 & caps.cr4Fixed0, `CR4 vs IA32_VMX_CR4_FIXED0\n${why}`).toBe(caps.cr4Fixed0);
    expect(cr4 & ~caps.cr4Fixed1 & 0xffffffffn, `CR4 vs IA32_VMX_CR4_FIXED1\n${why}`).toBe(0n);
    expect(cr0 & (BigInt(CR0.PG) | BigInt(CR0.PE)), why).toBe(BigInt(CR0.PG) | BigInt(CR0.PE));
    expect(cr4 & BigInt(CR4.PAE), why).toBe(BigInt(CR4.PAE));
    expect(f.GUEST_RFLAGS! & BigInt(RFLAGS.FIXED1), `RFLAGS bit 1 is reserved and must be 1\n${why}`).toBe(BigInt(RFLAGS.FIXED1));
    expect(f.VMCS_LINK_POINTER, `no shadow VMCS: link pointer all ones\n${why}`).toBe(0xffffffffffffffffn);
    expect(f.GUEST_ACTIVITY_STATE, why).toBe(0n);
  });

  test('guestSegment decodes any descriptor the way the processor loads it', () => {
    const host = bootHost({ ramMiB: 64 });
    const k = host.kernel;
    const g = buildGuest(k);
    if (g === null) throw new Error(explain(host, 'buildGuest returned null'));
    const slot = k.phys_to_virt(g.gdtBase) + 8n; // overwrite slot 1 (and 2, for a system descriptor)
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 0xffffffff }), fc.integer({ min: 0, max: 0xfffff }), fc.boolean(),
        fc.integer({ min: 0, max: 0xff }), fc.integer({ min: 0, max: 0x7 }), fc.integer({ min: 0, max: 0xffffffff }),
        (base, rawLimit, gran, lowAr, flags, high) => {
          const ar = lowAr | (flags << 12) | (gran ? AR.G : 0); // flags: AVL, L, D/B
          const limit = gran ? ((rawLimit << 12) | 0xfff) >>> 0 : rawLimit;
          const [lo, hi] = encodeDescriptor(base, limit, ar);
          k.write32(slot, lo);
          k.write32(slot + 4n, hi);
          k.write32(slot + 8n, high);
          const got = guestSegment(k, g, 0x08);
          const system = (ar & AR.S) === 0;
          const want = { selector: 0x08, base: BigInt(base >>> 0) | (system ? BigInt(high >>> 0) << 32n : 0n), limit, ar: ar & ~(0xf << 8) };
          expect(got, explain(host, `descriptor ${hi.toString(16).padStart(8, '0')}${lo.toString(16).padStart(8, '0')}H${system ? `, high dword ${high.toString(16)}H` : ''}`)).toEqual(want);
        },
      ),
      { numRuns: 200, seed: 42 },
    );
    freeGuest(k, g);
  });
});

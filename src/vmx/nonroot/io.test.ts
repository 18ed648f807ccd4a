// I/O instructions from a real guest, against SDM Vol. 3C, "Instructions That Cause VM Exits Conditionally" (I/O
// instructions: unconditional I/O exiting, the I/O bitmaps, the FFFFH wrap rule), "Exit Qualification for I/O
// Instructions", "Basic VM-Exit Information" (guest-linear address of INS/OUTS), the INS/OUTS instruction-
// information format, and "Relative Priority of Faults and VM Exits". Expected values are computed here from
// the SDM's rules.
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { CPU_MODELS } from '../../machine/cpu-model.ts';
import { read, runRecordedGuest, write, type Host, type ReferenceGuest } from '../../kernel/testing/reference-vm.ts';
import type { HostCpu } from '../../kernel/host-cpu.ts';
import { AR } from '../../x86/segments.ts';
import { VMX_CONTROL as C } from '../controls.ts';
import { capabilitiesOf } from '../emulated-msrs.ts';
import { EXIT_REASON } from '../exit-reasons.ts';

const IO = BigInt(EXIT_REASON.EXIT_REASON_IO_INSTRUCTION), CPUID = BigInt(EXIT_REASON.EXIT_REASON_CPUID);
const EXCEPTION = BigInt(EXIT_REASON.EXIT_REASON_EXCEPTION_NMI);

/** The qualification as SDM table "Exit Qualification for I/O Instructions" lays it out. */
function expectedQualification(q: { size: 1 | 2 | 4; isIn: boolean; string: boolean; rep: boolean; immediate: boolean; port: number }): bigint {
  return BigInt(q.size - 1) | (q.isIn ? 1n << 3n : 0n) | (q.string ? 1n << 4n : 0n) | (q.rep ? 1n << 5n : 0n) |
    (q.immediate ? 1n << 6n : 0n) | (BigInt(q.port) << 16n);
}

const proc = (cpu: HostCpu): bigint => read(cpu, 'CPU_BASED_VM_EXEC_CONTROL');

/** Turn on "use I/O bitmaps" with two fresh zeroed bitmaps; set the bit of every port in `ports`. */
function useIoBitmaps(host: Host, cpu: HostCpu, ports: readonly number[], extraProc = 0): void {
  const k = host.kernel;
  const a = k.get_zeroed_page(), b = k.get_zeroed_page();
  for (const p of ports) {
    // Bitmap A holds ports 0000H–7FFFH, bitmap B 8000H–FFFFH; port n is bit n mod 8 of byte (n mod 8000H) / 8.
    const va = (p < 0x8000 ? a : b) + BigInt((p & 0x7fff) >> 3);
    k.write8(va, k.read8(va) | (1 << (p & 7)));
  }
  write(host, cpu, 'IO_BITMAP_A', k.virt_to_phys(a));
  write(host, cpu, 'IO_BITMAP_B', k.virt_to_phys(b));
  write(host, cpu, 'CPU_BASED_VM_EXEC_CONTROL', proc(cpu) | BigInt(C.CPU_BASED_USE_IO_BITMAPS | extraProc));
}

const ioInsn = (size: 1 | 2 | 4, isIn: boolean): string => {
  const acc = size === 1 ? 'al' : size === 2 ? 'ax' : 'eax';
  return isIn ? `in ${acc}, dx` : `out dx, ${acc}`;
};

describe('I/O bitmaps', () => {
  it('an access exits iff a bitmap bit of one of its ports is 1, or it wraps past FFFFH (bitmap A below 8000H, B from 8000H)', () => {
    const nearPort = fc.integer({ min: -4, max: 4 });
    fc.assert(fc.property(
      fc.oneof(fc.integer({ min: 0, max: 0xffff }), fc.constantFrom(0, 0x7ffd, 0x7ffe, 0x7fff, 0x8000, 0xfffc, 0xfffd, 0xfffe, 0xffff)),
      fc.constantFrom<1 | 2 | 4>(1, 2, 4), fc.boolean(), fc.array(nearPort, { maxLength: 4 }),
      (port, size, isIn, offsets) => {
        const set = offsets.map((o) => (port + o) & 0xffff);
        const run = runRecordedGuest({
          source: `bits 64\nmov edx, ${port}\nxor eax, eax\nat_io:\n${ioInsn(size, isIn)}\ncpuid`,
          setup: (host, cpu) => useIoBitmaps(host, cpu, set),
        });
        const touched = Array.from({ length: size }, (_, i) => port + i);
        const wraps = port + size - 1 > 0xffff;
        const exits = wraps || touched.some((p) => set.includes(p));
        const e = run.exits[0]!;
        if (!exits) {
          expect(e.reason, `port ${port.toString(16)}H size ${size}, bits ${set.map((p) => p.toString(16))}\n${run.why()}`).toBe(CPUID);
          return;
        }
        expect(e.reason, `port ${port.toString(16)}H size ${size}, bits ${set.map((p) => p.toString(16))}\n${run.why()}`).toBe(IO);
        expect(e.qualification).toBe(expectedQualification({ size, isIn, string: false, rep: false, immediate: false, port }));
        expect(e.guestRip, 'an I/O exit is fault-like: RIP of the I/O instruction').toBe(BigInt(run.guest.labels.get('at_io')!));
        expect(e.instructionLength).toBe(size === 2 ? 2n : 1n); // 66 ED / EC, ED, EE, EF
      }), { seed: 30, numRuns: 60 });
  });

  it('"use I/O bitmaps" = 1 makes "unconditional I/O exiting" irrelevant: empty bitmaps, no exit', () => {
    const run = runRecordedGuest({
      source: 'bits 64\nmov al, 0x4b\nout 0xe9, al\ncpuid',
      setup: (host, cpu) => useIoBitmaps(host, cpu, [], C.CPU_BASED_UNCOND_IO_EXITING),
    });
    expect(run.exits[0]?.reason, run.why()).toBe(CPUID);
    expect(run.host.console.text()).toBe('K');
  });

  it('without either control no I/O instruction exits', () => {
    const run = runRecordedGuest({ source: 'bits 64\nmov al, 0x4b\nout 0xe9, al\nmov dx, 0xffff\nin eax, dx\ncpuid' });
    expect(run.exits[0]?.reason, run.why()).toBe(CPUID);
    expect(run.host.console.text()).toBe('K');
  });
});

describe('unconditional I/O exiting', () => {
  it('every I/O instruction exits, on every model, and the port is not accessed', () => {
    for (const model of CPU_MODELS) {
      if ((capabilitiesOf(model).effective.proc.allowed1 & C.CPU_BASED_UNCOND_IO_EXITING) === 0) continue;
      const run = runRecordedGuest({
        model: model.name,
        source: 'bits 64\nmov al, 0x4b\nat_out:\nout 0xe9, al\ncpuid',
        setup: (host, cpu) => write(host, cpu, 'CPU_BASED_VM_EXEC_CONTROL', proc(cpu) | BigInt(C.CPU_BASED_UNCOND_IO_EXITING)),
      });
      const e = run.exits[0];
      expect(e?.reason, `${model.name}\n${run.why()}`).toBe(IO);
      expect(e?.qualification).toBe(expectedQualification({ size: 1, isIn: false, string: false, rep: false, immediate: true, port: 0xe9 }));
      expect(e?.instructionLength).toBe(2n);
      expect(e?.guestRip).toBe(BigInt(run.guest.labels.get('at_out')!));
      expect(run.host.console.text(), 'the OUT did not happen').toBe('');
    }
  });
});

describe('exit qualification for I/O instructions', () => {
  const cases: { source: string; dx: number; length: bigint; q: Parameters<typeof expectedQualification>[0] }[] = [
    { source: 'in al, 0x60', dx: 0, length: 2n, q: { size: 1, isIn: true, string: false, rep: false, immediate: true, port: 0x60 } },
    { source: 'out 0x80, eax', dx: 0, length: 2n, q: { size: 4, isIn: false, string: false, rep: false, immediate: true, port: 0x80 } },
    { source: 'in ax, dx', dx: 0x1234, length: 2n, q: { size: 2, isIn: true, string: false, rep: false, immediate: false, port: 0x1234 } },
    { source: 'out dx, al', dx: 0xfff0, length: 1n, q: { size: 1, isIn: false, string: false, rep: false, immediate: false, port: 0xfff0 } },
    { source: 'insb', dx: 0x3f8, length: 1n, q: { size: 1, isIn: true, string: true, rep: false, immediate: false, port: 0x3f8 } },
    { source: 'rep outsw', dx: 0x8001, length: 3n, q: { size: 2, isIn: false, string: true, rep: true, immediate: false, port: 0x8001 } },
    { source: 'rep insd', dx: 0xcfc, length: 2n, q: { size: 4, isIn: true, string: true, rep: true, immediate: false, port: 0xcfc } },
  ];
  for (const c of cases) {
    it(`${c.source} (DX = ${c.dx.toString(16)}H)`, () => {
      const run = runRecordedGuest({
        source: `bits 64\nmov edx, ${c.dx}\nmov ecx, 2\nmov edi, 0x100000\nmov esi, 0x100000\n${c.source}\ncpuid`,
        setup: (host, cpu) => write(host, cpu, 'CPU_BASED_VM_EXEC_CONTROL', proc(cpu) | BigInt(C.CPU_BASED_UNCOND_IO_EXITING)),
      });
      expect(run.exits[0]?.reason, run.why()).toBe(IO);
      expect(run.exits[0]?.qualification).toBe(expectedQualification(c.q));
      expect(run.exits[0]?.instructionLength).toBe(c.length);
    });
  }
});

describe('INS and OUTS', () => {
  it('a REP INS exits before its first iteration: RCX, RDI and memory untouched', () => {
    const dest = 0x100000;
    const run = runRecordedGuest({
      source: `bits 64\nmov edx, 0x3f8\nmov ecx, 8\nmov edi, ${dest}\nrep insb\ncpuid`,
      setup: (host, cpu) => {
        host.kernel.memset(host.kernel.phys_to_virt(BigInt(dest)), 0x5a, 8);
        write(host, cpu, 'CPU_BASED_VM_EXEC_CONTROL', proc(cpu) | BigInt(C.CPU_BASED_UNCOND_IO_EXITING));
      },
    });
    expect(run.exits[0]?.reason, run.why()).toBe(IO);
    expect(run.exits[0]?.rcx).toBe(8n);
    const cpu = run.host.kernel.cpu();
    expect(cpu.readGpr('rdi')).toBe(BigInt(dest));
    expect(Array.from(run.host.kernel.readBytes(run.host.kernel.phys_to_virt(BigInt(dest)), 8))).toEqual(new Array(8).fill(0x5a));
  });

  // Guest-linear address: the relevant segment's base + (E/R)DI (INS: ES) or (E/R)SI (OUTS: DS or the override),
  // bits 63:32 clear outside 64-bit mode. Instruction information (IA32_VMX_BASIC[54] = 1): address size in
  // 9:7 (0 16-bit, 1 32-bit, 2 64-bit), segment in 17:15 (OUTS only; ES 0 … GS 5).
  const FS_BASE = 0x0000_7f00_0000_0000n, RSI = 0x0000_0001_2345_6789n, RDI = 0x0000_0002_0000_1000n;
  const cases = [
    { name: 'INSD, 64-bit addressing', insn: 'insd', linear: RDI, addressSize: 2n, segment: null },
    { name: 'OUTSB, 64-bit addressing, FS override', insn: 'db 0x64\noutsb', linear: FS_BASE + RSI, addressSize: 2n, segment: 4n },
    { name: 'OUTSW, 32-bit addressing (67H), DS', insn: 'db 0x67\noutsw', linear: RSI & 0xffffffffn, addressSize: 1n, segment: 3n },
  ] as const;
  it('report the guest-linear address, and the address size and segment where IA32_VMX_BASIC[54] = 1, on every model', () => {
    for (const model of CPU_MODELS) {
      const caps = capabilitiesOf(model);
      if ((caps.effective.proc.allowed1 & C.CPU_BASED_UNCOND_IO_EXITING) === 0) continue;
      for (const c of cases) {
        const run = runRecordedGuest({
          model: model.name,
          source: `bits 64\nmov edx, 0x2f8\nmov rsi, ${RSI}\nmov rdi, ${RDI}\n${c.insn}\ncpuid`,
          setup: (host, cpu) => {
            write(host, cpu, 'GUEST_FS_BASE', FS_BASE);
            write(host, cpu, 'CPU_BASED_VM_EXEC_CONTROL', proc(cpu) | BigInt(C.CPU_BASED_UNCOND_IO_EXITING));
          },
        });
        const what = `${model.name}: ${c.name}`;
        expect(run.exits[0]?.reason, `${what}\n${run.why()}`).toBe(IO);
        expect(run.exits[0]?.guestLinearAddress, what).toBe(c.linear);
        if (!caps.basic.insOutsInfo) continue;
        const info = read(run.host.kernel.cpu(), 'VMX_INSTRUCTION_INFO');
        expect((info >> 7n) & 7n, `${what}: address size`).toBe(c.addressSize);
        if (c.segment !== null) expect((info >> 15n) & 7n, `${what}: segment`).toBe(c.segment);
      }
    }
  });
});

describe('I/O permission faults come before the VM exit', () => {
  /**
   * Run `in al, 0x80` at CPL 3 with IOPL 0 under unconditional I/O exiting and #GP in the exception bitmap. The
   * TSS gets an I/O permission bit map at offset 68H whose bit for port 80H is `bit`.
   */
  function ringThree(bit: 0 | 1) {
    return runRecordedGuest({
      source: 'bits 64\nat_in:\nin al, 0x80\ncpuid',
      setup: (host, cpu, g) => {
        userAccessible(host, g);
        const k = host.kernel, tss = g.va + 0x3800n;
        k.write32(tss + 0x64n, 0x68 << 16); // I/O map base address 68H
        k.write8(tss + 0x68n + 0x10n, bit); // port 80H: byte 10H, bit 0
        write(host, cpu, 'GUEST_TR_LIMIT', 0x68 + 0x10 + 1);
        const user = 3 << AR.DPL_SHIFT;
        write(host, cpu, 'GUEST_CS_SELECTOR', 0x2b);
        write(host, cpu, 'GUEST_CS_AR_BYTES', read(cpu, 'GUEST_CS_AR_BYTES') | BigInt(user));
        write(host, cpu, 'GUEST_SS_SELECTOR', 0x33);
        write(host, cpu, 'GUEST_SS_AR_BYTES', read(cpu, 'GUEST_SS_AR_BYTES') | BigInt(user));
        write(host, cpu, 'EXCEPTION_BITMAP', 1 << 13);
        write(host, cpu, 'CPU_BASED_VM_EXEC_CONTROL', proc(cpu) | BigInt(C.CPU_BASED_UNCOND_IO_EXITING));
      },
    });
  }

  it('CPL 3 > IOPL 0 and the TSS bit map bit is 1: #GP(0), not an I/O exit', () => {
    const run = ringThree(1);
    expect(run.exits[0]?.reason, run.why()).toBe(EXCEPTION);
    const cpu = run.host.kernel.cpu();
    expect(read(cpu, 'VM_EXIT_INTR_INFO') & 0x80000fffn).toBe(0x80000b0dn); // valid, error code, hardware exception, 13
    expect(read(cpu, 'VM_EXIT_INTR_ERROR_CODE')).toBe(0n);
    expect(run.exits[0]?.guestRip).toBe(BigInt(run.guest.labels.get('at_in')!));
  });

  it('CPL 3 > IOPL 0 but the TSS bit map allows the port: the I/O exit', () => {
    const run = ringThree(0);
    expect(run.exits[0]?.reason, run.why()).toBe(IO);
    expect(run.exits[0]?.qualification).toBe(expectedQualification({ size: 1, isIn: true, string: false, rep: false, immediate: true, port: 0x80 }));
  });
});

/** Let CPL 3 use the reference guest's identity map: set U/S in every paging-structure entry. */
function userAccessible(host: Host, g: ReferenceGuest): void {
  const k = host.kernel, US = 4n;
  k.write64(g.va, k.read64(g.va) | US);
  k.write64(g.va + 0x1000n, k.read64(g.va + 0x1000n) | US);
  for (let i = 0n; i < 512n; i++) k.write64(g.va + 0x2000n + 8n * i, k.read64(g.va + 0x2000n + 8n * i) | US);
}

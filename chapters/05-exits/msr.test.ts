// Exercise 5.3 — the MSR bitmap and RDMSR/WRMSR emulation. The bitmap is checked byte by byte against the SDM
// layout; the part then runs on the kit's hypervisor (not yours) with a guest that reads and writes intercepted,
// passed-through, out-of-range and non-existent MSRs, on every CPU model.
import { describe, expect, test } from 'vitest';
import fc from 'fast-check';
import { INTERCEPTED_MSRS, MSR_VMXLAB_SCRATCH, msrBitmapPosition, msrPart, type MsrAccess } from '#impl/05-exits/msr';
import { CPU_MODELS, runPart, withGpHandler, type PartRun } from './support.ts';

const EXIT_REASON_MSR_READ = 31, EXIT_REASON_MSR_WRITE = 32;
const BITMAP_RULE = 'SDM Vol. 3C, "MSR-Bitmap Address": read bitmap for low MSRs (00000000H–00001FFFH) at byte 0, for high MSRs ' +
  '(C0000000H–C0001FFFH) at byte 1024, write bitmaps at 2048 and 3072; MSR n of a range is bit (n mod 8) of byte (n / 8) — least significant bit first';

/** The SDM's layout, written out independently: [byte, bit], or null outside both ranges. */
function sdmPosition(msr: number, access: MsrAccess): [number, number] | null {
  const base = msr <= 0x1fff ? 0 : msr >= 0xc0000000 && msr <= 0xc0001fff ? 1024 : -1;
  if (base < 0) return null;
  const n = msr <= 0x1fff ? msr : msr - 0xc0000000;
  return [base + (access === 'write' ? 2048 : 0) + Math.floor(n / 8), n % 8];
}

describe('msrBitmapPosition', () => {
  const msrs = fc.oneof(
    fc.integer({ min: 0, max: 0x1fff }),
    fc.integer({ min: 0xc0000000, max: 0xc0001fff }),
    fc.constantFrom(0x2000, 0xbfffffff, 0xc0002000, 0xffffffff, 0x40000000, 0xc0010000),
    fc.integer({ min: 0, max: 0xffffffff }),
  );
  test('byte and bit of every MSR, for reads and writes; null outside the two ranges', () => {
    fc.assert(fc.property(msrs, fc.constantFrom<MsrAccess>('read', 'write'), (msr, access) => {
      const want = sdmPosition(msr, access);
      const got = msrBitmapPosition(msr, access);
      expect(got === null ? null : [got.byte, got.bit], `MSR 0x${msr.toString(16)}, ${access}: expected ${want === null ? 'null (outside both ranges: the access always exits, there is no bit)' : `byte ${want[0]}, bit ${want[1]}`}. ${BITMAP_RULE}`).toEqual(want);
    }));
  });
});

// Each step leaves what it saw in memory; the #GP handler (support.ts) records the faulting RIP and error code.
const MSR_GUEST = withGpHandler(`
        mov rax, -1                     ; garbage in bits 63:32: RDMSR must clear them
        mov rdx, -1
        mov ecx, 0x3a                   ; IA32_FEATURE_CONTROL: intercepted, emulated
        rdmsr
        mov [fc_rax], rax
        mov [fc_rdx], rdx
        mov rcx, 0xffffffff0000003a     ; the MSR is ECX: bits 63:32 of RCX do not count
        rdmsr
        mov [fc2_rax], rax
        lea r14, [after_wr_fc]
        mov ecx, 0x3a
        mov eax, 5
        xor edx, edx
at_wr_fc:
        wrmsr                           ; locked: #GP(0)
after_wr_fc:
        mov rax, [gp_rip]
        mov [gp_rip_wr_fc], rax
        lea r14, [after_rd_basic]
        mov ecx, 0x480                  ; IA32_VMX_BASIC: hidden, #GP(0)
at_rd_basic:
        rdmsr
after_rd_basic:
        mov rax, [gp_rip]
        mov [gp_rip_rd_basic], rax
        lea r14, [after_rd_vmfunc]
        mov ecx, 0x491                  ; IA32_VMX_VMFUNC: the last of them
at_rd_vmfunc:
        rdmsr
after_rd_vmfunc:
        mov rax, [gp_rip]
        mov [gp_rip_rd_vmfunc], rax
        mov ecx, 0x40000000             ; the hypervisor's own MSR: outside both ranges, always exits
        mov rax, 0xdeadbeef89abcdef     ; WRMSR writes EDX:EAX; bits 63:32 of RAX and RDX do not count
        mov rdx, 0xcafef00d01234567
        wrmsr
        mov rax, -1
        mov rdx, -1
        rdmsr
        mov [scratch_rax], rax
        mov [scratch_rdx], rdx
        lea r14, [after_rd_unknown]
        mov ecx, 0x40000001             ; outside both ranges and not implemented: #GP(0)
at_rd_unknown:
        rdmsr
after_rd_unknown:
        mov rax, [gp_rip]
        mov [gp_rip_rd_unknown], rax
        mov ecx, 0xc0000080             ; IA32_EFER: in the high range, not intercepted: no VM exit
        rdmsr
        mov [efer_rax], rax
        mov ecx, 0x174                  ; IA32_SYSENTER_CS: not intercepted, read and written by the CPU itself
        mov eax, 0x10
        xor edx, edx
        wrmsr
        xor eax, eax
        rdmsr
        mov [sysenter_rax], rax
        lea r14, [after_rd_none]
        mov ecx, 0x1fff                 ; in the low range, not intercepted, does not exist: the CPU's own #GP
at_rd_none:
        rdmsr
after_rd_none:
        mov rax, [gp_rip]
        mov [gp_rip_rd_none], rax
        hlt
`, `
align 8
fc_rax: dq 0
fc_rdx: dq 0
fc2_rax: dq 0
scratch_rax: dq 0
scratch_rdx: dq 0
efer_rax: dq 0
sysenter_rax: dq 0
gp_rip_wr_fc: dq 0
gp_rip_rd_basic: dq 0
gp_rip_rd_vmfunc: dq 0
gp_rip_rd_unknown: dq 0
gp_rip_rd_none: dq 0
`);

const hex = (v: bigint | number): string => `0x${v.toString(16)}`;

function msrExits(run: PartRun): string[] {
  return run.exits.filter((e) => e.reason === EXIT_REASON_MSR_READ || e.reason === EXIT_REASON_MSR_WRITE)
    .map((e) => `${e.reason === EXIT_REASON_MSR_READ ? 'RDMSR' : 'WRMSR'} ${hex(e.rcx & 0xffffffffn)}`);
}

describe('the MSR part, in a guest', () => {
  test.each(CPU_MODELS.map((m) => [m.name]))('%s: the bitmap, the exits it causes, emulation and #GP(0) for refused MSRs', (model) => {
    const run = runPart({ model, part: msrPart(), source: MSR_GUEST });

    // The bitmap the part installed, against the SDM layout.
    const proc = Number(run.field('CPU_BASED_VM_EXEC_CONTROL'));
    expect((proc >>> 28) & 1, run.why('"use MSR bitmaps" (primary processor-based control bit 28) must be 1, or every RDMSR/WRMSR exits and the bitmap is not even read')).toBe(1);
    const pa = run.field('MSR_BITMAP');
    expect(pa & 0xfffn, run.why('MSR_BITMAP must be the 4-KByte-aligned physical address of the bitmap (SDM Vol. 3C, "Checks on VM-Execution Control Fields")')).toBe(0n);
    const k = run.host.kernel;
    const got = k.readBytes(k.phys_to_virt(pa), 4096);
    const want = new Uint8Array(4096);
    for (const msr of INTERCEPTED_MSRS) for (const a of ['read', 'write'] as const) {
      const [byte, bit] = sdmPosition(msr, a)!;
      want[byte]! |= 1 << bit;
    }
    const diff = want.findIndex((b, i) => b !== got[i]);
    expect(diff, run.why(`MSR bitmap byte ${diff}: expected 0x${want[diff]?.toString(16)}, found 0x${got[diff]?.toString(16)} (the bits for reads and writes of ${INTERCEPTED_MSRS.map(hex).join(', ')} and nothing else). ${BITMAP_RULE}`)).toBe(-1);

    // The guest's accesses: which exit, and what it saw.
    expect(run.outcome.kind, run.why('the guest should reach its HLT')).toBe('halted');
    expect(msrExits(run), run.why(`VM exits for exactly the intercepted MSRs and those outside both ranges (which always exit), in program order. ${BITMAP_RULE}`)).toEqual([
      'RDMSR 0x3a', 'RDMSR 0x3a', 'WRMSR 0x3a', 'RDMSR 0x480', 'RDMSR 0x491', 'WRMSR 0x40000000', 'RDMSR 0x40000000', 'RDMSR 0x40000001',
    ]);
    const fc = (k.cpu().rdmsr(0x3a) & ~6n) | 1n;
    expect(hex(run.qword('fc_rax')), run.why(`RDMSR IA32_FEATURE_CONTROL: EAX = the host's value with bits 1 and 2 (VMX enable) clear and bit 0 (lock) set, RAX[63:32] clear`)).toBe(hex(fc & 0xffffffffn));
    expect(hex(run.qword('fc_rdx')), run.why('RDMSR returns the high half in EDX with RDX[63:32] clear')).toBe(hex(fc >> 32n));
    expect(hex(run.qword('fc2_rax')), run.why('RDMSR with RCX = FFFFFFFF_0000003AH reads MSR 3AH: only ECX names the MSR')).toBe(hex(fc & 0xffffffffn));
    expect([hex(run.qword('scratch_rax')), hex(run.qword('scratch_rdx'))], run.why(`WRMSR ${hex(MSR_VMXLAB_SCRATCH)} with RDX:RAX = CAFEF00D_01234567H:DEADBEEF_89ABCDEFH stores EDX:EAX = 01234567_89ABCDEFH; RDMSR gives it back in EDX:EAX`)).toEqual(['0x89abcdef', '0x1234567']);
    expect(hex(run.qword('efer_rax') & 0x500n), run.why('IA32_EFER is read by the CPU without a VM exit: LME and LMA of a 64-bit guest')).toBe('0x500');
    expect(hex(run.qword('sysenter_rax')), run.why('IA32_SYSENTER_CS, not intercepted, is the guest\'s own: it reads back what the guest wrote')).toBe('0x10');

    // Refused accesses: #GP(0) delivered to the guest, at the instruction (a fault: RIP not advanced).
    for (const [label, what] of [['wr_fc', 'WRMSR IA32_FEATURE_CONTROL (locked)'], ['rd_basic', 'RDMSR IA32_VMX_BASIC (no VMX)'], ['rd_vmfunc', 'RDMSR IA32_VMX_VMFUNC (no VMX)'], ['rd_unknown', 'RDMSR 40000001H (not implemented)'], ['rd_none', 'RDMSR 1FFFH (no such MSR: the CPU\'s own #GP, no VM exit)']] as const) {
      const at = BigInt(run.guest.labels.get(`at_${label}`)!);
      expect(hex(run.qword(`gp_rip_${label}`)), run.why(`${what}: the guest's #GP handler should see the RIP of that instruction, ${hex(at)}. Inject #GP(0) — VM_ENTRY_INTR_INFO_FIELD = 80000B0DH (valid, deliver error code, type 3 hardware exception, vector 13) and VM_ENTRY_EXCEPTION_ERROR_CODE = 0 — and do not skip the instruction: #GP is a fault. SDM Vol. 3C, "VM-Entry Controls for Event Injection"`)).toBe(hex(at));
    }
    expect(run.qword('gp_count'), run.why('five #GP exceptions in all, one per refused access')).toBe(5n);
    expect(run.qword('gp_error'), run.why('the error code of these #GP exceptions is 0')).toBe(0n);
    expect(run.freeAfterRelease, run.why('release() must free the bitmap page that setup allocated')).toBe(run.freeBeforeSetup);
  });
});

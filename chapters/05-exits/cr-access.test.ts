// Exercise 5.5 — control-register accesses: guest/host masks and read shadows that keep the VMX-fixed bits
// host-owned, MOV to CR0/CR4 emulated (or refused with #GP(0) where bare metal refuses), MOV to/from CR3 where
// the CPU forces CR3 exiting. The part runs on the kit's hypervisor (not yours) on every CPU model; the
// expectations come from the capability MSRs and the SDM rules, written out here.
import { describe, expect, test } from 'vitest';
import fc from 'fast-check';
import { crPart, decodeCrAccess, hostOwnedBits } from '#impl/05-exits/cr-access';
import { CPU_MODELS, capabilitiesOf, poke, read, runPart, withGpHandler } from './support.ts';

const CR_ACCESS = 28;
const U64 = (1n << 64n) - 1n;
const CR0_TS = 1n << 3n, CR0_ET = 1n << 4n, CR0_NE = 1n << 5n, CR4_OSFXSR = 1n << 9n, CR4_VMXE = 1n << 13n;
const hex = (v: bigint): string => `0x${v.toString(16)}`;
const QUAL_RULE = 'SDM Vol. 3C, "Exit Qualification for Control-Register Accesses": bits 3:0 the CR number, 5:4 the access type ' +
  '(0 MOV to CR, 1 MOV from CR, 2 CLTS, 3 LMSW), 6 the LMSW operand type (1 = memory), 11:8 the register (0 RAX … 15 R15), 31:16 the LMSW source data';

describe('decodeCrAccess', () => {
  test('every field of the qualification, for any value', () => {
    fc.assert(fc.property(fc.bigInt({ min: 0n, max: U64 }), (q) => {
      const v = Number(q & 0xffffffffn);
      const want = {
        cr: v & 0xf,
        access: (['mov-to-cr', 'mov-from-cr', 'clts', 'lmsw'] as const)[(v >>> 4) & 3],
        lmswMemory: ((v >>> 6) & 1) === 1,
        gpr: (v >>> 8) & 0xf,
        lmswSource: (v >>> 16) & 0xffff,
      };
      expect(decodeCrAccess(q), `qualification ${hex(q)}. ${QUAL_RULE}`).toEqual(want);
    }));
  });
});

describe('hostOwnedBits', () => {
  test('the bits VMX fixes: 1 in FIXED0 or 0 in FIXED1, over all 64 bits', () => {
    fc.assert(fc.property(fc.bigInt({ min: 0n, max: U64 }), fc.bigInt({ min: 0n, max: U64 }), (f0, f1) => {
      const fixed1 = f0 | f1; // a bit that must be 1 may be 1
      expect(hex(hostOwnedBits(f0, fixed1)), 'SDM Vol. 3D, "VMX-Fixed Bits in CR0" and "VMX-Fixed Bits in CR4": FIXED0 = 1 means fixed to 1, FIXED1 = 0 means fixed to 0').toBe(hex((f0 | (~fixed1 & U64)) & U64));
    }));
  });
});

// The guest reads its CRs, changes owned and unowned bits, and tries three writes bare metal refuses.
const CR_GUEST = withGpHandler(`
        mov rax, cr0
        mov [view_cr0], rax
        mov rax, cr4
        mov [view_cr4], rax             ; VMXE must read 0: VMX is hidden
        mov rbx, cr0
        btr rbx, 5                      ; clear NE (host-owned: fixed to 1): a VM exit
        mov cr0, rbx
        mov rax, cr0
        mov [view_cr0_ne_clear], rax
        mov r15, rsp                    ; set NE again, through RSP: the guest's RSP is in the VMCS, not in the register file
        mov rax, cr0
        bts rax, 5
        mov rsp, rax
        mov cr0, rsp
        mov rsp, r15
        mov rax, cr0
        mov [view_cr0_ne_set], rax
        mov r12, cr0
        bts r12, 3                      ; TS is the guest's own: no VM exit
        mov cr0, r12
        mov rax, cr4
        bts rax, 9                      ; OSFXSR is the guest's own: no VM exit
        mov cr4, rax
        mov rax, cr4
        mov [view_cr4_osfxsr], rax
        mov rax, cr4
        bts rax, 13                     ; VMXE on a CPU without VMX: #GP(0)
        lea r14, [after_vmxe]
at_vmxe:
        mov cr4, rax
after_vmxe:
        mov rax, [gp_rip]
        mov [gp_rip_vmxe], rax
        mov rax, cr0
        btr rax, 31                     ; clearing PG in 64-bit mode: #GP(0)
        lea r14, [after_pg]
at_pg:  mov cr0, rax
after_pg:
        mov rax, [gp_rip]
        mov [gp_rip_pg], rax
        mov rax, cr0
        bts rax, 63                     ; CR0 bits 63:32 are reserved: #GP(0)
        lea r14, [after_hi]
at_hi:  mov cr0, rax
after_hi:
        mov rax, [gp_rip]
        mov [gp_rip_hi], rax
        mov r9, cr3                     ; with CR3-store/load exiting (forced on CPUs without TRUE controls): VM exits
        mov [view_cr3], r9
        mov cr3, r9
        hlt
`, `
align 8
view_cr0: dq 0
view_cr4: dq 0
view_cr0_ne_clear: dq 0
view_cr0_ne_set: dq 0
view_cr4_osfxsr: dq 0
view_cr3: dq 0
gp_rip_vmxe: dq 0
gp_rip_pg: dq 0
gp_rip_hi: dq 0
`);

/** What the test expects to exit, in order, as "access CRn via GPR". */
function expectedExits(cr3Exiting: { load: boolean; store: boolean }): string[] {
  return [
    'mov-to-cr CR0 rbx', 'mov-to-cr CR0 rsp', 'mov-to-cr CR4 rax', 'mov-to-cr CR0 rax', 'mov-to-cr CR0 rax',
    ...(cr3Exiting.store ? ['mov-from-cr CR3 r9'] : []), ...(cr3Exiting.load ? ['mov-to-cr CR3 r9'] : []),
  ];
}
const GPR = ['rax', 'rcx', 'rdx', 'rbx', 'rsp', 'rbp', 'rsi', 'rdi', 'r8', 'r9', 'r10', 'r11', 'r12', 'r13', 'r14', 'r15'];
const describeQual = (q: bigint): string => {
  const v = Number(q & 0xffffffffn);
  return `${['mov-to-cr', 'mov-from-cr', 'clts', 'lmsw'][(v >>> 4) & 3]} CR${v & 0xf} ${GPR[(v >>> 8) & 0xf]}`;
};

describe('the CR part, in a guest', () => {
  test.each(CPU_MODELS.map((m) => [m.name]))('%s: masks and shadows, the exits they cause, emulation and #GP(0)', (model) => {
    const caps = capabilitiesOf(CPU_MODELS.find((m) => m.name === model)!);
    const initial = { cr0: 0n, cr4: 0n };
    const run = runPart({
      model, part: crPart(), source: CR_GUEST,
      before: (_h, cpu) => { initial.cr0 = read(cpu, 'GUEST_CR0'); initial.cr4 = read(cpu, 'GUEST_CR4'); },
    });
    const mask0 = (caps.cr0Fixed0 | (~caps.cr0Fixed1 & U64)) & U64;
    const mask4 = (caps.cr4Fixed0 | (~caps.cr4Fixed1 & U64)) & U64;
    expect(hex(run.field('CR0_GUEST_HOST_MASK')), run.why('CR0_GUEST_HOST_MASK: the bits IA32_VMX_CR0_FIXED0/FIXED1 fix (SDM Vol. 3C, "Guest/Host Masks and Read Shadows for CR0 and CR4")')).toBe(hex(mask0));
    expect(hex(run.field('CR4_GUEST_HOST_MASK')), run.why('CR4_GUEST_HOST_MASK: the bits IA32_VMX_CR4_FIXED0/FIXED1 fix')).toBe(hex(mask4));

    expect(run.outcome.kind, run.why('the guest should reach its HLT')).toBe('halted');
    const proc0 = caps.effective.proc.allowed0;
    const cr3 = { load: ((proc0 >>> 15) & 1) === 1, store: ((proc0 >>> 16) & 1) === 1 };
    const crExits = run.exits.filter((e) => e.reason === CR_ACCESS).map((e) => describeQual(e.qualification));
    expect(crExits, run.why(`control-register exits expected: writes that give a host-owned bit a value other than the shadow's, and MOV CR3 only where CR3-load/store exiting cannot be cleared (${cr3.load ? 'this CPU: no TRUE controls, so they are on' : 'not on this CPU'}). Reads of CR0/CR4 never exit. ${QUAL_RULE}`)).toEqual(expectedExits(cr3));

    // What the guest saw: its own values for owned bits, from the shadows.
    // MOV from CR0 reads host-owned bits from the shadow and the others from CR0 itself — where ET reads 1: it is
    // hardwired, and VM entry does not load it. See SDM Vol. 3C, "Loading Guest Control Registers, Debug Registers,
    // and MSRs".
    expect(hex(run.qword('view_cr0')), run.why('MOV from CR0 at the start: host-owned bits from the shadow (the guest\'s CR0 as VM entry loaded it), the rest from CR0')).toBe(hex(initial.cr0 | CR0_ET));
    expect(hex(run.qword('view_cr4')), run.why('MOV from CR4 at the start: VMXE (host-owned) comes from the shadow and must read 0 — a CPU without VMX has CR4.VMXE = 0')).toBe(hex(initial.cr4 & ~CR4_VMXE));
    expect(hex(run.qword('view_cr0_ne_clear') & CR0_NE), run.why('after the guest cleared CR0.NE, it reads NE = 0 (the shadow takes the value written)')).toBe('0x0');
    expect(hex(run.qword('view_cr0_ne_set') & CR0_NE), run.why('after MOV CR0, RSP set NE again, the guest reads NE = 1: the source was the guest\'s RSP, read from GUEST_RSP (the register file holds HOST_RSP after a VM exit)')).toBe(hex(CR0_NE));
    expect(hex(run.qword('view_cr4_osfxsr') & (CR4_OSFXSR | CR4_VMXE)), run.why('OSFXSR is the guest\'s; VMXE still reads 0')).toBe(hex(CR4_OSFXSR));

    // What the CPU runs on: the fixed bits honoured, the guest's own bits as it wrote them.
    const cr0 = run.field('GUEST_CR0'), cr4 = run.field('GUEST_CR4');
    expect([hex(cr0 & caps.cr0Fixed0), hex(cr0 & ~caps.cr0Fixed1 & U64)], run.why('GUEST_CR0 must keep the FIXED0 bits set and the FIXED1-clear bits clear, or the next VM entry fails (exit reason 33): write the value adjusted to the fixed bits, keep the guest\'s in the shadow')).toEqual([hex(caps.cr0Fixed0), '0x0']);
    expect([hex(cr4 & caps.cr4Fixed0), hex(cr4 & ~caps.cr4Fixed1 & U64)], run.why('GUEST_CR4 must keep VMXE (FIXED0) set')).toEqual([hex(caps.cr4Fixed0), '0x0']);
    expect([hex(cr0 & CR0_TS), hex(cr4 & CR4_OSFXSR)], run.why('the guest\'s own bits (TS, OSFXSR) are in the real registers')).toEqual([hex(CR0_TS), hex(CR4_OSFXSR)]);
    expect(hex(run.field('CR0_READ_SHADOW') & CR0_NE), run.why()).toBe(hex(CR0_NE));
    expect(hex(run.qword('view_cr3')), run.why('MOV from CR3 returns the guest\'s CR3 (GUEST_CR3 when it exits)')).toBe(hex(run.field('GUEST_CR3')));

    // The writes bare metal refuses: #GP(0) at the instruction.
    for (const [label, what] of [['vmxe', 'MOV to CR4 setting VMXE (reserved: the guest\'s CPU has no VMX)'], ['pg', 'MOV to CR0 clearing PG in 64-bit mode'], ['hi', 'MOV to CR0 with bit 63 set']] as const) {
      const at = BigInt(run.guest.labels.get(`at_${label}`)!);
      expect(hex(run.qword(`gp_rip_${label}`)), run.why(`${what}: bare metal raises #GP(0) (SDM Vol. 2B, "MOV—Move to/from Control Registers"), and a VM exit has priority over it (SDM Vol. 3C, "Relative Priority of Faults and VM Exits"): inject #GP(0) and leave RIP at ${hex(at)}`)).toBe(hex(at));
    }
    expect(run.qword('gp_count'), run.why('three #GP(0) in all')).toBe(3n);
  });

  test('the mistake the masks prevent: GUEST_CR0 = the raw guest value (NE clear) fails the next VM entry with exit reason 33', () => {
    // A kit part, not yours: it owns NE but writes the guest's value into GUEST_CR0 instead of into the shadow.
    const run = runPart({
      part: {
        name: 'raw-cr0',
        setup: (v) => { poke(v.cpu, 'CR0_GUEST_HOST_MASK', CR0_NE); poke(v.cpu, 'CR0_READ_SHADOW', read(v.cpu, 'GUEST_CR0')); return { ok: true }; },
        handlers: { [CR_ACCESS]: (v) => { poke(v.cpu, 'GUEST_CR0', v.cpu.readGpr('rbx')); return { kind: 'skip' }; } },
      },
      source: 'bits 64\nmov rbx, cr0\nbtr rbx, 5\nmov cr0, rbx\nhlt\n',
    });
    expect(run.outcome, run.why('CR0.NE is fixed to 1 in VMX operation: SDM Vol. 3C, "Checks on Guest Control Registers, Debug Registers, and MSRs"')).toMatchObject({ kind: 'entry-failure', reason: 33 });
  });
});

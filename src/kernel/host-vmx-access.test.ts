// HostCpu.vmread/vmwrite in VMX root operation take a fast path (VmxUnit.hostVmread/hostVmwrite: the operands as
// values, no register staging, no decoded instruction). It must be the general path's result exactly: the value
// read, RFLAGS, the VMCS contents (VM-instruction error included), the fault raised, the diagnosis, the registers
// and RIP. These tests run the same random sequence of VMX accesses on two identical hosts, one on each path.
import { describe, expect, test } from 'vitest';
import fc from 'fast-check';
import { CpuFault } from '../machine/fault.ts';
import { VMCS_FIELDS } from '../vmx/fields.ts';
import type { VmxUnitImpl } from '../vmx/unit.ts';
import { AR } from '../x86/segments.ts';
import { CS } from '../x86/registers.ts';
import type { HostCpu } from './host-cpu.ts';
import { bootHost, enterVmx } from './testing/reference-vm.ts';

type Op =
  | { readonly kind: 'read'; readonly field: number; readonly mode: Mode }
  | { readonly kind: 'write'; readonly field: number; readonly value: bigint; readonly mode: Mode }
  | { readonly kind: 'vmclear' }
  | { readonly kind: 'vmptrld' }
  | { readonly kind: 'vmxoff' };
/** The state an access runs in: normal, CPL 3 (#GP), compatibility mode (#UD). */
type Mode = 'cpl0' | 'cpl3' | 'compat';

const ENCODINGS = VMCS_FIELDS.map((f) => f.encoding);
const field = fc.oneof(
  fc.constantFrom(...ENCODINGS),
  fc.integer({ min: 0, max: 0x7fff }),
  fc.integer({ min: 0, max: 0xffffffff }),
);
const value = fc.oneof(fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }), fc.bigInt({ min: 0n, max: 0xffffffffn }), fc.constant(0n));
const mode = fc.constantFrom<Mode>('cpl0', 'cpl0', 'cpl0', 'cpl0', 'cpl3', 'compat');
const op: fc.Arbitrary<Op> = fc.oneof(
  { weight: 10, arbitrary: fc.record({ kind: fc.constant('read' as const), field, mode }) },
  { weight: 10, arbitrary: fc.record({ kind: fc.constant('write' as const), field, value, mode }) },
  { weight: 1, arbitrary: fc.constant({ kind: 'vmclear' as const }) },
  { weight: 1, arbitrary: fc.constant({ kind: 'vmptrld' as const }) },
  { weight: 1, arbitrary: fc.constant({ kind: 'vmxoff' as const }) },
);

/** A host in VMX root operation with a current VMCS, its HostCpu on one path or the other. */
function host(fast: boolean) {
  const h = bootHost({ model: 'skylake-i5-6300u' });
  const cpu = h.kernel.cpu();
  cpu.useFastVmAccess = fast;
  const { vmcsPa } = enterVmx(h, cpu);
  // Some non-zero register contents, so that a path which clobbers or leaks them is seen.
  cpu.writeGpr('rax', 0x1122334455667788n);
  cpu.writeGpr('rbx', 0x99aabbccddeeff00n);
  return { cpu, vmcsPa };
}

/** Run one op; everything observable afterwards. */
function apply(cpu: HostCpu, vmcsPa: bigint, o: Op): unknown {
  const lp = cpu.lp;
  const unit = lp.vmx as VmxUnitImpl;
  let result: unknown;
  const savedAr = lp.segAr[CS]!;
  const savedCpl = lp.cpl;
  try {
    if (o.kind === 'vmclear') cpu.vmclear(vmcsPa);
    else if (o.kind === 'vmptrld') cpu.vmptrld(vmcsPa);
    else if (o.kind === 'vmxoff') cpu.vmxoff();
    else {
      if (o.mode === 'cpl3') lp.setCpl(3);
      if (o.mode === 'compat') {
        lp.segAr[CS] = savedAr & ~AR.L;
        lp.updateMode();
      }
      result = o.kind === 'read' ? cpu.vmread(o.field) : cpu.vmwrite(o.field, o.value);
    }
  } catch (e) {
    if (!(e instanceof CpuFault)) throw e;
    result = { fault: e.vector, code: e.errorCode, message: e.message };
  } finally {
    lp.segAr[CS] = savedAr;
    lp.setCpl(savedCpl);
    lp.updateMode();
  }
  return {
    result,
    rflags: cpu.rflags(),
    rip: lp.getReg('rip'),
    gprs: Array.from({ length: 16 }, (_, i) => lp.getGpr(i)),
    vmcs: unit.state.current === null ? null : Array.from(unit.state.current.data),
    seq: unit.state.instructionSeq,
    diagnosis: unit.diagnosisOfLastInstruction(),
  };
}

describe('HostCpu VMREAD/VMWRITE: the fast path is the general path', () => {
  test('same outcomes over random sequences of accesses (fields that exist, do not, are read-only; CPL 3, compatibility mode, no current VMCS, VMXOFF)', () => {
    fc.assert(
      fc.property(fc.array(op, { minLength: 1, maxLength: 40 }), (ops) => {
        const a = host(true);
        const b = host(false);
        for (const o of ops) expect(apply(a.cpu, a.vmcsPa, o)).toEqual(apply(b.cpu, b.vmcsPa, o));
      }),
      { seed: 0x8e71, numRuns: 40 },
    );
  });

  test('the fast path is the one taken in VMX root operation', () => {
    const a = host(true);
    const unit = a.cpu.lp.vmx as VmxUnitImpl;
    let calls = 0;
    const original = unit.hostVmread.bind(unit);
    unit.hostVmread = (f: number) => (calls++, original(f));
    a.cpu.vmread(VMCS_FIELDS[0]!.encoding);
    expect(calls).toBe(1);
  });
});

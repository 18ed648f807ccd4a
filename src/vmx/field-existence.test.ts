// Which VMCS fields exist, against the SDM, on every CPU model, through the real instructions (RDMSR, VMREAD):
//  - a feature field exists exactly when a control that uses it may be 1 (SDM Vol. 3D, "Field Encoding in VMCS":
//    each row says "exists only on processors that support the 1-setting of …");
//  - IA32_VMX_VMCS_ENUM bits 9:1 equal the highest index of any field the processor supports
//    (SDM Vol. 3D, "VMCS Enumeration").
// The table below is written from the SDM appendix for this test, independently of src/vmx/vmcs-support.ts.
import { describe, expect, it } from 'vitest';
import { CPU_MODELS } from '../machine/cpu-model.ts';
import { bootHost, kitCurrentVmcs, kitVmxOn } from '../kernel/testing/reference-vm.ts';
import type { HostCpu } from '../kernel/host-cpu.ts';
import { VMCS_FIELDS } from './fields.ts';

type Ctl = 'pin' | 'proc' | 'proc2' | 'proc3' | 'exit' | 'entry' | 'vmfunc';
/** [control field, bit]: the field exists if any of these may be 1. */
type Condition = readonly [Ctl, number];
const SDM_FEATURE_FIELDS: readonly { enc: number; name: string; when: readonly Condition[] }[] = [
  { enc: 0x0000, name: 'virtual-processor identifier', when: [['proc2', 5]] },
  { enc: 0x0002, name: 'posted-interrupt notification vector', when: [['pin', 7]] },
  { enc: 0x0004, name: 'EPTP index', when: [['proc2', 18]] },
  { enc: 0x0006, name: 'HLAT prefix size', when: [['proc3', 1]] },
  { enc: 0x0008, name: 'last PID-pointer index', when: [['proc3', 4]] },
  { enc: 0x0810, name: 'guest interrupt status', when: [['proc2', 9]] },
  { enc: 0x0812, name: 'PML index', when: [['proc2', 17]] },
  { enc: 0x0814, name: 'guest UINV', when: [['entry', 23]] },
  { enc: 0x200e, name: 'PML address', when: [['proc2', 17]] },
  { enc: 0x2012, name: 'virtual-APIC address', when: [['proc', 21]] },
  { enc: 0x2014, name: 'APIC-access address', when: [['proc2', 0]] },
  { enc: 0x2016, name: 'posted-interrupt descriptor address', when: [['pin', 7]] },
  { enc: 0x2018, name: 'VM-function controls', when: [['proc2', 13]] },
  { enc: 0x201a, name: 'EPT pointer', when: [['proc2', 1]] },
  { enc: 0x201c, name: 'EOI-exit bitmap 0', when: [['proc2', 9]] },
  { enc: 0x2022, name: 'EOI-exit bitmap 3', when: [['proc2', 9]] },
  { enc: 0x2024, name: 'EPTP-list address', when: [['vmfunc', 0]] },
  { enc: 0x2026, name: 'VMREAD-bitmap address', when: [['proc2', 14]] },
  { enc: 0x2028, name: 'VMWRITE-bitmap address', when: [['proc2', 14]] },
  { enc: 0x202a, name: 'virtualization-exception information address', when: [['proc2', 18]] },
  { enc: 0x202c, name: 'XSS-exiting bitmap', when: [['proc2', 20]] },
  { enc: 0x202e, name: 'ENCLS-exiting bitmap', when: [['proc2', 15]] },
  { enc: 0x2030, name: 'sub-page-permission-table pointer', when: [['proc2', 23]] },
  { enc: 0x2032, name: 'TSC multiplier', when: [['proc2', 25]] },
  { enc: 0x2034, name: 'tertiary processor-based VM-execution controls', when: [['proc', 17]] },
  { enc: 0x2036, name: 'ENCLV-exiting bitmap', when: [['proc2', 28]] },
  { enc: 0x2038, name: 'low PASID directory address', when: [['proc2', 21]] },
  { enc: 0x203e, name: 'PCONFIG-exiting bitmap', when: [['proc2', 27]] },
  { enc: 0x2040, name: 'HLAT pointer', when: [['proc3', 1]] },
  { enc: 0x2042, name: 'PID-pointer table address', when: [['proc3', 4]] },
  { enc: 0x2044, name: 'secondary VM-exit controls', when: [['exit', 31]] },
  { enc: 0x2400, name: 'guest-physical address', when: [['proc2', 1]] },
  { enc: 0x2804, name: 'guest IA32_PAT', when: [['exit', 18], ['entry', 14]] },
  { enc: 0x2806, name: 'guest IA32_EFER', when: [['exit', 20], ['entry', 15]] },
  { enc: 0x2808, name: 'guest IA32_PERF_GLOBAL_CTRL', when: [['entry', 13]] },
  { enc: 0x280a, name: 'guest PDPTE0', when: [['proc2', 1]] },
  { enc: 0x2810, name: 'guest PDPTE3', when: [['proc2', 1]] },
  { enc: 0x2812, name: 'guest IA32_BNDCFGS', when: [['entry', 16], ['exit', 23]] },
  { enc: 0x2814, name: 'guest IA32_RTIT_CTL', when: [['entry', 18], ['exit', 25]] },
  { enc: 0x2816, name: 'guest IA32_LBR_CTL', when: [['entry', 21], ['exit', 26]] },
  { enc: 0x2818, name: 'guest IA32_PKRS', when: [['entry', 22]] },
  { enc: 0x2c00, name: 'host IA32_PAT', when: [['exit', 19]] },
  { enc: 0x2c02, name: 'host IA32_EFER', when: [['exit', 21]] },
  { enc: 0x2c04, name: 'host IA32_PERF_GLOBAL_CTRL', when: [['exit', 12]] },
  { enc: 0x2c06, name: 'host IA32_PKRS', when: [['exit', 29]] },
  { enc: 0x401c, name: 'TPR threshold', when: [['proc', 21]] },
  { enc: 0x401e, name: 'secondary processor-based VM-execution controls', when: [['proc', 31]] },
  { enc: 0x4020, name: 'PLE_Gap', when: [['proc2', 10]] },
  { enc: 0x4022, name: 'PLE_Window', when: [['proc2', 10]] },
  { enc: 0x4024, name: 'instruction-timeout control', when: [['proc2', 31]] },
  { enc: 0x482e, name: 'VMX-preemption timer value', when: [['pin', 6]] },
  { enc: 0x6828, name: 'guest IA32_S_CET', when: [['entry', 20]] },
  { enc: 0x682a, name: 'guest SSP', when: [['entry', 20]] },
  { enc: 0x6c18, name: 'host IA32_S_CET', when: [['exit', 28]] },
  { enc: 0x6c1a, name: 'host SSP', when: [['exit', 28]] },
];

/** May each control be 1, read with RDMSR as software would (TRUE MSRs when BASIC[55] = 1). */
function allowedOne(cpu: HostCpu): (c: Condition) => boolean {
  const rd = (msr: number): bigint => { try { return cpu.rdmsr(msr); } catch { return 0n; } };
  const trueCtls = ((rd(0x480) >> 55n) & 1n) === 1n;
  const hi = (msr: number) => Number(rd(msr) >> 32n);
  const proc = hi(trueCtls ? 0x48e : 0x482);
  const proc2 = (proc >>> 31) & 1 ? hi(0x48b) : 0;
  const fields: Record<Ctl, bigint> = {
    pin: BigInt(hi(trueCtls ? 0x48d : 0x481)),
    proc: BigInt(proc >>> 0),
    proc2: BigInt(proc2 >>> 0),
    proc3: (proc >>> 17) & 1 ? rd(0x492) : 0n,
    exit: BigInt(hi(trueCtls ? 0x48f : 0x483) >>> 0),
    entry: BigInt(hi(trueCtls ? 0x490 : 0x484) >>> 0),
    vmfunc: (proc2 >>> 13) & 1 ? rd(0x491) : 0n,
  };
  return ([ctl, bit]) => ((fields[ctl] >> BigInt(bit)) & 1n) === 1n;
}

/** VMREAD succeeds (the field exists) or fails with VMfailValid(12) (it does not). */
function exists(cpu: HostCpu, enc: number): boolean {
  cpu.vmread(enc);
  const zf = (cpu.rflags() >> 6n) & 1n;
  if (zf === 0n) return true;
  expect(cpu.vmread(0x4400), `VMREAD ${enc.toString(16)}H failed with an error other than 12`).toBe(12n);
  return false;
}

describe.each(CPU_MODELS.map((m) => m.name))('%s', (model) => {
  const host = bootHost({ model });
  const cpu = host.kernel.cpu();
  kitVmxOn(host.kernel, cpu);
  kitCurrentVmcs(host.kernel, cpu);
  const allowed = allowedOne(cpu);

  it('a feature field exists exactly when a control that uses it may be 1', () => {
    for (const f of SDM_FEATURE_FIELDS) {
      const want = f.when.some(allowed);
      expect(exists(cpu, f.enc), `${f.name} (${f.enc.toString(16).toUpperCase()}H): its control(s) ${JSON.stringify(f.when)} ${want ? 'may' : 'may not'} be 1`).toBe(want);
    }
  });

  it('IA32_VMX_VMCS_ENUM[9:1] is the highest index of the fields that exist', () => {
    const encodings = new Set([...VMCS_FIELDS.map((f) => f.encoding), ...SDM_FEATURE_FIELDS.map((f) => f.enc)]);
    let highest = 0;
    for (const enc of encodings) if ((enc & 1) === 0 && exists(cpu, enc)) highest = Math.max(highest, (enc >> 1) & 0x1ff);
    expect(Number((cpu.rdmsr(0x48a) >> 1n) & 0x1ffn)).toBe(highest);
  });
});

// Every CPU model's capability MSRs decoded and checked for internal consistency; decoded values compared with
// the `decoded` section the data files carry (computed independently when the data was collected).
import { describe, expect, it } from 'vitest';
import { CPU_MODELS, getCpuModel } from '../machine/cpu-model.ts';
import {
  COURSE_CPU_MODELS, allowedSettings, controlsAllowed, decodeCapabilities, type AllowedSettings,
} from './capabilities.ts';
import { DEFAULT1, VMX_CONTROL } from './controls.ts';
import { EPT_VPID_CAP } from './msrs.ts';
import { CR0, CR4 } from '../x86/control-registers.ts';
import { SLOT_FIELDS } from './vmcs.ts';
import { supportedSlots } from './vmcs-support.ts';
import { encodingIndex } from './fields.ts';
import { readFileSync, readdirSync } from 'node:fs';

const subset = (a: number, b: number) => (a & ~b) >>> 0 === 0;
const models = CPU_MODELS.map((m) => [m.name, m] as const);

describe.each(models)('%s', (_name, model) => {
  const caps = decodeCapabilities(model.msrs);
  const pairs: [string, AllowedSettings | null][] = [
    ['pin', caps.pinbased], ['proc', caps.procbased], ['exit', caps.exit], ['entry', caps.entry],
    ['true pin', caps.truePinbased], ['true proc', caps.trueProcbased], ['true exit', caps.trueExit],
    ['true entry', caps.trueEntry], ['proc2', caps.procbased2],
  ];

  it('allowed-0 ⊆ allowed-1 for every control MSR', () => {
    for (const [name, a] of pairs) if (a !== null) expect(subset(a.allowed0, a.allowed1), name).toBe(true);
  });
  it('FIXED0 ⊆ FIXED1 for CR0 and CR4, and the fixed bits the SDM guarantees', () => {
    expect(caps.cr0Fixed0 & ~caps.cr0Fixed1).toBe(0n);
    expect(caps.cr4Fixed0 & ~caps.cr4Fixed1).toBe(0n);
    // PE, NE and PG must be 1 in VMX operation; CR4.VMXE must be 1. See SDM Vol. 3D, "VMX-Fixed Bits in CR0/CR4".
    const cr0Must = BigInt((CR0.PE | CR0.NE | CR0.PG) >>> 0);
    expect(caps.cr0Fixed0 & cr0Must).toBe(cr0Must);
    expect(caps.cr4Fixed0 & BigInt(CR4.VMXE)).toBe(BigInt(CR4.VMXE));
  });
  it('non-TRUE MSRs report every default1 bit as must-be-1; TRUE ones may only relax default1 bits', () => {
    const nonTrue = { pin: caps.pinbased, proc: caps.procbased, exit: caps.exit, entry: caps.entry };
    const tru = { pin: caps.truePinbased, proc: caps.trueProcbased, exit: caps.trueExit, entry: caps.trueEntry };
    for (const k of ['pin', 'proc', 'exit', 'entry'] as const) {
      expect(subset(DEFAULT1[k], nonTrue[k].allowed0), `${k} default1 ⊆ allowed-0`).toBe(true);
      const t = tru[k];
      expect(t === null).toBe(!caps.basic.trueCtls);
      if (t === null) continue;
      expect(subset(t.allowed0, nonTrue[k].allowed0), `TRUE ${k} allowed-0 ⊆ non-TRUE allowed-0`).toBe(true);
      expect(subset((nonTrue[k].allowed0 & ~t.allowed0) >>> 0, DEFAULT1[k]), `${k} relaxes only default1 bits`).toBe(true);
      expect(t.allowed1 >>> 0, `TRUE ${k} allowed-1 equals non-TRUE`).toBe(nonTrue[k].allowed1 >>> 0);
    }
  });
  it('secondary controls have no default1 bits; dependent features are coherent', () => {
    if (caps.procbased2 !== null) expect(caps.procbased2.allowed0).toBe(0);
    const a1 = caps.effective.proc2.allowed1;
    if (a1 & VMX_CONTROL.SECONDARY_EXEC_UNRESTRICTED_GUEST) expect(a1 & VMX_CONTROL.SECONDARY_EXEC_ENABLE_EPT).not.toBe(0);
    if (a1 & VMX_CONTROL.SECONDARY_EXEC_ENABLE_EPT) {
      expect(caps.eptVpidCap & EPT_VPID_CAP.VMX_EPT_PAGE_WALK_4_BIT).not.toBe(0n);
      expect(caps.eptVpidCap & (EPT_VPID_CAP.VMX_EPTP_WB_BIT | EPT_VPID_CAP.VMX_EPTP_UC_BIT)).not.toBe(0n);
    }
  });
  it('BASIC: revision bit 31 clear, region size 1..4096, memory type UC or WB', () => {
    expect(caps.basic.revisionId).toBeGreaterThan(0);
    expect(caps.basic.revisionId).toBeLessThan(2 ** 31);
    expect(caps.basic.regionSize).toBeGreaterThan(0);
    expect(caps.basic.regionSize).toBeLessThanOrEqual(4096);
    expect([0, 6]).toContain(caps.basic.memoryType);
  });
  it('a default control setting (allowed-0 bits only) is legal', () => {
    for (const [, a] of pairs) if (a !== null) expect(controlsAllowed(a.allowed0, a)).toBe(true);
  });
  it('VMCS_ENUM: covers every field that exists on all VMX processors; the index is one the field table uses', () => {
    const slots = supportedSlots(caps);
    const baseMax = Math.max(...SLOT_FIELDS.filter((f, i) => slots[i] === 1 && !REQUIRES_FEATURE.has(f.name)).map((f) => encodingIndex(f.encoding)));
    expect(caps.vmcsEnumMaxIndex).toBeGreaterThanOrEqual(baseMax);
    expect(SLOT_FIELDS.some((f) => encodingIndex(f.encoding) === caps.vmcsEnumMaxIndex)).toBe(true);
  });
  it('VMCS_ENUM: the feature fields above the reported maximum are the ones real CPUs are known to under-report', () => {
    // Real processors report a VMCS_ENUM maximum below the index of some fields they support (measured values,
    // kept as they are). These are the only fields where the data shows that.
    const slots = supportedSlots(caps);
    const above = SLOT_FIELDS.filter((f, i) => slots[i] === 1 && encodingIndex(f.encoding) > caps.vmcsEnumMaxIndex).map((f) => f.name);
    for (const n of above) expect(KNOWN_UNDER_REPORTED, n).toContain(n);
  });
});

import { FIELD_REQUIREMENTS } from './vmcs-support.ts';
const REQUIRES_FEATURE = new Set(Object.keys(FIELD_REQUIREMENTS));
const KNOWN_UNDER_REPORTED = ['VMX_PREEMPTION_TIMER_VALUE', 'TSC_MULTIPLIER', 'TERTIARY_VM_EXEC_CONTROL'];

describe('decoded values agree with the data files\' independent `decoded` sections', () => {
  const dir = new URL('../../data/cpu-models/', import.meta.url);
  const files = readdirSync(dir).filter((f) => f.endsWith('.json'));
  it.each(files)('%s', (file) => {
    const json = JSON.parse(readFileSync(new URL(file, dir), 'utf8')) as { name: string; decoded?: Record<string, unknown> };
    const d = json.decoded;
    if (d === undefined) return;
    const caps = decodeCapabilities(getCpuModel(json.name)!.msrs);
    expect(caps.basic.revisionId).toBe(Number(d.vmcs_revision_id));
    expect(caps.basic.regionSize).toBe(d.vmcs_region_size);
    expect(caps.basic.trueCtls ? 1 : 0).toBe(d.true_ctls);
    expect(caps.basic.insOutsInfo ? 1 : 0).toBe(d.ins_outs_exit_info);
    expect(caps.vmcsEnumMaxIndex).toBe(Number(d.vmcs_enum_max_index));
    expect(caps.pinbased.allowed1).toBe(Number(d.pin_allowed1));
    const misc = d.misc as Record<string, number> | undefined;
    if (misc !== undefined) {
      expect(caps.misc.preemptionTimerRate).toBe(misc.preempt_rate);
      expect(caps.misc.cr3TargetCount).toBe(misc.cr3_targets);
      expect(caps.misc.maxMsrListEntries).toBe(misc.msr_list_max);
      expect(caps.misc.vmwriteAnyField ? 1 : 0).toBe(misc.vmwrite_any);
    }
  });
});

describe('course CPU models cover the cases the chapters need', () => {
  const caps = COURSE_CPU_MODELS.map((n) => decodeCapabilities(getCpuModel(n)!.msrs));
  it('all exist and there are at least five', () => {
    expect(caps.length).toBeGreaterThanOrEqual(5);
  });
  it('one with EPT but without EPT accessed/dirty flags (EPT_VPID_CAP[21] = 0)', () => {
    expect(caps.some((c) => (c.effective.proc2.allowed1 & VMX_CONTROL.SECONDARY_EXEC_ENABLE_EPT) !== 0 && (c.eptVpidCap & EPT_VPID_CAP.VMX_EPT_AD_BIT) === 0n)).toBe(true);
  });
  it('one without unrestricted guest', () => {
    expect(caps.some((c) => (c.effective.proc2.allowed1 & VMX_CONTROL.SECONDARY_EXEC_UNRESTRICTED_GUEST) === 0)).toBe(true);
  });
  it('one without the TRUE_* MSRs, and one with them', () => {
    expect(caps.some((c) => !c.basic.trueCtls)).toBe(true);
    expect(caps.some((c) => c.basic.trueCtls)).toBe(true);
  });
});

describe('allowedSettings', () => {
  it('splits an MSR into allowed-0 (31:0) and allowed-1 (63:32)', () => {
    expect(allowedSettings(0xFFF9FFFE0401E172n)).toEqual({ allowed0: 0x0401E172, allowed1: 0xFFF9FFFE });
  });
  it('controlsAllowed rejects a missing must-be-1 bit and a forbidden bit', () => {
    const a = { allowed0: 0x16, allowed1: 0x7f };
    expect(controlsAllowed(0x16, a)).toBe(true);
    expect(controlsAllowed(0x12, a)).toBe(false);
    expect(controlsAllowed(0x96, a)).toBe(false);
  });
});

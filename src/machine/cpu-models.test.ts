import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { CPUID_FEATURE, decodeSignature } from '../x86/cpuid.ts';
import { CPU_MODELS, DEFAULT_CPU_MODEL, getCpuModel, hasFeature, type CpuModel } from './cpu-model.ts';

// The test reads the data files with fs (the module itself must not), so it notices a file the module forgot.
const DATA_DIR = join(import.meta.dirname, '../../data/cpu-models');
interface RawFile {
  name: string;
  cpu: string;
  brand_string?: string | null;
  msrs: Record<string, string>;
  cpuid?: { '1'?: { eax: string; ecx: string; edx: string }; '80000008.eax'?: string; phys_addr_bits?: number };
}
const RAW: RawFile[] = readdirSync(DATA_DIR)
  .filter((f) => f.endsWith('.json'))
  .map((f) => JSON.parse(readFileSync(join(DATA_DIR, f), 'utf8')) as RawFile);

const CR4_SMXE = 14;
const CR4_PCIDE = 17;

function brandOf(m: CpuModel): string {
  let s = '';
  for (const leaf of [0x80000002, 0x80000003, 0x80000004]) {
    const r = m.cpuid(leaf, 0);
    for (const v of [r.eax, r.ebx, r.ecx, r.edx]) for (let i = 0; i < 4; i++) s += String.fromCharCode((v >>> (8 * i)) & 0xff);
  }
  return s.slice(0, s.indexOf('\0'));
}

describe('CPU models', () => {
  it('loads every data file exactly once', () => {
    expect(CPU_MODELS.map((m) => m.name).sort()).toEqual(RAW.map((r) => r.name).sort());
    for (const r of RAW) expect(getCpuModel(r.name)?.name).toBe(r.name);
    expect(getCpuModel('no-such-cpu')).toBeUndefined();
  });

  it('keeps every MSR value from the file', () => {
    for (const r of RAW) {
      const m = getCpuModel(r.name)!;
      expect(m.msrs.size).toBe(Object.keys(r.msrs).length);
      for (const [k, v] of Object.entries(r.msrs)) expect(m.msrs.get(parseInt(k, 16))).toBe(BigInt(v));
    }
  });

  it('reports GenuineIntel and a max basic leaf that covers leaves 1 and 7', () => {
    for (const m of CPU_MODELS) {
      const r = m.cpuid(0, 0);
      const vendor = [r.ebx, r.edx, r.ecx].map((v) => String.fromCharCode(v & 0xff, (v >>> 8) & 0xff, (v >>> 16) & 0xff, v >>> 24)).join('');
      expect(vendor).toBe('GenuineIntel');
      expect(r.eax).toBeGreaterThanOrEqual(7);
      expect(m.cpuid(0x80000000, 0).eax).toBeGreaterThanOrEqual(0x80000008);
    }
  });

  it('returns the measured leaf-1 signature and decodes family/model as the data file names them', () => {
    for (const r of RAW) {
      const m = getCpuModel(r.name)!;
      expect(m.family).toBe(6);
      if (r.cpuid?.['1'] !== undefined) expect(m.cpuid(1, 0).eax).toBe(Number(r.cpuid['1'].eax));
      const named = /model 0x([0-9A-Fa-f]+)/.exec(r.cpu);
      if (named !== null) expect(m.model).toBe(parseInt(named[1]!, 16));
    }
    // Supplemented models: display models as Linux's intel-family.h lists them.
    expect(getCpuModel('skylake-x-i9-9980xe')!.model).toBe(0x55); // INTEL_FAM6_SKYLAKE_X
    expect(getCpuModel('bochs-corei7-skylake-x')!.model).toBe(0x55);
    expect(getCpuModel('westmere-clarkdale-i5-650')!.model).toBe(0x25); // INTEL_FAM6_WESTMERE
    expect(getCpuModel('westmere-arrandale-370m')!.model).toBe(0x25);
    expect(getCpuModel('wolfdale-core2-e7500')!.model).toBe(0x17); // INTEL_FAM6_CORE2_PENRYN
    expect(getCpuModel('coffeelake-i7-8750h')!.stepping).toBe(10);
  });

  it('decodes signatures with the display-family and display-model rules', () => {
    expect(decodeSignature(0x000906ea)).toMatchObject({ family: 6, model: 0x9e, stepping: 0xa });
    expect(decodeSignature(0x00000f29)).toMatchObject({ family: 0xf, model: 2, stepping: 9 }); // Pentium 4
    expect(decodeSignature(0x00100f00)).toMatchObject({ family: 0x10, model: 0 }); // extended family added for 0FH
    expect(decodeSignature(0x00100600)).toMatchObject({ family: 6 }); // ... and ignored otherwise
    expect(decodeSignature(0x00010543)).toMatchObject({ family: 5, model: 4, stepping: 3 }); // ext. model ignored
    expect(decodeSignature(0x00020f10)).toMatchObject({ family: 0xf, model: 0x21 }); // ... used for 0FH
    expect(decodeSignature(0x00003000).type).toBe(3);
  });

  it('round-trips the brand string through leaves 80000002H-80000004H', () => {
    for (const r of RAW) {
      const m = getCpuModel(r.name)!;
      expect(brandOf(m)).toBe(m.brand);
      if (r.brand_string) expect(m.brand).toBe(r.brand_string);
      expect(m.brand.length).toBeGreaterThan(10);
    }
  });

  it('reports VMX (CPUID.1:ECX[5]) on every model and no hypervisor', () => {
    for (const m of CPU_MODELS) {
      expect(hasFeature(m, CPUID_FEATURE.VMX)).toBe(true);
      expect(hasFeature(m, CPUID_FEATURE.HYPERVISOR)).toBe(false);
      expect(m.cpuid(1, 0).ecx & (1 << 5)).toBe(1 << 5);
    }
  });

  it('reports MAXPHYADDR in CPUID.80000008H:EAX[7:0] as measured', () => {
    for (const r of RAW) {
      const m = getCpuModel(r.name)!;
      const eax = m.cpuid(0x80000008, 0).eax;
      expect(eax & 0xff).toBe(m.maxPhysAddr);
      expect((eax >>> 8) & 0xff).toBe(48);
      if (r.cpuid?.phys_addr_bits !== undefined) {
        expect(m.maxPhysAddr).toBe(r.cpuid.phys_addr_bits);
        expect(eax).toBe(Number(r.cpuid['80000008.eax']));
      }
      expect(m.maxPhysAddr).toBeGreaterThanOrEqual(36);
    }
  });

  it('measured SMX and PCID flags agree with IA32_VMX_CR4_FIXED1 (and supplements follow it)', () => {
    for (const m of CPU_MODELS) {
      const fixed1 = Number(m.msrs.get(0x489)!);
      expect(hasFeature(m, CPUID_FEATURE.SMX)).toBe(((fixed1 >>> CR4_SMXE) & 1) === 1);
      expect(hasFeature(m, CPUID_FEATURE.PCID)).toBe(((fixed1 >>> CR4_PCIDE) & 1) === 1);
    }
  });

  it('has long mode, NX and LAHF everywhere; RDTSCP not on Core 2; SYSCALL only in 64-bit mode', () => {
    for (const m of CPU_MODELS) {
      expect(hasFeature(m, CPUID_FEATURE.LM)).toBe(true);
      expect(hasFeature(m, CPUID_FEATURE.NX)).toBe(true);
      expect(hasFeature(m, CPUID_FEATURE.LAHF_LM)).toBe(true);
      expect(hasFeature(m, CPUID_FEATURE.SYSCALL)).toBe(false);
      expect(hasFeature(m, CPUID_FEATURE.SYSCALL, { in64BitMode: true })).toBe(true);
      expect(hasFeature(m, CPUID_FEATURE.RDTSCP)).toBe(m.model !== 0x17);
    }
    expect(hasFeature(DEFAULT_CPU_MODEL, CPUID_FEATURE.PDPE1GB)).toBe(true);
    expect(hasFeature(getCpuModel('penryn-core2-duo-t9600')!, CPUID_FEATURE.PDPE1GB)).toBe(false);
  });

  it('leaf 7 reflects the CR4 bits the model allows (SMEP from Ivy Bridge on, not on Nehalem)', () => {
    expect(hasFeature(getCpuModel('ivybridge-i5-3320m')!, CPUID_FEATURE.SMEP)).toBe(true);
    expect(hasFeature(getCpuModel('nehalem-lynnfield-i7-870')!, CPUID_FEATURE.SMEP)).toBe(false);
    expect(hasFeature(DEFAULT_CPU_MODEL, CPUID_FEATURE.SMAP)).toBe(true);
    expect(DEFAULT_CPU_MODEL.cpuid(7, 1)).toEqual({ eax: 0, ebx: 0, ecx: 0, edx: 0 });
  });

  it('patches the per-processor bits: initial APIC ID, OSXSAVE from CR4, APIC from IA32_APIC_BASE', () => {
    const m = DEFAULT_CPU_MODEL;
    expect(m.cpuid(1, 0, { apicId: 3 }).ebx >>> 24).toBe(3);
    expect((m.cpuid(1, 0, { logicalProcessorCount: 4 }).ebx >>> 16) & 0xff).toBe(4);
    expect((m.cpuid(1, 0).ebx >>> 8) & 0xff).toBe(8); // 64-byte CLFLUSH line
    expect(hasFeature(m, CPUID_FEATURE.OSXSAVE)).toBe(false);
    expect(hasFeature(m, CPUID_FEATURE.OSXSAVE, { cr4: 1 << 18 })).toBe(true);
    expect(hasFeature(m, CPUID_FEATURE.APIC)).toBe(true);
    expect(hasFeature(m, CPUID_FEATURE.APIC, { apicGlobalEnable: false })).toBe(false);
    // Everything else in leaf 1 ECX/EDX is the measured value.
    const raw = RAW.find((r) => r.name === m.name)!.cpuid!['1']!;
    const dynamic = (1 << 27) | (1 << 24); // OSXSAVE (from CR4) and TSC-deadline (not modeled)
    expect((m.cpuid(1, 0).ecx & ~dynamic) >>> 0).toBe((Number(raw.ecx) & ~dynamic) >>> 0);
    expect(m.cpuid(1, 0).edx).toBe(Number(raw.edx));
    expect(m.measured && m.cpuidMeasured).toBe(true);
  });

  it('leaf 0BH reports the x2APIC ID and a topology consistent with CPUID.1:EBX[23:16]', () => {
    const m = DEFAULT_CPU_MODEL;
    for (const count of [1, 2, 3, 4, 6, 8]) {
      const lp = { apicId: count - 1, logicalProcessorCount: count };
      const smt = m.cpuid(0xb, 0, lp);
      const core = m.cpuid(0xb, 1, lp);
      expect(smt.edx).toBe(count - 1);
      expect((smt.ecx >>> 8) & 0xff).toBe(1); // level type SMT
      expect((core.ecx >>> 8) & 0xff).toBe(2); // level type core
      expect(core.ebx).toBe(count);
      // The core level's shift covers every APIC ID in the package, as the leaf-1 field does.
      expect(1 << core.eax).toBe((m.cpuid(1, 0, lp).ebx >>> 16) & 0xff);
      expect(1 << core.eax).toBeGreaterThanOrEqual(count);
      const past = m.cpuid(0xb, 2, lp);
      expect([past.eax, past.ebx, (past.ecx >>> 8) & 0xff, past.ecx & 0xff]).toEqual([0, 0, 0, 2]);
    }
  });

  it('XSAVE leaf sizes follow XCR0', () => {
    const m = DEFAULT_CPU_MODEL; // Skylake: x87, SSE, AVX
    expect(m.cpuid(0xd, 0)).toEqual({ eax: 7, ebx: 576, ecx: 832, edx: 0 });
    expect(m.cpuid(0xd, 0, { xcr0: 7 }).ebx).toBe(832);
    expect(m.cpuid(0xd, 2)).toEqual({ eax: 256, ebx: 576, ecx: 0, edx: 0 });
    expect(getCpuModel('atom-silvermont-celeron-n2830')!.cpuid(0xd, 0).eax).toBe(0); // no XSAVE
  });

  it('answers a leaf above the maximum with the highest basic leaf', () => {
    const m = DEFAULT_CPU_MODEL;
    const maxBasic = m.cpuid(0, 0).eax;
    const maxExt = m.cpuid(0x80000000, 0).eax;
    fc.assert(
      fc.property(
        fc.oneof(fc.integer({ min: maxBasic + 1, max: 0x7fffffff }), fc.integer({ min: maxExt + 1, max: 0xffffffff })),
        fc.integer({ min: 0, max: 3 }),
        (leaf, sub) => {
          expect(m.cpuid(leaf, sub)).toEqual(m.cpuid(maxBasic, sub));
        },
      ),
    );
    expect(m.cpuid(0x40000000, 0)).toEqual(m.cpuid(maxBasic, 0)); // no hypervisor leaves on bare metal
  });
});

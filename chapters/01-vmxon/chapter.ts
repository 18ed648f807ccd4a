import type { Chapter } from '../../src/cli/chapter.ts';

const chapter: Chapter = {
  number: 1,
  slug: '01-vmxon',
  title: 'The VMXON region',
  summary: 'Detect VMX, unlock it in IA32_FEATURE_CONTROL, satisfy the CR0/CR4 fixed bits, allocate the VMXON region, and switch VMX operation on and off.',
  objectives: [
    'Detect VMX with CPUID.1:ECX[5] and enable it in IA32_FEATURE_CONTROL without ever writing a locked MSR.',
    'Apply the IA32_VMX_CR0/CR4_FIXED0/1 rules and set CR4.VMXE before VMXON.',
    'Choose an allocator for the VMXON region (aligned, physically contiguous) and initialise its revision identifier.',
    'Execute VMXON and VMXOFF, read their outcome from RFLAGS, and clean up on every failure path.',
  ],
  exercises: [
    {
      id: 'detect',
      title: 'Detect VMX and enable it in IA32_FEATURE_CONTROL',
      file: 'detect.ts',
      test: 'detect.test.ts',
      points: 10,
      hints: [
        '`cpu.cpuid(1).ecx` holds the feature flags; VMX is bit 5. IA32_FEATURE_CONTROL is MSR 3AH (`MSR_IA32_FEATURE_CONTROL`).',
        'If bit 0 (lock) is set, you may not write the MSR: just check bit 2 (VMX outside SMX). If it is clear, set bits 0 and 2 and write it.',
        'Keep the other bits: `cpu.wrmsr(MSR_IA32_FEATURE_CONTROL, fc | BigInt(FEAT_CTL_LOCKED | FEAT_CTL_VMX_ENABLED_OUTSIDE_SMX))`.',
      ],
    },
    {
      id: 'fixed-bits',
      title: 'CR0 and CR4 fixed bits',
      file: 'fixed-bits.ts',
      test: 'fixed-bits.test.ts',
      points: 10,
      hints: [
        'FIXED0: a 1 means "must be 1". FIXED1: a 0 means "must be 0". Everything else is yours to choose.',
        'adjustForVmx is one line: OR in FIXED0, then AND with FIXED1.',
        'In enterVmxCrState: `cpu.writeCr4(adjustForVmx(cpu.readCr4() | X86_CR4_VMXE, f0, f1))` with the CR4 FIXED MSRs (488H, 489H), then the same for CR0 (486H, 487H).',
      ],
    },
    {
      id: 'vmxon-region',
      title: 'The VMXON region',
      file: 'vmxon-region.ts',
      test: 'vmxon-region.test.ts',
      points: 15,
      hints: [
        'The region must be 4-KByte aligned and physically contiguous, and VMXON takes its *physical* address. vmalloc gives neither.',
        '`k.get_zeroed_page()` gives an aligned, zeroed, direct-mapped page; `k.virt_to_phys(va)` gives its physical address; free it with `k.free_page(va)`.',
        'Write the whole first dword: `k.write32(va, revisionId(basic))` where revisionId is `Number(basic & 0x7fffffffn)` — bit 31 must end up 0 even if the memory held garbage.',
      ],
    },
    {
      id: 'vmxon',
      title: 'VMXON and VMXOFF',
      file: 'vmxon.ts',
      test: 'vmxon.test.ts',
      points: 15,
      hints: [
        'Order: cpuHasVmx → enableFeatureControl → enterVmxCrState → allocVmxonRegion → cpu.vmxon(pa) → check cpu.rflags().',
        'VMXON fails with VMfailInvalid (CF = 1): there is no current VMCS to hold an error number. On failure free the region and put CR4.VMXE back as it was.',
        'vmxOff: `cpu.vmxoff()`, then clear CR4.VMXE (it is a fixed-1 bit only while in VMX operation), then free the region.',
      ],
    },
  ],
};

export default chapter;

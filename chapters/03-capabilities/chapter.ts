import type { Chapter } from '../../src/cli/chapter.ts';

const chapter: Chapter = {
  number: 3,
  slug: '03-capabilities',
  title: 'Capability MSRs: what this CPU allows',
  summary: 'Read the VMX capability MSRs: adjust control fields with the TRUE_* MSRs and report what the CPU cannot do, legal CR0/CR4 values, IA32_VMX_MISC and IA32_VMX_EPT_VPID_CAP.',
  objectives: [
    'Read a control capability MSR as two halves: allowed-0 settings (bits 31:0) and allowed-1 settings (bits 63:32).',
    'Tell fixed-0, fixed-1 and flexible controls apart, and say what "default1" means.',
    'Use the TRUE_* capability MSRs when IA32_VMX_BASIC[55] = 1, and know why they exist.',
    'Adjust a control field so that every impossible request is reported (which bit, which MSR), never silently dropped.',
    'Compute legal CR0/CR4 values from the FIXED0/FIXED1 MSRs, including the "unrestricted guest" exception for PE and PG.',
    'Decode IA32_VMX_MISC and IA32_VMX_EPT_VPID_CAP, and build an EPTP that uses only what the processor supports.',
    'Never read a capability MSR the processor does not implement: know which MSRs exist when.',
  ],
  exercises: [
    {
      id: 'adjust-controls',
      title: 'Adjusting VMX controls with the TRUE_* MSRs',
      file: 'adjust-controls.ts',
      test: 'adjust-controls.test.ts',
      points: 20,
      hints: [
        'Split the capability MSR: allowed0 = Number(v & 0xffffffffn) is the must-be-1 mask, allowed1 = Number(v >> 32n) the may-be-1 mask. Which MSR? IA32_VMX_BASIC bit 55 decides, except for proc2, which has no TRUE variant.',
        'Errors: wanted & ~allowed1 are the bits "not allowed to be 1"; unwanted & allowed0 are the bits that "must be 1". For proc2, first check bit 63 of IA32_VMX_PROCBASED_CTLS: without it IA32_VMX_PROCBASED_CTLS2 does not exist and reading it raises #GP.',
        'If there are no errors, the value is (wanted | allowed0) >>> 0. Otherwise list one { bit, name, msr, reason } per offending bit in bit order; the name comes from controlsOf(kind).find((c) => c.bit === bit)?.name (leave it out when undefined).',
      ],
    },
    {
      id: 'cr-fixed-bits',
      title: 'CR0 and CR4 in VMX operation',
      file: 'fixed-bits.ts',
      test: 'fixed-bits.test.ts',
      points: 15,
      hints: [
        'A FIXED0 bit that is 1 must be 1 in the register; a FIXED1 bit that is 0 must be 0. Everything else is up to you. Both MSRs are 64 bits: keep CR values as bigint.',
        'adjust: (cr | fixed0) & fixed1. With "unrestricted guest", PE (bit 0) and PG (bit 31) are exempt: take those two bits from the input unchanged.',
        'check: mustBe1 = fixed0 & ~cr, mustBe0 = cr & ~fixed1 (minus exempt bits); walk bits 0–63 and emit { register, bit, name, reason, msr } with msr = FIXED0 for "must be 1" and FIXED1 for "must be 0". Name: `CR0.${CR0_BIT_NAMES[bit]}` or `CR0 bit ${bit}`.',
      ],
    },
    {
      id: 'misc-ept',
      title: 'IA32_VMX_MISC, EPT/VPID capabilities and the EPTP',
      file: 'misc-ept.ts',
      test: 'misc-ept.test.ts',
      points: 15,
      hints: [
        'A field of bits hi:lo is Number((v >> BigInt(lo)) & ((1n << BigInt(hi - lo + 1)) - 1n)). The MSR-list size is 512 * (N + 1), not N.',
        'IA32_VMX_EPT_VPID_CAP exists only if PROCBASED_CTLS bit 63 is 1 and PROCBASED_CTLS2 bit 33 (enable EPT) or bit 37 (enable VPID) is 1. Check before you read it, and return null otherwise. makeEptp needs "enable EPT" itself, not just the MSR.',
        'EPTP = pml4 | memory type (6 if EPT_VPID_CAP bit 14, else 0 if bit 8) | (3 << 3) for a 4-level walk | (1 << 6) only if A/D is wanted and EPT_VPID_CAP bit 21 is 1. Check alignment (pml4 & 0xfff) and pml4 >> MAXPHYADDR before building it.',
      ],
    },
  ],
};

export default chapter;

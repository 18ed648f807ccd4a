import type { Chapter } from '../../src/cli/chapter.ts';

const chapter: Chapter = {
  number: 2,
  slug: '02-vmcs',
  title: 'The VMCS',
  summary: 'Field encodings, the VMCS region and its life cycle (VMCLEAR, VMPTRLD, VMPTRST), and typed VMREAD/VMWRITE wrappers that name every error.',
  objectives: [
    'Decode a VMCS field encoding into access type, index, type and width, and reject reserved encodings.',
    'Allocate a VMCS region and make it current with VMCLEAR then VMPTRLD, checking each step.',
    'Wrap VMREAD/VMWRITE so results are typed by field width and failures carry a named error number.',
    'Follow the VMCS life cycle: clear, active, current, launched — and the errors each wrong step gives.',
  ],
  exercises: [
    {
      id: 'field-encoding',
      title: 'Field encodings',
      file: 'field-encoding.ts',
      test: 'field-encoding.test.ts',
      points: 10,
      hints: [
        'Bit 0 is the access type, bits 9:1 the index, bits 11:10 the type, bits 14:13 the width. Bits 31:15 and bit 12 must be 0.',
        'The width values are not in size order: 0 = 16-bit, 1 = 64-bit, 2 = 32-bit, 3 = natural-width.',
        'A "high" access (bit 0 = 1) only exists for 64-bit fields: 0x2001 is IO_BITMAP_A_HIGH, but 0x681f names nothing.',
      ],
    },
    {
      id: 'vmcs-region',
      title: 'The VMCS region and VMPTRLD',
      file: 'vmcs-region.ts',
      test: 'vmcs-region.test.ts',
      points: 15,
      hints: [
        'A VMCS region looks like a VMXON region: revision identifier in bits 30:0, and bit 31 (the shadow-VMCS indicator) clear. Reuse your chapter 1 code.',
        'VMCLEAR first (launch state clear, data flushed to memory), then VMPTRLD; check vmxStatusOf after each and stop at the first failure.',
        'VMPTRST stores FFFFFFFF_FFFFFFFFH when there is no current VMCS.',
      ],
    },
    {
      id: 'vmx-access',
      title: 'Typed VMREAD/VMWRITE and error numbers',
      file: 'vmx-access.ts',
      test: 'vmx-access.test.ts',
      points: 20,
      hints: [
        'vmxStatusOf: CF = 1 → VMfailInvalid; ZF = 1 → VMfailValid, and read VM_INSTRUCTION_ERROR (VMCS.VM_INSTRUCTION_ERROR) at once.',
        '`fieldByName(field)` gives the encoding, width and `high`. 64-bit and natural-width full accesses return bigint; everything else Number(raw & 0xffffffffn).',
        'vmwrite: `cpu.vmwrite(encoding, typeof value === "bigint" ? value : BigInt(value >>> 0))`, then `return vmxStatusOf(cpu)`.',
      ],
    },
  ],
};

export default chapter;

import type { Chapter } from '../../src/cli/chapter.ts';

const chapter: Chapter = {
  number: 0,
  slug: '00-machine',
  title: 'The machine you will virtualize',
  summary: 'Registers, RFLAGS, segment selectors and descriptors, the calling convention, and how VMX instructions report.',
  objectives: [
    'Name the general-purpose, control and flag registers a hypervisor saves, loads and checks.',
    'Build and take apart a segment selector, and clear RPL/TI the way VMCS host fields require.',
    'Decode a GDT descriptor and convert it to the VMCS access-rights format.',
    'Read VMsucceed, VMfailInvalid and VMfailValid from RFLAGS, and know which one carries an error number.',
    'Say where the System V AMD64 convention puts arguments, return values and callee-saved registers.',
  ],
  exercises: [
    {
      id: 'selector',
      title: 'Segment selectors',
      file: 'selector.ts',
      test: 'selector.test.ts',
      points: 10,
      hints: [
        'A selector is three fields packed into 16 bits: index in bits 15:3, TI in bit 2, RPL in bits 1:0.',
        'makeSelector is (index << 3) | (ti << 2) | rpl; parseSelector undoes it with >> and &.',
        'hostSelector must clear bits 2:0 only: `selector & ~7`. Masking with 0xF8 also clears index bits 8 and up.',
      ],
    },
    {
      id: 'descriptor',
      title: 'GDT descriptors and access rights',
      file: 'descriptor.ts',
      test: 'descriptor.test.ts',
      points: 15,
      hints: [
        'Shift the 64-bit value right and mask: `(raw >> 40n) & 0xfn` is the type field. Convert with Number() at the end.',
        'base = bits 39:16 | bits 63:56 << 24; limit = bits 15:0 | bits 51:48 << 16. Use `>>> 0` to keep a 32-bit base positive.',
        'With G = 1 the effective limit is limit * 4096 + 4095. Access rights: (raw >> 40) & 0xff, plus ((raw >> 52) & 0xf) << 12.',
      ],
    },
    {
      id: 'vmx-status',
      title: 'VMX outcomes in RFLAGS',
      file: 'vmx-status.ts',
      test: 'vmx-status.test.ts',
      points: 10,
      hints: [
        'The SDM pseudocode for VMfailInvalid, VMfailValid and VMsucceed writes the same six flags: CF, PF, AF, ZF, SF, OF.',
        'Check CF first: CF = 1 is VMfailInvalid, otherwise ZF = 1 is VMfailValid, otherwise VMsucceed.',
        'rflagsAfter: clear the six flags with `rflags & ~(CF|PF|AF|ZF|SF|OF)`, then OR in CF or ZF.',
      ],
    },
    {
      id: 'calling-convention',
      title: 'The System V AMD64 calling convention',
      file: 'calling-convention.ts',
      test: 'calling-convention.test.ts',
      points: 10,
      hints: [
        'Integer arguments: RDI, RSI, RDX, RCX, R8, R9 — then the stack, in order.',
        'On entry RSP points at the return address, so the 7th argument is at [rsp+8], the 8th at [rsp+16].',
        'Callee-saved: RBX, RBP, RSP, R12–R15. Return values: RAX, and RDX:RAX for 128 bits.',
      ],
    },
  ],
};

export default chapter;

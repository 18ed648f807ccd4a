// Bit layouts drawn on the reference site (as ```bits fences, see site/.vitepress/markdown/bits.ts).
// Each row is `hi[:lo] | label | meaning`; unnamed bits are reserved. `qualificationFor` ties a
// layout to the exit reasons whose qualificationSdm names the same SDM section, so the exit-reason
// table can link to the picture.

export interface Layout {
  /** Anchor on the layouts page. */
  id: string;
  title: string;
  width: 32 | 64;
  /** Caption of the figure (register name and where it lives). */
  caption: string;
  /** Citation in the `[[SDM …]]` form. */
  sdm: string;
  /** SDM section title of an exit-qualification format this layout draws. */
  qualificationFor?: string;
  rows: string;
  /** Prose after the figure. */
  notes?: string;
}

export const LAYOUTS: readonly Layout[] = [
  {
    id: 'ia32-vmx-basic',
    title: 'IA32_VMX_BASIC',
    width: 64,
    caption: 'IA32_VMX_BASIC (MSR 480H): basic VMX information',
    sdm: '[[SDM 3D: Basic VMX Information]]',
    rows: `
30:0  | revision id    | VMCS revision identifier: write it to the first dword of the VMXON region and of each VMCS
31    | 0              | Always 0 (bit 31 of a region's first dword is the shadow-VMCS indicator)
44:32 | region size    | Bytes to allocate for the VMXON region and each VMCS (at most 4096)
48    | 32-bit PA      | 1: the addresses of the VMXON region, VMCSs and structures they reference are limited to 32 bits
49    | dual monitor   | 1: dual-monitor treatment of SMIs and SMM is supported
53:50 | memory type    | Memory type for VMCS and structures it references: 0 = UC, 6 = WB
54    | INS/OUTS info  | 1: VM exits due to INS/OUTS report instruction information
55    | TRUE ctls      | 1: the IA32_VMX_TRUE_*_CTLS MSRs exist and report which default-1 controls may be 0
56    | no err code    | 1: VM entry may inject a hardware exception with or without an error code, regardless of vector
`,
    notes:
      'Allocate the size from bits 44:32, write bits 30:0 into the region, and use the TRUE_* MSRs for allowed-0 ' +
      'settings when bit 55 is 1 — the capability-MSR page shows these fields decoded for each CPU model.',
  },
  {
    id: 'interruption-information',
    title: 'VM-entry interruption-information field',
    width: 32,
    caption: 'VM_ENTRY_INTR_INFO_FIELD (encoding 4016H): the event to inject on VM entry',
    sdm: '[[SDM 3C: VM-Entry Controls for Event Injection]]',
    rows: `
7:0   | vector         | Vector of the interrupt or exception
10:8  | type           | 0 external interrupt, 2 NMI, 3 hardware exception, 4 software interrupt, 5 privileged software exception, 6 software exception, 7 other event
11    | deliver error  | 1: push the error code from VM_ENTRY_EXCEPTION_ERROR_CODE
30:12 | reserved       | Must be 0
31    | valid          | 1: inject this event on the next VM entry (cleared by every VM exit)
`,
    notes:
      'INT3 (#BP) and INTO (#OF) are software exceptions (type 6) and need VM_ENTRY_INSTRUCTION_LEN; INT1 (ICEBP) is a ' +
      'privileged software exception (type 5); INT n is a software interrupt (type 4). The VM-exit ' +
      'interruption-information and IDT-vectoring information fields use the same layout.',
  },
  {
    id: 'eptp',
    title: 'EPT pointer (EPTP)',
    width: 64,
    caption: 'EPT_POINTER (encoding 201AH): where the EPT paging structures start, and how to walk them',
    sdm: '[[SDM 3C: Extended-Page-Table Pointer (EPTP)]]',
    rows: `
2:0   | memory type    | Memory type for accessing the EPT paging structures: 0 = UC or 6 = WB (as IA32_VMX_EPT_VPID_CAP allows)
5:3   | walk length - 1 | EPT page-walk length minus 1: 3 for a 4-level walk
6     | A/D enable     | 1: enable accessed and dirty flags (only if IA32_VMX_EPT_VPID_CAP[21] = 1)
7     | SSS enforce    | 1: enforce access rights for supervisor shadow-stack pages
11:8  | reserved       | Must be 0
51:12 | PML4 address   | Physical address of the 4-KByte-aligned EPT PML4 table (bits above MAXPHYADDR must be 0)
63:52 | reserved       | Must be 0
`,
  },
  {
    id: 'qual-cr-access',
    title: 'Exit qualification for control-register accesses',
    width: 64,
    caption: 'EXIT_QUALIFICATION for exit reason 28 (EXIT_REASON_CR_ACCESS)',
    sdm: '[[SDM 3C: Exit Qualification for Control-Register Accesses]]',
    qualificationFor: 'Exit Qualification for Control-Register Accesses',
    rows: `
3:0   | CR number      | Number of the control register (0 for CLTS and LMSW)
5:4   | access type    | 0 = MOV to CR, 1 = MOV from CR, 2 = CLTS, 3 = LMSW
6     | LMSW operand   | LMSW operand type: 0 = register, 1 = memory
11:8  | GPR            | For MOV CR: the general-purpose register (0 RAX, 1 RCX, 2 RDX, 3 RBX, 4 RSP, 5 RBP, 6 RSI, 7 RDI, 8–15 R8–R15)
31:16 | LMSW source    | For LMSW: the source data; 0 otherwise
63:32 | reserved       | Cleared to 0
`,
  },
  {
    id: 'qual-io',
    title: 'Exit qualification for I/O instructions',
    width: 64,
    caption: 'EXIT_QUALIFICATION for exit reason 30 (EXIT_REASON_IO_INSTRUCTION)',
    sdm: '[[SDM 3C: Exit Qualification for I/O Instructions]]',
    qualificationFor: 'Exit Qualification for I/O Instructions',
    rows: `
2:0   | size - 1       | Size of access: 0 = 1 byte, 1 = 2 bytes, 3 = 4 bytes
3     | direction      | 0 = OUT, 1 = IN
4     | string         | 1: INS or OUTS
5     | REP            | 1: REP prefixed
6     | operand        | 0 = port in DX, 1 = immediate port
31:16 | port           | Port number
63:32 | reserved       | Cleared to 0
`,
  },
  {
    id: 'qual-mov-dr',
    title: 'Exit qualification for MOV DR',
    width: 64,
    caption: 'EXIT_QUALIFICATION for exit reason 29 (EXIT_REASON_DR_ACCESS)',
    sdm: '[[SDM 3C: Exit Qualification for MOV DR]]',
    qualificationFor: 'Exit Qualification for MOV DR',
    rows: `
2:0   | DR number      | Number of the debug register
4     | direction      | 0 = MOV to DR, 1 = MOV from DR
11:8  | GPR            | The general-purpose register (same numbering as for CR accesses)
63:12 | reserved       | Cleared to 0
`,
  },
  {
    id: 'qual-ept-violation',
    title: 'Exit qualification for EPT violations',
    width: 64,
    caption: 'EXIT_QUALIFICATION for exit reason 48 (EXIT_REASON_EPT_VIOLATION); the address is in GUEST_PHYSICAL_ADDRESS',
    sdm: '[[SDM 3C: Exit Qualification for EPT Violations]]',
    qualificationFor: 'Exit Qualification for EPT Violations',
    rows: `
0     | read           | The access was a data read
1     | write          | The access was a data write
2     | fetch          | The access was an instruction fetch
3     | readable       | The guest-physical address was readable (AND of bit 0 of the EPT entries)
4     | writable       | … writable (AND of bit 1)
5     | executable     | … executable (AND of bit 2; supervisor-mode when mode-based execute control is on)
6     | user exec      | … executable for user-mode linear addresses (mode-based execute control)
7     | GLA valid      | GUEST_LINEAR_ADDRESS is valid
8     | GLA translated | 1: the access was to the translation of a linear address; 0: to a paging-structure entry
9     | linear U/S     | With advanced EPT-violation information and bit 7 = 1: 1 = user-mode linear address
10    | linear R/W     | … 1 = the linear address is writable
11    | linear XD      | … 1 = the linear address is execute-disable
12    | NMI unblocking | NMI unblocking due to IRET
13    | shadow stack   | The access was a shadow-stack access
14    | supervisor SS  | Supervisor shadow-stack page (with supervisor shadow-stack control)
15    | paging verify  | Guest-paging verification
16    | asynchronous   | The access was asynchronous to instruction execution (e.g. a trace-address write)
`,
  },
];

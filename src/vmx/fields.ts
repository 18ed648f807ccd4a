// The VMCS field table: every field of SDM Vol. 3D, Appendix "Field Encoding in VMCS", with its Linux name.
//
// One table, everything derived: the CPU's VMREAD/VMWRITE, the learner's typed wrappers, the reference site and
// the tests all read these entries. Groups follow the SDM appendix (width first, then area), so a reader finds a
// field where the manual puts it. Each group states its width and type; a test re-derives both from the encoding.
// See SDM Vol. 3C, "Component Encoding" and Vol. 3D, "Field Encoding in VMCS".

/** Width of a field, encoded in bits 14:13 of its encoding. */
export type VmcsWidth = '16' | '32' | '64' | 'natural';
/** Area of a field, encoded in bits 11:10: control, VM-exit information (read-only data), guest state, host state. */
export type VmcsType = 'control' | 'exit-info' | 'guest' | 'host';

export interface VmcsField {
  /** Linux name (arch/x86/include/asm/vmx.h, enum vmcs_field); 64-bit fields also have a NAME_HIGH entry. */
  readonly name: VmcsFieldName;
  readonly encoding: number;
  readonly width: VmcsWidth;
  readonly type: VmcsType;
  /** VM-exit information fields are read-only: VMWRITE gives error 13 unless IA32_VMX_MISC[29] = 1. */
  readonly readOnly: boolean;
  /** The HIGH access (access type 1) of a 64-bit field: bits 63:32 as a 32-bit value. */
  readonly high: boolean;
  readonly description: string;
  /** SDM section that defines the field, by title, e.g. `SDM Vol. 3C, "Guest Register State"`. */
  readonly sdm: string;
  /** SDM-defined field that Linux 6.1's enum vmcs_field does not name; named as kvm-unit-tests names it. */
  readonly supplementary?: true;
}

// ---------------------------------------------------------------------------------------------------------------
// Component encoding. See SDM Vol. 3C, "Component Encoding".
// ---------------------------------------------------------------------------------------------------------------

/** Bit 0: access type (0 = full, 1 = high; high is only legal for 64-bit fields). */
export const ENC_ACCESS_HIGH = 1 << 0;
/** Bits 9:1: index within the (width, type) group. */
export const ENC_INDEX_SHIFT = 1;
export const ENC_INDEX_MASK = 0x1ff;
/** Bits 11:10: type. */
export const ENC_TYPE_SHIFT = 10;
export const ENC_TYPE_MASK = 0x3;
/** Bit 12 is reserved and must be 0. */
export const ENC_RESERVED_BIT12 = 1 << 12;
/** Bits 14:13: width. */
export const ENC_WIDTH_SHIFT = 13;
export const ENC_WIDTH_MASK = 0x3;
/** Bits 31:15 are reserved and must be 0. */
export const ENC_RESERVED_HIGH = 0xffff8000;

/** Type and width codes in the order the SDM numbers them (type 0 = control, width 0 = 16-bit, …). */
export const ENC_TYPES: readonly VmcsType[] = ['control', 'exit-info', 'guest', 'host'];
export const ENC_WIDTHS: readonly VmcsWidth[] = ['16', '64', '32', 'natural'];

export interface DecodedEncoding {
  readonly accessType: 'full' | 'high';
  readonly index: number;
  readonly type: VmcsType;
  readonly width: VmcsWidth;
  /** True when a reserved bit (12 or 31:15) is set — such an encoding names no field. */
  readonly reservedBitsSet: boolean;
}

export function encodingAccessType(enc: number): 'full' | 'high' {
  return (enc & ENC_ACCESS_HIGH) !== 0 ? 'high' : 'full';
}
export function encodingIndex(enc: number): number {
  return (enc >>> ENC_INDEX_SHIFT) & ENC_INDEX_MASK;
}
export function encodingType(enc: number): VmcsType {
  return ENC_TYPES[(enc >>> ENC_TYPE_SHIFT) & ENC_TYPE_MASK]!;
}
export function encodingWidth(enc: number): VmcsWidth {
  return ENC_WIDTHS[(enc >>> ENC_WIDTH_SHIFT) & ENC_WIDTH_MASK]!;
}

/** Split a 32-bit field encoding into its components. */
export function decodeEncoding(enc: number): DecodedEncoding {
  const e = enc >>> 0;
  return {
    accessType: encodingAccessType(e),
    index: encodingIndex(e),
    type: encodingType(e),
    width: encodingWidth(e),
    reservedBitsSet: (e & (ENC_RESERVED_BIT12 | ENC_RESERVED_HIGH)) !== 0,
  };
}

/** Build an encoding from its components (the inverse of decodeEncoding for encodings without reserved bits). */
export function encodeField(c: { accessType: 'full' | 'high'; index: number; type: VmcsType; width: VmcsWidth }): number {
  return (
    ((ENC_WIDTHS.indexOf(c.width) << ENC_WIDTH_SHIFT) |
      (ENC_TYPES.indexOf(c.type) << ENC_TYPE_SHIFT) |
      ((c.index & ENC_INDEX_MASK) << ENC_INDEX_SHIFT) |
      (c.accessType === 'high' ? ENC_ACCESS_HIGH : 0)) >>>
    0
  );
}

// ---------------------------------------------------------------------------------------------------------------
// The table, grouped as in the SDM appendix. Each row: [Linux name, encoding, description, defining SDM section].
// Rows marked 'supp' are SDM fields Linux 6.1 does not name (names from kvm-unit-tests).
// ---------------------------------------------------------------------------------------------------------------

const V3C = (title: string) => `SDM Vol. 3C, "${title}"`;

const VPID = 'Virtual-Processor Identifier (VPID)';
const APICV = 'Controls for APIC Virtualization';
const GRS = 'Guest Register State';
const GNRS = 'Guest Non-Register State';
const HOST = 'Host-State Area';
const PROC = 'Processor-Based VM-Execution Controls';
const EXIT_MSR = 'VM-Exit Controls for MSRs';
const ENTRY_MSR = 'VM-Entry Controls for MSRs';
const EVENT_INJ = 'VM-Entry Controls for Event Injection';
const BASIC_INFO = 'Basic VM-Exit Information';
const VECTORED = 'Information for VM Exits Due to Vectored Events';
const DURING_DELIVERY = 'Information for VM Exits That Occur During Event Delivery';
const INSN_INFO = 'Information for VM Exits Due to Instruction Execution';

const RAW_GROUPS = [
  {
    width: '16', type: 'control', appendix: '16-Bit Control Fields',
    rows: [
      ['VIRTUAL_PROCESSOR_ID', 0x0000, 'Virtual-processor identifier (VPID); tags TLB entries of the guest', VPID],
      ['POSTED_INTR_NV', 0x0002, 'Posted-interrupt notification vector', APICV],
      ['EPTP_IDX', 0x0004, 'EPTP index (used by EPTP switching and #VE)', 'Controls for Virtualization Exceptions', 'supp'],
      ['LAST_PID_POINTER_INDEX', 0x0008, 'Last PID-pointer index (IPI virtualization)', APICV],
    ],
  },
  {
    width: '16', type: 'guest', appendix: '16-Bit Guest-State Fields',
    rows: [
      ['GUEST_ES_SELECTOR', 0x0800, 'Guest ES selector', GRS],
      ['GUEST_CS_SELECTOR', 0x0802, 'Guest CS selector', GRS],
      ['GUEST_SS_SELECTOR', 0x0804, 'Guest SS selector', GRS],
      ['GUEST_DS_SELECTOR', 0x0806, 'Guest DS selector', GRS],
      ['GUEST_FS_SELECTOR', 0x0808, 'Guest FS selector', GRS],
      ['GUEST_GS_SELECTOR', 0x080a, 'Guest GS selector', GRS],
      ['GUEST_LDTR_SELECTOR', 0x080c, 'Guest LDTR selector', GRS],
      ['GUEST_TR_SELECTOR', 0x080e, 'Guest TR selector', GRS],
      ['GUEST_INTR_STATUS', 0x0810, 'Guest interrupt status (RVI in bits 7:0, SVI in bits 15:8)', GNRS],
      ['GUEST_PML_INDEX', 0x0812, 'PML index: next entry of the page-modification log', GNRS],
    ],
  },
  {
    width: '16', type: 'host', appendix: '16-Bit Host-State Fields',
    rows: [
      ['HOST_ES_SELECTOR', 0x0c00, 'Host ES selector (RPL and TI must be 0)', HOST],
      ['HOST_CS_SELECTOR', 0x0c02, 'Host CS selector (RPL and TI must be 0; not null)', HOST],
      ['HOST_SS_SELECTOR', 0x0c04, 'Host SS selector (RPL and TI must be 0)', HOST],
      ['HOST_DS_SELECTOR', 0x0c06, 'Host DS selector (RPL and TI must be 0)', HOST],
      ['HOST_FS_SELECTOR', 0x0c08, 'Host FS selector (RPL and TI must be 0)', HOST],
      ['HOST_GS_SELECTOR', 0x0c0a, 'Host GS selector (RPL and TI must be 0)', HOST],
      ['HOST_TR_SELECTOR', 0x0c0c, 'Host TR selector (RPL and TI must be 0; not null)', HOST],
    ],
  },
  {
    width: '64', type: 'control', appendix: '64-Bit Control Fields',
    rows: [
      ['IO_BITMAP_A', 0x2000, 'Address of I/O bitmap A (ports 0000H–7FFFH)', 'I/O-Bitmap Addresses'],
      ['IO_BITMAP_B', 0x2002, 'Address of I/O bitmap B (ports 8000H–FFFFH)', 'I/O-Bitmap Addresses'],
      ['MSR_BITMAP', 0x2004, 'Address of the 4-KByte MSR bitmaps', 'MSR-Bitmap Address'],
      ['VM_EXIT_MSR_STORE_ADDR', 0x2006, 'VM-exit MSR-store address', EXIT_MSR],
      ['VM_EXIT_MSR_LOAD_ADDR', 0x2008, 'VM-exit MSR-load address', EXIT_MSR],
      ['VM_ENTRY_MSR_LOAD_ADDR', 0x200a, 'VM-entry MSR-load address', ENTRY_MSR],
      ['VMCS_EXEC_PTR', 0x200c, 'Executive-VMCS pointer (dual-monitor treatment of SMM)', 'Executive-VMCS Pointer', 'supp'],
      ['PML_ADDRESS', 0x200e, 'PML address: the page-modification log', 'Control Field for Page-Modification Logging'],
      ['TSC_OFFSET', 0x2010, 'TSC offset added to guest RDTSC', 'Time-Stamp Counter Offset and Multiplier'],
      ['VIRTUAL_APIC_PAGE_ADDR', 0x2012, 'Virtual-APIC address', APICV],
      ['APIC_ACCESS_ADDR', 0x2014, 'APIC-access address', APICV],
      ['POSTED_INTR_DESC_ADDR', 0x2016, 'Posted-interrupt descriptor address', APICV],
      ['VM_FUNCTION_CONTROL', 0x2018, 'VM-function controls', 'VM-Function Controls'],
      ['EPT_POINTER', 0x201a, 'Extended-page-table pointer (EPTP)', 'Extended-Page-Table Pointer (EPTP)'],
      ['EOI_EXIT_BITMAP0', 0x201c, 'EOI-exit bitmap 0 (vectors 0–63)', APICV],
      ['EOI_EXIT_BITMAP1', 0x201e, 'EOI-exit bitmap 1 (vectors 64–127)', APICV],
      ['EOI_EXIT_BITMAP2', 0x2020, 'EOI-exit bitmap 2 (vectors 128–191)', APICV],
      ['EOI_EXIT_BITMAP3', 0x2022, 'EOI-exit bitmap 3 (vectors 192–255)', APICV],
      ['EPTP_LIST_ADDRESS', 0x2024, 'EPTP-list address (EPTP switching)', 'VM-Function Controls'],
      ['VMREAD_BITMAP', 0x2026, 'VMREAD-bitmap address (VMCS shadowing)', 'VMCS Shadowing Bitmap Addresses'],
      ['VMWRITE_BITMAP', 0x2028, 'VMWRITE-bitmap address (VMCS shadowing)', 'VMCS Shadowing Bitmap Addresses'],
      ['XSS_EXIT_BITMAP', 0x202c, 'XSS-exiting bitmap', 'XSS-Exiting Bitmap'],
      ['ENCLS_EXITING_BITMAP', 0x202e, 'ENCLS-exiting bitmap', 'ENCLS-Exiting Bitmap'],
      ['TSC_MULTIPLIER', 0x2032, 'TSC multiplier (TSC scaling)', 'Time-Stamp Counter Offset and Multiplier'],
      ['TERTIARY_VM_EXEC_CONTROL', 0x2034, 'Tertiary processor-based VM-execution controls', PROC],
      ['PID_POINTER_TABLE', 0x2042, 'PID-pointer table address (IPI virtualization)', APICV],
    ],
  },
  {
    width: '64', type: 'exit-info', appendix: '64-Bit Read-Only Data Field',
    rows: [['GUEST_PHYSICAL_ADDRESS', 0x2400, 'Guest-physical address (EPT violations and misconfigurations)', BASIC_INFO]],
  },
  {
    width: '64', type: 'guest', appendix: '64-Bit Guest-State Fields',
    rows: [
      ['VMCS_LINK_POINTER', 0x2800, 'VMCS link pointer (all ones unless VMCS shadowing is used)', GNRS],
      ['GUEST_IA32_DEBUGCTL', 0x2802, 'Guest IA32_DEBUGCTL', GRS],
      ['GUEST_IA32_PAT', 0x2804, 'Guest IA32_PAT', GRS],
      ['GUEST_IA32_EFER', 0x2806, 'Guest IA32_EFER', GRS],
      ['GUEST_IA32_PERF_GLOBAL_CTRL', 0x2808, 'Guest IA32_PERF_GLOBAL_CTRL', GRS],
      ['GUEST_PDPTR0', 0x280a, 'Guest PDPTE0 (PAE paging with EPT)', GNRS],
      ['GUEST_PDPTR1', 0x280c, 'Guest PDPTE1 (PAE paging with EPT)', GNRS],
      ['GUEST_PDPTR2', 0x280e, 'Guest PDPTE2 (PAE paging with EPT)', GNRS],
      ['GUEST_PDPTR3', 0x2810, 'Guest PDPTE3 (PAE paging with EPT)', GNRS],
      ['GUEST_BNDCFGS', 0x2812, 'Guest IA32_BNDCFGS', GRS],
      ['GUEST_IA32_RTIT_CTL', 0x2814, 'Guest IA32_RTIT_CTL', GRS],
    ],
  },
  {
    width: '64', type: 'host', appendix: '64-Bit Host-State Fields',
    rows: [
      ['HOST_IA32_PAT', 0x2c00, 'Host IA32_PAT', HOST],
      ['HOST_IA32_EFER', 0x2c02, 'Host IA32_EFER', HOST],
      ['HOST_IA32_PERF_GLOBAL_CTRL', 0x2c04, 'Host IA32_PERF_GLOBAL_CTRL', HOST],
    ],
  },
  {
    width: '32', type: 'control', appendix: '32-Bit Control Fields',
    rows: [
      ['PIN_BASED_VM_EXEC_CONTROL', 0x4000, 'Pin-based VM-execution controls', 'Pin-Based VM-Execution Controls'],
      ['CPU_BASED_VM_EXEC_CONTROL', 0x4002, 'Primary processor-based VM-execution controls', PROC],
      ['EXCEPTION_BITMAP', 0x4004, 'Exception bitmap: bit n set = exception n causes a VM exit', 'Exception Bitmap'],
      ['PAGE_FAULT_ERROR_CODE_MASK', 0x4006, 'Page-fault error-code mask', 'Exception Bitmap'],
      ['PAGE_FAULT_ERROR_CODE_MATCH', 0x4008, 'Page-fault error-code match', 'Exception Bitmap'],
      ['CR3_TARGET_COUNT', 0x400a, 'CR3-target count', 'CR3-Target Controls'],
      ['VM_EXIT_CONTROLS', 0x400c, 'Primary VM-exit controls', 'VM-Exit Controls'],
      ['VM_EXIT_MSR_STORE_COUNT', 0x400e, 'VM-exit MSR-store count', EXIT_MSR],
      ['VM_EXIT_MSR_LOAD_COUNT', 0x4010, 'VM-exit MSR-load count', EXIT_MSR],
      ['VM_ENTRY_CONTROLS', 0x4012, 'VM-entry controls', 'VM-Entry Controls'],
      ['VM_ENTRY_MSR_LOAD_COUNT', 0x4014, 'VM-entry MSR-load count', ENTRY_MSR],
      ['VM_ENTRY_INTR_INFO_FIELD', 0x4016, 'VM-entry interruption-information field', EVENT_INJ],
      ['VM_ENTRY_EXCEPTION_ERROR_CODE', 0x4018, 'VM-entry exception error code', EVENT_INJ],
      ['VM_ENTRY_INSTRUCTION_LEN', 0x401a, 'VM-entry instruction length', EVENT_INJ],
      ['TPR_THRESHOLD', 0x401c, 'TPR threshold', APICV],
      ['SECONDARY_VM_EXEC_CONTROL', 0x401e, 'Secondary processor-based VM-execution controls', PROC],
      ['PLE_GAP', 0x4020, 'PAUSE-loop exiting gap', 'Controls for PAUSE-Loop Exiting'],
      ['PLE_WINDOW', 0x4022, 'PAUSE-loop exiting window', 'Controls for PAUSE-Loop Exiting'],
      ['NOTIFY_WINDOW', 0x4024, 'Instruction-timeout control (notify window)', 'Instruction-Timeout Control'],
    ],
  },
  {
    width: '32', type: 'exit-info', appendix: '32-Bit Read-Only Data Fields',
    rows: [
      ['VM_INSTRUCTION_ERROR', 0x4400, 'VM-instruction error: why the last VMfailValid happened', 'VM-Instruction Error Field'],
      ['VM_EXIT_REASON', 0x4402, 'Exit reason (basic reason in bits 15:0, failed VM entry in bit 31)', BASIC_INFO],
      ['VM_EXIT_INTR_INFO', 0x4404, 'VM-exit interruption information', VECTORED],
      ['VM_EXIT_INTR_ERROR_CODE', 0x4406, 'VM-exit interruption error code', VECTORED],
      ['IDT_VECTORING_INFO_FIELD', 0x4408, 'IDT-vectoring information', DURING_DELIVERY],
      ['IDT_VECTORING_ERROR_CODE', 0x440a, 'IDT-vectoring error code', DURING_DELIVERY],
      ['VM_EXIT_INSTRUCTION_LEN', 0x440c, 'VM-exit instruction length (defined only for some exits)', INSN_INFO],
      ['VMX_INSTRUCTION_INFO', 0x440e, 'VM-exit instruction information', INSN_INFO],
    ],
  },
  {
    width: '32', type: 'guest', appendix: '32-Bit Guest-State Fields',
    rows: [
      ['GUEST_ES_LIMIT', 0x4800, 'Guest ES limit', GRS],
      ['GUEST_CS_LIMIT', 0x4802, 'Guest CS limit', GRS],
      ['GUEST_SS_LIMIT', 0x4804, 'Guest SS limit', GRS],
      ['GUEST_DS_LIMIT', 0x4806, 'Guest DS limit', GRS],
      ['GUEST_FS_LIMIT', 0x4808, 'Guest FS limit', GRS],
      ['GUEST_GS_LIMIT', 0x480a, 'Guest GS limit', GRS],
      ['GUEST_LDTR_LIMIT', 0x480c, 'Guest LDTR limit', GRS],
      ['GUEST_TR_LIMIT', 0x480e, 'Guest TR limit', GRS],
      ['GUEST_GDTR_LIMIT', 0x4810, 'Guest GDTR limit', GRS],
      ['GUEST_IDTR_LIMIT', 0x4812, 'Guest IDTR limit', GRS],
      ['GUEST_ES_AR_BYTES', 0x4814, 'Guest ES access rights', GRS],
      ['GUEST_CS_AR_BYTES', 0x4816, 'Guest CS access rights', GRS],
      ['GUEST_SS_AR_BYTES', 0x4818, 'Guest SS access rights', GRS],
      ['GUEST_DS_AR_BYTES', 0x481a, 'Guest DS access rights', GRS],
      ['GUEST_FS_AR_BYTES', 0x481c, 'Guest FS access rights', GRS],
      ['GUEST_GS_AR_BYTES', 0x481e, 'Guest GS access rights', GRS],
      ['GUEST_LDTR_AR_BYTES', 0x4820, 'Guest LDTR access rights', GRS],
      ['GUEST_TR_AR_BYTES', 0x4822, 'Guest TR access rights', GRS],
      ['GUEST_INTERRUPTIBILITY_INFO', 0x4824, 'Guest interruptibility state (STI, MOV-SS, SMI, NMI blocking)', GNRS],
      ['GUEST_ACTIVITY_STATE', 0x4826, 'Guest activity state (active, HLT, shutdown, wait-for-SIPI)', GNRS],
      ['GUEST_SMBASE', 0x4828, 'Guest SMBASE', GRS, 'supp'],
      ['GUEST_SYSENTER_CS', 0x482a, 'Guest IA32_SYSENTER_CS', GRS],
      ['VMX_PREEMPTION_TIMER_VALUE', 0x482e, 'VMX-preemption timer value', GNRS],
    ],
  },
  {
    width: '32', type: 'host', appendix: '32-Bit Host-State Field',
    rows: [['HOST_IA32_SYSENTER_CS', 0x4c00, 'Host IA32_SYSENTER_CS', HOST]],
  },
  {
    width: 'natural', type: 'control', appendix: 'Natural-Width Control Fields',
    rows: [
      ['CR0_GUEST_HOST_MASK', 0x6000, 'CR0 guest/host mask: set bits are owned by the host', 'Guest/Host Masks and Read Shadows for CR0 and CR4'],
      ['CR4_GUEST_HOST_MASK', 0x6002, 'CR4 guest/host mask: set bits are owned by the host', 'Guest/Host Masks and Read Shadows for CR0 and CR4'],
      ['CR0_READ_SHADOW', 0x6004, 'CR0 read shadow: what the guest reads for host-owned bits', 'Guest/Host Masks and Read Shadows for CR0 and CR4'],
      ['CR4_READ_SHADOW', 0x6006, 'CR4 read shadow: what the guest reads for host-owned bits', 'Guest/Host Masks and Read Shadows for CR0 and CR4'],
      ['CR3_TARGET_VALUE0', 0x6008, 'CR3-target value 0', 'CR3-Target Controls'],
      ['CR3_TARGET_VALUE1', 0x600a, 'CR3-target value 1', 'CR3-Target Controls'],
      ['CR3_TARGET_VALUE2', 0x600c, 'CR3-target value 2', 'CR3-Target Controls'],
      ['CR3_TARGET_VALUE3', 0x600e, 'CR3-target value 3', 'CR3-Target Controls'],
    ],
  },
  {
    width: 'natural', type: 'exit-info', appendix: 'Natural-Width Read-Only Data Fields',
    rows: [
      ['EXIT_QUALIFICATION', 0x6400, 'Exit qualification: details of the exit, by exit reason', BASIC_INFO],
      ['IO_RCX', 0x6402, 'I/O RCX (SMIs after I/O instructions)', INSN_INFO, 'supp'],
      ['IO_RSI', 0x6404, 'I/O RSI (SMIs after I/O instructions)', INSN_INFO, 'supp'],
      ['IO_RDI', 0x6406, 'I/O RDI (SMIs after I/O instructions)', INSN_INFO, 'supp'],
      ['IO_RIP', 0x6408, 'I/O RIP (SMIs after I/O instructions)', INSN_INFO, 'supp'],
      ['GUEST_LINEAR_ADDRESS', 0x640a, 'Guest-linear address (LMSW, INS/OUTS, some EPT violations)', BASIC_INFO],
    ],
  },
  {
    width: 'natural', type: 'guest', appendix: 'Natural-Width Guest-State Fields',
    rows: [
      ['GUEST_CR0', 0x6800, 'Guest CR0', GRS],
      ['GUEST_CR3', 0x6802, 'Guest CR3', GRS],
      ['GUEST_CR4', 0x6804, 'Guest CR4', GRS],
      ['GUEST_ES_BASE', 0x6806, 'Guest ES base', GRS],
      ['GUEST_CS_BASE', 0x6808, 'Guest CS base', GRS],
      ['GUEST_SS_BASE', 0x680a, 'Guest SS base', GRS],
      ['GUEST_DS_BASE', 0x680c, 'Guest DS base', GRS],
      ['GUEST_FS_BASE', 0x680e, 'Guest FS base', GRS],
      ['GUEST_GS_BASE', 0x6810, 'Guest GS base', GRS],
      ['GUEST_LDTR_BASE', 0x6812, 'Guest LDTR base', GRS],
      ['GUEST_TR_BASE', 0x6814, 'Guest TR base', GRS],
      ['GUEST_GDTR_BASE', 0x6816, 'Guest GDTR base', GRS],
      ['GUEST_IDTR_BASE', 0x6818, 'Guest IDTR base', GRS],
      ['GUEST_DR7', 0x681a, 'Guest DR7', GRS],
      ['GUEST_RSP', 0x681c, 'Guest RSP', GRS],
      ['GUEST_RIP', 0x681e, 'Guest RIP', GRS],
      ['GUEST_RFLAGS', 0x6820, 'Guest RFLAGS', GRS],
      ['GUEST_PENDING_DBG_EXCEPTIONS', 0x6822, 'Guest pending debug exceptions', GNRS],
      ['GUEST_SYSENTER_ESP', 0x6824, 'Guest IA32_SYSENTER_ESP', GRS],
      ['GUEST_SYSENTER_EIP', 0x6826, 'Guest IA32_SYSENTER_EIP', GRS],
      ['GUEST_S_CET', 0x6828, 'Guest IA32_S_CET', GRS, 'supp'],
    ],
  },
  {
    width: 'natural', type: 'host', appendix: 'Natural-Width Host-State Fields',
    rows: [
      ['HOST_CR0', 0x6c00, 'Host CR0', HOST],
      ['HOST_CR3', 0x6c02, 'Host CR3', HOST],
      ['HOST_CR4', 0x6c04, 'Host CR4', HOST],
      ['HOST_FS_BASE', 0x6c06, 'Host FS base', HOST],
      ['HOST_GS_BASE', 0x6c08, 'Host GS base', HOST],
      ['HOST_TR_BASE', 0x6c0a, 'Host TR base', HOST],
      ['HOST_GDTR_BASE', 0x6c0c, 'Host GDTR base', HOST],
      ['HOST_IDTR_BASE', 0x6c0e, 'Host IDTR base', HOST],
      ['HOST_IA32_SYSENTER_ESP', 0x6c10, 'Host IA32_SYSENTER_ESP', HOST],
      ['HOST_IA32_SYSENTER_EIP', 0x6c12, 'Host IA32_SYSENTER_EIP', HOST],
      ['HOST_RSP', 0x6c14, 'Host RSP', HOST],
      ['HOST_RIP', 0x6c16, 'Host RIP: where the CPU continues after a VM exit', HOST],
      ['HOST_S_CET', 0x6c18, 'Host IA32_S_CET', HOST, 'supp'],
    ],
  },
] as const;

/** A (width, type) group of fields, with the title of its table in the SDM appendix. */
export interface VmcsFieldGroup {
  readonly width: VmcsWidth;
  readonly type: VmcsType;
  readonly appendix: string;
}

/** The appendix table titles, one per (width, type) group. */
export const VMCS_FIELD_GROUPS: readonly VmcsFieldGroup[] = RAW_GROUPS.map(
  (g) => ({ width: g.width, type: g.type, appendix: g.appendix }),
);

type RawGroup = (typeof RAW_GROUPS)[number];
type RawRow = RawGroup['rows'][number];
type Names64 = Extract<RawGroup, { width: '64' }>['rows'][number][0];
type NamesWide = Extract<RawGroup, { width: '64' | 'natural' }>['rows'][number][0];

/** Names of the full fields (one per field; no NAME_HIGH). */
export type VmcsFullFieldName = RawRow[0];
/** Every field name, including NAME_HIGH for 64-bit fields. */
export type VmcsFieldName = VmcsFullFieldName | `${Names64}_HIGH`;

/**
 * The value type of a field at the learner-facing API: bigint for 64-bit and natural-width fields (full access),
 * number for 16-bit, 32-bit and HIGH accesses. See DESIGN.md, "The host/guest model".
 */
export type VmcsValue<N extends VmcsFieldName> = N extends NamesWide ? bigint : number;

function buildTable(): VmcsField[] {
  const out: VmcsField[] = [];
  for (const g of RAW_GROUPS) {
    for (const row of g.rows as readonly (readonly [string, number, string, string, 'supp'?])[]) {
      const [name, encoding, description, section, supp] = row;
      const base = {
        width: g.width,
        type: g.type,
        // The VM-exit information fields are the read-only data fields. See SDM Vol. 3C, "VMWRITE".
        readOnly: g.type === 'exit-info',
        sdm: V3C(section),
        ...(supp === 'supp' ? { supplementary: true as const } : {}),
      };
      // (The row types name every field; `name` is one of them.)
      out.push({ name: name as VmcsFullFieldName, encoding, high: false, description, ...base });
      // A 64-bit field has a second encoding (access type 1) for its upper 32 bits. See SDM Vol. 3C, "Component Encoding".
      if (g.width === '64') {
        out.push({ name: `${name}_HIGH` as VmcsFieldName, encoding: encoding | ENC_ACCESS_HIGH, high: true, description: `${description} (bits 63:32)`, ...base });
      }
    }
  }
  return out;
}

/** Every VMCS field, in SDM appendix order (each 64-bit field followed by its HIGH access). */
export const VMCS_FIELDS: readonly VmcsField[] = buildTable();

/** A full field (not a HIGH access): one per field, what the processor stores. */
export type VmcsFullField = VmcsField & { readonly name: VmcsFullFieldName; readonly high: false };
export function isFullField(f: VmcsField): f is VmcsFullField {
  return !f.high;
}
/** The field a HIGH access belongs to (`EPT_POINTER_HIGH` → `EPT_POINTER`); a full field's own name. */
export function fullFieldName(f: VmcsField): VmcsFullFieldName {
  return (f.high ? f.name.slice(0, -'_HIGH'.length) : f.name) as VmcsFullFieldName;
}

const BY_NAME = new Map<string, VmcsField>(VMCS_FIELDS.map((f) => [f.name, f]));
const BY_ENCODING = new Map<number, VmcsField>(VMCS_FIELDS.map((f) => [f.encoding, f]));

export function fieldByName(name: string): VmcsField | undefined {
  return BY_NAME.get(name);
}

/** The field an encoding names, or undefined (unknown encoding, reserved bits set, or bits 63:32 set). */
export function fieldByEncoding(enc: number | bigint): VmcsField | undefined {
  if (typeof enc === 'bigint') {
    if (enc < 0n || enc > 0xffffffffn) return undefined;
    enc = Number(enc);
  }
  if (!Number.isInteger(enc) || enc < 0 || enc > 0xffffffff) return undefined;
  return BY_ENCODING.get(enc);
}

/** Field encodings by Linux name: `VMCS.GUEST_RIP` is 0x681e, typed as its literal value. */
export const VMCS = Object.freeze(Object.fromEntries(VMCS_FIELDS.map((f) => [f.name, f.encoding]))) as {
  readonly [R in RawRow as R[0]]: R[1];
} & { readonly [N in `${Names64}_HIGH`]: number };

/** The highest index (bits 9:1) among the table's fields — what IA32_VMX_VMCS_ENUM reports for a CPU with all of them. */
export const VMCS_MAX_INDEX = Math.max(...VMCS_FIELDS.map((f) => encodingIndex(f.encoding)));


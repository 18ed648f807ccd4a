// Exception and interrupt vectors. See SDM Vol. 3A, "Exception and Interrupt Reference" and
// "Protected-Mode Exceptions and Interrupts".

export const DE_VECTOR = 0, DB_VECTOR = 1, NMI_VECTOR = 2, BP_VECTOR = 3, OF_VECTOR = 4, BR_VECTOR = 5;
export const UD_VECTOR = 6, NM_VECTOR = 7, DF_VECTOR = 8, TS_VECTOR = 10, NP_VECTOR = 11, SS_VECTOR = 12;
export const GP_VECTOR = 13, PF_VECTOR = 14, MF_VECTOR = 16, AC_VECTOR = 17, MC_VECTOR = 18, XM_VECTOR = 19;
export const VE_VECTOR = 20, CP_VECTOR = 21;

export interface ExceptionInfo {
  readonly vector: number;
  readonly mnemonic: string;
  readonly name: string;
  /** 'fault': RIP points at the faulting instruction; 'trap': after it; 'abort': no reliable RIP. */
  readonly type: 'fault' | 'trap' | 'abort' | 'fault/trap' | 'interrupt';
  readonly errorCode: boolean;
  /** Class used by the double-fault rules. See SDM Vol. 3A, "Interrupt 8—Double Fault Exception (#DF)". */
  readonly class: 'benign' | 'contributory' | 'page-fault' | 'double-fault';
}

export const EXCEPTIONS: readonly ExceptionInfo[] = [
  { vector: 0, mnemonic: '#DE', name: 'Divide Error', type: 'fault', errorCode: false, class: 'contributory' },
  { vector: 1, mnemonic: '#DB', name: 'Debug', type: 'fault/trap', errorCode: false, class: 'benign' },
  { vector: 2, mnemonic: 'NMI', name: 'Non-maskable Interrupt', type: 'interrupt', errorCode: false, class: 'benign' },
  { vector: 3, mnemonic: '#BP', name: 'Breakpoint', type: 'trap', errorCode: false, class: 'benign' },
  { vector: 4, mnemonic: '#OF', name: 'Overflow', type: 'trap', errorCode: false, class: 'benign' },
  { vector: 5, mnemonic: '#BR', name: 'BOUND Range Exceeded', type: 'fault', errorCode: false, class: 'benign' },
  { vector: 6, mnemonic: '#UD', name: 'Invalid Opcode', type: 'fault', errorCode: false, class: 'benign' },
  { vector: 7, mnemonic: '#NM', name: 'Device Not Available', type: 'fault', errorCode: false, class: 'benign' },
  { vector: 8, mnemonic: '#DF', name: 'Double Fault', type: 'abort', errorCode: true, class: 'double-fault' },
  { vector: 9, mnemonic: '#MF(9)', name: 'Coprocessor Segment Overrun', type: 'abort', errorCode: false, class: 'benign' },
  { vector: 10, mnemonic: '#TS', name: 'Invalid TSS', type: 'fault', errorCode: true, class: 'contributory' },
  { vector: 11, mnemonic: '#NP', name: 'Segment Not Present', type: 'fault', errorCode: true, class: 'contributory' },
  { vector: 12, mnemonic: '#SS', name: 'Stack Fault', type: 'fault', errorCode: true, class: 'contributory' },
  { vector: 13, mnemonic: '#GP', name: 'General Protection', type: 'fault', errorCode: true, class: 'contributory' },
  { vector: 14, mnemonic: '#PF', name: 'Page Fault', type: 'fault', errorCode: true, class: 'page-fault' },
  { vector: 15, mnemonic: '(15)', name: 'Reserved', type: 'fault', errorCode: false, class: 'benign' },
  { vector: 16, mnemonic: '#MF', name: 'x87 FPU Floating-Point Error', type: 'fault', errorCode: false, class: 'benign' },
  { vector: 17, mnemonic: '#AC', name: 'Alignment Check', type: 'fault', errorCode: true, class: 'benign' },
  { vector: 18, mnemonic: '#MC', name: 'Machine Check', type: 'abort', errorCode: false, class: 'benign' },
  { vector: 19, mnemonic: '#XM', name: 'SIMD Floating-Point', type: 'fault', errorCode: false, class: 'benign' },
  { vector: 20, mnemonic: '#VE', name: 'Virtualization Exception', type: 'fault', errorCode: false, class: 'benign' },
  { vector: 21, mnemonic: '#CP', name: 'Control Protection', type: 'fault', errorCode: true, class: 'benign' },
];

/** True for the exceptions that push an error code. */
export function exceptionHasErrorCode(vector: number): boolean {
  return vector < EXCEPTIONS.length && EXCEPTIONS[vector]!.errorCode;
}

export function exceptionMnemonic(vector: number): string {
  return vector < EXCEPTIONS.length ? EXCEPTIONS[vector]!.mnemonic : `vector ${vector}`;
}

export function exceptionClass(vector: number): ExceptionInfo['class'] {
  return vector < EXCEPTIONS.length ? EXCEPTIONS[vector]!.class : 'benign';
}

/** Page-fault error code bits. See SDM Vol. 3A, "Interrupt 14—Page-Fault Exception (#PF)". */
export const PF_ERROR = {
  P: 1 << 0,
  WR: 1 << 1,
  US: 1 << 2,
  RSVD: 1 << 3,
  ID: 1 << 4,
  PK: 1 << 5,
} as const;

/** Selector error code bits (for #GP/#NP/#SS/#TS). See SDM Vol. 3A, "Error Code". */
export const SELECTOR_ERROR = { EXT: 1 << 0, IDT: 1 << 1, TI: 1 << 2 } as const;

// Per-logical-processor VMX state: whether the LP is in VMX operation (root or non-root), its VMXON pointer, its
// current-VMCS pointer and the VMCSs it keeps active. Everything VMX remembers about one LP lives here — never in
// globals shared by all CPUs (ERRATA: "VMXON region written into the wrong CPU's slot").
// See SDM Vol. 3C, "Enabling and Entering VMX Operation" and "VMCS Life Cycle".
import type { Diagnosis, DiagnosisHolder } from './diagnosis.ts';
import type { ActiveVmcs } from './vmcs.ts';

/** The value of the current-VMCS pointer when there is no current VMCS. See SDM Vol. 3C, "VMPTRST". */
export const NO_CURRENT_VMCS = 0xffffffffffffffffn;

export class VmxState implements DiagnosisHolder {
  /** In VMX operation (root or non-root): between a successful VMXON and VMXOFF. */
  inVmxOperation = false;
  /** In VMX non-root operation (running a guest). */
  nonRoot = false;
  /** Physical address of the VMXON region, or null outside VMX operation. */
  vmxonPointer: bigint | null = null;
  /** The current VMCS, or null ("current-VMCS pointer = FFFFFFFF_FFFFFFFFH"). */
  current: ActiveVmcs | null = null;
  /**
   * VMCSs active on this LP (made active by VMPTRLD, not yet VMCLEARed), by region address. The processor may
   * keep their data cached here; the SDM allows several. A small array searched linearly: there are few.
   */
  readonly active: ActiveVmcs[] = [];
  /** Dual-monitor treatment of SMIs and SMM is active (not modelled; always false). */
  dualMonitorActive = false;
  lastDiagnosis: Diagnosis | null = null;
  /**
   * PAUSE-loop exiting: when the last PAUSE at CPL 0 ran (in retired instructions, the TSC rate; -1 when none
   * since VM entry) and when the current spin loop began. See SDM Vol. 3C, "Controls for PAUSE-Loop Exiting".
   */
  readonly pauseLoop = { lastPause: -1, loopStart: 0 };
  instructionSeq = 0;
  /** Supported-field flags per VMCS slot for this LP's CPU model (see vmcs-support.ts). */
  readonly supportedSlots: Uint8Array;

  constructor(supportedSlots: Uint8Array) {
    this.supportedSlots = supportedSlots;
  }

  /** The current-VMCS pointer as VMPTRST stores it. */
  currentPointer(): bigint {
    return this.current === null ? NO_CURRENT_VMCS : this.current.pa;
  }

  findActive(pa: bigint): ActiveVmcs | undefined {
    for (const v of this.active) if (v.pa === pa) return v;
    return undefined;
  }

  removeActive(v: ActiveVmcs): void {
    const i = this.active.indexOf(v);
    if (i >= 0) this.active.splice(i, 1);
  }
}

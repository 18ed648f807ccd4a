// Delivering exceptions and interrupts: real-mode IVT, the 64-bit IDT (interrupt/trap gates, IST, stack
// switch), the double-fault rules and triple fault.
// See SDM Vol. 3A, "Interrupt and Exception Handling in 64-Bit Mode", "Exception and Interrupt Handling
// in Real-Address Mode", "Exception Classifications" and "Interrupt 8—Double Fault Exception (#DF)".

import { AR, SYSTEM_TYPE } from '../x86/segments.ts';
import { CR0, DR7_GD, EFER } from '../x86/control-registers.ts';
import { RFLAGS } from '../x86/flags.ts';
import { CS, SS, RSP } from '../x86/registers.ts';
import { exceptionClass, exceptionHasErrorCode, exceptionMnemonic, DB_VECTOR, DF_VECTOR, NMI_VECTOR, PF_VECTOR } from '../x86/exceptions.ts';
import { CpuFault } from './fault.ts';
import { modeNotImplementedReason } from './not-implemented.ts';
import { TR, type LogicalProcessor } from './lp.ts';
import { readDescriptor, setAccessed } from './segmentation.ts';
import { inVmxNonRoot, PendingVmExit, vmExitTakes, type EventInDelivery } from './vmx-seam.ts';

/** Event types, numbered like the VMX interruption-information "type" field. */
export const EVENT_EXTERNAL = 0;
export const EVENT_NMI = 2;
export const EVENT_HW_EXCEPTION = 3;
export const EVENT_SW_INTERRUPT = 4;
export const EVENT_PRIV_SW_EXCEPTION = 5;
export const EVENT_SW_EXCEPTION = 6;

const SDM_64 = 'SDM Vol. 3A, "Interrupt and Exception Handling in 64-Bit Mode"';
const TWO32 = 4294967296;

/** Deliver one event. `returnRip` is what gets pushed (fault: the instruction; trap/INT n: the next one). */
export function deliverEvent(lp: LogicalProcessor, vector: number, errorCode: number, type: number, returnRip: number): void {
  // Software interrupts (INT n, INT3, INTO) report EXT = 0; everything else external to the program EXT = 1.
  // See SDM Vol. 3A, "Error Code".
  const ext = type === EVENT_SW_INTERRUPT || type === EVENT_SW_EXCEPTION ? 0 : 1;
  // An interrupt or exception drains the write-combining buffers. See SDM Vol. 3A, "Buffering of Write Combining
  // Memory Locations".
  lp.caches.fence();
  if (!(lp.cr0 & CR0.PE)) return deliverReal(lp, vector, returnRip);
  if (lp.efer & EFER.LMA) return deliver64(lp, vector, errorCode, type, returnRip, ext);
  return deliverLegacy(lp, vector, errorCode, type, returnRip, ext);
}

/**
 * Deliver a fault/exception with the double-fault rules (also the entry point VMX uses for event injection,
 * with `opts.injected`): if delivering the first event causes a second
 * exception, the pair is handled serially, as #DF, or (for a fault while delivering #DF) as a triple
 * fault → shutdown. See SDM Vol. 3A, "Interrupt 8—Double Fault Exception (#DF)", Table "Conditions for
 * Generating a Double Fault".
 */
export function deliverWithDoubleFault(lp: LogicalProcessor, first: CpuFault | { vector: number; errorCode: number; explanation: string },
  type: number, returnRip: number, length: number, opts: { injected?: boolean } = {}): void {
  let vector = first.vector;
  let errorCode = exceptionHasErrorCode(vector) && type === EVENT_HW_EXCEPTION ? first.errorCode : -1;
  let evType = type;
  let why = first.explanation;
  // The event whose delivery raised the current exception, for VMX's IDT-vectoring information (null for the
  // first event and for a double fault, which "causes the VM exit directly"). See SDM Vol. 3C, "Information for
  // VM Exits During Event Delivery".
  let during: EventInDelivery | null = null;
  // Only the first event can be the fault of an IRET that unblocked NMIs (see LogicalProcessor.nmiUnblockedByIretAt).
  let iretUnblocked = type === EVENT_HW_EXCEPTION && lp.nmiUnblockedByIretAt === lp.instructions;
  lp.nmiUnblockedByIretAt = -1;
  // A VM exit an access of the instruction caused (EPT): performed here, with no event in delivery.
  if (first instanceof PendingVmExit) return first.perform(null, iretUnblocked);
  for (let depth = 0; depth < 8; depth++) {
    // External interrupts and NMIs were offered to VMX before they were acknowledged (src/machine/cpu.ts).
    // An event injected by VM entry is delivered as is (the exception bitmap does not apply to it); faults
    // during its delivery are offered to VMX like any other. See SDM Vol. 3C, "Event Injection".
    const injectedNow = opts.injected === true && depth === 0;
    if (lp.vmx?.nonRoot && !injectedNow && evType !== EVENT_EXTERNAL && evType !== EVENT_NMI) {
      const taken = evType === EVENT_SW_INTERRUPT
        ? vmExitTakes(lp, { kind: 'software-interrupt', vector, length })
        : vmExitTakes(lp, {
          kind: 'exception', vector, errorCode, type: evType as 3 | 5 | 6,
          length: evType === EVENT_HW_EXCEPTION ? 0 : length,
          cr2: vector === PF_VECTOR ? BigInt.asUintN(64, BigInt(lp.pendingCr2)) : undefined,
          dr6: vector === DB_VECTOR && evType === EVENT_HW_EXCEPTION ? BigInt(lp.pendingDr6) : undefined,
          during, nmiUnblockedByIret: iretUnblocked,
        });
      if (taken) {
        // The #DB's DR6 bits went into the exit qualification; DR6 itself is not updated.
        if (vector === DB_VECTOR) lp.pendingDr6 = 0;
        return;
      }
    }
    iretUnblocked = false;
    // CR2 is loaded only when the #PF is actually delivered (not when it causes a VM exit: the exit
    // qualification carries the address), and not for a #PF injected by VM entry (the VMM sets CR2).
    // See SDM Vol. 3C, "Architectural State Before a VM Exit" and "Event Injection".
    if (evType === EVENT_HW_EXCEPTION && vector === PF_VECTOR && !injectedNow) lp.cr2 = lp.pendingCr2;
    // Likewise DR6 for a #DB (single-step): updated on delivery, reported in the exit qualification instead.
    if (evType === EVENT_HW_EXCEPTION && vector === DB_VECTOR && !injectedNow && lp.pendingDr6 !== 0) {
      lp.dr[6] = lp.dr[6]! | BigInt(lp.pendingDr6);
      lp.pendingDr6 = 0;
    }
    // Entering the #DB handler clears DR7.GD, so the handler may use the debug registers. See SDM Vol. 3B,
    // "Debug Control Register (DR7)".
    if (evType === EVENT_HW_EXCEPTION && vector === DB_VECTOR && !injectedNow) lp.dr[7] = lp.dr[7]! & ~BigInt(DR7_GD);
    // A virtual NMI blocks further ones from the start of its delivery: "virtual-NMI blocking is in effect before
    // the VM exit" that a nested exception of that delivery causes. See SDM Vol. 3C, "Virtual NMIs" and
    // "Architectural State Before a VM Exit".
    if (evType === EVENT_NMI && lp.virtualNmis) lp.virtualNmiBlocked = true;
    try {
      deliverEvent(lp, vector, errorCode, evType, returnRip);
      if (evType === EVENT_NMI && !lp.virtualNmis) lp.nmiBlocked = true;
      return;
    } catch (e) {
      if (!(e instanceof CpuFault)) throw e;
      const software = evType === EVENT_SW_INTERRUPT || evType === EVENT_SW_EXCEPTION || evType === EVENT_PRIV_SW_EXCEPTION;
      const delivering: EventInDelivery = { vector, type: evType, errorCode, length: software ? length : 0 };
      // A fault while delivering INT n, INT3 or INT1 is a fault on that instruction: it returns to the instruction,
      // not past it. See SDM Vol. 3A, "Exception Classifications" (faults) and Vol. 2A, "INT n/INTO/INT3/INT1".
      if (software) {
        returnRip -= length;
        lp.rip = returnRip;
      }
      // An EPT violation or misconfiguration while delivering this event: a VM exit that records the event as
      // IDT-vectoring information (RIP is that of a fault on the instruction, as above).
      if (e instanceof PendingVmExit) return e.perform(delivering, false);
      const firstClass = evType === EVENT_HW_EXCEPTION ? exceptionClass(vector) : 'benign';
      const second = exceptionClass(e.vector);
      if (firstClass === 'double-fault' && (second === 'contributory' || second === 'page-fault')) {
        return tripleFault(lp, `${e.message} while delivering #DF (first: ${why})`);
      }
      const isDouble = (firstClass === 'contributory' && second === 'contributory') ||
        (firstClass === 'page-fault' && (second === 'contributory' || second === 'page-fault'));
      if (isDouble) {
        why = `${exceptionMnemonic(vector)} then ${e.message}`;
        vector = DF_VECTOR;
        errorCode = 0;
        during = null;
      } else {
        // Handled serially: the second exception is delivered (its RIP is the same faulting instruction).
        vector = e.vector;
        errorCode = exceptionHasErrorCode(e.vector) ? e.errorCode : -1;
        why = e.explanation;
        during = delivering;
      }
      evType = EVENT_HW_EXCEPTION;
    }
  }
  tripleFault(lp, `exception delivery did not converge (${why})`);
}

/** Triple fault: the LP enters shutdown (or, in VMX non-root operation, causes a VM exit). */
export function tripleFault(lp: LogicalProcessor, reason: string): void {
  if (inVmxNonRoot(lp) && vmExitTakes(lp, { kind: 'triple-fault', reason })) return;
  lp.shutdown(`triple fault: ${reason}`);
}

// ---- Real mode: 4-byte IVT entries, 16-bit frame. ----
function deliverReal(lp: LogicalProcessor, vector: number, returnRip: number): void {
  const entry = vector * 4;
  if (entry + 3 > lp.idtrLimit) throw new CpuFault(13, vector * 8 + 2, `IVT entry ${vector} beyond IDTR limit`, 'SDM Vol. 3A, "Interrupt Vector Table"');
  const v = lp.slowRead(lp.idtrBase + entry, 4, 0, 0) >>> 0;
  const flags = lp.getRflags();
  push16(lp, flags & 0xffff);
  push16(lp, lp.segSel[CS]!);
  push16(lp, returnRip & 0xffff);
  lp.setRflags(flags & ~(RFLAGS.IF | RFLAGS.TF | RFLAGS.AC | RFLAGS.RF));
  lp.segSel[CS] = v >>> 16;
  lp.segBase[CS] = (v >>> 16) * 16;
  lp.rip = v & 0xffff;
  lp.checkHostEntry = true; // the handler may be a host entry point (see LogicalProcessor.checkHostEntry)
  lp.updateMode();
}

function push16(lp: LogicalProcessor, value: number): void {
  const big = (lp.segAr[SS]! & AR.DB) !== 0;
  const sp = big ? (lp.regLo[RSP]! - 2) >>> 0 : (lp.regLo[RSP]! - 2) & 0xffff;
  lp.slowWrite(lp.segBase[SS]! + sp, 2, value, 0, lp.user);
  if (big) lp.regLo[RSP] = sp | 0;
  else lp.regLo[RSP] = (lp.regLo[RSP]! & ~0xffff) | sp;
}

// ---- IA-32e mode: 16-byte gates, 64-bit frame, IST. ----
function deliver64(lp: LogicalProcessor, vector: number, errorCode: number, type: number, returnRip: number, ext: number): void {
  const idtErr = vector * 8 + 2 + ext;
  if (vector * 16 + 15 > lp.idtrLimit) {
    throw new CpuFault(13, idtErr, `IDT entry for vector ${vector} is beyond the IDT limit ${lp.idtrLimit.toString(16)}H`, SDM_64);
  }
  const gateAddr = lp.idtrBase + vector * 16;
  const g0 = lp.readSys32(gateAddr) >>> 0;
  const g1 = lp.readSys32(gateAddr + 4) >>> 0;
  const g2 = lp.readSys32(gateAddr + 8) >>> 0;
  const gType = (g1 >>> 8) & 0xf;
  const gDpl = (g1 >>> 13) & 3;
  const present = (g1 & (1 << 15)) !== 0;
  const ist = g1 & 7;
  if (gType !== SYSTEM_TYPE.INTERRUPT_GATE && gType !== SYSTEM_TYPE.TRAP_GATE) {
    throw new CpuFault(13, idtErr, `IDT entry ${vector} has type ${gType.toString(16)}H; only 64-bit interrupt (EH) and trap (FH) gates are allowed in IA-32e mode`, SDM_64);
  }
  // INT n / INT3 / INTO check the gate's DPL against CPL (not hardware events, not INT1).
  // See SDM Vol. 3A, "Protection of Exception- and Interrupt-Handler Procedures".
  if ((type === EVENT_SW_INTERRUPT || type === EVENT_SW_EXCEPTION) && gDpl < lp.cpl) {
    throw new CpuFault(13, vector * 8 + 2, `INT ${vector}: gate DPL ${gDpl} < CPL ${lp.cpl}`, 'SDM Vol. 3A, "Protection of Exception- and Interrupt-Handler Procedures"');
  }
  if (!present) throw new CpuFault(11, idtErr, `IDT gate for vector ${vector} is not present`, SDM_64);
  const sel = g0 >>> 16;
  const offset = (g2 | 0) * TWO32 + (((g1 & 0xffff0000) | (g0 & 0xffff)) >>> 0);
  if ((sel & 0xfffc) === 0) throw new CpuFault(13, ext, `IDT gate ${vector} has a null code selector`, SDM_64);
  const cs = readDescriptor(lp, sel);
  const csDpl = (cs.ar >>> AR.DPL_SHIFT) & 3;
  if (!(cs.ar & AR.S) || !(cs.ar & AR.CODE) || csDpl > lp.cpl) {
    throw new CpuFault(13, (sel & 0xfffc) + ext, `IDT gate ${vector}: selector ${sel.toString(16)}H is not a code segment with DPL ≤ CPL`, SDM_64);
  }
  if (!(cs.ar & AR.L) || cs.ar & AR.DB) {
    throw new CpuFault(13, (sel & 0xfffc) + ext, `IDT gate ${vector}: target code segment ${sel.toString(16)}H is not a 64-bit code segment`, SDM_64);
  }
  if (!(cs.ar & AR.P)) throw new CpuFault(11, (sel & 0xfffc) + ext, `IDT gate ${vector}: code segment not present`, SDM_64);
  if (offset < -(2 ** 47) || offset >= 2 ** 47) throw new CpuFault(13, ext, `IDT gate ${vector}: handler address is not canonical`, SDM_64);

  const conforming = (cs.ar & AR.DC) !== 0;
  const newCpl = conforming ? lp.cpl : csDpl;
  const oldCpl = lp.cpl;
  const oldSs = lp.segSel[SS]!;
  const oldRsp = lp.regHi[RSP]! * TWO32 + (lp.regLo[RSP]! >>> 0);
  let rsp = oldRsp;
  // Stack switch: IST if the gate names one, else RSPn from the TSS on a privilege change.
  // See SDM Vol. 3A, "Stack Switching in IA-32e Mode" and "Interrupt Stack Table".
  if (ist !== 0 || newCpl < oldCpl) {
    const off = ist !== 0 ? 0x24 + (ist - 1) * 8 : 4 + newCpl * 8;
    if (off + 7 > lp.segLimit[TR]!) throw new CpuFault(10, lp.segSel[TR]! & 0xfffc, `TSS too small for ${ist ? `IST${ist}` : `RSP${newCpl}`}`, 'SDM Vol. 3A, "Stack Switching in IA-32e Mode"');
    const lo = lp.slowRead(lp.segBase[TR]! + off, 8, 0, 0);
    rsp = lp.hi * TWO32 + (lo >>> 0);
    if (rsp < -(2 ** 47) || rsp >= 2 ** 47) throw new CpuFault(12, ext, 'stack pointer from the TSS is not canonical', SDM_64);
  }
  // The new stack is aligned on a 16-byte boundary before the frame is pushed.
  rsp -= ((rsp % 16) + 16) % 16;
  const frame: number[] = [oldSs, oldRsp, lp.getRflags(), lp.segSel[CS]!, returnRip];
  if (errorCode >= 0) frame.push(errorCode);
  const writeUser = newCpl === 3 ? 1 : 0;
  for (const value of frame) {
    rsp -= 8;
    const lo = value >>> 0 | 0;
    const hi = Math.floor(value / TWO32) | 0;
    lp.slowWrite(rsp, 8, lo, hi, writeUser);
  }
  // Commit: nothing below can fault.
  setAccessed(lp, cs);
  if (newCpl !== oldCpl) {
    lp.segSel[SS] = newCpl;
    lp.segBase[SS] = 0;
    lp.segAr[SS] = AR.UNUSABLE | AR.P | AR.S | AR.RW | (newCpl << AR.DPL_SHIFT);
  }
  lp.segSel[CS] = (sel & 0xfffc) | newCpl;
  lp.segBase[CS] = cs.base;
  lp.segLimit[CS] = cs.limit;
  lp.segAr[CS] = cs.ar;
  lp.setCpl(newCpl);
  lp.regLo[RSP] = rsp >>> 0 | 0;
  lp.regHi[RSP] = Math.floor(rsp / TWO32) | 0;
  let fl = lp.getRflags() & ~(RFLAGS.TF | RFLAGS.NT | RFLAGS.RF | RFLAGS.VM);
  if (gType === SYSTEM_TYPE.INTERRUPT_GATE) fl &= ~RFLAGS.IF;
  lp.setRflags(fl);
  lp.rip = offset;
  lp.checkHostEntry = true; // the handler may be a host entry point (see LogicalProcessor.checkHostEntry)
  lp.updateMode();
  void NMI_VECTOR;
}

// ---- Legacy protected mode (32-bit gates, same privilege only): enough for a trampoline's mistakes. ----
function deliverLegacy(lp: LogicalProcessor, vector: number, errorCode: number, type: number, returnRip: number, ext: number): void {
  const idtErr = vector * 8 + 2 + ext;
  if (vector * 8 + 7 > lp.idtrLimit) throw new CpuFault(13, idtErr, `IDT entry ${vector} beyond the IDT limit`, 'SDM Vol. 3A, "Interrupt Descriptor Table (IDT)"');
  const g0 = lp.readSys32(lp.idtrBase + vector * 8) >>> 0;
  const g1 = lp.readSys32(lp.idtrBase + vector * 8 + 4) >>> 0;
  const gType = (g1 >>> 8) & 0xf;
  const gDpl = (g1 >>> 13) & 3;
  if (gType !== 0xe && gType !== 0xf) {
    throw new CpuFault(13, idtErr, `IDT entry ${vector}: only 32-bit interrupt/trap gates are implemented in legacy protected mode`, 'SDM Vol. 3A, "IDT Descriptors"');
  }
  if ((type === EVENT_SW_INTERRUPT || type === EVENT_SW_EXCEPTION) && gDpl < lp.cpl) throw new CpuFault(13, vector * 8 + 2, `INT ${vector}: gate DPL < CPL`, 'SDM Vol. 3A, "Protection of Exception- and Interrupt-Handler Procedures"');
  if (!(g1 & (1 << 15))) throw new CpuFault(11, idtErr, `IDT gate ${vector} not present`, 'SDM Vol. 3A, "IDT Descriptors"');
  const sel = g0 >>> 16;
  const cs = readDescriptor(lp, sel);
  const csDpl = (cs.ar >>> AR.DPL_SHIFT) & 3;
  if (!(cs.ar & AR.CODE) || !(cs.ar & AR.S)) throw new CpuFault(13, (sel & 0xfffc) + ext, 'IDT gate target is not a code segment', 'SDM Vol. 3A, "IDT Descriptors"');
  if (csDpl !== lp.cpl && !(cs.ar & AR.DC)) {
    throw new CpuFault(13, (sel & 0xfffc) + ext, modeNotImplementedReason('legacy-privilege-interrupts', `interrupt ${vector} through a gate to CPL ${csDpl} from CPL ${lp.cpl}`), 'SDM Vol. 3A, "Exception- or Interrupt-Handler Procedures"');
  }
  const frame = [lp.getRflags(), lp.segSel[CS]!, returnRip >>> 0];
  if (errorCode >= 0) frame.push(errorCode);
  const big = (lp.segAr[SS]! & AR.DB) !== 0;
  let sp = big ? lp.regLo[RSP]! >>> 0 : lp.regLo[RSP]! & 0xffff;
  for (const v of frame) {
    sp = big ? (sp - 4) >>> 0 : (sp - 4) & 0xffff;
    lp.slowWrite(lp.segBase[SS]! + sp, 4, v | 0, 0, lp.user);
  }
  if (big) lp.regLo[RSP] = sp | 0;
  else lp.regLo[RSP] = (lp.regLo[RSP]! & ~0xffff) | sp;
  setAccessed(lp, cs);
  lp.segSel[CS] = (sel & 0xfffc) | lp.cpl;
  lp.segBase[CS] = cs.base;
  lp.segLimit[CS] = cs.limit;
  lp.segAr[CS] = cs.ar;
  let fl = lp.getRflags() & ~(RFLAGS.TF | RFLAGS.NT | RFLAGS.RF | RFLAGS.VM);
  if (gType === 0xe) fl &= ~RFLAGS.IF;
  lp.setRflags(fl);
  lp.rip = ((g1 & 0xffff0000) | (g0 & 0xffff)) >>> 0;
  lp.checkHostEntry = true; // the handler may be a host entry point (see LogicalProcessor.checkHostEntry)
  lp.updateMode();
}

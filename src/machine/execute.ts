// The interpreter: executes one decoded instruction on a logical processor.
//
// Contract: on entry `lp.rip` is the address of the instruction; on normal completion it is the next RIP
// (or a branch target). An architectural fault is thrown as CpuFault with `lp.rip` unchanged (fault
// semantics: the faulting instruction is restarted). Memory is read before registers are written, so a
// fault leaves no partial update (except where the SDM says so, e.g. between REP iterations).
// Returns true when the instruction must end a code block (it changed mode, IF, CR3, … or is a branch).
// Instruction semantics: SDM Vol. 2A–2D, each instruction's "Operation" section.

import { AR, SYSTEM_TYPE } from '../x86/segments.ts';
import { CR0, CR4, DR6, DR7_GD, EFER, XCR0 } from '../x86/control-registers.ts';
import { CPUID_FEATURE, cpuidBit, type CpuidFeature } from '../x86/cpuid.ts';
import { DB_VECTOR } from '../x86/exceptions.ts';
import { RFLAGS } from '../x86/flags.ts';
import { CS, DS, ES, FS, GS, SS, RAX, RCX, RDX, RBX, RSP, RBP, RSI, RDI } from '../x86/registers.ts';
import * as MSR from '../x86/msr.ts';
import { CpuFault, gp, ud } from './fault.ts';
import { modeNotImplementedReason, notImplementedReason } from './not-implemented.ts';
import type { Insn } from './insn.ts';
import { OP_INVALID } from './insn.ts';
import { CF, condition, lazyCF, lazyZF, OF, ZF, STATUS_MASK } from './lazy-flags.ts';
import { alu, incDec, shiftRotate, setFlags, szp, multiply, divide, toBig, fromBig, SIZE_MASK, ALU_CMP, mulu32 } from './alu.ts';
import {
  getReg, setReg, readRM, readRMForWrite, writeRM, readMem, readMemForWrite, writeMem, linearAddress, effectiveAddress, effectiveAddressBig, segmentLinear,
  push, pop, peek, adjustSp, stackAddrSize, regNumber, scratch, TWO32,
} from './operands.ts';
import { LDTR, TR, type LogicalProcessor } from './lp.ts';
import { loadCodeSegment, loadDataSegment, readDescriptor } from './segmentation.ts';
import { deliverWithDoubleFault, EVENT_HW_EXCEPTION, EVENT_PRIV_SW_EXCEPTION, EVENT_SW_EXCEPTION, EVENT_SW_INTERRUPT } from './interrupts.ts';
import {
  NATIVE, inVmxNonRoot, nonRootAnswer, vmExitTakes, type DescriptorTableInstruction, type MemOperandEncoding, type VmxInterceptEvent, type VmxMemOperand,
  type VmxMnemonic,
} from './vmx-seam.ts';
import { readPerformanceCounter } from './performance-counters.ts';
import { ACCESS_READ } from './paging.ts';
import { shiftDouble } from './isa/shift-double.ts';
import { zeroCount, zeroCountEnabled } from './isa/bit-count.ts';
import { cmpxchgWide } from './isa/cmpxchg-wide.ts';
import { enter, popa, pusha } from './isa/legacy-stack.ts';
import { lahfSahf } from './isa/lahf-sahf.ts';
import { fwait, requireFpu, x87 } from './isa/x87-minimal.ts';
import { fxsaveRestore } from './isa/fxsave.ts';
import { ldStMxcsr } from './isa/mxcsr.ts';
import { xsaveRestore } from './isa/xsave.ts';
import { popcnt } from './isa/popcnt.ts';
import { syscall, sysret } from './isa/syscall-sysret.ts';
import { sysenter, sysexit } from './isa/sysenter-sysexit.ts';

const CANON = 2 ** 47;
const DF_MASK = RFLAGS.DF;
const SDM_PRIV = 'SDM Vol. 3A, "Privileged Instructions"';
/** Iterations of a REP string instruction per step; the instruction then restarts (an interrupt window). */
const REP_CHUNK = 4096;

/** Execute `d`. Returns true if the instruction ends a code block. */
export function execute(lp: LogicalProcessor, d: Insn): boolean {
  const op = d.op;
  const next = lp.rip + d.len;
  // ALU block 00–3F (except the prefix/invalid slots): op = bits 5:3, form = bits 2:0.
  if (op < 0x40 && (op & 7) < 6) {
    const aluOp = op >>> 3;
    const form = op & 7;
    const size = form & 1 ? d.opSize : 1;
    let a: number, ah = 0, b: number, bh = 0, r: number;
    switch (form) {
      case 0: case 1: // r/m, reg (a read-modify-write unless CMP)
        a = aluOp !== ALU_CMP ? readRMForWrite(lp, d, size) : readRM(lp, d, size); ah = scratch.hi;
        b = getReg(lp, d.reg, size, d.rex); bh = scratch.hi;
        r = alu(lp, aluOp, size, a, ah, b, bh);
        if (aluOp !== ALU_CMP) writeRM(lp, d, size, r, scratch.hi, d.mem ? scratch.la : -1);
        break;
      case 2: case 3: // reg, r/m
        b = readRM(lp, d, size); bh = scratch.hi;
        a = getReg(lp, d.reg, size, d.rex); ah = scratch.hi;
        r = alu(lp, aluOp, size, a, ah, b, bh);
        if (aluOp !== ALU_CMP) setReg(lp, d.reg, size, d.rex, r, scratch.hi);
        break;
      case 4: // AL, imm8
        r = alu(lp, aluOp, 1, lp.regLo[RAX]! & 0xff, 0, d.imm & 0xff, 0);
        if (aluOp !== ALU_CMP) setReg(lp, RAX, 1, 0, r, 0);
        break;
      default: // rAX, imm
        a = getReg(lp, RAX, d.opSize, 0); ah = scratch.hi;
        r = alu(lp, aluOp, d.opSize, a, ah, d.imm & SIZE_MASK[d.opSize]!, d.immHi);
        if (aluOp !== ALU_CMP) setReg(lp, RAX, d.opSize, 0, r, scratch.hi);
        break;
    }
    lp.rip = next;
    return false;
  }

  switch (op) {
    // ------------------------------------------------------------------ PUSH/POP segment (16/32-bit modes)
    case 0x06: case 0x0e: case 0x16: case 0x1e: {
      push(lp, d.opSize, lp.segSel[op >>> 3]!, 0);
      lp.rip = next;
      return false;
    }
    case 0x07: case 0x17: case 0x1f: {
      const sel = peek(lp, d.opSize, 0) & 0xffff;
      loadDataSegment(lp, op >>> 3, sel);
      adjustSp(lp, d.opSize);
      if (op === 0x17) setShadow(lp, 'mov-ss');
      lp.rip = next;
      return true;
    }
    // ------------------------------------------------------------------ INC/DEC r (16/32-bit modes)
    case 0x40: case 0x41: case 0x42: case 0x43: case 0x44: case 0x45: case 0x46: case 0x47:
    case 0x48: case 0x49: case 0x4a: case 0x4b: case 0x4c: case 0x4d: case 0x4e: case 0x4f: {
      const r = op & 7;
      const v = incDec(lp, op >= 0x48, d.opSize, getReg(lp, r, d.opSize, 0), 0);
      setReg(lp, r, d.opSize, 0, v, 0);
      lp.rip = next;
      return false;
    }
    // ------------------------------------------------------------------ PUSH/POP r
    case 0x50: case 0x51: case 0x52: case 0x53: case 0x54: case 0x55: case 0x56: case 0x57: {
      const r = (op & 7) | ((d.rex & 1) << 3);
      const v = getReg(lp, r, d.opSize, 0);
      push(lp, d.opSize, v, scratch.hi);
      lp.rip = next;
      return false;
    }
    case 0x58: case 0x59: case 0x5a: case 0x5b: case 0x5c: case 0x5d: case 0x5e: case 0x5f: {
      const r = (op & 7) | ((d.rex & 1) << 3);
      const v = pop(lp, d.opSize);
      setReg(lp, r, d.opSize, 0, v, scratch.hi);
      lp.rip = next;
      return false;
    }
    case 0x60: return pusha(lp, d, next);
    case 0x61: return popa(lp, d, next);
    case 0x9b: return fwait(lp, next);
    case 0x9e: case 0x9f: return lahfSahf(lp, d, next);
    case 0xc8: return enter(lp, d, next);
    case 0xd8: case 0xd9: case 0xda: case 0xdb: case 0xdc: case 0xdd: case 0xde: case 0xdf:
      return x87(lp, d, next);
    case 0x63: { // MOVSXD r, r/m32
      const v = readRM(lp, d, 4);
      if (d.opSize === 8) setReg(lp, d.reg, 8, d.rex, v, v >> 31);
      else setReg(lp, d.reg, d.opSize, d.rex, v, 0);
      lp.rip = next;
      return false;
    }
    case 0x68: case 0x6a: // PUSH imm
      push(lp, d.opSize, d.imm, d.immHi);
      lp.rip = next;
      return false;
    case 0x69: case 0x6b: { // IMUL r, r/m, imm
      const a = readRM(lp, d, d.opSize);
      imul2(lp, d, a, scratch.hi, d.imm & SIZE_MASK[d.opSize]!, d.immHi);
      lp.rip = next;
      return false;
    }
    case 0x6c: case 0x6d: case 0x6e: case 0x6f:
      lp.caches.fence(); // as IN/OUT (below)
      return stringIo(lp, d, next);
    // ------------------------------------------------------------------ Jcc rel8
    case 0x70: case 0x71: case 0x72: case 0x73: case 0x74: case 0x75: case 0x76: case 0x77:
    case 0x78: case 0x79: case 0x7a: case 0x7b: case 0x7c: case 0x7d: case 0x7e: case 0x7f:
      if (condition(op & 0xf, lp.lazy, lp.rflagsRaw)) jumpTo(lp, d, next + d.imm);
      else lp.rip = next;
      return true;
    // ------------------------------------------------------------------ group 1
    case 0x80: case 0x81: case 0x82: case 0x83: {
      const size = op & 1 ? d.opSize : 1;
      const aluOp = d.reg & 7;
      const a = aluOp !== ALU_CMP ? readRMForWrite(lp, d, size) : readRM(lp, d, size);
      const ah = scratch.hi;
      const la = scratch.la;
      const r = alu(lp, aluOp, size, a, ah, d.imm & SIZE_MASK[size]!, size === 8 ? d.immHi : 0);
      if (aluOp !== ALU_CMP) writeRM(lp, d, size, r, scratch.hi, la);
      lp.rip = next;
      return false;
    }
    case 0x84: case 0x85: { // TEST r/m, r
      const size = op & 1 ? d.opSize : 1;
      const a = readRM(lp, d, size);
      const ah = scratch.hi;
      const b = getReg(lp, d.reg, size, d.rex);
      alu(lp, 4, size, a, ah, b, scratch.hi);
      lp.rip = next;
      return false;
    }
    case 0x86: case 0x87: { // XCHG r/m, r
      const size = op & 1 ? d.opSize : 1;
      // With a memory operand XCHG is locked, whatever its prefixes: a locked instruction drains the write-combining
      // buffers. See SDM Vol. 2D, "XCHG—Exchange Register/Memory With Register" and Vol. 3A, "Buffering of Write
      // Combining Memory Locations".
      if (d.mem) lp.caches.fence();
      const a = readRMForWrite(lp, d, size);
      const ah = scratch.hi;
      const la = scratch.la;
      const b = getReg(lp, d.reg, size, d.rex);
      const bh = scratch.hi;
      writeRM(lp, d, size, b, bh, la);
      setReg(lp, d.reg, size, d.rex, a, ah);
      lp.rip = next;
      return false;
    }
    // ------------------------------------------------------------------ MOV
    case 0x88: case 0x89: {
      const size = op & 1 ? d.opSize : 1;
      const v = getReg(lp, d.reg, size, d.rex);
      writeRM(lp, d, size, v, scratch.hi, -1);
      lp.rip = next;
      return false;
    }
    case 0x8a: case 0x8b: {
      const size = op & 1 ? d.opSize : 1;
      const v = readRM(lp, d, size);
      setReg(lp, d.reg, size, d.rex, v, scratch.hi);
      lp.rip = next;
      return false;
    }
    case 0x8c: { // MOV r/m, Sreg
      const s = d.reg & 7;
      if (s > 5) throw ud(`MOV from segment register ${s}, which does not exist`, 'SDM Vol. 2B, "MOV—Move"');
      if (d.mem) writeMem(lp, linearAddress(lp, d, 2), 2, lp.segSel[s]!, 0);
      else setReg(lp, d.rm, d.opSize === 2 ? 2 : 4, d.rex, lp.segSel[s]!, 0);
      lp.rip = next;
      return false;
    }
    case 0x8d: { // LEA
      const ea = effectiveAddress(lp, d);
      if (ea >= 2 ** 52 || ea <= -(2 ** 52)) {
        const v = effectiveAddressBig(lp, d);
        setReg(lp, d.reg, d.opSize, d.rex, Number(v & 0xffffffffn) | 0, Number((v >> 32n) & 0xffffffffn) | 0);
      } else setReg(lp, d.reg, d.opSize, d.rex, ea >>> 0 | 0, d.opSize === 8 ? Math.floor(ea / TWO32) | 0 : 0);
      lp.rip = next;
      return false;
    }
    case 0x8e: { // MOV Sreg, r/m
      const s = d.reg & 7;
      if (s === CS || s > 5) throw ud(s === CS ? 'MOV to CS is invalid (use a far JMP)' : `segment register ${s} does not exist`, 'SDM Vol. 2B, "MOV—Move"');
      const sel = readRM(lp, d, 2);
      loadDataSegment(lp, s, sel);
      if (s === SS) setShadow(lp, 'mov-ss');
      lp.rip = next;
      return true;
    }
    case 0x8f: { // POP r/m. The address is computed after RSP is incremented. See SDM Vol. 2B, "POP".
      const v = peek(lp, d.opSize, 0);
      const vh = scratch.hi;
      const savedLo = lp.regLo[RSP]!, savedHi = lp.regHi[RSP]!;
      adjustSp(lp, d.opSize);
      try {
        writeRM(lp, d, d.opSize, v, vh, -1);
      } catch (e) {
        lp.regLo[RSP] = savedLo;
        lp.regHi[RSP] = savedHi;
        throw e;
      }
      lp.rip = next;
      return false;
    }
    case 0x90:
      if (d.rex & 1) { // XCHG r8, rAX
        xchgAx(lp, d, 8);
      } else if (d.rep === 0xf3) { // PAUSE
        if (inVmxNonRoot(lp) && vmExitTakes(lp, { kind: 'pause', length: d.len })) return true;
      }
      lp.rip = next;
      return false;
    case 0x91: case 0x92: case 0x93: case 0x94: case 0x95: case 0x96: case 0x97:
      xchgAx(lp, d, (op & 7) | ((d.rex & 1) << 3));
      lp.rip = next;
      return false;
    case 0x98: { // CBW/CWDE/CDQE
      if (d.opSize === 2) setReg(lp, RAX, 2, 0, (lp.regLo[RAX]! << 24) >> 24, 0);
      else if (d.opSize === 4) setReg(lp, RAX, 4, 0, (lp.regLo[RAX]! << 16) >> 16, 0);
      else setReg(lp, RAX, 8, 0, lp.regLo[RAX]!, lp.regLo[RAX]! >> 31);
      lp.rip = next;
      return false;
    }
    case 0x99: { // CWD/CDQ/CQO
      if (d.opSize === 2) setReg(lp, RDX, 2, 0, (lp.regLo[RAX]! << 16) >> 31, 0);
      else if (d.opSize === 4) setReg(lp, RDX, 4, 0, lp.regLo[RAX]! >> 31, 0);
      else { const s = lp.regHi[RAX]! >> 31; setReg(lp, RDX, 8, 0, s, s); }
      lp.rip = next;
      return false;
    }
    case 0x9c: { // PUSHF: RF and VM are pushed as 0. See SDM Vol. 2B, "PUSHF/PUSHFD/PUSHFQ".
      const f = lp.getRflags() & ~(RFLAGS.RF | RFLAGS.VM);
      push(lp, d.opSize, d.opSize === 2 ? f & 0xffff : f, 0);
      lp.rip = next;
      return false;
    }
    case 0x9d: { // POPF
      const v = pop(lp, d.opSize);
      popf(lp, d.opSize === 2 ? (lp.getRflags() & ~0xffff) | (v & 0xffff) : v);
      lp.rip = next;
      return true;
    }
    case 0xa0: case 0xa1: case 0xa2: case 0xa3: { // MOV AL/rAX <-> moffs
      const size = op & 1 ? d.opSize : 1;
      const off = d.addrSize === 8 ? d.immHi * TWO32 + (d.disp >>> 0) : d.disp;
      const la = segmentLinear(lp, d.seg, off, size);
      if (op < 0xa2) {
        const v = readMem(lp, la, size);
        setReg(lp, RAX, size, 0, v, scratch.hi);
      } else {
        const v = getReg(lp, RAX, size, 0);
        writeMem(lp, la, size, v, scratch.hi);
      }
      lp.rip = next;
      return false;
    }
    case 0xa4: case 0xa5: case 0xa6: case 0xa7: case 0xaa: case 0xab: case 0xac: case 0xad: case 0xae: case 0xaf:
      return stringOp(lp, d, next);
    case 0xa8: case 0xa9: { // TEST AL/rAX, imm
      const size = op & 1 ? d.opSize : 1;
      const a = getReg(lp, RAX, size, 0);
      alu(lp, 4, size, a, scratch.hi, d.imm & SIZE_MASK[size]!, d.immHi);
      lp.rip = next;
      return false;
    }
    case 0xb0: case 0xb1: case 0xb2: case 0xb3: case 0xb4: case 0xb5: case 0xb6: case 0xb7:
      setReg(lp, (op & 7) | ((d.rex & 1) << 3), 1, d.rex, d.imm, 0);
      lp.rip = next;
      return false;
    case 0xb8: case 0xb9: case 0xba: case 0xbb: case 0xbc: case 0xbd: case 0xbe: case 0xbf:
      setReg(lp, (op & 7) | ((d.rex & 1) << 3), d.opSize, d.rex, d.imm, d.immHi);
      lp.rip = next;
      return false;
    // ------------------------------------------------------------------ shifts
    case 0xc0: case 0xc1: case 0xd0: case 0xd1: case 0xd2: case 0xd3: {
      const size = op & 1 ? d.opSize : 1;
      const a = readRMForWrite(lp, d, size);
      const ah = scratch.hi;
      const la = scratch.la;
      const count = op <= 0xc1 ? d.imm & 0xff : op <= 0xd1 ? 1 : lp.regLo[RCX]! & 0xff;
      const r = shiftRotate(lp, d.reg & 7, size, a, ah, count);
      writeRM(lp, d, size, r, scratch.hi, la);
      lp.rip = next;
      return false;
    }
    // ------------------------------------------------------------------ RET, RETF
    case 0xc2: case 0xc3: {
      const target = pop(lp, d.opSize);
      const th = scratch.hi;
      const t = d.opSize === 8 ? th * TWO32 + (target >>> 0) : d.opSize === 4 ? target >>> 0 : target & 0xffff;
      if (lp.bits === 64 && (t >= CANON || t < -CANON)) {
        adjustSp(lp, -d.opSize);
        throw gp(0, 'RET to a non-canonical address', 'SDM Vol. 2B, "RET—Return From Procedure"');
      }
      if (op === 0xc2) adjustSp(lp, d.imm);
      lp.rip = t;
      return true;
    }
    case 0xca: case 0xcb: { // RETF (same privilege)
      const size = d.opSize;
      const ip = peek(lp, size, 0);
      const iph = scratch.hi;
      const sel = peek(lp, size, size) & 0xffff;
      if ((lp.cr0 & CR0.PE) && (sel & 3) !== lp.cpl) throw gp(sel & 0xfffc, modeNotImplementedReason('far-ret-outer', `RETF to RPL ${sel & 3} from CPL ${lp.cpl}`), 'SDM Vol. 2B, "RET—Return From Procedure"');
      loadCodeSegment(lp, sel, lp.cr0 & CR0.PE ? lp.cpl : 0, 'RETF');
      adjustSp(lp, size * 2 + (op === 0xca ? d.imm : 0));
      lp.rip = size === 8 ? iph * TWO32 + (ip >>> 0) : size === 4 ? ip >>> 0 : ip & 0xffff;
      return true;
    }
    case 0xc6: case 0xc7: { // MOV r/m, imm
      const size = op & 1 ? d.opSize : 1;
      writeRM(lp, d, size, d.imm & SIZE_MASK[size]!, d.immHi, -1);
      lp.rip = next;
      return false;
    }
    case 0xc9: { // LEAVE
      const sas = stackAddrSize(lp);
      const savedLo = lp.regLo[RSP]!, savedHi = lp.regHi[RSP]!;
      if (sas === 8) { lp.regLo[RSP] = lp.regLo[RBP]!; lp.regHi[RSP] = lp.regHi[RBP]!; }
      else if (sas === 4) lp.regLo[RSP] = lp.regLo[RBP]!;
      else lp.regLo[RSP] = (lp.regLo[RSP]! & ~0xffff) | (lp.regLo[RBP]! & 0xffff);
      try {
        const v = pop(lp, d.opSize);
        setReg(lp, RBP, d.opSize, 0, v, scratch.hi);
      } catch (e) {
        lp.regLo[RSP] = savedLo; lp.regHi[RSP] = savedHi;
        throw e;
      }
      lp.rip = next;
      return false;
    }
    // ------------------------------------------------------------------ software interrupts
    case 0xcc: // INT3: a trap; software exception. See SDM Vol. 2A, "INT n/INTO/INT3/INT1—Call to Interrupt Procedure".
      raiseSoftware(lp, 3, EVENT_SW_EXCEPTION, next, d.len);
      return true;
    case 0xcd:
      raiseSoftware(lp, d.imm & 0xff, EVENT_SW_INTERRUPT, next, d.len);
      return true;
    case 0xf1:
      raiseSoftware(lp, 1, EVENT_PRIV_SW_EXCEPTION, next, d.len);
      return true;
    case 0xcf:
      // Remember an IRET that unblocks NMIs until it completes: a fault on it is reported to VMX as such.
      if (lp.virtualNmis ? lp.virtualNmiBlocked : lp.nmiBlocked) lp.nmiUnblockedByIretAt = lp.instructions;
      lp.caches.fence(); // serializing: drains the write-combining buffers (SDM Vol. 3A, "Serializing Instructions")
      iret(lp, d);
      lp.nmiUnblockedByIretAt = -1;
      return true;
    // ------------------------------------------------------------------ LOOP, JrCXZ
    case 0xe0: case 0xe1: case 0xe2: case 0xe3: {
      let taken: boolean;
      if (op === 0xe3) taken = counterIsZero(lp, d.addrSize);
      else {
        decCounter(lp, d.addrSize);
        const nz = !counterIsZero(lp, d.addrSize);
        const zf = lazyZF(lp.lazy, lp.rflagsRaw);
        taken = op === 0xe2 ? nz : op === 0xe1 ? nz && zf : nz && !zf;
      }
      if (taken) jumpTo(lp, d, next + d.imm);
      else lp.rip = next;
      return true;
    }
    // ------------------------------------------------------------------ IN/OUT
    case 0xe4: case 0xe5: case 0xe6: case 0xe7: case 0xec: case 0xed: case 0xee: case 0xef: {
      const size = op & 1 ? (d.opSize === 2 ? 2 : 4) : 1;
      const port = op >= 0xec ? lp.regLo[RDX]! & 0xffff : d.imm & 0xff;
      const isIn = (op & 2) === 0;
      checkIoPermission(lp, port, size);
      if (lp.vmx !== null && lp.vmx.nonRoot && vmExitTakes(lp, {
        kind: 'io', length: d.len,
        io: {
          port, size: size as 1 | 2 | 4, direction: isIn ? 'in' : 'out', string: false, rep: false, immediate: op < 0xec,
          addressSize: d.addrSize as 2 | 4 | 8, segment: -1, linear: null,
        },
      })) return true;
      // I/O instructions wait for buffered writes (the write-combining buffers too) to drain. See SDM Vol. 1,
      // "Ordering I/O" and Vol. 3A, "Buffering of Write Combining Memory Locations".
      lp.caches.fence();
      if (isIn) setReg(lp, RAX, size, 0, lp.io.in(port, size as 1 | 2 | 4), 0);
      else lp.io.out(port, size as 1 | 2 | 4, (getReg(lp, RAX, size, 0) & (size === 4 ? -1 : (1 << (size * 8)) - 1)) >>> 0);
      lp.rip = next;
      return true;
    }
    // ------------------------------------------------------------------ CALL/JMP
    case 0xe8: { // CALL rel: the target is checked before anything is pushed
      const saved = lp.rip;
      jumpTo(lp, d, next + d.imm);
      const target = lp.rip;
      lp.rip = saved;
      pushReturn(lp, d, next);
      lp.rip = target;
      return true;
    }
    case 0xe9: case 0xeb:
      jumpTo(lp, d, next + d.imm);
      return true;
    case 0xea: // JMP ptr16:16/32 (16/32-bit modes)
      loadCodeSegment(lp, d.imm2, lp.cr0 & CR0.PE ? lp.cpl : 0, 'far JMP');
      lp.rip = d.imm;
      return true;
    // ------------------------------------------------------------------ flags and misc
    case 0xf4: // HLT
      requireCpl0(lp, 'HLT');
      if (inVmxNonRoot(lp) && vmExitTakes(lp, { kind: 'hlt', length: d.len })) return true;
      lp.rip = next;
      lp.activity = 'hlt';
      return true;
    case 0xf5: setFlags(lp, CF, lazyCF(lp.lazy, lp.rflagsRaw) ? 0 : CF); lp.rip = next; return false;
    case 0xf8: setFlags(lp, CF, 0); lp.rip = next; return false;
    case 0xf9: setFlags(lp, CF, CF); lp.rip = next; return false;
    case 0xfc: lp.rflagsRaw &= ~DF_MASK; lp.rip = next; return false;
    case 0xfd: lp.rflagsRaw |= DF_MASK; lp.rip = next; return false;
    case 0xfa: // CLI
      checkIopl(lp, 'CLI');
      lp.rflagsRaw &= ~RFLAGS.IF;
      lp.rip = next;
      return true;
    case 0xfb: // STI: interrupts stay blocked until after the next instruction (if IF was 0).
      checkIopl(lp, 'STI');
      if (!(lp.rflagsRaw & RFLAGS.IF)) setShadow(lp, 'sti');
      lp.rflagsRaw |= RFLAGS.IF;
      lp.rip = next;
      return true;
    case 0xf6: case 0xf7:
      group3(lp, d, op === 0xf6 ? 1 : d.opSize);
      lp.rip = next;
      return false;
    case 0xfe: case 0xff:
      return group45(lp, d, op, next);
    default:
      return execute0F(lp, d, next);
  }
}

// ======================================================================================== two-byte opcodes
function execute0F(lp: LogicalProcessor, d: Insn, next: number): boolean {
  const op = d.op;
  switch (op) {
    case 0x100: return group6(lp, d, next);
    case 0x101: return group7(lp, d, next);
    case 0x105: return syscall(lp, next);
    case 0x107: return sysret(lp, d);
    case 0x106: { // CLTS
      requireCpl0(lp, 'CLTS');
      const a = inVmxNonRoot(lp) ? nonRootAnswer(lp, { kind: 'cr-access', length: d.len, cr: 0, access: 2, gpr: 0, value: 0n, lmswSource: 0, lmswLinear: null }) : NATIVE;
      if (a.kind === 'exited') return true;
      if (a.kind === 'substitute') lp.writeCr0(a.value); // CR0.TS owned by the host: CLTS leaves it alone
      else lp.cr0 &= ~CR0.TS;
      lp.rip = next;
      return true;
    }
    case 0x108: case 0x109: { // INVD, WBINVD
      requireCpl0(lp, op === 0x108 ? 'INVD' : 'WBINVD');
      if (inVmxNonRoot(lp) && vmExitTakes(lp, { kind: op === 0x108 ? 'invd' : 'wbinvd', length: d.len })) return true;
      // Only device lines are ever cached (RAM is coherent under every type): INVD drops them, dirty ones unwritten;
      // WBINVD writes the dirty ones back first. See SDM Vol. 2A, "INVD—Invalidate Internal Caches" and Vol. 2D,
      // "WBINVD—Write Back and Invalidate Cache".
      if (op === 0x108) lp.caches.invd();
      else lp.caches.wbinvd();
      lp.rip = next;
      return true;
    }
    case 0x10b: throw ud('UD2: the architecturally undefined instruction', 'SDM Vol. 2B, "UD—Undefined Instruction"');
    case 0x118: case 0x119: case 0x11a: case 0x11b: case 0x11c: case 0x11d: case 0x11e: case 0x11f:
      lp.rip = next; // hint/multi-byte NOP: no memory access
      return false;
    case 0x120: return movCr(lp, d, next);
    case 0x122: // MOV to CR is serializing (SDM Vol. 3A, "Serializing Instructions"): the WC buffers drain
      lp.caches.fence();
      return movCr(lp, d, next);
    case 0x121: case 0x123: return movDr(lp, d, next);
    case 0x130: { // WRMSR
      requireCpl0(lp, 'WRMSR');
      const msr = lp.regLo[RCX]! >>> 0;
      const value = (BigInt(lp.regLo[RDX]! >>> 0) << 32n) | BigInt(lp.regLo[RAX]! >>> 0);
      if (inVmxNonRoot(lp) && vmExitTakes(lp, { kind: 'wrmsr', length: d.len, msr, value })) return true;
      lp.caches.fence(); // serializing (SDM Vol. 3A, "Serializing Instructions")
      lp.wrmsr(msr, value);
      lp.rip = next;
      return true;
    }
    case 0x131: // RDTSC
      if (lp.cr4 & CR4.TSD && lp.cpl !== 0) throw gp(0, 'RDTSC at CPL > 0 with CR4.TSD = 1', 'SDM Vol. 2B, "RDTSC—Read Time-Stamp Counter"');
      {
        const a = inVmxNonRoot(lp) ? nonRootAnswer(lp, { kind: 'rdtsc', length: d.len }) : NATIVE;
        if (a.kind === 'exited') return true;
        setEdxEax(lp, a.kind === 'substitute' ? a.value : lp.readTsc());
      }
      lp.rip = next;
      return false;
    case 0x132: { // RDMSR
      requireCpl0(lp, 'RDMSR');
      const msr = lp.regLo[RCX]! >>> 0;
      const a = inVmxNonRoot(lp) ? nonRootAnswer(lp, { kind: 'rdmsr', length: d.len, msr }) : NATIVE;
      if (a.kind === 'exited') return true;
      setEdxEax(lp, a.kind === 'substitute' ? a.value : lp.rdmsr(msr));
      lp.rip = next;
      return false;
    }
    case 0x133: { // RDPMC
      // CPL > 0 with CR4.PCE = 0 is #GP(0), a privilege fault that comes before a VM exit; an invalid counter in
      // ECX is #GP(0) only after "RDPMC exiting" had its say. See SDM Vol. 2B, "RDPMC—Read Performance-Monitoring
      // Counters" and Vol. 3C, "Relative Priority of Faults and VM Exits".
      if (lp.cpl !== 0 && !(lp.cr4 & CR4.PCE)) throw gp(0, `RDPMC at CPL ${lp.cpl} with CR4.PCE = 0`, 'SDM Vol. 2B, "RDPMC—Read Performance-Monitoring Counters"');
      if (inVmxNonRoot(lp) && vmExitTakes(lp, { kind: 'rdpmc', length: d.len })) return true;
      setEdxEax(lp, readPerformanceCounter(lp, lp.regLo[RCX]! >>> 0));
      lp.rip = next;
      return false;
    }
    case 0x134: return sysenter(lp);
    case 0x135: return sysexit(lp, d);
    case 0x178: case 0x179: return vmxInstruction(lp, d, next, op === 0x178 ? 'VMREAD' : 'VMWRITE');
    case 0x1a2: { // CPUID
      if (inVmxNonRoot(lp) && vmExitTakes(lp, { kind: 'cpuid', length: d.len })) return true;
      lp.caches.fence(); // serializing (SDM Vol. 3A, "Serializing Instructions")
      const r = lp.cpuid(lp.regLo[RAX]! >>> 0, lp.regLo[RCX]! >>> 0);
      setReg(lp, RAX, 4, 0, r.eax | 0, 0);
      setReg(lp, RBX, 4, 0, r.ebx | 0, 0);
      setReg(lp, RCX, 4, 0, r.ecx | 0, 0);
      setReg(lp, RDX, 4, 0, r.edx | 0, 0);
      lp.rip = next;
      return false;
    }
    case 0x1a0: case 0x1a8: // PUSH FS/GS
      push(lp, d.opSize, lp.segSel[op === 0x1a0 ? FS : GS]!, 0);
      lp.rip = next;
      return false;
    case 0x1a1: case 0x1a9: { // POP FS/GS
      const sel = peek(lp, d.opSize, 0) & 0xffff;
      loadDataSegment(lp, op === 0x1a1 ? FS : GS, sel);
      adjustSp(lp, d.opSize);
      lp.rip = next;
      return false;
    }
    case 0x1a3: case 0x1ab: case 0x1b3: case 0x1bb: { // BT/BTS/BTR/BTC r/m, r
      const kind = op === 0x1a3 ? 0 : op === 0x1ab ? 1 : op === 0x1b3 ? 2 : 3;
      const off = getReg(lp, d.reg, d.opSize, d.rex);
      const offHi = scratch.hi;
      bitTest(lp, d, kind, off, offHi, true);
      lp.rip = next;
      return false;
    }
    case 0x1ba: { // BT/BTS/BTR/BTC r/m, imm8
      bitTest(lp, d, (d.reg & 7) - 4, d.imm & 0xff, 0, false);
      lp.rip = next;
      return false;
    }
    case 0x1a4: case 0x1a5: case 0x1ac: case 0x1ad: return shiftDouble(lp, d, next);
    case 0x1ae: { // FXSAVE/FXRSTOR, LDMXCSR/STMXCSR, XSAVE/XRSTOR; CLFLUSH/CLFLUSHOPT m8, or LFENCE/MFENCE/SFENCE
      if (d.mem && (d.reg & 7) <= 1) return fxsaveRestore(lp, d, next, (d.reg & 7) === 1);
      if (d.mem && (d.reg & 7) <= 3) return ldStMxcsr(lp, d, next, (d.reg & 7) === 2);
      if (d.mem && (d.reg & 7) <= 5) return xsaveRestore(lp, d, next, (d.reg & 7) === 5);
      if (d.mem) {
        // CLFLUSH is checked as a byte read ("treated as a byte load" for permissions and faults); the line it names
        // is written back if dirty and invalidated. See SDM Vol. 2A, "CLFLUSH—Flush Cache Line".
        const la = linearAddress(lp, d, 1);
        lp.caches.clflush(lp.translate(la, ACCESS_READ));
      } else if ((d.reg & 7) >= 6) {
        // MFENCE (/6) and SFENCE (/7) order stores: the write-combining buffers drain. LFENCE (/5) orders loads only.
        // See SDM Vol. 2B, "MFENCE—Memory Fence" and "SFENCE—Store Fence".
        lp.caches.fence();
      }
      lp.rip = next;
      return false;
    }
    case 0x1af: { // IMUL r, r/m
      const b = readRM(lp, d, d.opSize);
      imul2(lp, d, b, scratch.hi, getReg(lp, d.reg, d.opSize, d.rex), scratch.hi);
      lp.rip = next;
      return false;
    }
    case 0x1b0: case 0x1b1: { // CMPXCHG r/m, r (writes the destination back even when the comparison fails)
      const size = op & 1 ? d.opSize : 1;
      const dst = readRMForWrite(lp, d, size);
      const dh = scratch.hi;
      const la = scratch.la;
      const acc = getReg(lp, RAX, size, 0);
      const acch = scratch.hi;
      alu(lp, ALU_CMP, size, acc, acch, dst, dh);
      if (lazyZF(lp.lazy, lp.rflagsRaw)) {
        const src = getReg(lp, d.reg, size, d.rex);
        writeRM(lp, d, size, src, scratch.hi, la);
      } else {
        // The destination is written back with its own value (locked cycle), then the accumulator loaded.
        writeRM(lp, d, size, dst, dh, la);
        setReg(lp, RAX, size, 0, dst, dh);
      }
      lp.rip = next;
      return false;
    }
    case 0x1b6: case 0x1b7: case 0x1be: case 0x1bf: { // MOVZX / MOVSX
      const src = op & 1 ? 2 : 1;
      let v = readRM(lp, d, src);
      if (op >= 0x1be) v = src === 1 ? (v << 24) >> 24 : (v << 16) >> 16;
      setReg(lp, d.reg, d.opSize, d.rex, d.opSize === 2 ? v & 0xffff : v, op >= 0x1be ? v >> 31 : 0);
      lp.rip = next;
      return false;
    }
    case 0x1b8: return popcnt(lp, d, next);
    case 0x1bc: case 0x1bd: { // BSF / BSR; F3H: TZCNT / LZCNT where the model has them (else the prefix is ignored)
      if (d.rep === 0xf3 && zeroCountEnabled(lp, op)) return zeroCount(lp, d, next);
      const v = readRM(lp, d, d.opSize);
      const vh = d.opSize === 8 ? scratch.hi : 0;
      const lo = d.opSize === 2 ? v & 0xffff : v;
      lp.materializeFlags();
      if ((lo | vh) === 0) {
        // Source 0: ZF = 1 and the destination is left unchanged.
        lp.rflagsRaw |= ZF;
      } else {
        let idx: number;
        if (op === 0x1bc) idx = lo !== 0 ? 31 - Math.clz32(lo & -lo) : 32 + 31 - Math.clz32(vh & -vh);
        else idx = vh !== 0 ? 63 - Math.clz32(vh) : 31 - Math.clz32(lo);
        lp.rflagsRaw &= ~ZF;
        setReg(lp, d.reg, d.opSize, d.rex, idx, 0);
      }
      lp.rip = next;
      return false;
    }
    case 0x1c0: case 0x1c1: { // XADD r/m, r
      const size = op & 1 ? d.opSize : 1;
      const dst = readRMForWrite(lp, d, size);
      const dh = scratch.hi;
      const la = scratch.la;
      const src = getReg(lp, d.reg, size, d.rex);
      const sh = scratch.hi;
      const sum = alu(lp, 0, size, dst, dh, src, sh);
      const sumh = scratch.hi;
      writeRM(lp, d, size, sum, sumh, la);
      setReg(lp, d.reg, size, d.rex, dst, dh);
      lp.rip = next;
      return false;
    }
    case 0x1c7: { // VMPTRLD / VMCLEAR / VMXON (/6), VMPTRST (/7); register forms RDRAND (/6), RDSEED (/7)
      const r = d.reg & 7;
      if (!d.mem) return randomNumber(lp, d, next, r === 6 ? 'rdrand' : 'rdseed');
      if (r === 1) return cmpxchgWide(lp, d, next);
      const m: VmxMnemonic = r === 7 ? 'VMPTRST' : d.rep === 0xf3 ? 'VMXON' : d.has66 ? 'VMCLEAR' : 'VMPTRLD';
      return vmxInstruction(lp, d, next, m);
    }
    case 0x1c8: case 0x1c9: case 0x1ca: case 0x1cb: case 0x1cc: case 0x1cd: case 0x1ce: case 0x1cf: { // BSWAP
      const r = (op & 7) | ((d.rex & 1) << 3);
      const sw = (x: number): number => ((x >>> 24) | ((x >>> 8) & 0xff00) | ((x << 8) & 0xff0000) | (x << 24)) | 0;
      if (d.opSize === 8) setReg(lp, r, 8, 0, sw(lp.regHi[r]!), sw(lp.regLo[r]!));
      else if (d.opSize === 4) setReg(lp, r, 4, 0, sw(lp.regLo[r]!), 0);
      else setReg(lp, r, 2, 0, 0, 0); // 16-bit BSWAP is undefined; real CPUs give 0
      lp.rip = next;
      return false;
    }
    case 0x280: case 0x281:
      return vmxInstruction(lp, d, next, op === 0x280 ? 'INVEPT' : 'INVVPID');
    case 0x282:
      return invpcid(lp, d, next);
    case OP_INVALID:
      // An x87 escape VMX Lab does not implement still takes its #NM first (CR0.EM/TS), as the FPU would.
      if (d.invalidKind === 'unimplemented' && d.invalidKey >= 0xd8 && d.invalidKey <= 0xdf) requireFpu(lp, `x87 opcode ${d.invalidKey.toString(16).toUpperCase()}H`);
      throw ud(d.invalidReason || 'invalid opcode', 'SDM Vol. 2D, "Opcode Map"');
  }
  if (op >= 0x140 && op <= 0x14f) { // CMOVcc
    const v = readRM(lp, d, d.opSize);
    const vh = scratch.hi;
    if (condition(op & 0xf, lp.lazy, lp.rflagsRaw)) setReg(lp, d.reg, d.opSize, d.rex, v, vh);
    else if (d.opSize === 4) lp.regHi[d.reg] = 0; // 32-bit CMOVcc zero-extends even when not moving
    lp.rip = next;
    return false;
  }
  if (op >= 0x180 && op <= 0x18f) { // Jcc rel32
    if (condition(op & 0xf, lp.lazy, lp.rflagsRaw)) jumpTo(lp, d, next + d.imm);
    else lp.rip = next;
    return true;
  }
  if (op >= 0x190 && op <= 0x19f) { // SETcc
    writeRM(lp, d, 1, condition(op & 0xf, lp.lazy, lp.rflagsRaw) ? 1 : 0, 0, -1);
    lp.rip = next;
    return false;
  }
  throw ud(d.invalidReason || `opcode ${op.toString(16)}H: valid x86 but not implemented by VMX Lab`, 'SDM Vol. 2D, "Opcode Map"');
}

// ======================================================================================== helpers
function setShadow(lp: LogicalProcessor, kind: 'sti' | 'mov-ss'): void {
  // The boundary after the *next* instruction is the first one where interrupts are recognised again.
  lp.shadowAt = lp.instructions + 1;
  lp.shadowKind = kind;
}

function requireCpl0(lp: LogicalProcessor, what: string): void {
  if (lp.cpl !== 0) throw gp(0, `${what} at CPL ${lp.cpl}`, SDM_PRIV);
}

/** CR4.UMIP: SGDT SIDT SLDT SMSW STR at CPL > 0 raise #GP(0). See SDM Vol. 3A, "User-Mode Instruction Prevention". */
function checkUmip(lp: LogicalProcessor, what: string): void {
  if (lp.cr4 & CR4.UMIP && lp.cpl > 0) throw gp(0, `${what} at CPL ${lp.cpl} with CR4.UMIP = 1`, 'SDM Vol. 3A, "User-Mode Instruction Prevention"');
}

function checkIopl(lp: LogicalProcessor, what: string): void {
  if (lp.cr0 & CR0.PE && lp.cpl > ((lp.rflagsRaw >>> 12) & 3)) {
    throw gp(0, `${what} with CPL ${lp.cpl} > IOPL ${(lp.rflagsRaw >>> 12) & 3}`, 'SDM Vol. 2A, "CLI—Clear Interrupt Flag"');
  }
}

/**
 * Protected-mode I/O permission: with CPL > IOPL the TSS's I/O permission bit map decides, and every bit for the
 * ports port … port + size − 1 must be 0. These #GP checks come before any VM exit of the I/O instruction.
 * See SDM Vol. 1, "I/O Privilege Level" and "I/O Permission Bit Map", and Vol. 3C, "Relative Priority of Faults
 * and VM Exits".
 */
function checkIoPermission(lp: LogicalProcessor, port: number, size: number): void {
  if (!(lp.cr0 & CR0.PE) || lp.cpl <= ((lp.rflagsRaw >>> 12) & 3)) return;
  const denied = ioBitmapDenies(lp, port, size);
  if (denied !== null) {
    throw gp(0, `I/O to port ${port.toString(16)}H (${size} bytes) with CPL > IOPL: ${denied}`, 'SDM Vol. 1, "I/O Permission Bit Map"');
  }
}

/** Why the TSS I/O permission bit map refuses the access, or null if it allows it. */
function ioBitmapDenies(lp: LogicalProcessor, port: number, size: number): string | null {
  const type = lp.segAr[TR]! & 0xf;
  if (lp.segAr[TR]! & AR.UNUSABLE || (type !== SYSTEM_TYPE.TSS_AVAILABLE && type !== SYSTEM_TYPE.TSS_BUSY)) return 'TR holds no 32-/64-bit TSS, so there is no I/O permission bit map';
  const limit = lp.segLimit[TR]! >>> 0;
  if (limit < 0x67) return `the TSS limit ${limit.toString(16)}H does not reach the I/O map base at 66H`;
  const base = lp.segBase[TR]!;
  const mapBase = lp.slowRead(base + 0x66, 2, ACCESS_READ, 0) & 0xffff;
  // The processor reads the two bytes holding the port's bits; both must be within the TSS limit.
  const offset = mapBase + (port >>> 3);
  if (offset + 1 > limit) return `the bit map bytes at TSS offset ${offset.toString(16)}H lie beyond the TSS limit ${limit.toString(16)}H`;
  const bits = (lp.slowRead(base + offset, 2, ACCESS_READ, 0) & 0xffff) >>> (port & 7);
  if (bits & ((1 << size) - 1)) return 'a bit for the port is 1 in the I/O permission bit map';
  return null;
}

/** Near branch to `target`, truncated to the operand size; 64-bit targets must be canonical (#GP(0) at the branch). */
function jumpTo(lp: LogicalProcessor, d: Insn, target: number): void {
  if (lp.bits === 64) {
    if (target >= CANON || target < -CANON) throw gp(0, `branch to non-canonical address ${target.toString(16)}`, 'SDM Vol. 3A, "Canonical Addressing"');
    lp.rip = target;
  } else {
    lp.rip = d.opSize === 2 ? target & 0xffff : target >>> 0;
  }
}

function pushReturn(lp: LogicalProcessor, d: Insn, next: number): void {
  if (d.opSize === 8) push(lp, 8, next >>> 0 | 0, Math.floor(next / TWO32) | 0);
  else push(lp, d.opSize, d.opSize === 2 ? next & 0xffff : next | 0, 0);
}

function xchgAx(lp: LogicalProcessor, d: Insn, r: number): void {
  const a = getReg(lp, RAX, d.opSize, 0), ah = scratch.hi;
  const b = getReg(lp, r, d.opSize, 0), bh = scratch.hi;
  setReg(lp, RAX, d.opSize, 0, b, bh);
  setReg(lp, r, d.opSize, 0, a, ah);
}

function setEdxEax(lp: LogicalProcessor, v: bigint): void {
  setReg(lp, RAX, 4, 0, Number(v & 0xffffffffn) | 0, 0);
  setReg(lp, RDX, 4, 0, Number((v >> 32n) & 0xffffffffn) | 0, 0);
}

function counterIsZero(lp: LogicalProcessor, addrSize: number): boolean {
  if (addrSize === 8) return (lp.regLo[RCX]! | lp.regHi[RCX]!) === 0;
  if (addrSize === 4) return lp.regLo[RCX] === 0;
  return (lp.regLo[RCX]! & 0xffff) === 0;
}
function decCounter(lp: LogicalProcessor, addrSize: number): void {
  if (addrSize === 8) {
    if (lp.regLo[RCX] === 0) lp.regHi[RCX] = (lp.regHi[RCX]! - 1) | 0;
    lp.regLo[RCX] = (lp.regLo[RCX]! - 1) | 0;
  } else if (addrSize === 4) setReg(lp, RCX, 4, 0, (lp.regLo[RCX]! - 1) | 0, 0);
  else setReg(lp, RCX, 2, 0, lp.regLo[RCX]! - 1, 0);
}

/** POPF: which bits may change depends on CPL and IOPL. See SDM Vol. 2B, "POPF/POPFD/POPFQ". */
function popf(lp: LogicalProcessor, v: number): void {
  const old = lp.getRflags();
  let mask = STATUS_MASK | RFLAGS.TF | RFLAGS.DF | RFLAGS.NT | RFLAGS.AC | RFLAGS.ID;
  const iopl = (old >>> 12) & 3;
  if (lp.cpl === 0) mask |= RFLAGS.IOPL | RFLAGS.IF;
  else if (lp.cpl <= iopl) mask |= RFLAGS.IF;
  const nv = ((old & ~mask) | (v & mask)) & ~(RFLAGS.RF | RFLAGS.VM);
  lp.setRflags(nv);
}

function raiseSoftware(lp: LogicalProcessor, vector: number, type: number, next: number, len: number): void {
  // INT n/INT3/INT1 deliver with RIP = the next instruction (trap-like). See SDM Vol. 2A, "INT n/INTO/INT3/INT1".
  lp.rip = next;
  deliverWithDoubleFault(lp, { vector, errorCode: -1, explanation: `INT ${vector}` }, type, next, len);
}

// ---------------------------------------------------------------- group 3: TEST NOT NEG MUL IMUL DIV IDIV
function group3(lp: LogicalProcessor, d: Insn, size: number): void {
  const r = d.reg & 7;
  // NOT and NEG (2, 3) write the operand back; TEST, MUL, IMUL, DIV, IDIV only read it.
  const a = r === 2 || r === 3 ? readRMForWrite(lp, d, size) : readRM(lp, d, size);
  const ah = scratch.hi;
  const la = scratch.la;
  switch (r) {
    case 0: case 1: // TEST r/m, imm
      alu(lp, 4, size, a, ah, d.imm & SIZE_MASK[size]!, d.immHi);
      return;
    case 2: // NOT: flags unaffected
      writeRM(lp, d, size, ~a & SIZE_MASK[size]!, ~ah, la);
      return;
    case 3: { // NEG = 0 - x (CF = operand ≠ 0)
      const v = alu(lp, 5, size, 0, 0, a, ah);
      writeRM(lp, d, size, v, scratch.hi, la);
      return;
    }
    case 4: case 5: { // MUL / IMUL (one operand): rDX:rAX = rAX × r/m
      const signed = r === 5;
      const acc = getReg(lp, RAX, size, 0), acch = scratch.hi;
      let lo: number, hi: number, hlo = 0, hhi = 0, of: boolean;
      if (size <= 2) {
        const x = signed ? (acc << (32 - size * 8)) >> (32 - size * 8) : acc;
        const y = signed ? (a << (32 - size * 8)) >> (32 - size * 8) : a;
        const p = x * y;
        lo = p & SIZE_MASK[size]!;
        hi = (p >> (size * 8)) & SIZE_MASK[size]!;
        of = signed ? p !== ((lo << (32 - size * 8)) >> (32 - size * 8)) : hi !== 0;
        if (size === 1) setReg(lp, RAX, 2, 0, (hi << 8) | lo, 0);
        else { setReg(lp, RAX, 2, 0, lo, 0); setReg(lp, RDX, 2, 0, hi, 0); }
      } else if (size === 4 && !signed) {
        lo = mulu32(acc, a);
        hi = scratch.hi;
        of = hi !== 0;
        setReg(lp, RAX, 4, 0, lo, 0);
        setReg(lp, RDX, 4, 0, hi, 0);
      } else {
        const m = multiply(signed, size, acc, acch, a, ah);
        lo = fromBig(m.lo); hlo = scratch.hi;
        hi = fromBig(m.hi); hhi = scratch.hi;
        of = m.overflow;
        setReg(lp, RAX, size, 0, lo, hlo);
        setReg(lp, RDX, size, 0, hi, hhi);
      }
      lp.lazy.op = 0;
      lp.rflagsRaw = (lp.rflagsRaw & ~STATUS_MASK) | szp(size, lo, hlo) | (of ? CF | OF : 0);
      return;
    }
    default: { // DIV / IDIV
      const signed = r === 7;
      let dividend: bigint;
      if (size === 1) dividend = BigInt(lp.regLo[RAX]! & 0xffff);
      else {
        const lo = toBig(getReg(lp, RAX, size, 0), size === 8 ? scratch.hi : 0);
        const hi = toBig(getReg(lp, RDX, size, 0), size === 8 ? scratch.hi : 0);
        dividend = (BigInt.asUintN(size * 8, hi) << BigInt(size * 8)) | BigInt.asUintN(size * 8, lo);
      }
      const { q, r: rem } = divide(signed, size, dividend, BigInt.asUintN(size * 8, toBig(a, size === 8 ? ah : 0)));
      // Flags are undefined after DIV/IDIV; they are left unchanged.
      if (size === 1) setReg(lp, RAX, 2, 0, (Number(rem) << 8) | Number(q), 0);
      else {
        const ql = fromBig(q), qh = scratch.hi;
        const rl = fromBig(rem), rh = scratch.hi;
        setReg(lp, RAX, size, 0, ql, qh);
        setReg(lp, RDX, size, 0, rl, rh);
      }
    }
  }
}

/** IMUL r, r/m(, imm): truncated product; CF = OF = the product did not fit. */
function imul2(lp: LogicalProcessor, d: Insn, a: number, ah: number, b: number, bh: number): void {
  const size = d.opSize;
  let lo: number, hi = 0, of: boolean;
  if (size === 2) {
    const p = ((a << 16) >> 16) * ((b << 16) >> 16);
    lo = p & 0xffff;
    of = p !== ((lo << 16) >> 16);
  } else if (size === 4) {
    lo = Math.imul(a, b);
    of = lo !== a * b; // both fit in 2^31, so the double product is exact enough to compare
    if (Math.abs(a * b) >= 2 ** 53) of = true;
  } else {
    const m = multiply(true, 8, a, ah, b, bh);
    lo = fromBig(m.lo);
    hi = scratch.hi;
    of = m.overflow;
  }
  setReg(lp, d.reg, size, d.rex, lo, hi);
  lp.lazy.op = 0;
  lp.rflagsRaw = (lp.rflagsRaw & ~STATUS_MASK) | szp(size, lo, hi) | (of ? CF | OF : 0);
}

// ---------------------------------------------------------------- BT family
/** kind 0 BT, 1 BTS, 2 BTR, 3 BTC. Register bit offsets may reach outside a memory operand. See SDM Vol. 2A, "BT—Bit Test". */
function bitTest(lp: LogicalProcessor, d: Insn, kind: number, off: number, offHi: number, regOffset: boolean): void {
  const size = d.opSize;
  const bits = size * 8;
  let bitIndex: number;
  let value: number, vh = 0, la = -1;
  if (d.mem && regOffset) {
    // Signed bit offset: address = EA + (offset >> log2(bits)) * size.
    const signedOff = size === 8 ? offHi * TWO32 + (off >>> 0) : size === 4 ? off : (off << 16) >> 16;
    const unitIndex = Math.floor(signedOff / bits);
    bitIndex = signedOff - unitIndex * bits;
    const ea = effectiveAddress(lp, d) + unitIndex * size;
    la = segmentLinear(lp, d.seg, d.addrSize === 8 ? ea : d.addrSize === 4 ? ea >>> 0 : ea & 0xffff, size);
    // BTS, BTR, BTC write the operand back (BT only reads it).
    value = kind === 0 ? readMem(lp, la, size) : readMemForWrite(lp, la, size);
    vh = scratch.hi;
  } else {
    bitIndex = off & (bits - 1);
    value = kind === 0 ? readRM(lp, d, size) : readRMForWrite(lp, d, size);
    vh = scratch.hi;
    la = scratch.la;
  }
  const inHi = bitIndex >= 32;
  const word = inHi ? vh : value;
  const m = 1 << (bitIndex & 31);
  const cf = (word & m) !== 0;
  setFlags(lp, CF, cf ? CF : 0);
  if (kind === 0) return;
  const nw = kind === 1 ? word | m : kind === 2 ? word & ~m : word ^ m;
  if (inHi) vh = nw; else value = nw;
  if (d.mem) writeMem(lp, la, size, value & SIZE_MASK[size]!, vh);
  else setReg(lp, d.rm, size, d.rex, value, vh);
}

// ---------------------------------------------------------------- group 4/5
function group45(lp: LogicalProcessor, d: Insn, op: number, next: number): boolean {
  const r = d.reg & 7;
  if (r <= 1) { // INC/DEC r/m
    const size = op === 0xfe ? 1 : d.opSize;
    const a = readRMForWrite(lp, d, size);
    const ah = scratch.hi;
    const la = scratch.la;
    const v = incDec(lp, r === 1, size, a, ah);
    writeRM(lp, d, size, v, scratch.hi, la);
    lp.rip = next;
    return false;
  }
  switch (r) {
    case 2: case 4: { // CALL/JMP near indirect
      const v = readRM(lp, d, d.opSize);
      const t = d.opSize === 8 ? scratch.hi * TWO32 + (v >>> 0) : d.opSize === 4 ? v >>> 0 : v & 0xffff;
      if (lp.bits === 64 && (t >= CANON || t < -CANON)) throw gp(0, 'indirect branch to a non-canonical address', 'SDM Vol. 3A, "Canonical Addressing"');
      if (r === 2) pushReturn(lp, d, next);
      lp.rip = t;
      return true;
    }
    case 3: case 5: { // CALL/JMP far indirect: m16:16, m16:32 or m16:64
      const size = d.opSize;
      const la = linearAddress(lp, d, size + 2);
      const off = readMem(lp, la, size);
      const offHi = scratch.hi;
      const sel = readMem(lp, la + size, 2);
      const oldCs = lp.segSel[CS]!;
      const target = size === 8 ? offHi * TWO32 + (off >>> 0) : size === 4 ? off >>> 0 : off & 0xffff;
      if (r === 3) {
        // Push CS then the return RIP on the current stack before switching.
        push(lp, size, oldCs, 0);
        pushReturn(lp, d, next);
      }
      loadCodeSegment(lp, sel, lp.cr0 & CR0.PE ? lp.cpl : 0, r === 3 ? 'far CALL' : 'far JMP');
      lp.rip = target;
      return true;
    }
    default: { // PUSH r/m
      const v = readRM(lp, d, d.opSize);
      push(lp, d.opSize, v, scratch.hi);
      lp.rip = next;
      return false;
    }
  }
}

// ---------------------------------------------------------------- IRET
/** IRET/IRETD/IRETQ (same privilege or to CPL 3 in IA-32e mode; real mode). See SDM Vol. 2A, "IRET/IRETD/IRETQ—Interrupt Return". */
function iret(lp: LogicalProcessor, d: Insn): void {
  const size = d.opSize;
  // With virtual NMIs IRET removes virtual-NMI blocking, even if it faults; NMI blocking stays as it is. See SDM
  // Vol. 3C, "Changes to Instruction Behavior in VMX Non-Root Operation" (IRET).
  if (lp.virtualNmis) lp.virtualNmiBlocked = false;
  else lp.nmiBlocked = false;
  if (!(lp.cr0 & CR0.PE)) {
    const ip = peek(lp, size, 0);
    const cs = peek(lp, size, size) & 0xffff;
    const fl = peek(lp, size, size * 2);
    adjustSp(lp, size * 3);
    lp.segSel[CS] = cs;
    lp.segBase[CS] = cs * 16;
    lp.rip = size === 4 ? ip >>> 0 : ip & 0xffff;
    const merged = size === 4 ? fl : (lp.getRflags() & ~0xffff) | (fl & 0xffff);
    lp.setRflags((merged & 0x257fd5) | RFLAGS.FIXED1);
    lp.updateMode();
    return;
  }
  if (lp.rflagsRaw & RFLAGS.NT && !(lp.efer & EFER.LMA)) throw gp(0, modeNotImplementedReason('task-switch', 'IRET with NT = 1 (a task return)'), 'SDM Vol. 2A, "IRET/IRETD/IRETQ—Interrupt Return"');
  const ip = peek(lp, size, 0);
  const iph = scratch.hi;
  const sel = peek(lp, size, size) & 0xffff;
  const fl = peek(lp, size, size * 2);
  const target = size === 8 ? iph * TWO32 + (ip >>> 0) : size === 4 ? ip >>> 0 : ip & 0xffff;
  const rpl = sel & 3;
  if (rpl < lp.cpl) throw gp(sel & 0xfffc, `IRET to a more privileged level (RPL ${rpl} < CPL ${lp.cpl})`, 'SDM Vol. 2A, "IRET/IRETD/IRETQ—Interrupt Return"');
  const popsStack = lp.bits === 64 || rpl !== lp.cpl;
  let newRsp = 0, newRspHi = 0, newSs = 0;
  if (popsStack) {
    newRsp = peek(lp, size, size * 3);
    newRspHi = scratch.hi;
    newSs = peek(lp, size, size * 4) & 0xffff;
  }
  const oldCpl = lp.cpl;
  loadCodeSegment(lp, sel, rpl, 'IRET');
  if (lp.bits === 64 && (target >= CANON || target < -CANON)) throw gp(0, 'IRET to a non-canonical RIP', 'SDM Vol. 2A, "IRET/IRETD/IRETQ—Interrupt Return"');
  // RFLAGS: IOPL only at CPL 0, IF only if CPL ≤ IOPL; VIF/VIP from the image; RF cleared.
  const old = lp.getRflags();
  let mask = STATUS_MASK | RFLAGS.TF | RFLAGS.DF | RFLAGS.NT | RFLAGS.AC | RFLAGS.ID | RFLAGS.RF;
  if (oldCpl === 0) mask |= RFLAGS.IOPL | RFLAGS.VIF | RFLAGS.VIP;
  if (oldCpl <= ((old >>> 12) & 3)) mask |= RFLAGS.IF;
  const flv = size === 2 ? (old & ~0xffff) | (fl & 0xffff) : fl;
  lp.setRflags((old & ~mask) | (flv & mask));
  if (popsStack) {
    if (lp.bits === 64 && (newSs & 0xfffc) === 0) {
      lp.segSel[SS] = newSs;
      lp.segAr[SS] = AR.UNUSABLE | AR.P | AR.S | AR.RW | (rpl << AR.DPL_SHIFT);
    } else loadDataSegment(lp, SS, newSs);
    if (size === 8) { lp.regLo[RSP] = newRsp; lp.regHi[RSP] = newRspHi; }
    else if (size === 4) setReg(lp, RSP, 4, 0, newRsp, 0);
    else setReg(lp, RSP, 2, 0, newRsp, 0);
  } else adjustSp(lp, size * 3);
  lp.rip = target;
  lp.updateMode();
}

// ---------------------------------------------------------------- strings
function stringStep(lp: LogicalProcessor, reg: number, addrSize: number, delta: number): void {
  if (addrSize === 8) {
    const v = lp.regHi[reg]! * TWO32 + (lp.regLo[reg]! >>> 0) + delta;
    lp.regLo[reg] = v >>> 0 | 0;
    lp.regHi[reg] = Math.floor(v / TWO32) | 0;
  } else if (addrSize === 4) setReg(lp, reg, 4, 0, (lp.regLo[reg]! + delta) | 0, 0);
  else setReg(lp, reg, 2, 0, lp.regLo[reg]! + delta, 0);
}
function stringAddr(lp: LogicalProcessor, reg: number, addrSize: number): number {
  if (addrSize === 8) return lp.regHi[reg]! * TWO32 + (lp.regLo[reg]! >>> 0);
  return addrSize === 4 ? lp.regLo[reg]! >>> 0 : lp.regLo[reg]! & 0xffff;
}

/**
 * Iterations a REP string instruction runs before it restarts itself (RIP unchanged). One while VMX watches every
 * instruction boundary (MTF, window exits, the preemption timer): with MTF, "an MTF VM exit is pending on the
 * instruction boundary after that iteration". See SDM Vol. 3C, "Monitor Trap Flag".
 */
function repChunk(lp: LogicalProcessor): number {
  return lp.vmx !== null && lp.vmx.nonRoot && lp.vmx.boundaryHook === true ? 1 : REP_CHUNK;
}

/** MOVS CMPS STOS LODS SCAS with optional REP/REPE/REPNE. See SDM Vol. 2B, "REP/REPE/REPZ/REPNE/REPNZ". */
function stringOp(lp: LogicalProcessor, d: Insn, next: number): boolean {
  const op = d.op;
  const size = op & 1 ? d.opSize : 1;
  const delta = lp.rflagsRaw & DF_MASK ? -size : size;
  const as = d.addrSize;
  const srcSeg = d.segOverride >= 0 ? d.segOverride : DS;
  const kind = op & 0xfe; // A4 MOVS, A6 CMPS, AA STOS, AC LODS, AE SCAS
  const rep = d.rep !== 0;
  const chunk = repChunk(lp);
  for (let i = 0; i < chunk; i++) {
    if (rep && counterIsZero(lp, as)) break;
    switch (kind) {
      case 0xa4: {
        const v = readMem(lp, segmentLinear(lp, srcSeg, stringAddr(lp, RSI, as), size), size);
        writeMem(lp, segmentLinear(lp, ES, stringAddr(lp, RDI, as), size), size, v, scratch.hi);
        stringStep(lp, RSI, as, delta);
        stringStep(lp, RDI, as, delta);
        break;
      }
      case 0xa6: {
        const a = readMem(lp, segmentLinear(lp, srcSeg, stringAddr(lp, RSI, as), size), size);
        const ah = scratch.hi;
        const b = readMem(lp, segmentLinear(lp, ES, stringAddr(lp, RDI, as), size), size);
        alu(lp, ALU_CMP, size, a, ah, b, scratch.hi);
        stringStep(lp, RSI, as, delta);
        stringStep(lp, RDI, as, delta);
        break;
      }
      case 0xaa: {
        const v = getReg(lp, RAX, size, 0);
        writeMem(lp, segmentLinear(lp, ES, stringAddr(lp, RDI, as), size), size, v, scratch.hi);
        stringStep(lp, RDI, as, delta);
        break;
      }
      case 0xac: {
        const v = readMem(lp, segmentLinear(lp, srcSeg, stringAddr(lp, RSI, as), size), size);
        setReg(lp, RAX, size, 0, v, scratch.hi);
        stringStep(lp, RSI, as, delta);
        break;
      }
      default: {
        const a = getReg(lp, RAX, size, 0);
        const ah = scratch.hi;
        const b = readMem(lp, segmentLinear(lp, ES, stringAddr(lp, RDI, as), size), size);
        alu(lp, ALU_CMP, size, a, ah, b, scratch.hi);
        stringStep(lp, RDI, as, delta);
        break;
      }
    }
    if (!rep) break;
    decCounter(lp, as);
    lp.workDebt++;
    // REPE/REPNE also stop on ZF for CMPS/SCAS.
    if (kind === 0xa6 || kind === 0xae) {
      const zf = lazyZF(lp.lazy, lp.rflagsRaw);
      if ((d.rep === 0xf3 && !zf) || (d.rep === 0xf2 && zf)) break;
    }
    if (counterIsZero(lp, as)) break;
    if (i === chunk - 1) return true; // not finished: restart the instruction (RIP unchanged)
  }
  lp.rip = next;
  return false;
}

/** INS/OUTS (with REP). */
function stringIo(lp: LogicalProcessor, d: Insn, next: number): boolean {
  const size = d.op & 1 ? (d.opSize === 2 ? 2 : 4) : 1;
  const isIn = d.op < 0x6e;
  const port = lp.regLo[RDX]! & 0xffff;
  const as = d.addrSize;
  const srcSeg = d.segOverride >= 0 ? d.segOverride : DS;
  checkIoPermission(lp, port, size);
  // The VM exit comes before the first iteration (a REP form exits with RCX, RSI/RDI and memory untouched).
  if (lp.vmx !== null && lp.vmx.nonRoot && vmExitTakes(lp, {
    kind: 'io', length: d.len,
    io: {
      port, size: size as 1 | 2 | 4, direction: isIn ? 'in' : 'out', string: true, rep: d.rep !== 0, immediate: false,
      addressSize: as as 2 | 4 | 8, segment: isIn ? ES : srcSeg, linear: stringIoLinear(lp, isIn ? ES : srcSeg, isIn ? RDI : RSI, as),
    },
  })) return true;
  const delta = lp.rflagsRaw & DF_MASK ? -size : size;
  const rep = d.rep !== 0;
  const chunk = repChunk(lp);
  for (let i = 0; i < chunk; i++) {
    if (rep && counterIsZero(lp, as)) break;
    if (isIn) {
      const la = segmentLinear(lp, ES, stringAddr(lp, RDI, as), size);
      lp.translate(la, 1); // check the destination before reading the port
      writeMem(lp, la, size, lp.io.in(port, size as 1 | 2 | 4), 0);
      stringStep(lp, RDI, as, delta);
    } else {
      const v = readMem(lp, segmentLinear(lp, srcSeg, stringAddr(lp, RSI, as), size), size);
      lp.io.out(port, size as 1 | 2 | 4, size === 4 ? v >>> 0 : v);
      stringStep(lp, RSI, as, delta);
    }
    if (!rep) break;
    decCounter(lp, as);
    lp.workDebt++;
    if (counterIsZero(lp, as)) break;
    if (i === chunk - 1) return true;
  }
  lp.rip = next;
  return true;
}

/**
 * The linear address of an INS/OUTS memory operand as VMX reports it: the segment base plus (E/R)DI or (E/R)SI
 * of the address size, with bits 63:32 clear outside 64-bit mode; null when the segment is unusable. No limit or
 * canonical check: the VM exit comes before the access. See SDM Vol. 3C, "Basic VM-Exit Information" (guest-linear
 * address).
 */
function stringIoLinear(lp: LogicalProcessor, seg: number, reg: number, addrSize: number): bigint | null {
  if (lp.cr0 & CR0.PE && lp.segAr[seg]! & AR.UNUSABLE) return null;
  const offset = addrSize === 8
    ? (BigInt(lp.regHi[reg]!) << 32n) + BigInt(lp.regLo[reg]! >>> 0) // exact beyond 2^53
    : BigInt(stringAddr(lp, reg, addrSize));
  const la = BigInt(lp.segEffBase[seg]!) + offset;
  return lp.bits === 64 ? BigInt.asUintN(64, la) : la & 0xffffffffn;
}

// ---------------------------------------------------------------- MOV CR / DR
function movCr(lp: LogicalProcessor, d: Insn, next: number): boolean {
  requireCpl0(lp, 'MOV CR');
  const cr = d.reg;
  const gpr = d.rm;
  const toCr = d.op === 0x122;
  const size = lp.bits === 64 ? 8 : 4;
  const source = toCr ? (size === 8 ? lp.getGpr(gpr) : BigInt(lp.regLo[gpr]! >>> 0)) : 0n;
  const a = inVmxNonRoot(lp) ? nonRootAnswer(lp, { kind: 'cr-access', length: d.len, cr, access: toCr ? 0 : 1, gpr, value: source, lmswSource: 0, lmswLinear: null }) : NATIVE;
  if (a.kind === 'exited') return true;
  if (toCr) {
    // In VMX non-root operation VMX may substitute the value loaded (host-owned bits keep their value).
    const v = a.kind === 'substitute' ? a.value : source;
    switch (cr) {
      case 0: lp.writeCr0(v); break;
      case 2: lp.writeCr2(v); break;
      case 3: lp.writeCr3(v); break;
      case 4: lp.writeCr4(v); break;
      default: lp.writeCr8(v); break;
    }
  } else {
    // In VMX non-root operation VMX may substitute the value read (read shadows, TPR shadow).
    const v = a.kind === 'substitute' ? a.value
      : cr === 0 ? lp.readCr0() : cr === 2 ? lp.readCr2() : cr === 3 ? lp.readCr3() : cr === 4 ? lp.readCr4() : lp.readCr8();
    if (size === 8) lp.setGpr(gpr, v);
    else setReg(lp, gpr, 4, 0, Number(v & 0xffffffffn) | 0, 0);
  }
  lp.rip = next;
  return toCr;
}

function movDr(lp: LogicalProcessor, d: Insn, next: number): boolean {
  const toDr = d.op === 0x123;
  // A "MOV-DR exiting" VM exit comes first: unlike other VM exits it has priority over the #GP for CPL > 0 and
  // the #UD for DR4/DR5 with CR4.DE = 1, and (as a fault-like VM exit) over the general-detect #DB.
  // See SDM Vol. 3C, "Instructions That Cause VM Exits Conditionally" and "Relative Priority of Faults and VM Exits".
  if (inVmxNonRoot(lp) && vmExitTakes(lp, { kind: 'dr-access', length: d.len, dr: d.reg, direction: toDr ? 'to' : 'from', gpr: d.rm })) return true;
  requireCpl0(lp, 'MOV DR');
  let dr = d.reg;
  // DR4/DR5 alias DR6/DR7 unless CR4.DE = 1, which makes them #UD. See SDM Vol. 3A, "Debug Registers".
  if (dr === 4 || dr === 5) {
    if (lp.cr4 & CR4.DE) throw ud(`MOV DR${dr} with CR4.DE = 1`, 'SDM Vol. 3A, "Debug Registers"');
    dr += 2;
  }
  // General detect: with DR7.GD = 1 every MOV DR is a #DB fault that sets DR6.BD (delivery then clears GD).
  // See SDM Vol. 3B, "General-Detect Exception Condition".
  if (Number(lp.dr[7]! & BigInt(DR7_GD)) !== 0) {
    lp.pendingDr6 = DR6.BD;
    throw new CpuFault(DB_VECTOR, -1, 'MOV DR with DR7.GD = 1 (general-detect condition)', 'SDM Vol. 3B, "General-Detect Exception Condition"');
  }
  if (toDr) {
    const v = lp.bits === 64 ? lp.getGpr(d.rm) : BigInt(lp.regLo[d.rm]! >>> 0);
    if (dr >= 6 && v >> 32n !== 0n) throw gp(0, `MOV to DR${dr} with bits 63:32 set`, 'SDM Vol. 3A, "Debug Registers"');
    lp.dr[dr] = dr === 6 ? (v | 0xffff0ff0n) & 0xffffeffffn : dr === 7 ? (v | 0x400n) & ~0x2000n & 0xffffffffn : v;
  } else {
    const v = lp.dr[dr]!;
    if (lp.bits === 64) lp.setGpr(d.rm, v);
    else setReg(lp, d.rm, 4, 0, Number(v & 0xffffffffn) | 0, 0);
  }
  lp.rip = next;
  return false;
}

// ---------------------------------------------------------------- group 6 (SLDT STR LLDT LTR)
function group6(lp: LogicalProcessor, d: Insn, next: number): boolean {
  const r = d.reg & 7;
  if (!(lp.cr0 & CR0.PE)) throw ud(`0F 00 /${r} in real mode`, 'SDM Vol. 2A, "LLDT—Load Local Descriptor Table Register"');
  if (r <= 1) { // SLDT/STR: 16-bit to memory, operand size to a register
    checkUmip(lp, r === 0 ? 'SLDT' : 'STR');
    if (descriptorTableExit(lp, d, r === 0 ? 'SLDT' : 'STR')) return true;
    const sel = lp.segSel[r === 0 ? LDTR : TR]!;
    if (d.mem) writeMem(lp, linearAddress(lp, d, 2), 2, sel, 0);
    else setReg(lp, d.rm, d.opSize === 2 ? 2 : 4, d.rex, sel, 0);
    lp.rip = next;
    return false;
  }
  requireCpl0(lp, r === 2 ? 'LLDT' : 'LTR');
  if (descriptorTableExit(lp, d, r === 2 ? 'LLDT' : 'LTR')) return true;
  const sel = readRM(lp, d, 2);
  const target = r === 2 ? LDTR : TR;
  const sdm = r === 2 ? 'SDM Vol. 2A, "LLDT—Load Local Descriptor Table Register"' : 'SDM Vol. 2A, "LTR—Load Task Register"';
  if ((sel & 0xfffc) === 0) {
    if (r === 3) throw gp(0, 'LTR with a null selector', sdm);
    lp.segSel[LDTR] = sel;
    lp.segAr[LDTR] = AR.UNUSABLE;
    lp.rip = next;
    return false;
  }
  if (sel & 4) throw gp(sel & 0xfffc, `${r === 2 ? 'LLDT' : 'LTR'} selector must reference the GDT`, sdm);
  const desc = readDescriptor(lp, sel);
  const type = desc.ar & 0xf;
  // In IA-32e mode only a 64-bit available TSS (type 9) qualifies; outside it also a 16-bit one (type 1).
  const tssOk = type === 9 || (type === 1 && !(lp.efer & EFER.LMA));
  if (desc.ar & AR.S || (r === 2 ? type !== 2 : !tssOk)) {
    throw gp(sel & 0xfffc, r === 2 ? 'LLDT selector does not name an LDT descriptor' : 'LTR selector does not name an available TSS descriptor', sdm);
  }
  if (!(desc.ar & AR.P)) throw new CpuFault(11, sel & 0xfffc, 'descriptor not present', sdm);
  let base = desc.base;
  if (lp.efer & EFER.LMA) {
    const upper = lp.readSys32(desc.address + 8);
    base += (upper | 0) * TWO32;
  }
  if (r === 3) {
    // LTR marks the TSS busy in the descriptor.
    lp.writeSys8(desc.address + 5, (desc.ar | 2) & 0xff);
    desc.ar |= 2;
  }
  lp.segSel[target] = sel;
  lp.segBase[target] = base;
  lp.segLimit[target] = desc.limit;
  lp.segAr[target] = desc.ar;
  lp.rip = next;
  return false;
}

// ---------------------------------------------------------------- group 7 (SGDT SIDT LGDT LIDT SMSW LMSW INVLPG + VMX/XSETBV/SWAPGS/RDTSCP)
function group7(lp: LogicalProcessor, d: Insn, next: number): boolean {
  const r = d.reg & 7;
  if (!d.mem) {
    const rm = d.rm & 7;
    switch ((r << 3) | rm) {
      case 0o01: return vmxInstruction(lp, d, next, 'VMCALL');
      case 0o02: return vmxInstruction(lp, d, next, 'VMLAUNCH');
      case 0o03: return vmxInstruction(lp, d, next, 'VMRESUME');
      case 0o04: return vmxInstruction(lp, d, next, 'VMXOFF');
      case 0o24: return vmxInstruction(lp, d, next, 'VMFUNC');
      case 0o10: return monitor(lp, d, next);
      case 0o11: return mwait(lp, d, next);
      case 0o20: { // XGETBV
        if (!(lp.cr4 & CR4.OSXSAVE)) throw ud('XGETBV with CR4.OSXSAVE = 0', 'SDM Vol. 2C, "XGETBV—Get Value of Extended Control Register"');
        if ((lp.regLo[RCX]! >>> 0) !== 0) throw gp(0, 'XGETBV of an XCR other than XCR0', 'SDM Vol. 2C, "XGETBV—Get Value of Extended Control Register"');
        setEdxEax(lp, BigInt(lp.xcr0));
        lp.rip = next;
        return false;
      }
      case 0o21: return xsetbv(lp, d, next);
      case 0o70: { // SWAPGS
        if (lp.bits !== 64) throw ud('SWAPGS outside 64-bit mode', 'SDM Vol. 2B, "SWAPGS—Swap GS Base Register"');
        requireCpl0(lp, 'SWAPGS');
        const t = lp.segBase[GS]!;
        lp.segBase[GS] = lp.kernelGsBase;
        lp.kernelGsBase = t;
        lp.updateMode();
        lp.rip = next;
        return false;
      }
      case 0o71: { // RDTSCP
        if (lp.cr4 & CR4.TSD && lp.cpl !== 0) throw gp(0, 'RDTSCP at CPL > 0 with CR4.TSD = 1', 'SDM Vol. 2B, "RDTSCP—Read Time-Stamp Counter and Processor ID"');
        const a = inVmxNonRoot(lp) ? nonRootAnswer(lp, { kind: 'rdtscp', length: d.len }) : NATIVE;
        if (a.kind === 'exited') return true;
        setEdxEax(lp, a.kind === 'substitute' ? a.value : lp.readTsc());
        setReg(lp, RCX, 4, 0, Number(lp.rdmsr(MSR.MSR_TSC_AUX) & 0xffffffffn) | 0, 0);
        lp.rip = next;
        return false;
      }
    }
    if (r === 4) { // SMSW r
      checkUmip(lp, 'SMSW');
      setReg(lp, d.rm, d.opSize, d.rex, d.opSize === 2 ? lp.cr0 & 0xffff : lp.cr0, 0);
      lp.rip = next;
      return false;
    }
    // LMSW r16
    return lmsw(lp, d, next, getReg(lp, d.rm, 2, d.rex), null);
  }
  switch (r) {
    case 0: case 1: { // SGDT / SIDT: limit (2 bytes) then base (8 bytes in 64-bit mode, 4 otherwise)
      checkUmip(lp, r === 0 ? 'SGDT' : 'SIDT');
      if (descriptorTableExit(lp, d, r === 0 ? 'SGDT' : 'SIDT')) return true;
      const base = r === 0 ? lp.gdtrBase : lp.idtrBase;
      const limit = r === 0 ? lp.gdtrLimit : lp.idtrLimit;
      const baseSize = lp.bits === 64 ? 8 : 4;
      const la = linearAddress(lp, d, 2 + baseSize);
      lp.translate(la + 1 + baseSize, 1); // the whole operand must be writable before anything is stored
      writeMem(lp, la, 2, limit, 0);
      if (baseSize === 8) writeMem(lp, la + 2, 8, base >>> 0 | 0, Math.floor(base / TWO32) | 0);
      else writeMem(lp, la + 2, 4, base | 0, 0);
      lp.rip = next;
      return false;
    }
    case 2: case 3: { // LGDT / LIDT
      requireCpl0(lp, r === 2 ? 'LGDT' : 'LIDT');
      if (descriptorTableExit(lp, d, r === 2 ? 'LGDT' : 'LIDT')) return true;
      const baseSize = lp.bits === 64 ? 8 : 4;
      const la = linearAddress(lp, d, 2 + baseSize);
      const limit = readMem(lp, la, 2);
      let base: number;
      if (baseSize === 8) {
        const lo = readMem(lp, la + 2, 8);
        base = scratch.hi * TWO32 + (lo >>> 0);
        if (base >= CANON || base < -CANON) throw gp(0, `${r === 2 ? 'LGDT' : 'LIDT'} with a non-canonical base`, 'SDM Vol. 2A, "LGDT/LIDT—Load Global/Interrupt Descriptor Table Register"');
      } else {
        base = readMem(lp, la + 2, 4) >>> 0;
        if (d.opSize === 2) base &= 0xffffff; // 16-bit operand size loads a 24-bit base
      }
      if (r === 2) { lp.gdtrBase = base; lp.gdtrLimit = limit; } else { lp.idtrBase = base; lp.idtrLimit = limit; }
      lp.rip = next;
      return false;
    }
    case 4: // SMSW m16
      checkUmip(lp, 'SMSW');
      writeMem(lp, linearAddress(lp, d, 2), 2, lp.cr0 & 0xffff, 0);
      lp.rip = next;
      return false;
    case 6:
      return lmsw(lp, d, next, readRM(lp, d, 2), BigInt.asUintN(64, BigInt(linearAddress(lp, d, 2))));
    case 7: { // INVLPG
      requireCpl0(lp, 'INVLPG');
      const la = lp.bits === 64 ? lp.segEffBase[d.seg]! + effectiveAddress(lp, d) : (lp.segBase[d.seg]! + effectiveAddress(lp, d)) >>> 0;
      if (inVmxNonRoot(lp) && vmExitTakes(lp, { kind: 'invlpg', length: d.len, linear: BigInt.asUintN(64, BigInt(la)) })) return true;
      lp.tlb.flushPage(Math.floor(la / 4096));
      lp.rip = next;
      return true;
    }
  }
  throw ud(notImplementedReason({ key: 0x101, bits: lp.bits, mem: d.mem, reg: r }, `0F 01 /${r}`));
}

function lmsw(lp: LogicalProcessor, d: Insn, next: number, src: number, linear: bigint | null): boolean {
  requireCpl0(lp, 'LMSW');
  const a = inVmxNonRoot(lp) ? nonRootAnswer(lp, { kind: 'cr-access', length: d.len, cr: 0, access: 3, gpr: 0, value: 0n, lmswSource: src & 0xffff, lmswLinear: linear }) : NATIVE;
  if (a.kind === 'exited') return true;
  // LMSW loads PE MP EM TS; it can set PE but never clear it. See SDM Vol. 2A, "LMSW—Load Machine Status Word".
  const v = a.kind === 'substitute' ? a.value : BigInt(((lp.cr0 & ~0xe) | (src & 0xf) | (lp.cr0 & 1)) >>> 0);
  lp.writeCr0(v);
  lp.rip = next;
  return true;
}

/** XSETBV: CPL 0, CR4.OSXSAVE, XCR0 only, bit 0 set, AVX needs SSE. See SDM Vol. 2C, "XSETBV—Set Extended Control Register". */
function xsetbv(lp: LogicalProcessor, d: Insn, next: number): boolean {
  const sdm = 'SDM Vol. 2C, "XSETBV—Set Extended Control Register"';
  if (!(lp.cr4 & CR4.OSXSAVE)) throw ud('XSETBV with CR4.OSXSAVE = 0', sdm);
  if (inVmxNonRoot(lp) && vmExitTakes(lp, { kind: 'xsetbv', length: d.len })) return true;
  requireCpl0(lp, 'XSETBV');
  if ((lp.regLo[RCX]! >>> 0) !== 0) throw gp(0, 'XSETBV to an XCR other than XCR0', sdm);
  const v = lp.regLo[RAX]! >>> 0;
  const supported = XCR0.X87 | XCR0.SSE | XCR0.AVX;
  if (lp.regLo[RDX] !== 0 || (v & ~supported) !== 0 || !(v & XCR0.X87) || (v & XCR0.AVX && !(v & XCR0.SSE))) {
    throw gp(0, `invalid XCR0 value ${v.toString(16)}H`, sdm);
  }
  lp.xcr0 = v;
  lp.rip = next;
  return false;
}

// ---------------------------------------------------------------- descriptor-table exiting
/** How the instruction encodes its memory operand (for the VM-exit instruction-information field). */
function operandEncoding(d: Insn): MemOperandEncoding {
  return { segment: d.seg, base: d.base, index: d.index, scale: d.scale, displacement: BigInt(d.disp), ripRelative: d.ripRel };
}

/**
 * In VMX non-root operation, offer a descriptor-table instruction to "descriptor-table exiting": after its #UD and
 * privilege checks, before its operand is read or written. See SDM Vol. 3C, "Instructions That Cause VM Exits
 * Conditionally".
 */
function descriptorTableExit(lp: LogicalProcessor, d: Insn, instruction: DescriptorTableInstruction): boolean {
  if (lp.vmx === null || !lp.vmx.nonRoot) return false;
  return vmExitTakes(lp, {
    kind: 'descriptor-table', length: d.len, instruction, operandSize: d.opSize as 2 | 4 | 8, addressSize: d.addrSize as 2 | 4 | 8,
    mem: d.mem ? operandEncoding(d) : null, reg: d.mem ? -1 : d.rm,
  });
}

// ---------------------------------------------------------------- MONITOR / MWAIT
const MONITOR_SDM = 'SDM Vol. 2B, "MONITOR—Set Up Monitor Address"';
const MWAIT_SDM = 'SDM Vol. 2B, "MWAIT—Monitor Wait"';

/** #UD without CPUID.01H:ECX.MONITOR, and at CPL > 0 (both before any VM exit). */
function checkMonitorMwait(lp: LogicalProcessor, what: string, sdm: string): void {
  requireFeature(lp, CPUID_FEATURE.MONITOR, what, sdm);
  if (lp.cpl !== 0) throw ud(`${what} at CPL ${lp.cpl}`, sdm);
}

/**
 * MONITOR: arm the address-range monitor on the line at DS:rAX (segment override allowed; rAX by address size).
 * ECX (extensions) must be 0; EDX (hints) is ignored. The address is checked like a byte read (#GP, #PF).
 */
function monitor(lp: LogicalProcessor, d: Insn, next: number): boolean {
  checkMonitorMwait(lp, 'MONITOR', MONITOR_SDM);
  if (inVmxNonRoot(lp) && vmExitTakes(lp, { kind: 'monitor', length: d.len })) return true;
  if (lp.regLo[RCX] !== 0) throw gp(0, 'MONITOR with ECX ≠ 0 (no MONITOR extensions are supported)', MONITOR_SDM);
  const rax = d.addrSize === 8 ? lp.regHi[RAX]! * TWO32 + (lp.regLo[RAX]! >>> 0) : d.addrSize === 4 ? lp.regLo[RAX]! >>> 0 : lp.regLo[RAX]! & 0xffff;
  const la = segmentLinear(lp, d.seg, rax, 1);
  lp.monitor.arm(lp.translate(la, ACCESS_READ));
  lp.rip = next;
  return false;
}

/**
 * MWAIT: wait for a store to the armed line or an event. The SDM lets the processor leave the wait for
 * implementation-dependent reasons, and MWAIT without an armed monitor does not wait at all; VMX Lab always
 * continues at once (a deterministic NOP) and disarms the monitor. ECX[31:1] must be 0, and ECX[0] (interrupts
 * as break events) needs CPUID.05H:ECX[1], which the models do not report.
 */
function mwait(lp: LogicalProcessor, d: Insn, next: number): boolean {
  checkMonitorMwait(lp, 'MWAIT', MWAIT_SDM);
  if (lp.vmx !== null && lp.vmx.nonRoot && vmExitTakes(lp, { kind: 'mwait', length: d.len, monitorArmed: lp.monitor.armed })) return true;
  if (lp.regLo[RCX] !== 0) throw gp(0, `MWAIT with ECX = ${(lp.regLo[RCX]! >>> 0).toString(16)}H: no MWAIT extensions are supported`, MWAIT_SDM);
  lp.monitor.disarm();
  lp.rip = next;
  return false;
}

// ---------------------------------------------------------------- RDRAND / RDSEED
/**
 * RDRAND / RDSEED r16/r32/r64: a random value and CF = 1 (OF SF ZF AF PF cleared). VMX Lab's source never runs
 * dry, so CF is always 1; its values come from the LP's seeded generator (deterministic). See SDM Vol. 2B,
 * "RDRAND—Read Random Number" and "RDSEED—Read Random SEED".
 */
function randomNumber(lp: LogicalProcessor, d: Insn, next: number, kind: 'rdrand' | 'rdseed'): boolean {
  const sdm = kind === 'rdrand' ? 'SDM Vol. 2B, "RDRAND—Read Random Number"' : 'SDM Vol. 2B, "RDSEED—Read Random SEED"';
  requireFeature(lp, kind === 'rdrand' ? CPUID_FEATURE.RDRAND : CPUID_FEATURE.RDSEED, kind.toUpperCase(), sdm);
  const size = d.opSize as 2 | 4 | 8;
  if (lp.vmx !== null && lp.vmx.nonRoot && vmExitTakes(lp, { kind, length: d.len, reg: d.rm, operandSize: size })) return true;
  const v = lp.random.next64();
  setReg(lp, d.rm, size, d.rex, Number(v & 0xffffffffn) | 0, Number(v >> 32n) | 0);
  setFlags(lp, STATUS_MASK, CF);
  lp.rip = next;
  return false;
}

/** #UD when CPUID does not report `feature`. */
function requireFeature(lp: LogicalProcessor, feature: CpuidFeature, what: string, sdm: string): void {
  if (!cpuidBit(lp.cpuid(feature.leaf, feature.subleaf)[feature.reg], feature.bit)) {
    throw ud(`${what}: CPUID.${feature.leaf.toString(16).toUpperCase()}H:${feature.reg.toUpperCase()}[${feature.bit}] = 0 on this processor`, sdm);
  }
}

// ---------------------------------------------------------------- INVPCID
const INVPCID_SDM = 'SDM Vol. 2A, "INVPCID—Invalidate Process-Context Identifier"';

/**
 * INVPCID r64/r32, m128: invalidate TLB entries by PCID (type 0 one address, 1 one PCID, 2 all including global
 * entries, 3 all but global). This TLB has no PCIDs and no global entries: type 0 flushes the page, the others
 * flush everything, which invalidating "at least" the named entries allows. In VMX non-root operation VMX is
 * consulted before the CPL check: "enable INVPCID" = 0 makes INVPCID #UD, which comes before #GP.
 */
function invpcid(lp: LogicalProcessor, d: Insn, next: number): boolean {
  requireFeature(lp, CPUID_FEATURE.INVPCID, 'INVPCID', INVPCID_SDM);
  if (lp.vmx !== null && lp.vmx.nonRoot) {
    const event = { kind: 'invpcid', length: d.len, addressSize: d.addrSize as 2 | 4 | 8, mem: operandEncoding(d), reg: d.reg } as const;
    if (vmExitTakes(lp, event)) return true;
  }
  requireCpl0(lp, 'INVPCID');
  const type = lp.bits === 64 ? lp.getGpr(d.reg) : BigInt(lp.regLo[d.reg]! >>> 0);
  const la = linearAddress(lp, d, 16);
  const pcidWord = BigInt.asUintN(64, BigInt(readMem(lp, la, 8) >>> 0) | (BigInt(scratch.hi >>> 0) << 32n));
  const address = BigInt.asUintN(64, BigInt(readMem(lp, la + 8, 8) >>> 0) | (BigInt(scratch.hi >>> 0) << 32n));
  if (type > 3n) throw gp(0, `INVPCID type ${type} (only 0–3 exist)`, INVPCID_SDM);
  if (pcidWord >> 12n !== 0n) throw gp(0, 'INVPCID descriptor bits 63:12 are not 0', INVPCID_SDM);
  if (type <= 1n && (pcidWord & 0xfffn) !== 0n && !(lp.cr4 & CR4.PCIDE)) throw gp(0, 'INVPCID of a PCID other than 0 with CR4.PCIDE = 0', INVPCID_SDM);
  if (type === 0n) {
    const canonical = BigInt.asUintN(64, BigInt.asIntN(48, address)) === address;
    if (!canonical) throw gp(0, `INVPCID individual-address invalidation of the non-canonical address ${address.toString(16)}H`, INVPCID_SDM);
    lp.tlb.flushPage(Number((address >> 12n) & 0xfffffffffn));
  } else {
    lp.tlb.flushAll();
  }
  lp.rip = next;
  return true;
}

// ---------------------------------------------------------------- the VMX seam
function vmxInstruction(lp: LogicalProcessor, d: Insn, next: number, mnemonic: VmxMnemonic): boolean {
  if (lp.vmx === null) {
    throw ud(`${mnemonic}: VMX is not available on this logical processor (no VMX unit attached)`, 'SDM Vol. 3C, "VMX Instruction Reference"');
  }
  let mem: VmxMemOperand | null = null;
  if (d.mem) {
    const eff = effectiveAddress(lp, d);
    // A VMX instruction reaches its operand only after its #UD checks, its VM exit in VMX non-root operation and
    // its CPL check: a fault computing the address (non-canonical, beyond the limit) is raised when the operand
    // is accessed, not here. See SDM Vol. 3C, "VMX Instruction Reference" (each instruction's "Operation").
    let linear: number, addressFault: CpuFault | undefined;
    try {
      linear = lp.bits === 64 ? segmentLinear(lp, d.seg, eff, 1) : segmentLinear(lp, d.seg, eff, 8);
    } catch (e) {
      if (!(e instanceof CpuFault)) throw e;
      linear = lp.bits === 64 ? lp.segEffBase[d.seg]! + eff : (lp.segBase[d.seg]! + eff) >>> 0;
      addressFault = e;
    }
    mem = {
      ...operandEncoding(d),
      effective: BigInt.asUintN(64, BigInt(eff)),
      linear: BigInt.asUintN(64, BigInt(linear)),
      ...(addressFault !== undefined ? { addressFault } : {}),
    };
  }
  const rip = lp.rip;
  lp.rip = next;
  try {
    lp.vmx.execute(lp, {
      mnemonic,
      length: d.len,
      rip: BigInt.asUintN(64, BigInt(rip)),
      operandSize: lp.bits === 64 ? 8 : 4,
      addressSize: d.addrSize as 2 | 4 | 8,
      reg: d.mem || mnemonic === 'VMREAD' || mnemonic === 'VMWRITE' || mnemonic.startsWith('INV') ? d.reg : -1,
      rmReg: !d.mem && d.op !== 0x101 ? d.rm : -1,
      mem,
    });
  } catch (e) {
    lp.rip = rip;
    throw e;
  }
  return true;
}

/** Deliver a CpuFault raised by the instruction at `faultRip` (fault semantics). */
export function deliverFault(lp: LogicalProcessor, f: CpuFault, faultRip: number): void {
  lp.rip = faultRip;
  lp.lastFault = f;
  deliverWithDoubleFault(lp, f, EVENT_HW_EXCEPTION, faultRip, 0);
}

export type { VmxInterceptEvent };
export { regNumber, RBP, RDI };

// The block compiler: turns a hot block of simple 64-bit-mode instructions into one JavaScript function
// (`new Function`), so V8 can keep guest registers and lazy flags in machine registers.
// See DESIGN.md, "Known design levers".
//
// What it compiles: MOV/ALU/TEST/CMP/INC/DEC/LEA/PUSH/POP/NOP with 32- and 64-bit operands, register or
// memory (64-bit addressing, RIP-relative, FS/GS overrides), and a final Jcc/JMP. A block is compiled up
// to its first unsupported instruction; the interpreter runs the rest. Semantics are the interpreter's:
//  - registers are cached in locals and written back on every exit (normal, bail-out, fault);
//  - the status flags are kept as the same lazy record (src/machine/lazy-flags.ts) in locals;
//  - memory goes through the LP's TLB inline, and through lp.read64/write64 (page walk, MMIO, faults) on a miss;
//  - anything unusual (a non-canonical address, a register ≥ 2^48 in an address, a write that invalidated cached code) "bails out": the
//    function stops *before* that instruction with RIP pointing at it, and the interpreter takes over;
//  - a fault thrown by the slow path leaves RIP at the faulting instruction and the count of instructions
//    retired before it, so delivery is exactly as in the interpreter.
// A block that jumps back to its own start loops inside the function until the budget runs out.

import type { Block } from './code-cache.ts';
import { CpuFault } from './fault.ts';
import { ACCESS_WRITE } from './paging.ts';
import type { Insn } from './insn.ts';
import { LAZY_ADD, LAZY_DEC, LAZY_INC, LAZY_LOGIC, LAZY_SUB, condition, lazyCF } from './lazy-flags.ts';

export const JIT_THRESHOLD = 40;

/** Counters for tests and the bench: blocks compiled, and instructions they covered. */
export const jitStats = { compiled: 0, instructions: 0 };

/** A compiled block: runs up to `budget` instructions, returns how many it executed. */
export type CompiledBlock = (lp: unknown, budget: number) => number;

interface FlagKnown {
  op: number;
  size: number;
}

const FS = 4, GS = 5;
const CANON = '140737488355328';

class Gen {
  out: string[] = [];
  used = new Set<number>();
  /** Compile-time knowledge of the lazy-flag state: null = whatever lp.lazy holds at entry. */
  flags: FlagKnown | null = null;
  /** True once the code reads the flag state the block was entered with (lp.lazy). */
  readsEntryFlags = false;
  /** The current instruction wrote memory (an epoch check follows it). */
  wrote = false;
  /** Flag state before instruction k (for exits at k). */
  flagsAt: (FlagKnown | null)[] = [];
  offs: number[] = [];
  tmp = 0;

  emit(s: string): void {
    this.out.push(s);
  }
  t(): string {
    return `t${this.tmp++}`;
  }
  reg(r: number): void {
    this.used.add(r);
  }

  /** Expression for a flag given the compile-time state. */
  cf(): string {
    const f = this.flags;
    if (f === null) { this.readsEntryFlags = true; return 'cf0()'; }
    switch (f.op) {
      case LAZY_ADD:
        return f.size === 8
          ? `((frh>>>0)!==(fdh>>>0)?(frh>>>0)<(fdh>>>0):(fc?(fr>>>0)<=(fd>>>0):(fr>>>0)<(fd>>>0)))`
          : `(fc?(fr>>>0)<=(fd>>>0):(fr>>>0)<(fd>>>0))`;
      case LAZY_SUB:
        return f.size === 8
          ? `((fdh>>>0)!==(fsh>>>0)?(fdh>>>0)<(fsh>>>0):(fc?(fd>>>0)<=(fs>>>0):(fd>>>0)<(fs>>>0)))`
          : `(fc?(fd>>>0)<=(fs>>>0):(fd>>>0)<(fs>>>0))`;
      case LAZY_LOGIC:
        return 'false';
      default:
        return '(fcf!==0)';
    }
  }
  zf(): string {
    const f = this.flags;
    if (f === null) { this.readsEntryFlags = true; return 'cond0(4)'; }
    return f.size === 8 ? '((fr|frh)===0)' : '(fr===0)';
  }
  sf(): string {
    const f = this.flags;
    if (f === null) { this.readsEntryFlags = true; return 'cond0(8)'; }
    return f.size === 8 ? '(frh<0)' : '(fr<0)';
  }
  of(): string {
    const f = this.flags;
    if (f === null) { this.readsEntryFlags = true; return 'cond0(0)'; }
    const r = f.size === 8 ? 'frh' : 'fr', d = f.size === 8 ? 'fdh' : 'fd', s = f.size === 8 ? 'fsh' : 'fs';
    switch (f.op) {
      case LAZY_ADD: return `(((${d}^${r})&(${s}^${r}))<0)`;
      case LAZY_SUB: return `(((${d}^${s})&(${d}^${r}))<0)`;
      case LAZY_LOGIC: return 'false';
      case LAZY_INC: return f.size === 8 ? '(frh===-2147483648&&fr===0)' : '(fr===-2147483648)';
      default: return f.size === 8 ? '(frh===2147483647&&fr===-1)' : '(fr===2147483647)';
    }
  }
  pf(): string {
    if (this.flags === null) { this.readsEntryFlags = true; return 'cond0(10)'; }
    return '(PAR[fr&255]!==0)';
  }
  cond(cc: number): string {
    let e: string;
    switch (cc >> 1) {
      case 0: e = this.of(); break;
      case 1: e = this.cf(); break;
      case 2: e = this.zf(); break;
      case 3: e = `(${this.cf()}||${this.zf()})`; break;
      case 4: e = this.sf(); break;
      case 5: e = this.pf(); break;
      case 6: e = `(${this.sf()}!==${this.of()})`; break;
      default: e = `(${this.zf()}||(${this.sf()}!==${this.of()}))`; break;
    }
    return cc & 1 ? `!${e}` : e;
  }

  setFlags(op: number, size: number, r: string, rh: string, d: string, dh: string, s: string, sh: string, cin: string): void {
    if (op === LAZY_INC || op === LAZY_DEC) this.emit(`fcf=${this.cf()}?1:0;`);
    this.emit(`fr=${r};frh=${rh};fd=${d};fdh=${dh};fs=${s};fsh=${sh};fc=${cin};`);
    this.flags = { op, size };
  }
}

/** Register read as [lo, hi] expressions for a size (4: hi is 0). */
function regExpr(r: number, size: number): [string, string] {
  return size === 8 ? [`l${r}`, `h${r}`] : [`l${r}`, '0'];
}

/**
 * Effective linear address expression of a memory operand (64-bit addressing only), or null. Emits a bail-out
 * when a base/index register is too large for the double arithmetic to be exact (|value| ≥ 2^48).
 */
function eaExpr(g: Gen, d: Insn, k: number): string | null {
  if (d.addrSize !== 8) return null;
  const big: string[] = [];
  if (!d.ripRel && d.base >= 0) big.push(`((h${d.base}+65536)>>>0)>=131072`);
  if (!d.ripRel && d.index >= 0) big.push(`((h${d.index}+65536)>>>0)>=131072`);
  if (big.length) g.emit(`if(${big.join('||')}){k=${k};EXIT}`);
  if (d.seg !== FS && d.seg !== GS && d.segOverride >= 0 && d.segOverride < 4) { /* ignored in 64-bit mode */ }
  const parts: string[] = [];
  if (d.ripRel) parts.push(`(base+${g.offs[k]! + d.len + d.disp})`);
  else {
    if (d.disp !== 0) parts.push(String(d.disp));
    if (d.base >= 0) { g.reg(d.base); parts.push(`(h${d.base}*4294967296+(l${d.base}>>>0))`); }
    if (d.index >= 0) { g.reg(d.index); parts.push(`(h${d.index}*4294967296+(l${d.index}>>>0))*${1 << d.scale}`); }
  }
  if (d.seg === FS || d.seg === GS) parts.push(`SEB[${d.seg}]`);
  return parts.length ? parts.join('+') : '0';
}

/**
 * Emit a memory read of `size` (4 or 8) at address variable `a`; results in `lo`/`hi` variables. `forWrite`: the
 * read of a read-modify-write, translated as a write (the fast path needs a writable entry, the slow path walks
 * for a write), as the interpreter's readRMForWrite (./operands.ts) does.
 */
function emitRead(g: Gen, k: number, a: string, size: number, lo: string, hi: string, forWrite = false): void {
  const v = g.t(), i = g.t(), o = g.t();
  g.emit(`const ${i}=(${a}>>>12)&1023,${o}=${a}&4095;let ${lo},${hi}=0;`);
  g.emit(`const ${v}=TB[${i}]===${a}-${o}&&TS[${i}]===cur&&(TP[${i}]&${forWrite ? 'uw' : 'ur'})!==0&&${o}<=${4096 - size}?TW[${i}]:null;`);
  if (forWrite) {
    const fast = size === 8 ? `${lo}=${v}.getInt32(${o},true);${hi}=${v}.getInt32(${o}+4,true);`
      : size === 4 ? `${lo}=${v}.getInt32(${o},true);` : size === 2 ? `${lo}=${v}.getUint16(${o},true);` : `${lo}=${v}.getUint8(${o});`;
    g.emit(`if(${v}!==null){${fast}}else{k=${k};${lo}=lp.slowRead(${a},${size},${ACCESS_WRITE},lp.user);${size === 8 ? `${hi}=lp.hi;` : ''}}`);
    return;
  }
  if (size === 8) g.emit(`if(${v}!==null){${lo}=${v}.getInt32(${o},true);${hi}=${v}.getInt32(${o}+4,true);}else{k=${k};${lo}=lp.read64(${a});${hi}=lp.hi;}`);
  else if (size === 4) g.emit(`if(${v}!==null){${lo}=${v}.getInt32(${o},true);}else{k=${k};${lo}=lp.read32(${a});}`);
  else if (size === 2) g.emit(`if(${v}!==null){${lo}=${v}.getUint16(${o},true);}else{k=${k};${lo}=lp.read16(${a});}`);
  else g.emit(`if(${v}!==null){${lo}=${v}.getUint8(${o});}else{k=${k};${lo}=lp.read8(${a});}`);
}

/** Emit a memory write; after a slow-path write, bail out if cached code was invalidated. */
function emitWrite(g: Gen, k: number, a: string, size: number, lo: string, hi: string): void {
  const v = g.t(), i = g.t(), o = g.t();
  g.emit(`const ${i}=(${a}>>>12)&1023,${o}=${a}&4095;`);
  g.emit(`const ${v}=TB[${i}]===${a}-${o}&&TS[${i}]===cur&&(TP[${i}]&uw)!==0&&${o}<=${4096 - size}?TW[${i}]:null;`);
  const slow = size === 8 ? `lp.write64(${a},${lo},${hi});` : size === 4 ? `lp.write32(${a},${lo});` : `lp.write8(${a},${lo});`;
  const fast = size === 8 ? `${v}.setInt32(${o},${lo},true);${v}.setInt32(${o}+4,${hi},true);` : size === 4 ? `${v}.setInt32(${o},${lo},true);` : `${v}.setUint8(${o},${lo});`;
  g.emit(`if(${v}!==null){${fast}}else{k=${k};${slow}}`);
  g.wrote = true;
}

/** Emit "compute address into a variable and check canonical form (bail out before insn k if not)". */
function emitAddr(g: Gen, d: Insn, k: number): string | null {
  const e = eaExpr(g, d, k);
  if (e === null) return null;
  const a = g.t();
  g.emit(`const ${a}=${e};if(!(${a}<${CANON}&&${a}>=-${CANON})){k=${k};EXIT}`);
  return a;
}

const ALU_LAZY = [LAZY_ADD, LAZY_LOGIC, LAZY_ADD, LAZY_SUB, LAZY_LOGIC, LAZY_SUB, LAZY_LOGIC, LAZY_SUB];

/** Emit the ALU operation `aluOp` on (a, ah) and (b, bh); result in r/rh variables; sets flags. */
function emitAlu(g: Gen, aluOp: number, size: number, a: string, ah: string, b: string, bh: string): [string, string] {
  const r = g.t(), rh = g.t();
  let cin = '0';
  if (aluOp === 2 || aluOp === 3) {
    cin = g.t();
    g.emit(`const ${cin}=${g.cf()}?1:0;`);
  }
  switch (aluOp) {
    case 0: case 2: // ADD ADC
      if (size === 8) g.emit(`const ${r}=(${a}+${b}+${cin})|0;const ${rh}=(${ah}+${bh}+(${cin}?((${r}>>>0)<=(${a}>>>0)?1:0):((${r}>>>0)<(${a}>>>0)?1:0)))|0;`);
      else g.emit(`const ${r}=(${a}+${b}+${cin})|0;const ${rh}=0;`);
      break;
    case 3: case 5: case 7: // SBB SUB CMP
      if (size === 8) g.emit(`const ${r}=(${a}-${b}-${cin})|0;const ${rh}=(${ah}-${bh}-(${cin}?((${a}>>>0)<=(${b}>>>0)?1:0):((${a}>>>0)<(${b}>>>0)?1:0)))|0;`);
      else g.emit(`const ${r}=(${a}-${b}-${cin})|0;const ${rh}=0;`);
      break;
    case 1: g.emit(`const ${r}=${a}|${b};const ${rh}=${size === 8 ? `${ah}|${bh}` : '0'};`); break;
    case 4: g.emit(`const ${r}=${a}&${b};const ${rh}=${size === 8 ? `${ah}&${bh}` : '0'};`); break;
    default: g.emit(`const ${r}=${a}^${b};const ${rh}=${size === 8 ? `${ah}^${bh}` : '0'};`); break;
  }
  g.setFlags(ALU_LAZY[aluOp]!, size, r, rh, a, ah, b, bh, cin);
  return [r, rh];
}

/** Byte register read (AH..BH without REX). */
function byteReg(r: number, rex: number): string {
  return rex === 0 && r >= 4 && r < 8 ? `((l${r - 4}>>>8)&255)` : `(l${r}&255)`;
}
function byteRegNum(r: number, rex: number): number {
  return rex === 0 && r >= 4 && r < 8 ? r - 4 : r;
}
function setByteReg(r: number, rex: number, v: string): string {
  return rex === 0 && r >= 4 && r < 8 ? `l${r - 4}=(l${r - 4}&-65281)|((${v}&255)<<8);` : `l${r}=(l${r}&-256)|(${v}&255);`;
}

function setRegCode(r: number, size: number, lo: string, hi: string): string {
  return size === 8 ? `l${r}=${lo};h${r}=${hi};` : `l${r}=${lo};h${r}=0;`;
}

/**
 * Compile one instruction. Returns 'ok', 'end' (a branch that ended the block: RIP set), or 'no'
 * (unsupported: the block is compiled up to here).
 */
function compileInsn(g: Gen, d: Insn, k: number, selfLoop: { start: boolean }): 'ok' | 'end' | 'no' {
  const op = d.op;
  const sz = d.opSize;
  if (d.lock || d.rep) return op === 0x90 && !d.lock ? 'no' : 'no';
  const wide = sz === 4 || sz === 8;
  const next = g.offs[k]! + d.len;
  // ALU r/m,r / r,r/m / rAX,imm
  if (op < 0x40 && (op & 7) < 6 && (op & 7) !== 4) {
    const aluOp = op >>> 3, form = op & 7;
    if (!(form & 1) || !wide) return 'no';
    if (form === 5) {
      g.reg(0);
      const [a, ah] = regExpr(0, sz);
      const [r, rh] = emitAlu(g, aluOp, sz, a, ah, String(d.imm), String(d.immHi));
      if (aluOp !== 7) g.emit(setRegCode(0, sz, r, rh));
      return 'ok';
    }
    g.reg(d.reg);
    const [rl, rhh] = regExpr(d.reg, sz);
    if (!d.mem) {
      g.reg(d.rm);
      const [ml, mh] = regExpr(d.rm, sz);
      const [a, ah, b, bh] = form === 1 ? [ml, mh, rl, rhh] : [rl, rhh, ml, mh];
      // xor r, r is the common zeroing idiom; the generic code handles it exactly.
      const [r, rh] = emitAlu(g, aluOp, sz, a, ah, b, bh);
      if (aluOp !== 7) g.emit(setRegCode(form === 1 ? d.rm : d.reg, sz, r, rh));
      return 'ok';
    }
    const addr = emitAddr(g, d, k);
    if (addr === null) return 'no';
    const ml = g.t(), mh = g.t();
    emitRead(g, k, addr, sz, ml, mh, form === 1 && aluOp !== 7);
    if (form === 1) {
      const [r, rh] = emitAlu(g, aluOp, sz, ml, sz === 8 ? mh : '0', rl, rhh);
      if (aluOp !== 7) emitWrite(g, k, addr, sz, r, rh);
    } else {
      const [r, rh] = emitAlu(g, aluOp, sz, rl, rhh, ml, sz === 8 ? mh : '0');
      if (aluOp !== 7) g.emit(setRegCode(d.reg, sz, r, rh));
    }
    return 'ok';
  }
  switch (op) {
    case 0x50: case 0x51: case 0x52: case 0x53: case 0x54: case 0x55: case 0x56: case 0x57: {
      if (sz !== 8) return 'no';
      const r = (op & 7) | ((d.rex & 1) << 3);
      g.reg(r); g.reg(4);
      const a = g.t();
      g.emit(`const ${a}=h4*4294967296+(l4>>>0)-8;if(!(${a}<${CANON}&&${a}>=-${CANON})){k=${k};EXIT}`);
      const vl = g.t(), vh = g.t();
      g.emit(`const ${vl}=l${r},${vh}=h${r};`);
      emitWrite(g, k, a, 8, vl, vh);
      g.emit(`l4=${a}>>>0|0;h4=Math.floor(${a}/4294967296)|0;`);
      return 'ok';
    }
    case 0x58: case 0x59: case 0x5a: case 0x5b: case 0x5c: case 0x5d: case 0x5e: case 0x5f: {
      if (sz !== 8) return 'no';
      const r = (op & 7) | ((d.rex & 1) << 3);
      g.reg(r); g.reg(4);
      const a = g.t();
      g.emit(`const ${a}=h4*4294967296+(l4>>>0);if(!(${a}<${CANON}&&${a}>=-${CANON})){k=${k};EXIT}`);
      const vl = g.t(), vh = g.t();
      emitRead(g, k, a, 8, vl, vh);
      g.emit(`{const n=${a}+8;l4=n>>>0|0;h4=Math.floor(n/4294967296)|0;}l${r}=${vl};h${r}=${vh};`);
      return 'ok';
    }
    case 0x81: case 0x83: {
      if (!wide) return 'no';
      const aluOp = d.reg & 7;
      if (!d.mem) {
        g.reg(d.rm);
        const [a, ah] = regExpr(d.rm, sz);
        const [r, rh] = emitAlu(g, aluOp, sz, a, ah, String(d.imm), String(sz === 8 ? d.immHi : 0));
        if (aluOp !== 7) g.emit(setRegCode(d.rm, sz, r, rh));
        return 'ok';
      }
      const addr = emitAddr(g, d, k);
      if (addr === null) return 'no';
      const ml = g.t(), mh = g.t();
      emitRead(g, k, addr, sz, ml, mh, aluOp !== 7);
      const [r, rh] = emitAlu(g, aluOp, sz, ml, sz === 8 ? mh : '0', String(d.imm), String(sz === 8 ? d.immHi : 0));
      if (aluOp !== 7) emitWrite(g, k, addr, sz, r, rh);
      return 'ok';
    }
    case 0x85: case 0x89: case 0x8b: {
      if (!wide) return 'no';
      g.reg(d.reg);
      const [rl, rhh] = regExpr(d.reg, sz);
      let ml: string, mh: string, addr: string | null = null;
      if (!d.mem) {
        g.reg(d.rm);
        [ml, mh] = regExpr(d.rm, sz);
      } else {
        addr = emitAddr(g, d, k);
        if (addr === null) return 'no';
        ml = g.t(); mh = g.t();
        if (op !== 0x89) emitRead(g, k, addr, sz, ml, mh);
        if (sz !== 8) mh = '0';
      }
      if (op === 0x85) emitAlu(g, 4, sz, ml, mh, rl, rhh);
      else if (op === 0x8b) g.emit(setRegCode(d.reg, sz, ml, mh));
      else if (!d.mem) g.emit(setRegCode(d.rm, sz, rl, rhh));
      else emitWrite(g, k, addr!, sz, rl, sz === 8 ? rhh : '0');
      return 'ok';
    }
    case 0x8d: {
      if (!wide || !d.mem) return 'no';
      const e = eaExpr(g, d, k);
      if (e === null || d.seg === FS || d.seg === GS) return 'no';
      g.reg(d.reg);
      const a = g.t();
      g.emit(`const ${a}=${e};`);
      // Exactness for huge values (LEA wraps modulo 2^64): eaExpr bailed out already for large registers.
      g.emit(sz === 8 ? `l${d.reg}=${a}>>>0|0;h${d.reg}=Math.floor(${a}/4294967296)|0;` : `l${d.reg}=${a}>>>0|0;h${d.reg}=0;`);
      return 'ok';
    }
    case 0x90:
      return d.rex & 1 ? 'no' : 'ok';
    case 0x88: case 0x8a: { // MOV r/m8, r8 / MOV r8, r/m8
      g.reg(byteRegNum(d.reg, d.rex));
      if (!d.mem) {
        g.reg(byteRegNum(d.rm, d.rex));
        g.emit(op === 0x88 ? setByteReg(d.rm, d.rex, byteReg(d.reg, d.rex)) : setByteReg(d.reg, d.rex, byteReg(d.rm, d.rex)));
        return 'ok';
      }
      const addr = emitAddr(g, d, k);
      if (addr === null) return 'no';
      if (op === 0x88) {
        const v = g.t();
        g.emit(`const ${v}=${byteReg(d.reg, d.rex)};`);
        emitWrite(g, k, addr, 1, v, '0');
      } else {
        const v = g.t(), vh = g.t();
        emitRead(g, k, addr, 1, v, vh);
        g.emit(setByteReg(d.reg, d.rex, v));
      }
      return 'ok';
    }
    case 0xe8: { // CALL rel32: push the return address, then branch
      const target = next + d.imm;
      g.reg(4);
      const a = g.t();
      g.emit(`const ${a}=h4*4294967296+(l4>>>0)-8;if(!(${a}<${CANON}&&${a}>=-${CANON})){k=${k};EXIT}`);
      g.emit(`{const T=base+${target};if(!(T<${CANON}&&T>=-${CANON})){k=${k};EXIT}}`);
      const rl = g.t(), rh = g.t();
      g.emit(`const ${rl}=(base+${next})>>>0|0,${rh}=Math.floor((base+${next})/4294967296)|0;`);
      emitWrite(g, k, a, 8, rl, rh);
      g.emit(`l4=${a}>>>0|0;h4=Math.floor(${a}/4294967296)|0;`);
      g.emit(`if(CC.epoch!==ep){k=${k + 1};lp.rip=base+${target};DONE}`);
      g.emit(`lp.rip=base+${target};k=${k + 1};DONE`);
      return 'end';
    }
    case 0xc3: { // RET
      if (sz !== 8) return 'no';
      g.reg(4);
      const a = g.t();
      g.emit(`const ${a}=h4*4294967296+(l4>>>0);if(!(${a}<${CANON}&&${a}>=-${CANON})){k=${k};EXIT}`);
      const vl = g.t(), vh = g.t();
      emitRead(g, k, a, 8, vl, vh);
      g.emit(`{const T=${vh}*4294967296+(${vl}>>>0);if(!(T<${CANON}&&T>=-${CANON})){k=${k};EXIT}const n=${a}+8;l4=n>>>0|0;h4=Math.floor(n/4294967296)|0;lp.rip=T;k=${k + 1};DONE}`);
      return 'end';
    }
    case 0x1b6: case 0x1b7: case 0x1be: case 0x1bf: { // MOVZX / MOVSX
      if (!wide) return 'no';
      const src = op & 1 ? 2 : 1;
      let v: string;
      if (!d.mem) {
        if (src === 1) { g.reg(byteRegNum(d.rm, d.rex)); v = byteReg(d.rm, d.rex); } else { g.reg(d.rm); v = `(l${d.rm}&65535)`; }
      } else {
        const addr = emitAddr(g, d, k);
        if (addr === null) return 'no';
        v = g.t();
        const vh = g.t();
        emitRead(g, k, addr, src, v, vh);
      }
      const x = g.t();
      const sx = op >= 0x1be;
      g.emit(`const ${x}=${sx ? (src === 1 ? `(${v}<<24)>>24` : `(${v}<<16)>>16`) : v};`);
      g.reg(d.reg);
      g.emit(setRegCode(d.reg, sz, x, sx ? `${x}>>31` : '0'));
      return 'ok';
    }
    case 0xb8: case 0xb9: case 0xba: case 0xbb: case 0xbc: case 0xbd: case 0xbe: case 0xbf: {
      if (!wide) return 'no';
      const r = (op & 7) | ((d.rex & 1) << 3);
      g.reg(r);
      g.emit(setRegCode(r, sz, String(d.imm), String(d.immHi)));
      return 'ok';
    }
    case 0xc7: {
      if (!wide) return 'no';
      if (!d.mem) {
        g.reg(d.rm);
        g.emit(setRegCode(d.rm, sz, String(d.imm), String(d.immHi)));
        return 'ok';
      }
      const addr = emitAddr(g, d, k);
      if (addr === null) return 'no';
      emitWrite(g, k, addr, sz, String(d.imm), String(sz === 8 ? d.immHi : 0));
      return 'ok';
    }
    case 0xff: {
      const r = d.reg & 7;
      if (r > 1 || !wide) return 'no';
      const dec = r === 1;
      const emitIncDec = (a: string, ah: string): [string, string] => {
        const res = g.t(), resh = g.t();
        if (sz === 8) g.emit(`const ${res}=(${a}${dec ? '-' : '+'}1)|0;const ${resh}=${dec ? `${a}===0?(${ah}-1)|0:${ah}` : `${res}===0?(${ah}+1)|0:${ah}`};`);
        else g.emit(`const ${res}=(${a}${dec ? '-' : '+'}1)|0;const ${resh}=0;`);
        g.setFlags(dec ? LAZY_DEC : LAZY_INC, sz, res, resh, a, ah, '1', '0', '0');
        return [res, resh];
      };
      if (!d.mem) {
        g.reg(d.rm);
        const [a, ah] = regExpr(d.rm, sz);
        const [res, resh] = emitIncDec(a, ah);
        g.emit(setRegCode(d.rm, sz, res, resh));
        return 'ok';
      }
      const addr = emitAddr(g, d, k);
      if (addr === null) return 'no';
      const ml = g.t(), mh = g.t();
      emitRead(g, k, addr, sz, ml, mh, true);
      const [res, resh] = emitIncDec(ml, sz === 8 ? mh : '0');
      emitWrite(g, k, addr, sz, res, resh);
      return 'ok';
    }
    case 0xe9: case 0xeb: {
      const target = next + d.imm;
      if (target === 0) selfLoop.start = true;
      g.emit(`{const T=base+${target};if(!(T<${CANON}&&T>=-${CANON})){k=${k};EXIT}${target === 0 ? 'k=' + (k + 1) + ';LOOP' : `lp.rip=T;k=${k + 1};DONE`}}`);
      return 'end';
    }
  }
  if ((op >= 0x70 && op <= 0x7f) || (op >= 0x180 && op <= 0x18f)) {
    const target = next + d.imm;
    const c = g.cond(op & 0xf);
    if (target === 0) selfLoop.start = true;
    g.emit(`if(${c}){const T=base+${target};if(!(T<${CANON}&&T>=-${CANON})){k=${k};EXIT}${target === 0 ? `k=${k + 1};LOOP` : `lp.rip=T;k=${k + 1};DONE`}}`);
    g.emit(`lp.rip=base+${next};k=${k + 1};DONE`);
    return 'end';
  }
  return 'no';
}

/** Writes back registers and the lazy flags for the compile-time state `f`. */
function exitCode(g: Gen, f: FlagKnown | null, regs: number[]): string {
  let s = '';
  for (const r of regs) s += `R[${r}]=l${r};H[${r}]=h${r};`;
  if (f !== null) {
    s += `F.op=${f.op};F.size=${f.size};F.res=fr;F.resHi=frh;F.dst=fd;F.dstHi=fdh;F.src=fs;F.srcHi=fsh;F.cin=fc;`;
    if (f.op === LAZY_INC || f.op === LAZY_DEC) s += 'lp.rflagsRaw=fcf?lp.rflagsRaw|1:lp.rflagsRaw&-2;';
  }
  return s;
}

/** Compile `block` (64-bit code only). Returns null if not even its first instruction is supported. */
export function compileBlock(block: Block): CompiledBlock | null {
  const insns = block.insns;
  if (insns.length === 0 || insns[0]!.bits !== 64) return null;
  const g = new Gen();
  let off = 0;
  for (const d of insns) { g.offs.push(off); off += d.len; }
  g.offs.push(off);
  const selfLoop = { start: false };
  let count = 0;
  let ended = false;
  for (let k = 0; k < insns.length; k++) {
    g.flagsAt[k] = g.flags;
    const mark = g.out.length;
    const savedTmp = g.tmp;
    g.wrote = false;
    const res = compileInsn(g, insns[k]!, k, selfLoop);
    if (res === 'no') {
      g.out.length = mark;
      g.tmp = savedTmp;
      break;
    }
    // A slow-path write may have hit a page with cached code: stop after this instruction if so.
    if (g.wrote && res === 'ok') g.emit(`if(CC.epoch!==ep){k=${k + 1};EXIT}`);
    count = k + 1;
    if (res === 'end') { ended = true; break; }
  }
  if (count === 0) return null;
  g.flagsAt[count] = g.flags;
  const regs = [...g.used].sort((a, b) => a - b);
  const endState = g.flags;
  const flushEnd = exitCode(g, endState, []);
  const writeRegs = exitCode(g, null, regs);
  // EXIT: stop before instruction k (bail-out, or after a write that invalidated code); the catch block writes
  // back. DONE: the block's branch set lp.rip. LOOP: the branch goes back to the block start.
  // After a LOOP the flag state at the block start is `endState`, no longer lp.lazy: `looped` tells exits so.
  const exitSwitch = (): string => {
    let s2 = 'switch(k){';
    for (let k = 0; k <= count; k++) {
      const f = g.flagsAt[k] ?? null;
      s2 += `case ${k}:${writeRegs}${f === null ? `if(looped){${flushEnd}}` : exitCode(g, f, [])}break;`;
    }
    return s2 + '}';
  };
  const loopCode = `{total+=${count};looped=true;if(total+${count}>budget||CC.epoch!==ep){lp.rip=base;${writeRegs}${flushEnd}lp.instructions+=total;return total;}${g.readsEntryFlags ? flushEnd : ''}continue;}`;
  const doneCode = `{${writeRegs}${flushEnd}lp.instructions+=total+${count};return total+${count};}`;
  const lines = g.out.join('\n').replaceAll('EXIT', '{throw EXIT_SIGNAL}').replaceAll('LOOP', loopCode).replaceAll('DONE', doneCode);
  const src = `
"use strict";
return function compiled(lp, budget) {
  const R = lp.regLo, H = lp.regHi, F = lp.lazy, T = lp.tlb, TB = T.page, TS = T.stamp, TP = T.perm, TW = T.views;
  const cur = T.current, ur = 1 << lp.user, uw = 4 << lp.user, SEB = lp.segEffBase, ep = CC.epoch;
  const base = lp.rip;
  const cf0 = () => lazyCF(F, lp.rflagsRaw);
  const cond0 = (cc) => condition(cc, F, lp.rflagsRaw);
  ${regs.map((r) => `let l${r} = R[${r}], h${r} = H[${r}];`).join(' ')}
  let fr = 0, frh = 0, fd = 0, fdh = 0, fs = 0, fsh = 0, fc = 0, fcf = 0;
  let k = 0, total = 0, looped = false;
  try {
    for (;;) {
${lines}
      ${ended ? '' : `lp.rip=base+${g.offs[count]};${writeRegs}${flushEnd}lp.instructions+=total+${count};return total+${count};`}
    }
  } catch (e) {
    // Only faults (and our own bail-outs) write guest state back; anything else (a VM exit that already
    // loaded host state, an internal error) passes through untouched.
    if (e !== EXIT_SIGNAL && !(e instanceof FAULT)) throw e;
    ${exitSwitch()}
    lp.rip = base + OFFS[k];
    lp.instructions += total + k;
    if (e === EXIT_SIGNAL) return total + k;
    throw e;
  }
};`;
  void selfLoop;
  try {
    const factory = new Function('CC', 'lazyCF', 'condition', 'PAR', 'OFFS', 'EXIT_SIGNAL', 'FAULT', src) as (...a: unknown[]) => CompiledBlock;
    const fn = factory(block.cache, lazyCF, condition, PARITY, g.offs, EXIT_SIGNAL, CpuFault);
    block.compiledCount = count;
    block.compiledEnds = ended;
    jitStats.compiled++;
    jitStats.instructions += count;
    if (process.env.VMXLAB_JIT_DUMP) console.log(src);
    return fn;
  } catch (e) {
    if (process.env.VMXLAB_JIT_DUMP) console.log('JIT compile error', e, src);
    return null;
  }
}

const EXIT_SIGNAL = { exit: true };
const PARITY = new Uint8Array(256);
for (let i = 0; i < 256; i++) {
  let n = 0;
  for (let b = i; b; b >>= 1) n += b & 1;
  PARITY[i] = n % 2 === 0 ? 4 : 0;
}

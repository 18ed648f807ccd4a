// The software TLB's tagging: contexts keep their entries while another is current, flushing one context leaves the
// others, and entries made under another paging mode are dropped on re-entry. See SDM Vol. 3C, "Virtual-Processor
// Identifiers (VPIDs)".
import { describe, expect, it } from 'vitest';
import { CR0, CR4, EFER } from '../x86/control-registers.ts';
import { pagingModeKey, PERM_ALL, PERM_LARGE, Tlb, TLB_MASK } from './tlb.ts';

/** Is the entry for `vpn` valid in the current context? (What LogicalProcessor.translate tests.) */
const hit = (t: Tlb, vpn: number): boolean => t.vpn[vpn & TLB_MASK] === vpn && t.stamp[vpn & TLB_MASK] === t.current;
const fill = (t: Tlb, vpn: number, perm = PERM_ALL): void => { t.fill(vpn, vpn * 4096, perm, null, null); };

describe('TLB contexts', () => {
  it("switching contexts keeps each context's entries; flushing one leaves the others", () => {
    const t = new Tlb();
    fill(t, 5);
    t.setContext(2);
    expect(hit(t, 5)).toBe(false);
    fill(t, 6);
    t.setContext(0);
    expect(hit(t, 5)).toBe(true);
    t.flushContext(2);
    expect(hit(t, 5)).toBe(true);
    t.setContext(2);
    expect(hit(t, 6)).toBe(false);
  });

  it('flushPageInContext drops one page, or the whole context if it holds pieces of large pages', () => {
    const t = new Tlb();
    t.setContext(1);
    fill(t, 7);
    fill(t, 8);
    t.setContext(0);
    t.flushPageInContext(1, 7);
    t.setContext(1);
    expect([hit(t, 7), hit(t, 8)]).toEqual([false, true]);
    fill(t, 9, PERM_ALL | PERM_LARGE);
    t.setContext(0);
    t.flushPageInContext(1, 7);
    t.setContext(1);
    expect([hit(t, 8), hit(t, 9)]).toEqual([false, false]);
  });

  it("the current context's large-page flag travels with it (INVLPG after switching back flushes the context)", () => {
    const t = new Tlb();
    fill(t, 3, PERM_ALL | PERM_LARGE);
    fill(t, 4);
    t.setContext(1);
    t.flushAll(); // clears context 1's flag, not context 0's
    t.setContext(0);
    t.flushPage(3);
    expect(hit(t, 4)).toBe(false);
  });

  it("flushAll and a large-page flushPage act on the current context's whole group, flushContext on one context", () => {
    const t = new Tlb();
    t.setGroup(1, 7);
    t.setGroup(2, 7);
    t.setContext(1);
    fill(t, 10);
    t.setContext(3); // another group
    fill(t, 11);
    t.setContext(2);
    fill(t, 12);
    t.flushAll();
    t.setContext(1);
    expect(hit(t, 10)).toBe(false);
    t.setContext(3);
    expect(hit(t, 11)).toBe(true);
    // A large page in context 1: INVLPG in context 2 (same group) drops context 1's entries too.
    t.setContext(1);
    fill(t, 13, PERM_ALL | PERM_LARGE);
    fill(t, 14);
    t.setContext(2);
    t.flushPage(99);
    t.setContext(1);
    expect([hit(t, 13), hit(t, 14)]).toEqual([false, false]);
    fill(t, 15);
    t.setContext(2);
    fill(t, 16);
    t.flushContext(2);
    expect(hit(t, 16)).toBe(false);
    t.setContext(1);
    expect(hit(t, 15)).toBe(true);
  });

  it('checkMode keeps entries made under the same paging mode and drops those made under another', () => {
    const t = new Tlb();
    const a = pagingModeKey(CR0.PE | CR0.PG | CR0.WP, CR4.PAE, EFER.LMA | EFER.NXE);
    const b = pagingModeKey(CR0.PE | CR0.PG, CR4.PAE, EFER.LMA | EFER.NXE);
    expect(a).not.toBe(b);
    t.checkMode(a);
    fill(t, 1);
    t.noteMode(a);
    t.checkMode(a);
    expect(hit(t, 1)).toBe(true);
    t.checkMode(b);
    expect(hit(t, 1)).toBe(false);
  });

  it('pagingModeKey: every bit it covers changes the key', () => {
    const base = pagingModeKey(0, 0, 0);
    const keys = [
      ...[CR0.PE, CR0.WP, CR0.PG].map((b) => pagingModeKey(b, 0, 0)),
      ...[CR4.PSE, CR4.PAE, CR4.PGE, CR4.PCIDE, CR4.SMEP, CR4.SMAP].map((b) => pagingModeKey(0, b, 0)),
      ...[EFER.LMA, EFER.NXE].map((b) => pagingModeKey(0, 0, b)),
    ];
    expect(new Set([base, ...keys]).size).toBe(keys.length + 1);
  });
});

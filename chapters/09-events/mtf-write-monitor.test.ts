// Exercise 9.6 — the MTF-assisted write monitor, on every model with both EPT and the monitor trap flag; the others
// must refuse the part. The guest writes the watched page three times with other instructions in between: each write
// must be caught (EPT violation at the writing instruction), let through (its value lands), and followed by exactly
// one MTF exit at the next instruction, after which the page is read-only again — checked by walking the EPT.
import { describe, expect, test } from 'vitest';
import { mtfWriteMonitorPart } from '#impl/09-events/mtf-write-monitor';
import { ALL_MODELS, EPT_MODELS, MTF_MODELS, hex, runPart } from './support.ts';
import { inspect } from '../06-ept/support.ts';

const MODELS = EPT_MODELS.filter((m) => MTF_MODELS.includes(m));
const OTHERS = ALL_MODELS.filter((m) => !MODELS.includes(m));
const MONITOR_RULE = 'SDM Vol. 3C, "Monitor Trap Flag" and "Invalidating Cached Translation Information": with MTF set after granting write access, the processor completes the one write and exits (reason 37) at the next boundary; ' +
  'removing the write permission there needs INVEPT, or the cached writable translation lets the next write through unseen';

const GUEST = `
bits 64
default rel
        lea rbx, [watched]
        mov rax, [rbx]                  ; a read: no exit
w1:     mov qword [rbx], 0x11
n1:     add rax, 1                      ; runs with the page read-only again
        inc rax
w2:     mov qword [rbx + 8], 0x22
n2:     nop
w3:     mov dword [rbx + 16], 0x33
n3:     hlt
align 4096
watched: dq 0, 0, 0
`;

describe('mtfWriteMonitorPart', () => {
  test.each(MODELS.map((m) => [m]))('%s: three writes, each let through alone and re-protected at the next instruction', (model) => {
    const part = mtfWriteMonitorPart({ watch: (v) => BigInt(v.guest.labels.get('watched')!) });
    const run = runPart({ model, part, source: GUEST });
    const at = (l: string): string => hex(BigInt(run.guest.labels.get(l)!));
    const watched = BigInt(run.guest.labels.get('watched')!);
    expect(run.outcome.kind, run.why(`the guest should reach its HLT. ${MONITOR_RULE}`)).toBe('halted');
    const got = part.writes.map((w) => `write at RIP ${hex(w.rip)} to ${hex(w.gpa)}, re-protected at ${hex(w.reprotectedAt)}`);
    const want = [['w1', 0n, 'n1'], ['w2', 8n, 'n2'], ['w3', 16n, 'n3']].map(([w, o, n]) => `write at RIP ${at(w as string)} to ${hex(watched + (o as bigint))}, re-protected at ${at(n as string)}`);
    const hint = part.writes.length < 3 ? ' A write went through unseen: after re-protecting at the MTF exit, INVEPT.' : '';
    expect(got, run.why(`each write caught by an EPT violation at the writing instruction, and the page re-protected at the MTF exit on the next instruction.${hint} ${MONITOR_RULE}`)).toEqual(want);
    const mtf = run.exits.filter((e) => e.reason === 37).map((e) => hex(e.rip));
    expect(mtf, run.why('one MTF exit after each write and no other: clear the monitor trap flag when you re-protect')).toEqual(['n1', 'n2', 'n3'].map(at));
    const vals = [0n, 8n, 16n].map((o) => hex(run.host.kernel.read64(run.guest.va + (watched + o - run.guest.pa))));
    expect(vals, run.why('every write is let through: 11H, 22H, 33H')).toEqual(['0x11', '0x22', '0x33']);
    const w = inspect(run.host, run.field('EPT_POINTER'), watched);
    expect(w.result.kind === 'mapped' ? `${hex(w.result.pageSize)} W=${w.result.writable}` : w.text, run.why(`the watched page at the end, walked under EPT_POINTER: a 4-KByte page, read-only again\n${w.text}`)).toBe('0x1000 W=false');
    expect(run.freeAfterRelease, run.why('release() must free every EPT table page')).toBe(run.freeBeforeSetup);
  });
  test.each(OTHERS.map((m) => [m]))('%s: without EPT or the monitor trap flag the part\'s control request is refused', (model) => {
    const run = runPart({ model, part: mtfWriteMonitorPart({ watch: (v) => BigInt(v.guest.labels.get('watched')!) }), source: GUEST });
    expect(run.outcome.kind, run.why('this model lacks "enable EPT" or "monitor trap flag": the part must ask for both (controls) so the kit refuses it')).toBe('controls');
  });
});

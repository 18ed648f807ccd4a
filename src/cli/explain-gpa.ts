// `vmxlab explain-gpa <gpa>…` — chapter 6's debug aid: what the processor finds when it translates a guest-physical
// address through YOUR EPT. It runs your eptIdentityPart (exercise 6.2, with your 6.1 EPTP) on the kit's hypervisor,
// reads EPT_POINTER back from the VMCS after the guest ran, and walks it without side effects (src/vmx/ept/inspect.ts):
// each entry, R/W/X, memory type, page size, or why the walk stops.
// The EPTP comes from the VMCS, not from your return values: that is the one the processor uses, so a wrong
// memory type, walk length or address in your EPTP shows up here as it would on hardware.
// See SDM Vol. 3C, "EPT Translation Mechanism", "Extended-Page-Table Pointer (EPTP)" and "EPT and Memory Typing".
import { parseArgs } from 'node:util';
import { CPU_MODELS, EPT_MODELS, eptpRefusal, inspect, runPart, type Host } from '../../chapters/06-ept/support.ts';
import { describeOutcome } from '../../chapters/05-exits/support.ts';
import type { VmmPart } from '#impl/05-exits/hypervisor';
import { read } from '../kernel/testing/reference-vm.ts';
import { VMX_CONTROL } from '../vmx/controls.ts';
import { EPTP, eptpProblem } from '../vmx/eptp.ts';
import { readMtrrState } from '../machine/memtype/read-mtrrs.ts';
import { MTRR_RULES, mtrrType } from '../machine/memtype/mtrr-type.ts';
import { memoryTypeName } from '../x86/memory-types.ts';
import { hex } from '../util/hex.ts';
import { parseAddress } from '../util/parse-address.ts';

export { parseAddress };

export const EXPLAIN_GPA_USAGE = `vmxlab explain-gpa <gpa>... [--model NAME] [--solutions]

Runs your chapter 6 identity map (exercises/06-ept/identity-map.ts: eptIdentityPart, with your EPTP
from eptp.ts) on the kit's hypervisor, lets a guest run under it, then reads EPT_POINTER back from the
VMCS and explains each guest-physical address under it: every EPT entry the walk reads, what the
translation allows (R/W/X), its memory type and page size — or the entry where the walk stops and why
(an EPT violation or misconfiguration).

The EPTP is the one your code wrote into the VMCS, not one the kit builds: that is the pointer the
processor walks, so a wrong memory type, walk length or table address in it shows up here.

  <gpa>            guest-physical address: hex (0x1000 or 1000h) or decimal; several may be given
  --model NAME     CPU model from data/cpu-models/ with EPT (default skylake-i5-6300u)
  --solutions      run the reference solution instead of your code

Exit status: 0 explained, 1 your code did not get that far (the message says why), 2 bad arguments.`;

export const DEFAULT_EXPLAIN_MODEL = 'skylake-i5-6300u';

export interface ExplainGpaArgs {
  readonly gpas: readonly bigint[];
  readonly model: string;
  readonly solutions: boolean;
  readonly help: boolean;
}

/** Parse the command's arguments; a string is what is wrong with them. */
export function parseExplainGpaArgs(argv: readonly string[]): ExplainGpaArgs | string {
  let parsed;
  try {
    parsed = parseArgs({
      args: [...argv], allowPositionals: true,
      options: { model: { type: 'string' }, solutions: { type: 'boolean', default: false }, help: { type: 'boolean', short: 'h', default: false } },
    });
  } catch (e) {
    return (e as Error).message;
  }
  const { values, positionals } = parsed;
  if (values.help) return { gpas: [], model: DEFAULT_EXPLAIN_MODEL, solutions: false, help: true };
  if (positionals.length === 0) return 'which guest-physical address? (e.g. vmxlab explain-gpa 0x1000)';
  const gpas: bigint[] = [];
  for (const p of positionals) {
    const gpa = parseAddress(p);
    if (gpa === null) return `'${p}' is not a guest-physical address: give it in hex (0x1000 or 1000h) or decimal, below 2^64`;
    gpas.push(gpa);
  }
  const model = values.model ?? DEFAULT_EXPLAIN_MODEL;
  if (!CPU_MODELS.some((m) => m.name === model)) return `no CPU model '${model}'. Models with EPT: ${EPT_MODELS.join(', ')}`;
  if (!EPT_MODELS.includes(model)) {
    return `${model} has no EPT (IA32_VMX_PROCBASED_CTLS2 does not allow "enable EPT", bit 1): there is no EPT walk to explain. Models with EPT: ${EPT_MODELS.join(', ')}`;
  }
  return { gpas, model, solutions: values.solutions, help: false };
}

/** What exercise 6.2 exports for this command: its part, and the EPTP it computed. */
export type EptIdentityPart = VmmPart & { readonly state: { eptp: bigint | null } };

export type ExplainGpaReport = { readonly ok: true; readonly text: string } | { readonly ok: false; readonly error: string };

/** A guest that runs under the EPT before it is explained: VM entry checks the EPTP, the code fetch walks it. */
const GUEST = 'bits 64\n        hlt\n';

/**
 * Run `part` on `model` (the kit's VMXON, VMCS and exit dispatch: chapter 5's runPart), then explain each address
 * under the EPT_POINTER in the VMCS. The walk happens when the part is released, before its tables are freed.
 */
export function explainGpas(part: EptIdentityPart, opts: { model: string; gpas: readonly bigint[]; file: string }): ExplainGpaReport {
  let host: Host | null = null;
  let seen: { eptp: bigint; eptOn: boolean; texts: string[] } | null = null;
  const watched: VmmPart = {
    ...part,
    release(k) {
      const cpu = k.cpu();
      const eptp = read(cpu, 'EPT_POINTER');
      const proc = Number(read(cpu, 'CPU_BASED_VM_EXEC_CONTROL'));
      const proc2 = (proc & VMX_CONTROL.CPU_BASED_ACTIVATE_SECONDARY_CONTROLS) !== 0 ? Number(read(cpu, 'SECONDARY_VM_EXEC_CONTROL')) : 0;
      // A page-walk length the processor does not support has no walk to show (VM entry refuses such an EPTP).
      const walkable = eptpProblem(eptp, host!.vmx[0]!.caps, host!.machine.cpus[0]!.maxPhysAddr, ['walk-length']) === null;
      let texts: string[] = [];
      try {
        if (walkable) {
          texts = opts.gpas.map((gpa) => {
            const r = inspect(host!, eptp, gpa);
            return r.result.kind === 'mapped' ? `${r.text}\n${mtrrComparison(host!, r.result.hpa, r.result.memoryType)}` : r.text;
          });
        }
      } catch (e) {
        // Not the learner's exception: keep it out of runPart's "release() threw" and say whose it is.
        texts = [`the walk itself failed (a VMX Lab bug, please report it): ${(e as Error).message}`];
      }
      seen = { eptp, eptOn: (proc2 & VMX_CONTROL.SECONDARY_EXEC_ENABLE_EPT) !== 0, texts };
      part.release?.(k);
    },
  };
  const run = runPart({ model: opts.model, part: watched, source: GUEST, before: (h) => { host = h; } });
  const o = run.outcome;
  if (o.kind === 'oops') {
    const todo = /TODO: ([^\n]*)/.exec(o.text);
    if (todo !== null) {
      return { ok: false, error: `your chapter 6 code is not finished yet: it threw "TODO: ${todo[1]}".\n${o.text}\nFinish exercises 6.1 (eptp) and 6.2 (identity-map) — \`vmxlab watch identity-map\` — or look at the reference with --solutions.` };
    }
    return { ok: false, error: `your code raised an exception, so there is no EPT to explain:\n${withoutKitFrames(o.text)}` };
  }
  if (o.kind === 'controls' || o.kind === 'setup-failed') return { ok: false, error: `${describeOutcome(o)}: your part did not get as far as an EPT to explain.` };
  const s = seen as { eptp: bigint; eptOn: boolean; texts: string[] } | null;
  if (s === null) return { ok: false, error: `your part was never set up: ${describeOutcome(o)}` };
  if (!s.eptOn) return { ok: false, error: `"enable EPT" (SECONDARY_VM_EXEC_CONTROL bit 1) is 0 after your setup: the processor does not use EPT_POINTER, guest-physical is host-physical. Ask for it in the part's controls (proc2).` };
  const refusal = eptpRefusal(run.host, s.eptp);
  const lines = [
    `${opts.file} on ${opts.model}: ${describeOutcome(o)}.`,
    `EPT_POINTER ${hex(s.eptp)} (read from the VMCS after the run): ${describeEptp(s.eptp)}${refusal === null ? '' : `\n  VM entry refuses it: ${refusal}`}`,
    '',
    ...(s.texts.length === 0 ? ['The processor cannot walk an EPTP with this page-walk length: there is no walk to show.'] : s.texts.flatMap((t) => [t, ''])),
  ];
  return { ok: true, text: lines.join('\n').trimEnd() };
}

/**
 * Chapter 7's question about a mapped address: does the EPT memory type match the type the MTRRs give its
 * host-physical address — the type the access would have without a hypervisor? Under EPT the MTRRs are ignored, so
 * only the EPT entry can carry it. See SDM Vol. 3C, "EPT and Memory Typing", and Vol. 3A, "MTRR Precedences".
 */
function mtrrComparison(host: Host, hpa: bigint, eptType: string): string {
  const state = readMtrrState(host.machine.cpus[0]!);
  if (state === null) return '  MTRRs: this model has none (nothing to compare the EPT memory type with)';
  const m = mtrrType(state, hpa);
  const name = m.type === 'undefined' ? 'undefined' : memoryTypeName(m.type);
  const verdict = name === eptType ? 'the EPT type matches' : `the EPT entry says ${eptType}: under EPT the MTRRs are ignored, so the access is not ${name} as it would be on bare metal (chapter 7)`;
  return `  MTRR type of host-physical ${hex(hpa)}: ${name} (${MTRR_RULES[m.rule].text}); ${verdict}`;
}

/** The EPTP's parts, as its SDM table names them. */
function describeEptp(eptp: bigint): string {
  const type = eptp & EPTP.MEMORY_TYPE_MASK;
  const levels = ((eptp & EPTP.WALK_LENGTH_MASK) >> EPTP.WALK_LENGTH_SHIFT) + 1n;
  const typeName = type === 6n ? 'WB' : type === 0n ? 'UC' : `type ${type}`;
  return `tables read as ${typeName}, ${levels}-level walk, accessed/dirty flags ${(eptp & EPTP.ACCESSED_DIRTY) !== 0n ? 'on' : 'off'}, PML4 table at ${hex(eptp & 0x000ffffffffff000n)}`;
}

/** An exception's text without the stack frames of the kit (runPart reports a throwing release() with its stack). */
function withoutKitFrames(text: string): string {
  return text.split('\n').filter((l) => !/^\s+at /.test(l) || /(exercises|solutions)\//.test(l)).join('\n');
}

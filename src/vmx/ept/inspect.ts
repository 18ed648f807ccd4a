// Explain any guest-physical address under an EPTP, without side effects: the walk entry by entry, what the
// translation allows (the AND of R, W, X and XU over the entries used), the EPT memory type and page size — or, if
// the walk stops, the diagnosis of the not-present entry or the misconfiguration. The core of the "explain a
// guest-physical address" debug aid (CLI and playground, chapter 6). Accessed/dirty flags are never written and no
// cached mapping is consulted: this is what a fresh walk would find now. See SDM Vol. 3C, "EPT Translation
// Mechanism" and "EPT and Memory Typing".
import { hex } from '../../util/hex.ts';
import { bitOf, EPT_BIT, EPT_LEVEL_NAMES } from './entry.ts';
import { explainEpt, type EptDiagnosis } from './explain.ts';
import { eptTranslate, formatOf, isPresent, type EptTranslateInput } from './walk.ts';

export type EptInspectInput = Omit<EptTranslateInput, 'access' | 'writePhys64' | 'guestLinear' | 'nmiUnblockingIret'>;

export type EptInspection =
  | {
    readonly kind: 'mapped';
    readonly hpa: bigint;
    readonly readable: boolean;
    readonly writable: boolean;
    readonly executable: boolean;
    /** Mode-based execute control only: executable from user-mode linear addresses (bit 10). */
    readonly userExecutable: boolean;
    readonly memoryType: string;
    readonly ignorePat: boolean;
    readonly pageSize: number;
    readonly walk: readonly string[];
  }
  | { readonly kind: 'not-present' | 'misconfig'; readonly diagnosis: EptDiagnosis; readonly walk: readonly string[] };

/** EPT memory types by their bits 5:3 value (2, 3 and 7 are reserved: a misconfiguration). */
const MEMORY_TYPE_NAMES: Readonly<Record<number, string>> = { 0: 'UC', 1: 'WC', 4: 'WT', 5: 'WP', 6: 'WB' };

export function inspectGpa(input: EptInspectInput): EptInspection {
  // No access at all: only a not-present entry or a misconfiguration stops the walk; nothing is written.
  const full: EptTranslateInput = { ...input, access: { read: false, write: false, execute: false }, writePhys64: () => undefined };
  const r = eptTranslate(full);
  const walk = r.entries.map((e) => {
    const head = `${EPT_LEVEL_NAMES[e.level]} at ${hex(e.address)} = ${hex(e.value)}`;
    if (!isPresent(e.value, input.mbec)) return `${head}: not present`;
    const p = [bitOf(e.value, EPT_BIT.READ) ? 'R' : '-', bitOf(e.value, EPT_BIT.WRITE) ? 'W' : '-', bitOf(e.value, EPT_BIT.EXECUTE) ? 'X' : '-'];
    if (input.mbec) p.push(bitOf(e.value, EPT_BIT.USER_EXECUTE) ? 'XU' : '--');
    return `${head}: ${p.join(' ')} (${formatOf(e.value, e.level, input.caps).id})`;
  });
  if (r.kind !== 'ok') return { kind: r.kind === 'violation' ? 'not-present' : 'misconfig', diagnosis: explainEpt(full, r)!, walk };
  const all = (bit: number) => r.entries.every((e) => bitOf(e.value, bit));
  return {
    kind: 'mapped', hpa: r.hpa, readable: all(EPT_BIT.READ), writable: all(EPT_BIT.WRITE), executable: all(EPT_BIT.EXECUTE),
    userExecutable: input.mbec && all(EPT_BIT.USER_EXECUTE), memoryType: MEMORY_TYPE_NAMES[r.memoryType] ?? `reserved (${r.memoryType})`,
    ignorePat: r.ignorePat, pageSize: r.pageSize, walk,
  };
}

/** One line per fact, for the CLI and test messages. */
export function formatEptInspection(gpa: bigint, i: EptInspection): string {
  const head = i.kind === 'mapped'
    ? `guest-physical ${hex(gpa)} → host-physical ${hex(i.hpa)}: ${[i.readable ? 'R' : '-', i.writable ? 'W' : '-', i.executable ? 'X' : '-'].join('')}${i.userExecutable ? ' XU' : ''}, ${i.memoryType}${i.ignorePat ? ' (ignore PAT)' : ''}, ${pageSizeName(i.pageSize)} page`
    : `guest-physical ${hex(gpa)}: ${i.diagnosis.outcome.startsWith('EPT misconfiguration') ? i.diagnosis.outcome : 'not mapped (an access would be an EPT violation)'} — ${i.diagnosis.message}`;
  return [head, ...i.walk.map((w) => `  ${w}`)].join('\n');
}

/** 4 KiB, 2 MiB, 1 GiB: the page sizes EPT maps. */
function pageSizeName(bytes: number): string {
  if (bytes >= 1 << 30) return `${bytes / (1 << 30)} GiB`;
  if (bytes >= 1 << 20) return `${bytes / (1 << 20)} MiB`;
  return `${bytes / 1024} KiB`;
}

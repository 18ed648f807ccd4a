// "What memory type did the accesses to this device page use, which rule decided, and what did the cache model do
// with them": explainMemoryType's report for the inputs of the last TLB fill of the page (CR0.CD, the MTRRs or the
// EPT entry, the PAT entry), then what that type does to a device and what this LP's accesses met (held writes,
// stale reads, write-backs). Chapter 7's failure messages quote it. See cache-model.ts.
import { intelHex } from '../../util/hex.ts';
import type { LogicalProcessor } from '../lp.ts';
import { accessTypeName, LINE_SIZE, NO_FILL, type CacheEventKind, type PageTypeRecord } from './cache-model.ts';
import { explainMemoryType } from './explain.ts';
import { MEMORY_TYPE } from '../../x86/memory-types.ts';

/** The last type decided for the device page holding physical address `pa` on `lp`, or undefined (never accessed). */
export function devicePageType(lp: LogicalProcessor, pa: number | bigint): PageTypeRecord | undefined {
  return lp.caches.pages.get(Math.floor(Number(pa) / 4096));
}

export function explainDevicePage(lp: LogicalProcessor, pa: number | bigint): string[] {
  const page = Math.floor(Number(pa) / 4096) * 4096;
  const record = devicePageType(lp, pa);
  if (record === undefined) {
    return [`physical ${intelHex(page)}: no access through a TLB entry for a device page on CPU ${lp.id} (RAM, or not accessed yet)`];
  }
  const lines = explainMemoryType(record.input);
  if (record.noMtrrs) lines.push('  this processor has no MTRRs (no CPU model) and no EPT translated the access: the cache model accesses device pages as UC');
  lines.push(`  the device sees: ${EFFECT[effectKey(record.access)]}`);
  const counts = new Map<CacheEventKind, number>();
  for (const e of lp.caches.events) {
    if (e.pa < page || e.pa >= page + 4096) continue;
    counts.set(e.kind, (counts.get(e.kind) ?? 0) + 1);
  }
  if (counts.size === 0) lines.push('  cache model: every access went to the device');
  else lines.push(`  cache model on CPU ${lp.id} (first ${lp.caches.events.length} events of all pages): ${[...counts].map(([k, n]) => `${n} ${EVENT_TEXT[k]}`).join(', ')}`);
  const pending = lp.caches.cachedLines().filter((l) => l.base >= page && l.base < page + 4096);
  for (const l of pending) lines.push(`  line ${intelHex(l.base)}–${intelHex(l.base + LINE_SIZE - 1)} is cached${l.dirty ? ' and dirty: its writes have not reached the device (WBINVD or CLFLUSH writes them back; INVD loses them)' : ''}`);
  for (const b of lp.caches.pendingWriteCombining()) {
    if (b.base >= page && b.base < page + 4096) lines.push(`  ${b.bytes} bytes of line ${intelHex(b.base)} wait in a write-combining buffer (SFENCE, MFENCE or a serializing instruction drains it)`);
  }
  return lines;
}

type EffectKey = 'UC' | 'WC' | 'WT' | 'WP' | 'WB' | 'no-fill';
const effectKey = (access: number): EffectKey => {
  if (access & NO_FILL) return 'no-fill';
  const name = accessTypeName(access);
  return name === 'UC-' || (access & 7) === MEMORY_TYPE.UC ? 'UC' : (name as EffectKey);
};

const EFFECT: Readonly<Record<EffectKey, string>> = {
  UC: 'every read and every write, in order (correct for a device)',
  WC: 'reads every time; writes late, combined in a write-combining buffer until a fence (only the last value of each byte arrives)',
  WT: 'every write, but reads only once per cache line: later reads return the cached value (stale status)',
  WP: 'every write (it invalidates the line), but reads only once per cache line until a write: stale status',
  WB: 'almost nothing: reads fill a cache line once (stale status), writes are held in a dirty line until WBINVD, CLFLUSH or eviction (missing output)',
  'no-fill': 'UC accesses for lines not cached (CR0.CD = 1, no-fill mode); lines cached before still serve reads and hold writes',
};

const EVENT_TEXT: Readonly<Record<CacheEventKind, string>> = {
  fill: 'line fills (the device read 64 bytes)',
  hit: 'reads served from a cached line (the device was not read)',
  held: 'writes held in a dirty line',
  'write-back': 'write-backs of a dirty line',
  dropped: 'dirty lines dropped by INVD (their writes lost)',
  combined: 'writes combined in a WC buffer',
  drained: 'WC buffer drains',
};

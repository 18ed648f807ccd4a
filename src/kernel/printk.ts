// printk and dmesg: the kernel log. Timestamps come from the boot CPU's instruction count, not
// the wall clock, so a log is identical on every run.

export type LogLevel = 'emerg' | 'alert' | 'crit' | 'err' | 'warning' | 'notice' | 'info' | 'debug';

/** Linux's KERN_* prefixes ("\x01" + digit) and their levels. */
const LEVELS: readonly LogLevel[] = ['emerg', 'alert', 'crit', 'err', 'warning', 'notice', 'info', 'debug'];
export const KERN_EMERG = '\x010';
export const KERN_ALERT = '\x011';
export const KERN_CRIT = '\x012';
export const KERN_ERR = '\x013';
export const KERN_WARNING = '\x014';
export const KERN_NOTICE = '\x015';
export const KERN_INFO = '\x016';
export const KERN_DEBUG = '\x017';

export interface LogLine {
  /** Seconds since boot, as dmesg prints it. */
  readonly time: number;
  readonly level: LogLevel;
  readonly cpu: number;
  readonly text: string;
}

export class KernelLog {
  readonly lines: LogLine[] = [];

  constructor(private readonly clock: () => number) {}

  /** printk("<prefix>text"): a KERN_* prefix sets the level (default: warning, as Linux's default_message_loglevel 4). */
  printk(cpu: number, message: string): void {
    let level: LogLevel = 'warning';
    let text = message;
    if (text.length >= 2 && text[0] === '\x01' && text[1]! >= '0' && text[1]! <= '7') {
      level = LEVELS[Number(text[1])]!;
      text = text.slice(2);
    }
    for (const line of text.replace(/\n$/, '').split('\n')) this.lines.push({ time: this.clock(), level, cpu, text: line });
  }

  /** The log as `dmesg` prints it: "[    0.000123] text". */
  dmesg(opts: { level?: LogLevel } = {}): string {
    const max = opts.level === undefined ? LEVELS.length - 1 : LEVELS.indexOf(opts.level);
    return this.lines
      .filter((l) => LEVELS.indexOf(l.level) <= max)
      .map((l) => `[${l.time.toFixed(6).padStart(12)}] ${l.text}`)
      .join('\n');
  }
}

// Progress kept in the learner's checkout: .vmxlab/state.json (git-ignored).
// A missing file is a fresh start; a corrupt one is set aside (never deleted) and reported, and what passes is
// recomputed from the learner's files (recompute.ts).
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';

export interface Progress {
  version: 1;
  /** The exercise watch mode opens on. */
  current?: string;
  /** Exercise ids that have passed, with the time they first passed (ISO). */
  passed: Record<string, string>;
  /** How many hints of each exercise have been shown. */
  hintsShown: Record<string, number>;
}

export interface LoadedProgress {
  progress: Progress;
  /** Set when the state file could not be read; says where the old file was moved. */
  warning?: string;
  /**
   * The state file was damaged: `progress` holds what could be saved from it (hint counts, the current
   * exercise) but no passes; the caller recomputes those from the learner's files (recompute.ts).
   */
  damaged?: boolean;
}

export function statePath(root: string): string {
  return join(root, '.vmxlab', 'state.json');
}

export function emptyProgress(): Progress {
  return { version: 1, passed: {}, hintsShown: {} };
}

export function loadProgress(root: string): LoadedProgress {
  const file = statePath(root);
  if (!existsSync(file)) return { progress: emptyProgress() };
  let text = '';
  try {
    text = readFileSync(file, 'utf8');
    return { progress: validate(JSON.parse(text)) };
  } catch (e) {
    const aside = `${file}.corrupt-${Date.now()}`;
    let moved = `it was moved to ${aside}`;
    try {
      renameSync(file, aside);
    } catch (r) {
      moved = `it could not be moved aside either (${(r as Error).message}) and will be overwritten`;
    }
    return {
      progress: salvage(text),
      damaged: true,
      warning: `${file} could not be read (${(e as Error).message}); ${moved}. Your exercise files are untouched.`,
    };
  }
}

export function saveProgress(root: string, progress: Progress): void {
  const file = statePath(root);
  mkdirSync(dirname(file), { recursive: true });
  // Write then rename, so an interrupted save never leaves half a file.
  writeFileSync(`${file}.tmp`, `${JSON.stringify(progress, null, 2)}\n`);
  renameSync(`${file}.tmp`, file);
}

function validate(data: unknown): Progress {
  if (typeof data !== 'object' || data === null) throw new Error('not a JSON object');
  const d = data as Record<string, unknown>;
  if (d.version !== 1) throw new Error(`unknown version ${JSON.stringify(d.version)}`);
  const record = (v: unknown, name: string) => {
    if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new Error(`"${name}" is not an object`);
    return v as Record<string, never>;
  };
  const passed = record(d.passed ?? {}, 'passed') as Record<string, string>;
  const hintsShown = record(d.hintsShown ?? {}, 'hintsShown') as Record<string, number>;
  for (const [k, v] of Object.entries(hintsShown)) if (typeof v !== 'number') throw new Error(`hintsShown.${k} is not a number`);
  if (d.current !== undefined && typeof d.current !== 'string') throw new Error('"current" is not a string');
  return { version: 1, passed, hintsShown, ...(typeof d.current === 'string' ? { current: d.current } : {}) };
}

/**
 * What can be kept from a damaged state file: the hint counts and the current exercise, wherever they
 * can still be read (a file cut off mid-write usually still has them). Passes are not trusted: they are
 * recomputed from the learner's files.
 */
function salvage(text: string): Progress {
  const progress = emptyProgress();
  const hints = /"hintsShown"\s*:\s*\{([^{}]*)/.exec(text)?.[1] ?? '';
  for (const m of hints.matchAll(/"([^"\\]+)"\s*:\s*(\d+)/g)) progress.hintsShown[m[1]!] = Number(m[2]);
  const current = /"current"\s*:\s*"([^"\\]+)"/.exec(text)?.[1];
  if (current !== undefined) progress.current = current;
  return progress;
}

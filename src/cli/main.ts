// `vmxlab` — the learner's command. See README.md ("Commands") for what each one does.
import { parseArgs } from 'node:util';
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { CHAPTERS, allExercises, exercisePaths, type ExerciseRef } from '../../chapters/manifest.ts';
import { exerciseLabel, findExercise } from './find-exercise.ts';
import { formatGrades, painter } from './format.ts';
import { GraderClient } from './grader-client.ts';
import { loadProgress, saveProgress, type Progress } from './progress.ts';
import { recomputeProgress } from './recompute.ts';
import { resetExercise } from './reset.ts';
import { runWatch } from './watch.ts';
import { runBootCommand } from './boot.ts';
import { runExplainGpaCommand } from './explain-gpa-command.ts';

const ROOT = resolve(fileURLToPath(new URL('../..', import.meta.url)));
const out = process.stdout;
const paint = painter(out);

// `vmxlab list | head`: the reader went away. That is not an error; stop quietly, as cat does.
for (const stream of [process.stdout, process.stderr]) {
  stream.on('error', (e: NodeJS.ErrnoException) => {
    if (e.code === 'EPIPE') process.exit(0);
    throw e;
  });
}

const USAGE = `vmxlab — learn VT-x by building a hypervisor

  vmxlab [watch [exercise]]    watch mode on the current exercise (re-grades on save)
        --no-docs                do not serve the notes
  vmxlab grade [chapter]       points per exercise and chapter; exit 1 if anything falls short
        --solutions              grade the reference solutions instead of your exercises
        --json                   machine-readable output
  vmxlab list                  chapters and exercises, done or pending
  vmxlab hint [exercise]       the next hint for an exercise (default: the current one)
  vmxlab reset <exercise>      restore the original stub (your file is backed up first)
  vmxlab boot <kernel.elf>     boot a Multiboot kernel, as qemu -kernel does (vmxlab boot --help)
  vmxlab explain-gpa <gpa>...  chapter 6: walk guest-physical addresses through the EPT your code put
                               in the VMCS (--model NAME, --solutions; vmxlab explain-gpa --help)
  vmxlab help                  this text

A chapter is its number (0) or slug (00-machine). An exercise is its id as \`list\` prints it
(1.vmxon) or without the chapter (vmxon). Notes: npm run docs`;

async function main(argv: string[]): Promise<number> {
  if (argv[0] === 'boot') return runBootCommand(argv.slice(1)); // its own options (see boot.ts)
  if (argv[0] === 'explain-gpa') return runExplainGpaCommand(argv.slice(1)); // its own options (see explain-gpa.ts)
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      allowPositionals: true,
      options: {
        solutions: { type: 'boolean', default: false },
        json: { type: 'boolean', default: false },
        help: { type: 'boolean', short: 'h', default: false },
        'no-docs': { type: 'boolean', default: false },
      },
    });
  } catch (e) {
    process.stderr.write(`vmxlab: ${(e as Error).message}\n\n${USAGE}\n`);
    return 2;
  }
  const { values, positionals } = parsed;
  const [command, ...rest] = positionals;
  if (values.help || command === 'help') {
    out.write(`${USAGE}\n`);
    return 0;
  }
  if (!['grade', 'list', 'hint', 'reset', 'watch', undefined].includes(command)) {
    process.stderr.write(`vmxlab: unknown command '${command}'\n\n${USAGE}\n`);
    return 2;
  }
  await recoverDamagedProgress();
  switch (command) {
    case undefined:
    case 'watch': {
      const code = await runWatch({ root: ROOT, startExercise: rest[0], serveDocs: !values['no-docs'] });
      // Everything watch mode started is stopped; leave now rather than wait on stray handles.
      process.exit(code);
    }
    case 'grade':
      return grade(rest[0], values.solutions, values.json);
    case 'list':
      return list();
    case 'hint':
      return hint(rest[0]);
    default:
      return reset(rest[0]);
  }
}

/**
 * A damaged state file is set aside by loadProgress; recompute what passes from the learner's files now
 * (keeping the hint counts that could be read), so every command sees the learner's real progress.
 */
async function recoverDamagedProgress(): Promise<void> {
  const loaded = loadProgress(ROOT);
  if (loaded.damaged !== true) return;
  process.stderr.write(`vmxlab: ${loaded.warning}\nvmxlab: recomputing your progress from your exercise files…\n`);
  const client = new GraderClient(ROOT, 'exercises');
  try {
    const passed = await recomputeProgress(ROOT, loaded.progress, (ids) => client.grade(ids));
    const hints = Object.values(loaded.progress.hintsShown).reduce((a, b) => a + b, 0);
    process.stderr.write(`vmxlab: progress recomputed: ${passed.length}/${allExercises().length} exercises pass${hints > 0 ? `; ${hints} hint(s) shown before are kept` : ''}.\n`);
  } finally {
    await client.close();
  }
}

async function grade(chapterArg: string | undefined, solutions: boolean, json: boolean): Promise<number> {
  const chapters = chapterArg === undefined ? CHAPTERS : CHAPTERS.filter((c) => String(c.number) === chapterArg || c.slug === chapterArg);
  if (chapters.length === 0) {
    process.stderr.write(`vmxlab: no chapter '${chapterArg}'. Chapters: ${CHAPTERS.map((c) => `${c.number} (${c.slug})`).join(', ')}\n`);
    return 2;
  }
  const client = new GraderClient(ROOT, solutions ? 'solutions' : 'exercises');
  const ids = chapters.flatMap((c) => c.exercises.map((e) => e.id));
  const results = await client.grade(ids);
  await client.close();
  if (!solutions) recordPasses(results.filter((r) => r.passed).map((r) => r.id));
  const byChapter = chapters.map((chapter) => ({ chapter, results: results.filter((r) => r.chapter === chapter.slug) }));
  const points = results.reduce((s, r) => s + r.points, 0);
  const maxPoints = results.reduce((s, r) => s + r.maxPoints, 0);
  const allPassed = results.every((r) => r.passed);
  if (json) {
    const report = {
      implementation: solutions ? 'solutions' : 'exercises',
      passed: allPassed,
      points,
      maxPoints,
      chapters: byChapter.map(({ chapter, results: rs }) => ({
        number: chapter.number,
        slug: chapter.slug,
        title: chapter.title,
        points: rs.reduce((s, r) => s + r.points, 0),
        maxPoints: rs.reduce((s, r) => s + r.maxPoints, 0),
        exercises: rs,
      })),
    };
    out.write(`${JSON.stringify(report, null, 2)}\n`);
  } else {
    out.write(`${formatGrades(byChapter, paint)}\n`);
  }
  return allPassed ? 0 : 1;
}

function recordPasses(ids: string[]): void {
  const { progress } = loadProgress(ROOT);
  const now = new Date().toISOString();
  for (const id of ids) progress.passed[id] ??= now;
  saveProgress(ROOT, progress);
}

function list(): number {
  const { progress } = loadProgress(ROOT);
  for (const chapter of CHAPTERS) {
    out.write(`${paint('bold', `Chapter ${chapter.number} — ${chapter.title}`)}  (${chapter.slug})\n`);
    for (const exercise of chapter.exercises) {
      const done = progress.passed[exercise.id] !== undefined;
      const here = progress.current === exercise.id ? ' ←' : '';
      out.write(`  ${done ? paint('green', '✓ done   ') : '· pending'} ${exerciseLabel({ chapter, exercise }).padEnd(24)} ${exercise.title}${here}\n`);
    }
  }
  return 0;
}

/** The exercise a command names, else the current one, else the first. */
function exerciseArg(arg: string | undefined, progress: Progress): ExerciseRef | string {
  const all = allExercises();
  return findExercise(arg ?? progress.current ?? all[0]!.exercise.id);
}

function hint(id: string | undefined): number {
  const { progress } = loadProgress(ROOT);
  const ref = exerciseArg(id, progress);
  if (typeof ref === 'string') {
    process.stderr.write(`vmxlab: ${ref}\n`);
    return 2;
  }
  const hints = ref.exercise.hints;
  const shown = Math.min(hints.length, (progress.hintsShown[ref.exercise.id] ?? 0) + 1);
  progress.hintsShown[ref.exercise.id] = shown;
  saveProgress(ROOT, progress);
  out.write(`${paint('bold', `Hints for ${exerciseLabel(ref)}`)} (${shown}/${hints.length})\n`);
  hints.slice(0, shown).forEach((h, i) => out.write(`  ${i + 1}. ${h}\n`));
  if (shown === hints.length) out.write(paint('dim', `  That is every hint. The notes: ${exercisePaths(ref).notes}\n`));
  return 0;
}

function reset(id: string | undefined): number {
  if (id === undefined) {
    process.stderr.write('vmxlab: reset needs an exercise id (see `vmxlab list`)\n');
    return 2;
  }
  const ref = findExercise(id);
  if (typeof ref === 'string') {
    process.stderr.write(`vmxlab: ${ref}\n`);
    return 2;
  }
  const file = exercisePaths(ref).exercise;
  const outcome = resetExercise(ROOT, file);
  if (!outcome.ok) {
    process.stderr.write(`vmxlab: ${outcome.message}\n`);
    return 1;
  }
  // The stub does not pass: the exercise is pending again.
  const { progress } = loadProgress(ROOT);
  delete progress.passed[ref.exercise.id];
  saveProgress(ROOT, progress);
  out.write(`${file} is back to its original stub.${outcome.backup !== undefined ? ` Your version is saved at ${outcome.backup}` : ''}\n`);
  out.write(`${exerciseLabel(ref)} is pending again. Hints shown so far stay shown.\n`);
  return 0;
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (e: unknown) => {
    // A bug in the kit itself: say so plainly, with the stack for the bug report.
    process.stderr.write(`vmxlab: internal error (please report): ${(e as Error)?.stack ?? String(e)}\n`);
    process.exitCode = 70;
  },
);

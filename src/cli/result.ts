// What grading one exercise produces. Plain data: it crosses a process boundary (IPC) and
// is printed by the CLI, written as --json, and read by tests.

export interface TestFailure {
  /** The test's full name, e.g. "decodeDescriptor > recovers every field of any descriptor". */
  readonly test: string;
  /** The assertion or error message, already free of the kit's internal stack frames. */
  readonly message: string;
  /** "file:line:column" in the learner's file or the chapter test, when known. */
  readonly location?: string;
  /** Expected/received diff from the assertion, when there is one. */
  readonly diff?: string;
}

export interface ExerciseResult {
  readonly id: string;
  readonly chapter: string;
  readonly title: string;
  readonly passed: boolean;
  readonly points: number;
  readonly maxPoints: number;
  readonly tests: { readonly total: number; readonly passed: number; readonly failed: number };
  readonly failures: readonly TestFailure[];
  /**
   * A problem that stopped the tests from running at all: a syntax error, a missing export,
   * code that never finished. Always names the file (and line where known).
   */
  readonly problem?: string;
}

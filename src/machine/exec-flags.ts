// Flag helpers the interpreter needs, re-exported in one place.
export { condition, lazyCF, lazyZF, CF, OF, ZF, STATUS_MASK } from './lazy-flags.ts';
/** RFLAGS.DF (string direction). */
export const DF_MASK = 1 << 10;

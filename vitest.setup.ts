// Every test run is reproducible: fast-check draws from a fixed seed unless FC_SEED is given
// (set FC_SEED to explore other inputs; a failure prints the seed that replays it).
import fc from 'fast-check';

fc.configureGlobal({ seed: Number(process.env.FC_SEED ?? 20261125), numRuns: Number(process.env.FC_RUNS ?? 100) });

// The digital random-number source behind RDRAND and RDSEED. Real hardware draws on thermal noise; VMX Lab is
// deterministic (DESIGN.md, principle 5), so each logical processor has its own seeded generator: the same
// machine gives the same numbers on every run, and a failing test replays. The generator is SplitMix64
// (Steele, Lea and Flood, "Fast Splittable Pseudorandom Number Generators", 2014), seeded by the LP's id.
// See SDM Vol. 1, "Random Number Generator Instructions".

const GOLDEN = 0x9e3779b97f4a7c15n;
const M64 = (1n << 64n) - 1n;

export class RandomSource {
  private state: bigint;

  constructor(seed: number) {
    this.state = (BigInt(seed >>> 0) * GOLDEN + 0x5eed0f7ab5n) & M64;
  }

  /** The next 64 random bits. */
  next64(): bigint {
    this.state = (this.state + GOLDEN) & M64;
    let z = this.state;
    z = ((z ^ (z >> 30n)) * 0xbf58476d1ce4e5b9n) & M64;
    z = ((z ^ (z >> 27n)) * 0x94d049bb133111ebn) & M64;
    return z ^ (z >> 31n);
  }
}

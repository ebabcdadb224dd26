/**
 * Seeded Gaussian noise for initial latents and ancestral sampling.
 *
 * Generator: xoshiro128** (Blackman & Vigna, 2018), 32-bit state words, its state
 * filled from the seed by SplitMix32 (the seed's low 32 bits, then its high bits).
 * Normals: Box-Muller on 53-bit uniforms, both outputs used in order (cos, then sin).
 * The sequence is part of the product's contract: the same seed gives the same
 * latents on the same build, on any machine. Changing any of the above changes every
 * seeded image, so it must not change silently.
 */

const TWO_POW_32 = 2 ** 32;

function splitMix32(state: number): { state: number; value: number } {
  const next = (state + 0x9e3779b9) | 0;
  let z = next;
  z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
  z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
  return { state: next, value: (z ^ (z >>> 16)) >>> 0 };
}

function rotl(x: number, k: number): number {
  return (x << k) | (x >>> (32 - k));
}

export function checkSeed(seed: number): void {
  if (!Number.isSafeInteger(seed) || seed < 0) throw new RangeError(`seed must be a non-negative safe integer, got ${seed}`);
}

export class GaussianNoise {
  private readonly s = new Uint32Array(4);
  private spare: number | null = null;

  constructor(seed: number) {
    checkSeed(seed);
    let mix = (seed >>> 0) ^ Math.imul(Math.floor(seed / TWO_POW_32), 0x27d4eb2d);
    for (let i = 0; i < 4; i++) {
      const out = splitMix32(mix);
      mix = out.state;
      this.s[i] = out.value;
    }
  }

  /** Next 32-bit output of xoshiro128**. */
  private nextUint32(): number {
    const s = this.s;
    const result = Math.imul(rotl(Math.imul(s[1], 5), 7), 9) >>> 0;
    const t = s[1] << 9;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 11);
    return result;
  }

  /** Uniform in [0, 1) with 53 random bits. */
  private uniform(): number {
    const high = this.nextUint32() >>> 5;
    const low = this.nextUint32() >>> 6;
    return (high * 67108864 + low) / 9007199254740992;
  }

  normal(): number {
    if (this.spare !== null) {
      const value = this.spare;
      this.spare = null;
      return value;
    }
    const radius = Math.sqrt(-2 * Math.log(1 - this.uniform()));
    const angle = 2 * Math.PI * this.uniform();
    this.spare = radius * Math.sin(angle);
    return radius * Math.cos(angle);
  }

  fill(out: Float32Array): Float32Array {
    for (let i = 0; i < out.length; i++) out[i] = this.normal();
    return out;
  }
}

/** Unit Gaussian noise for a whole batch, drawn in batch order, one call per use. */
export interface NoiseSource {
  next(length: number): Float32Array;
}

/**
 * One generator per image, so an image's latents and ancestral noise depend only on
 * its own seed, not on what else shares its batch.
 */
export class PerImageNoise implements NoiseSource {
  private readonly generators: GaussianNoise[];

  constructor(seeds: readonly number[]) {
    this.generators = seeds.map((seed) => new GaussianNoise(seed));
  }

  next(length: number): Float32Array {
    const count = this.generators.length;
    if (length % count !== 0) throw new RangeError(`noise of ${length} values does not split over ${count} images`);
    const per = length / count;
    const out = new Float32Array(length);
    this.generators.forEach((g, i) => g.fill(out.subarray(i * per, (i + 1) * per)));
    return out;
  }
}

/** Noise given in advance (e.g. drawn by another implementation), handed out in order. */
export class GivenNoise implements NoiseSource {
  private used = 0;

  constructor(private readonly tensors: readonly Float32Array[]) {}

  next(length: number): Float32Array {
    const tensor = this.tensors[this.used];
    if (!tensor) throw new RangeError(`noise requested ${this.used + 1} times, only ${this.tensors.length} given`);
    if (tensor.length !== length) throw new RangeError(`given noise ${this.used} has ${tensor.length} values, ${length} needed`);
    this.used++;
    return tensor;
  }
}

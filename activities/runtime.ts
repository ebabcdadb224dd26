import { generatorName, type GeneratorSource } from '../models/generator.js';
import { SamplerPool } from '../models/samplerPool.js';
import { validateJudgeConfig, validateRefereeConfig, type JudgeConfig, type RefereeConfig } from '../models/judge/index.js';
import { JudgePool, RefereePool } from '../models/judge/judgePool.js';
import type { JudgeSettings, RefereeSettings } from '../config/round.js';

/**
 * Loaded models, shared by the activities of one worker process. Loading a real generator takes
 * seconds to minutes, so each stays loaded while in use and the idle one is released when
 * another is asked for (one device holds one generator at a time).
 */
export class ModelRuntime {
  private readonly generators = new Map<string, { model: Promise<SamplerPool>; users: number }>();
  private readonly judges = new Map<string, { model: Promise<JudgePool>; users: number }>();
  // Its own pool: an evaluation uses the judge and the referee prompt by prompt, and one pool would reload each in turn.
  private readonly referees = new Map<string, { model: Promise<RefereePool>; users: number }>();

  constructor(
    private readonly device: string,
    private readonly threads: number | null = null,
    /** The lanes of the generator, the judge and the referee (null: each pool's default for the device, threads and model size). */
    private readonly lanes: number | null = null,
    /** Hears a line for each model loaded: what, its lanes, how long it took. */
    private readonly onLoaded: (line: string) => void = () => undefined,
  ) {}

  /** Loads a pool and reports it, so an operator sees each worker's lanes and load times. */
  private async loading<P extends { readonly laneCount: number }>(what: string, load: () => Promise<P>): Promise<P> {
    const started = performance.now();
    const pool = await load();
    const seconds = ((performance.now() - started) / 1000).toFixed(1);
    this.onLoaded(`loaded ${what} in ${pool.laneCount} lane${pool.laneCount === 1 ? '' : 's'} (${seconds} s)`);
    return pool;
  }

  async withGenerator<T>(source: GeneratorSource, use: (generator: SamplerPool) => Promise<T>): Promise<T> {
    const id = JSON.stringify([source.base, source.tunedUnet ?? null]);
    return this.borrow(
      this.generators,
      id,
      () =>
        this.loading(`the generator ${generatorName(source)}`, () =>
          SamplerPool.load(source, {
            device: this.device,
            ...(this.threads === null ? {} : { threads: this.threads }),
            ...(this.lanes === null ? {} : { lanes: this.lanes }),
          }),
        ),
      (g) => g.release(),
      use,
    );
  }

  async withJudge<T>(settings: JudgeSettings, use: (judge: JudgePool) => Promise<T>): Promise<T> {
    const config = judgeConfig(settings, this.device, this.threads);
    return this.borrow(
      this.judges,
      JSON.stringify(config),
      () => this.loading(`the judge (detector ${config.detector})`, () => JudgePool.load(config, this.lanes === null ? {} : { lanes: this.lanes })),
      (judge) => judge.release(),
      use,
    );
  }

  async withReferee<T>(settings: RefereeSettings, use: (referee: RefereePool) => Promise<T>): Promise<T> {
    const config = refereeConfig(settings, this.device, this.threads);
    return this.borrow(
      this.referees,
      JSON.stringify(config),
      () => this.loading(`the referee (detector ${config.detector})`, () => RefereePool.load(config, this.lanes === null ? {} : { lanes: this.lanes })),
      (referee) => referee.release(),
      use,
    );
  }

  private async borrow<M, T>(
    pool: Map<string, { model: Promise<M>; users: number }>,
    id: string,
    load: () => Promise<M>,
    release: (model: M) => Promise<void>,
    use: (model: M) => Promise<T>,
  ): Promise<T> {
    for (const [other, entry] of pool) {
      if (other !== id && entry.users === 0) {
        pool.delete(other);
        await entry.model.then(release, () => undefined);
      }
    }
    let entry = pool.get(id);
    if (!entry) {
      entry = { model: load(), users: 0 };
      pool.set(id, entry);
    }
    entry.users += 1;
    try {
      return await use(await entry.model);
    } catch (error) {
      if (pool.get(id) === entry) await entry.model.catch(() => pool.delete(id));
      throw error;
    } finally {
      entry.users -= 1;
    }
  }

  async release(): Promise<void> {
    const pools = [...this.generators.values(), ...this.judges.values(), ...this.referees.values()];
    this.generators.clear();
    this.judges.clear();
    this.referees.clear();
    await Promise.all(
      pools.map((p) =>
        p.model.then(
          (m: { release(): Promise<void> }) => m.release(),
          () => undefined,
        ),
      ),
    );
  }
}

/** The runtime's judge configuration from a round's judge settings (the runtime validates it again, naming fields). */
export function judgeConfig(settings: JudgeSettings, device: string, threads: number | null = null): JudgeConfig {
  return validateJudgeConfig({
    detector: settings.detector,
    captioner: settings.captioner,
    clip: settings.clip,
    threshold: settings.threshold,
    iouThreshold: settings.iouThreshold,
    batchSize: settings.batchSize,
    synonyms: settings.synonyms,
    ...(settings.weights === null ? {} : { weights: settings.weights }),
    device,
    threads,
  });
}

/** The runtime's referee configuration from a round's `evaluation.referee` (validated again, naming fields). */
export function refereeConfig(settings: RefereeSettings, device: string, threads: number | null = null): RefereeConfig {
  return validateRefereeConfig({ ...settings, device, threads });
}

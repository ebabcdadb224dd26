/**
 * A round's figures: what its `progress` query answers, kept from its stages' results (a client
 * adds the running activities' heartbeat figures, `withLiveProgress`); and what each finished
 * stage did, as the workflow's current details (the Web UI shows them on the round's page).
 */
import { setCurrentDetails, setHandler } from '@temporalio/workflow';

import type { GateVerdict } from '../config/gate.js';

import type {
  ClassCounts,
  CurateResult,
  EvaluateResult,
  EvaluateShardResult,
  JudgeShardResult,
  PreparedRound,
  SampleShardResult,
  TrainResult,
  ValidationResult,
} from '../contract/activities.js';
import type { RoundProgress, Stage } from '../contract/progress.js';
import { progressQuery } from '../contract/workflows.js';

const sum = (values: Iterable<number>) => [...values].reduce((s, v) => s + v, 0);
const percent = (x: number) => `${(100 * x).toFixed(1)}%`;

export class RoundProgressTracker {
  private stage: Stage = 'prepare';
  /** Images sampled and judged per finished shard. */
  private readonly sampled = new Map<number, number>();
  private readonly judged = new Map<number, number>();
  private readonly shardsSampled = new Set<number>();
  private readonly shardsJudged = new Set<number>();
  private perClass: Readonly<Record<string, ClassCounts>> = {};
  private trainer: RoundProgress['trainer'] = null;
  private imagesEvaluated = 0;
  private readonly evaluationShards = new Set<number>();
  private winRate: number | null = null;
  private report: string | null = null;
  private promptsSampled = 0;
  private detected = 0;
  /** With several LoRAs: trainer seeds trained, and validated with their validation accuracy. */
  private readonly lorasTrained = new Set<number>();
  private readonly lorasValidated = new Map<number, ValidationResult>();
  private loraKept: number | null = null;
  /** One line per finished stage. */
  private readonly stagesDone: { readonly stage: Stage | undefined; line: string }[] = [];

  constructor(
    private readonly round: number,
    private readonly shards: number,
    /** `lora.seeds`: LoRAs trained side by side. */
    private readonly loras = 1,
  ) {}

  /** Answers the `progress` query from now on. */
  listen(): void {
    setHandler(progressQuery, () => this.snapshot());
  }

  enter(stage: Stage): void {
    this.stage = stage;
  }

  prepared(prepared: PreparedRound): void {
    this.did(`checked the input: ${prepared.prompts} training and ${prepared.heldOutPrompts} held-out prompts of ${prepared.classes.length} classes`);
  }

  /** Shards are judged as they are sampled: the round's stage is `judge` once every shard is sampled. */
  shardSampled(result: SampleShardResult): void {
    this.sampled.set(result.shard, result.images);
    this.shardsSampled.add(result.shard);
    if (this.shardsSampled.size === this.shards) this.stage = 'judge';
    this.promptsSampled += result.prompts;
    this.did(`sampled ${this.shardsSampled.size} of ${this.shards} shards: ${sum(this.sampled.values())} images of ${this.promptsSampled} prompts`, 'sample');
  }

  shardJudged(result: JudgeShardResult): void {
    this.judged.set(result.shard, result.images);
    this.shardsJudged.add(result.shard);
    this.detected += result.detected;
    this.did(`judged ${this.shardsJudged.size} of ${this.shards} shards: the class found in ${this.detected} of ${sum(this.judged.values())} images`, 'judge');
  }

  curated(dataset: CurateResult): void {
    this.perClass = { ...dataset.perClass };
    this.did(
      `curated ${dataset.kept} images${dataset.included > 0 ? ` (${dataset.included} from earlier datasets)` : ''}; ${dataset.dropped} prompts kept none`,
    );
  }

  /** One of several LoRAs is trained: the round's stage is `validate` once every one is (each is validated as soon as it is trained). */
  seedTrained(training: TrainResult): void {
    if (training.seed !== undefined) this.lorasTrained.add(training.seed);
    if (this.lorasTrained.size === this.loras) this.stage = 'validate';
    this.trainer = { step: training.steps, steps: training.steps, loss: training.finalLoss };
    this.did(`trained ${this.lorasTrained.size} of ${this.loras} LoRAs, ${training.steps} steps each`, 'train');
  }

  seedValidated(validation: ValidationResult): void {
    this.lorasValidated.set(validation.seed, validation);
    const accuracies = [...this.lorasValidated.values()].sort((a, b) => a.seed - b.seed).map((v) => `seed ${v.seed} ${percent(v.accuracyTuned)}`);
    const base = percent(validation.accuracyBase);
    this.did(
      `validated ${this.lorasValidated.size} of ${this.loras} LoRAs on ${validation.prompts} withheld training prompts: accuracy ${accuracies.join(', ')} (base ${base})`,
      'validate',
    );
  }

  trained(training: TrainResult): void {
    this.trainer = { step: training.steps, steps: training.steps, loss: training.finalLoss };
    const seeds = training.seeds;
    if (seeds === undefined) {
      this.did(`trained ${training.steps} steps, final loss ${training.finalLoss === null ? '-' : training.finalLoss.toFixed(4)}`);
      return;
    }
    this.loraKept = seeds.kept;
    const points = (x: number) => `${x >= 0 ? '+' : ''}${(100 * x).toFixed(1)}`;
    const gain = seeds.accuracyGain;
    this.did(
      `kept the LoRA of trainer seed ${seeds.kept} of ${seeds.perSeed.length}; validation accuracy gain ${points(gain.min)} to ${points(gain.max)} points (mean ${points(gain.mean)}, sd ${(100 * gain.sd).toFixed(1)})`,
    );
  }

  /** A shard of the evaluation stored its images and records; the figures come with `evaluated`. */
  evaluationShardDone(result: EvaluateShardResult, shards: number): void {
    this.evaluationShards.add(result.shard);
    this.imagesEvaluated += result.images;
    this.did(`evaluation: ${this.evaluationShards.size} of ${shards} shards sampled and judged, ${this.imagesEvaluated} held-out images`, 'evaluate');
  }

  evaluated(evaluation: EvaluateResult): void {
    this.winRate = evaluation.winRate;
    // Each pair is one held-out image per generator: the base, the tuned one and any parent.
    this.imagesEvaluated = evaluation.pairs * (evaluation.parent === null ? 2 : 3);
    const against = evaluation.parent === null ? '' : `; against its parent ${percent(evaluation.parent.winRate)}`;
    const gain = evaluation.accuracyGainInterval;
    const { diversityBase, diversityTuned, countAccuracyBase, countAccuracyTuned, referee } = evaluation;
    this.did(
      `evaluated: tuned beats base in ${percent(evaluation.winRate)} of ${evaluation.pairs} pairs [${percent(evaluation.winRateInterval[0])}, ${percent(evaluation.winRateInterval[1])}], accuracy ${percent(evaluation.accuracyBase)} -> ${percent(evaluation.accuracyTuned)}` +
        (gain === null ? '' : ` (gain [${percent(gain[0])}, ${percent(gain[1])}])`) +
        (diversityBase === null || diversityTuned === null ? '' : `, diversity ${diversityBase.toFixed(4)} -> ${diversityTuned.toFixed(4)}`) +
        (countAccuracyBase === null || countAccuracyTuned === null ? '' : `, counting ${percent(countAccuracyBase)} -> ${percent(countAccuracyTuned)}`) +
        (referee === null
          ? ''
          : `, referee all correct per prompt ${percent(referee.allCorrectPrompts.base)} -> ${percent(referee.allCorrectPrompts.tuned)}` +
            (referee.flaggedClasses.length === 0 ? '' : ` (hacking flagged: ${referee.flaggedClasses.join(', ')})`)) +
        against,
      'evaluate',
    );
  }

  gated(gate: GateVerdict): void {
    this.did(`gate ${gate.passed ? 'passed' : 'not passed'}: ${gate.reasons.join('; ')}`);
  }

  done(report: string): void {
    this.report = report;
    this.stage = 'done';
    this.did(`report: ${report}`);
  }

  /**
   * Records what a stage did; a stage of many shards keeps one line, rewritten as each shard ends
   * (sampling and judging alternate, shard by shard), so the details stay short however many
   * shards a round has.
   */
  private did(line: string, stage?: Stage): void {
    const earlier = stage === undefined ? undefined : this.stagesDone.find((done) => done.stage === stage);
    if (earlier !== undefined) earlier.line = line;
    else this.stagesDone.push({ stage, line });
    setCurrentDetails(this.stagesDone.map((done) => done.line).join('\n'));
  }

  snapshot(): RoundProgress {
    return {
      round: this.round,
      stage: this.stage,
      shards: { total: this.shards, sampled: this.shardsSampled.size, judged: this.shardsJudged.size },
      images: { sampled: sum(this.sampled.values()), judged: sum(this.judged.values()) },
      perClass: this.perClass,
      trainer: this.trainer,
      ...(this.loras === 1 ? {} : { loras: { total: this.loras, trained: this.lorasTrained.size, validated: this.lorasValidated.size, kept: this.loraKept } }),
      evaluated: this.imagesEvaluated,
      winRate: this.winRate,
      report: this.report,
    };
  }
}

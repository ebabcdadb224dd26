import { randomUUID } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, rm } from 'node:fs/promises';
import { join } from 'node:path';

import { CancelledFailure } from '@temporalio/activity';
import { ApplicationFailure } from '@temporalio/common';

import type { TrainingMemberResult, TrainRequest, TrainResult } from '../contract/activities.js';
import { artifactKeys, trainingRoot } from '../contract/keys.js';
import { findJson, putJson } from '../store/store.js';
import type { ActivityDependencies } from './dependencies.js';
import { badData } from './failures.js';
import { withProgress } from './progress.js';
import { teamArguments, trainerArguments } from './trainer/arguments.js';
import {
  CheckpointUploader,
  discardCheckpoints,
  newestLocalCheckpoint,
  removeStoredCheckpoints,
  restoreCheckpoint,
  type StoredCheckpoint,
} from './trainer/checkpoints.js';
import { EXIT_BAD_INPUT, runTrainer, stopOrphanedTrainer, type TrainerRun } from './trainer/process.js';
import { roundInput } from './input.js';

/** Where a team's leading trainer waits for the others (`artifactKeys.trainerMeeting`). */
interface TrainerMeeting {
  /** host:port of its meeting point. */
  readonly address: string;
  /** New for every trainer process the leader starts. */
  readonly id: string;
}

async function download(deps: ActivityDependencies, prefix: string, folder: string): Promise<void> {
  for (const key of await deps.store.list(prefix)) await deps.store.getFile(key, join(folder, ...key.slice(prefix.length).split('/')));
}

/** Files the trainer leaves in its output folder that the next round and the report need. */
function outputFiles(output: string): string[] {
  const wanted = ['pytorch_lora_weights.safetensors', 'metrics.json', 'unet/model.onnx', 'unet/model.onnx_data', 'unet/config.json'];
  return wanted.filter((file) => existsSync(join(output, file)));
}

/** What the trainer writes on stderr, whole: beside its output folder, and published with the LoRA. */
const TRAINER_LOG = 'trainer.log';

/**
 * Whether the trainer refused its input: its exit code says so, or, under a launcher of several
 * processes (torchrun, accelerate launch) that exits 1 whatever its processes did, its `error` event.
 */
function refused(run: TrainerRun): boolean {
  return run.code === EXIT_BAD_INPUT || run.failure?.kind === 'bad_input' || run.failure?.kind === 'bad_checkpoint';
}

/**
 * Runs the Python LoRA trainer as a child process on the curated dataset. Its JSON progress
 * lines become heartbeats. Each checkpoint it writes is copied to the store (the newest only),
 * so a retry resumes from it on any worker: one whose work folder has no newer checkpoint
 * downloads it first. Cancellation (or worker shutdown) stops the trainer with SIGTERM, then
 * SIGKILL after the grace time; the checkpoint it writes on the way out is stored, no LoRA is.
 * A checkpoint the trainer cannot read (its `bad_checkpoint` error) is deleted, stored and local,
 * and the trainer runs once more from step 0. On success the LoRA weights, the fused UNet and the
 * metrics are uploaded, then the manifest, and the stored checkpoint is deleted.
 *
 * With `lora.workers` > 1 it leads a team: its trainer opens a meeting point, whose address it
 * stores for the `joinTraining` activities of the other workers, and trains with those that join
 * within `lora.workersWaitSeconds` (the result says how many); each retry meets anew.
 *
 * Every round trains a fresh LoRA on the base generator (the trainer takes diffusers weights,
 * and a tuned UNet exists only fused, as ONNX): in a campaign the tuned generator of round r-1
 * changes what round r samples, and so what it learns from.
 */
export function createTrainLora(deps: ActivityDependencies) {
  return async function trainLora({ root: roundFolder, inputKey, dataset: datasetPrefix, seed }: TrainRequest): Promise<TrainResult> {
    const input = await roundInput(deps, inputKey);
    // One of several LoRAs trains with its own seed under keys of its own; a round's one LoRA under the round's.
    const root = trainingRoot(roundFolder, seed ?? null);
    const lora = seed === undefined ? input.lora : { ...input.lora, seed };
    const manifestKey = artifactKeys.trainManifest(root);
    const existing = await findJson<TrainResult>(deps.store, manifestKey);
    if (existing) {
      // A try that died between publishing the manifest and deleting the checkpoint left it.
      await removeStoredCheckpoints(deps, root, null);
      return existing;
    }
    if ((await deps.store.list(datasetPrefix)).length === 0)
      throw badData('MissingArtifact', `${datasetPrefix}: no dataset there; the dataset must be curated before training`);

    return withProgress({ stage: 'train' }, async (progress) => {
      const work = join(deps.workDir, ...root.split('/'), 'train');
      const dataset = join(work, 'dataset');
      const output = join(work, 'output');
      await mkdir(output, { recursive: true });
      await stopOrphanedTrainer(output, deps.trainer.stopGraceMs);
      await download(deps, datasetPrefix, dataset);

      const { log } = progress.context;
      const stored = await findJson<StoredCheckpoint>(deps.store, artifactKeys.trainerCheckpointPointer(root));
      const local = await newestLocalCheckpoint(output);
      if (stored !== null && stored.step > (local ?? -1)) {
        await restoreCheckpoint(deps, stored, output);
        log.info(`trainer resumes from the stored checkpoint of step ${stored.step}`);
      }
      const team = lora.workers > 1 ? teamArguments({ lead: lora.workers }, lora.workersWaitSeconds) : [];
      const args = [...trainerArguments(lora, { generator: input.generator.base, dataset, output }, deps.device, deps.threads), ...team];
      const meetingKey = artifactKeys.trainerMeeting(root);
      // The workers joining this training read where to meet from the store; each trainer process meets anew.
      const announceMeeting = async (port: number) => {
        await putJson(deps.store, meetingKey, { address: `${deps.trainer.address}:${port}`, id: randomUUID() } satisfies TrainerMeeting);
        log.info(`trainer waits up to ${lora.workersWaitSeconds} s for ${lora.workers - 1} more worker(s) at ${deps.trainer.address}:${port}`);
      };
      const logFile = join(work, TRAINER_LOG);
      await rm(logFile, { force: true });
      const started = performance.now();
      const attempt = progress.context.info.attempt;
      /** The attempt's time, and its log when it trained no LoRA (a retry starts a new log). */
      const ended = async (outcome: 'trained' | 'stopped' | 'failed') => {
        deps.metrics.trainingSeconds.record((performance.now() - started) / 1000, { outcome });
        if (outcome !== 'trained' && existsSync(logFile)) await deps.store.putFile(artifactKeys.trainerLog(root, attempt), logFile);
      };
      /** One trainer process; the checkpoints it announces past step `newest` are stored. */
      const runOnce = async (newest: number): Promise<TrainerRun> => {
        const uploader = new CheckpointUploader(deps, root, newest, (message) => log.warn(message));
        try {
          return await runTrainer(deps, args, output, logFile, progress, {
            checkpoint: (step, folder) => uploader.offer(step, folder),
            meeting: announceMeeting,
            stallSeconds: lora.stallSeconds,
          });
        } finally {
          // The next try may run on another worker: what this one announced is stored before it ends.
          await uploader.finish();
        }
      };
      let run = await runOnce(stored?.step ?? -1);
      if (refused(run) && run.failure?.kind === 'bad_checkpoint' && !progress.context.cancellationSignal.aborted) {
        // Every retry would restore the same checkpoint: only a fresh start gets past it. A second
        // refusal has another cause, and fails below as bad input.
        log.warn(`trainer checkpoint is corrupt, so it is discarded and training starts over from step 0: ${run.failure.message ?? 'no message'}`);
        await discardCheckpoints(deps, root, output);
        run = await runOnce(-1);
      }
      if (progress.context.cancellationSignal.aborted) {
        await ended('stopped');
        throw new CancelledFailure(`trainer stopped (exit ${run.code}) because the activity was cancelled`);
      }
      if (run.code !== 0) await ended('failed');
      const said = run.failure?.message ?? run.stderr.trim().split('\n').slice(-3).join(' | ');
      if (refused(run)) throw badData('BadTrainingInput', said || 'the trainer refused its input');
      if (run.stalled !== null)
        throw ApplicationFailure.retryable(
          `trainer made no step for ${lora.stallSeconds} s after step ${run.stalled.step} (lora.stallSeconds), so it was stopped as hung: a GPU that stopped answering, or a team member gone from the network; the retry resumes from the last checkpoint`,
          'TrainerStalled',
        );
      if (run.code !== 0) throw ApplicationFailure.retryable(`trainer exited with ${run.code}: ${said}`, 'TrainerFailed');

      const loraKey = artifactKeys.lora(root);
      const files = [...outputFiles(output), TRAINER_LOG];
      for (const file of files) await deps.store.putFile(`${loraKey}${file}`, file === TRAINER_LOG ? logFile : join(output, ...file.split('/')));
      const result: TrainResult = {
        manifest: manifestKey,
        lora: loraKey,
        steps: run.last.step ?? 0,
        finalLoss: run.last.final_loss ?? null,
        ...(seed === undefined ? {} : { seed }),
        ...(lora.workers > 1 ? { workers: run.team?.size ?? 1 } : {}),
      };
      await putJson(deps.store, manifestKey, { ...result, files });
      await removeStoredCheckpoints(deps, root, null);
      if (lora.workers > 1) await deps.store.delete(meetingKey);
      await ended('trained');
      return result;
    });
  };
}

/** How often a worker waiting to join a training looks for the leader's meeting in the store. */
const MEETING_POLL_MS = 500;

/**
 * One more GPU worker for a LoRA that `lora.workers` workers train together: it fetches the dataset,
 * then waits for the leading `trainLora`'s meeting (its trainer's address, in the store) and runs
 * its own trainer as a member of the leader's team, on its share of every batch; the leader alone
 * writes checkpoints and the LoRA. When a leader's trainer dies, or makes no step for
 * `lora.stallSeconds` (its host gone silent: this trainer is then stopped as hung), this waits
 * for the next meeting, which the leader's retry holds. It ends when its trainer is done, when
 * the leader began without it, or when no new meeting came for `lora.workersWaitSeconds`: a
 * worker that arrives late costs the training time, never the LoRA (the team's result is a
 * single trainer's).
 */
export function createJoinTraining(deps: ActivityDependencies) {
  return async function joinTraining({ root: roundFolder, inputKey, dataset: datasetPrefix, seed }: TrainRequest): Promise<TrainingMemberResult> {
    const input = await roundInput(deps, inputKey);
    const root = trainingRoot(roundFolder, seed ?? null);
    const lora = seed === undefined ? input.lora : { ...input.lora, seed };
    const alone: TrainingMemberResult = { rank: null, workers: null };
    const trained = async () => (await findJson<TrainResult>(deps.store, artifactKeys.trainManifest(root))) !== null;
    if (await trained()) return alone;

    return withProgress({ stage: 'train' }, async (progress) => {
      const { log, cancellationSignal } = progress.context;
      const work = join(deps.workDir, ...root.split('/'), 'train-member');
      const dataset = join(work, 'dataset');
      const output = join(work, 'output');
      const logFile = join(work, TRAINER_LOG);
      await mkdir(output, { recursive: true });
      await stopOrphanedTrainer(output, deps.trainer.stopGraceMs);
      await download(deps, datasetPrefix, dataset);

      let tried: string | null = null;
      let waitingSince = performance.now();
      for (;;) {
        progress.checkCancelled();
        const meeting = await findJson<TrainerMeeting>(deps.store, artifactKeys.trainerMeeting(root));
        if (meeting === null || meeting.id === tried) {
          if ((await trained()) || performance.now() - waitingSince > lora.workersWaitSeconds * 1000) return alone;
          await progress.context.sleep(MEETING_POLL_MS);
          continue;
        }
        tried = meeting.id;
        // A member keeps nothing of an earlier meeting: the leader sends it the checkpoint it resumes from.
        await rm(output, { recursive: true, force: true });
        await mkdir(output, { recursive: true });
        await rm(logFile, { force: true });
        const args = [
          ...trainerArguments(lora, { generator: input.generator.base, dataset, output }, deps.device, deps.threads),
          ...teamArguments({ join: meeting.address }, lora.workersWaitSeconds),
        ];
        const run = await runTrainer(deps, args, output, logFile, progress, { stallSeconds: lora.stallSeconds, member: true });
        if (run.code === 0) return run.team === null ? alone : { rank: run.team.rank, workers: run.team.rank === null ? null : run.team.size };
        if (cancellationSignal.aborted) throw new CancelledFailure(`trainer stopped (exit ${run.code}) because the activity was cancelled`);
        const said =
          run.stalled === null
            ? (run.failure?.message ?? run.stderr.trim().split('\n').slice(-3).join(' | '))
            : `the team made no step for ${lora.stallSeconds} s after step ${run.stalled.step} (lora.stallSeconds), so the trainer was stopped as hung: its leader's host gone from the network, or its GPU stopped answering`;
        if (refused(run)) throw badData('BadTrainingInput', said || 'the trainer refused its input');
        log.warn(`trainer could not train with the leader at ${meeting.address} (exit ${run.code}): ${said}; waiting for its next meeting`);
        waitingSince = performance.now();
      }
    });
  };
}

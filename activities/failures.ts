/**
 * The one place errors become Temporal failures. Each bad-data or bad-model error class of the
 * runtime, the store and the configuration maps to a non-retryable failure type (see
 * contract/failures.ts); anything else stays retryable, since another attempt, perhaps on another
 * worker, may succeed.
 */
import { ApplicationFailure } from '@temporalio/common';

import type { FailureType } from '../contract/failures.js';
import { JudgeConfigError } from '../models/judge/config.js';
import { ImageDecodeError, ModelInputError, ModelInterfaceError, ModelLayoutError, SchedulerConfigError, UnknownClassError } from '../models/errors.js';
import { ArtifactKeyError, StoreAccessError } from '../store/store.js';

type ErrorClass = abstract new (...args: never[]) => Error;

/** Error classes that no retry can fix, each with its failure type. */
export const BAD_DATA_ERRORS: readonly (readonly [ErrorClass, FailureType])[] = [
  [ModelLayoutError, 'BadModel'],
  [ModelInterfaceError, 'BadModel'],
  [SchedulerConfigError, 'BadModel'],
  [ModelInputError, 'InvalidInput'],
  [JudgeConfigError, 'InvalidInput'],
  [UnknownClassError, 'InvalidInput'],
  [ArtifactKeyError, 'InvalidInput'],
  [ImageDecodeError, 'BadArtifact'],
  [StoreAccessError, 'StoreAccessDenied'],
];

/** Failures stay small: a message is for people and lands in the workflow history. */
const MAX_MESSAGE = 2000;

/** A non-retryable failure of the given type. */
export function badData(type: FailureType, message: string, cause?: unknown): ApplicationFailure {
  const bounded = message.length > MAX_MESSAGE ? `${message.slice(0, MAX_MESSAGE - 20)}... (message cut)` : message;
  return ApplicationFailure.create({ type, message: bounded, nonRetryable: true, cause: cause instanceof Error ? cause : undefined });
}

/** The failure an error becomes: bad data fails at once, everything else is left to retry. */
export function asActivityFailure(error: unknown): unknown {
  const match = BAD_DATA_ERRORS.find(([errorClass]) => error instanceof errorClass);
  return match === undefined ? error : badData(match[1], (error as Error).message, error);
}

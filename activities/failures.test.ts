import { ApplicationFailure } from '@temporalio/common';
import { describe, expect, it } from 'vitest';

import { NON_RETRYABLE_FAILURES } from '../contract/failures.js';
import * as modelErrors from '../models/errors.js';
import { JudgeConfigError } from '../models/judge/config.js';
import { ArtifactKeyError, ArtifactNotFoundError, StoreAccessError, StoreUnavailableError } from '../store/store.js';
import { asActivityFailure, BAD_DATA_ERRORS, badData } from './failures.js';

/**
 * Errors that activities may meet and that another attempt can fix, each with why. Every other
 * error class of the layers below the activities must be in BAD_DATA_ERRORS.
 */
const TRANSIENT: readonly (readonly [abstract new (...args: never[]) => Error, string])[] = [
  [modelErrors.ExecutionProviderError, 'a worker without the GPU provider; the retry may land on one that has it'],
  [ArtifactNotFoundError, 'an object listed a moment ago, on a store that is eventually consistent'],
  [StoreUnavailableError, 'a store that is down or overloaded comes back'],
];

describe('the failure vocabulary', () => {
  it('classifies every error class of the runtime, the judge config and the store', () => {
    const classes = [...Object.values(modelErrors), JudgeConfigError, ArtifactKeyError, ArtifactNotFoundError, StoreUnavailableError, StoreAccessError].filter(
      (c) => c !== modelErrors.ModelError,
    );
    const classified = [...BAD_DATA_ERRORS.map(([c]) => c), ...TRANSIENT.map(([c]) => c)];
    for (const errorClass of classes) expect(classified, errorClass.name).toContain(errorClass);
  });

  it('maps bad data to its non-retryable type, keeping the message, and leaves other errors to retry', () => {
    const failure = asActivityFailure(new modelErrors.UnknownClassError('class "kite" is not a label of the detector in /m/detr'));
    expect(failure).toBeInstanceOf(ApplicationFailure);
    expect(failure).toMatchObject({ type: 'InvalidInput', nonRetryable: true, message: 'class "kite" is not a label of the detector in /m/detr' });
    for (const [errorClass, type] of BAD_DATA_ERRORS) expect(NON_RETRYABLE_FAILURES, errorClass.name).toContain(type);
    const transient = new Error('socket hang up');
    expect(asActivityFailure(transient)).toBe(transient);
    expect(asActivityFailure(new modelErrors.ExecutionProviderError('no CUDA provider'))).toBeInstanceOf(modelErrors.ExecutionProviderError);
  });

  it('keeps a failure small, whatever the message it is given', () => {
    const failure = badData('BadPrompts', 'x'.repeat(1_000_000));
    expect(failure.message.length).toBeLessThanOrEqual(2000);
    expect(failure.message).toMatch(/\(message cut\)$/);
  });
});

/**
 * The failures a retry cannot fix: bad data, bad models, bad keys. An activity that meets one
 * fails at once with its type and a message naming the field or file (never its contents);
 * workflows list these types as non-retryable. Everything else (I/O, a busy device, a worker
 * that died) is transient and retried. README's "Failure types" table is checked against this.
 */
export const FAILURE_TYPES = {
  InvalidInput: "the round's input, or a setting derived from it, breaks a rule; the message names the field",
  BadPrompts: 'a prompt file cannot be read or has a malformed line; the message names the file and line',
  BadModel: 'a model folder or file is missing, malformed or of a kind the runtime does not support; the message names the file',
  BadTrainingInput: 'the trainer refused its dataset or settings, or curation kept nothing to train on',
  BadArtifact: 'a stored artifact is not what its key promises (an image that does not decode, say)',
  MissingArtifact: "an earlier stage's artifact is not in the store",
  StoreAccessDenied: "the artifact store refused the worker's credentials (S3_ACCESS_KEY, S3_SECRET_KEY) or its bucket's policy refused them",
} as const;

export type FailureType = keyof typeof FAILURE_TYPES;

export const NON_RETRYABLE_FAILURES = Object.keys(FAILURE_TYPES) as readonly FailureType[];

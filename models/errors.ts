/** Errors of the model runtime. Each names the file or field at fault and what was expected. */

export class ModelError extends Error {
  override name = 'ModelError';
}

/** A model folder lacks a file, or a file is not what the layout expects. */
export class ModelLayoutError extends ModelError {
  override name = 'ModelLayoutError';
}

/** A scheduler_config.json field is missing, of the wrong type, or asks for something unsupported. */
export class SchedulerConfigError extends ModelError {
  override name = 'SchedulerConfigError';
}

/** A graph's inputs or outputs are not the ones the runtime feeds or reads. */
export class ModelInterfaceError extends ModelError {
  override name = 'ModelInterfaceError';
}

/** A caller's argument is out of range or malformed (empty prompt, bad size, ...), to the sampler or the judge alike. */
export class ModelInputError extends ModelError {
  override name = 'ModelInputError';
}

/** A class the detector cannot be asked about: not among a closed-vocabulary detector's labels. */
export class UnknownClassError extends ModelError {
  override name = 'UnknownClassError';
}

/** Bytes that are not a decodable image. The message names the image and its byte count, never the bytes. */
export class ImageDecodeError extends ModelError {
  override name = 'ImageDecodeError';
}

/** The requested execution provider cannot run here. */
export class ExecutionProviderError extends ModelError {
  override name = 'ExecutionProviderError';
}

/**
 * Device selection for transformers.js model loading: the project's device names (see
 * ../onnx.ts) become transformers.js' `cuda` device with the CUDA provider pinned to GPU N.
 */
import { ExecutionProviderError, ModelError, ModelLayoutError } from '../errors.js';
import { parseDevice, type Device } from '../onnx.js';

export interface LoadOptions {
  readonly device: 'cpu' | 'cuda';
  readonly dtype: 'fp32';
  readonly local_files_only: boolean;
  readonly session_options?: {
    readonly executionProviders?: ReadonlyArray<{ readonly name: 'cuda'; readonly deviceId: number }>;
    readonly intraOpNumThreads?: number;
  };
}

/** `threads`: intra-op threads per graph on the CPU (onnxruntime's choice, every core, when null). */
export function loadOptions(device: Device, allowRemoteModels: boolean, threads: number | null = null): LoadOptions {
  // Per-call `local_files_only` rather than the global `env.allowRemoteModels`, so one judge's
  // opt-in to downloads does not change what other models in the same process may do.
  const common = { dtype: 'fp32', local_files_only: !allowRemoteModels } as const;
  const provider = parseDevice(device);
  if (provider.name === 'cpu') return { device: 'cpu', ...common, ...(threads === null ? {} : { session_options: { intraOpNumThreads: threads } }) };
  return { device: 'cuda', ...common, session_options: { executionProviders: [{ name: 'cuda', deviceId: provider.deviceId }] } };
}

/**
 * Runs a model load. The runtime's own errors (a bad folder, say) pass through as they are. On
 * the CPU, anything else a local folder's load throws (a truncated or foreign ONNX file) is a bad
 * model, which no retry fixes; on a CUDA device it is reported with how to get CUDA support.
 */
export async function onDevice<T>(device: Device, what: string, load: () => Promise<T>): Promise<T> {
  try {
    return await load();
  } catch (error) {
    if (error instanceof ModelError) throw error;
    const reason = error instanceof Error ? error.message : String(error);
    if (parseDevice(device).name === 'cpu') throw new ModelLayoutError(`${what}: cannot be loaded (${reason.slice(0, 300)})`, { cause: error });
    throw new ExecutionProviderError(
      `${what}: could not start on ${device} (${reason}). onnxruntime-node ships without its CUDA provider; ` +
        'reinstall it with ONNXRUNTIME_NODE_INSTALL=cuda12 npm ci (CUDA 12 and cuDNN 9 must be installed), or use device "cpu".',
      { cause: error },
    );
  }
}

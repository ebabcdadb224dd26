import * as ort from 'onnxruntime-node';

import { ExecutionProviderError, ModelInterfaceError, ModelLayoutError } from './errors.js';
import { fromHalf, toHalf } from './float16.js';

/** Where a graph runs: `cpu`, or `cuda:N` for GPU N (`cuda` means `cuda:0`). */
export type Device = 'cpu' | `cuda:${number}` | 'cuda';

export type ExecutionProvider = { readonly name: 'cpu' } | { readonly name: 'cuda'; readonly deviceId: number };

export function parseDevice(device: string): ExecutionProvider {
  if (device === 'cpu') return { name: 'cpu' };
  const match = /^cuda(?::(\d+))?$/.exec(device);
  if (!match) throw new ExecutionProviderError(`device must be "cpu", "cuda" or "cuda:N", got ${JSON.stringify(device)}`);
  return { name: 'cuda', deviceId: Number(match[1] ?? 0) };
}

const CUDA_INSTALL_HINT =
  'The CUDA execution provider is not installed: onnxruntime-node ships it separately. ' +
  'Reinstall with `ONNXRUNTIME_NODE_INSTALL=cuda12 npm ci` (CUDA 12 and cuDNN 9 must be on the library path), or use device "cpu".';

/** Tensors as the runtime holds them: float32 or int32 data, row-major, with dimensions. */
export interface HostTensor {
  readonly data: Float32Array | Int32Array;
  readonly dims: readonly number[];
}

export interface FloatTensor {
  readonly data: Float32Array;
  readonly dims: readonly number[];
}

export type TensorMetadata = ort.InferenceSession.TensorValueMetadata;

function toOrtTensor(meta: TensorMetadata, value: HostTensor, model: string): ort.Tensor {
  const { dims } = value;
  if (meta.shape.length !== dims.length || meta.shape.some((d, i) => typeof d === 'number' && d >= 0 && d !== dims[i])) {
    throw new ModelInterfaceError(`${model}: input "${meta.name}" has shape [${meta.shape.join(', ')}], was given [${dims.join(', ')}]`);
  }
  switch (meta.type) {
    case 'float32':
      return new ort.Tensor('float32', value.data instanceof Float32Array ? value.data : Float32Array.from(value.data), dims);
    case 'float16':
      return new ort.Tensor('float16', toHalf(value.data), dims);
    case 'int64':
      return new ort.Tensor(
        'int64',
        BigInt64Array.from(value.data, (x) => BigInt(Math.round(x))),
        dims,
      );
    case 'int32':
      return new ort.Tensor('int32', value.data instanceof Int32Array ? value.data : Int32Array.from(value.data, Math.round), dims);
    default:
      throw new ModelInterfaceError(`${model}: input "${meta.name}" is ${meta.type}; float32, float16, int64 or int32 expected`);
  }
}

function fromOrtTensor(tensor: ort.Tensor, name: string, model: string): FloatTensor {
  const dims = tensor.dims;
  if (tensor.type === 'float32') return { data: tensor.data as Float32Array, dims };
  if (tensor.type === 'float16') return { data: fromHalf(tensor.data as Uint16Array), dims };
  throw new ModelInterfaceError(`${model}: output "${name}" is ${tensor.type}; float32 or float16 expected`);
}

/**
 * One ONNX graph in a session. Inputs are converted to whatever type each graph input
 * declares, so int32/int64 token ids and fp32/fp16 graphs all take the same host tensors.
 */
export class OnnxModel {
  private constructor(
    readonly path: string,
    private readonly session: ort.InferenceSession,
    readonly inputs: ReadonlyMap<string, TensorMetadata>,
    readonly outputs: ReadonlyMap<string, TensorMetadata>,
  ) {}

  static async load(path: string, provider: ExecutionProvider, threads?: number): Promise<OnnxModel> {
    const session = await createSession(path, provider, threads);
    const tensors = (list: readonly ort.InferenceSession.ValueMetadata[], kind: string) =>
      new Map(
        list.map((meta) => {
          if (!meta.isTensor) throw new ModelInterfaceError(`${path}: ${kind} "${meta.name}" is not a tensor`);
          return [meta.name, meta] as const;
        }),
      );
    return new OnnxModel(path, session, tensors(session.inputMetadata, 'input'), tensors(session.outputMetadata, 'output'));
  }

  /** The metadata of input `name`, or an error naming what the graph has instead. */
  input(name: string): TensorMetadata {
    return lookup(this.inputs, name, this.path, 'input');
  }

  /** Checks the graph has `name` among its outputs (before any run, so a wrong file fails at load). */
  requireOutput(name: string): TensorMetadata {
    return lookup(this.outputs, name, this.path, 'output');
  }

  async run(feeds: Readonly<Record<string, HostTensor>>, outputName: string): Promise<FloatTensor> {
    const missing = [...this.inputs.keys()].filter((name) => !(name in feeds));
    if (missing.length > 0) {
      throw new ModelInterfaceError(
        `${this.path}: graph inputs ${missing.map((m) => `"${m}"`).join(', ')} not fed; the runtime feeds ${Object.keys(feeds).join(', ')}`,
      );
    }
    const ortFeeds: Record<string, ort.Tensor> = {};
    for (const [name, meta] of this.inputs) ortFeeds[name] = toOrtTensor(meta, feeds[name], this.path);
    this.requireOutput(outputName);
    const results = await this.session.run(ortFeeds, [outputName]);
    return fromOrtTensor(results[outputName], outputName, this.path);
  }

  async release(): Promise<void> {
    await this.session.release();
  }
}

function lookup(map: ReadonlyMap<string, TensorMetadata>, name: string, path: string, kind: string): TensorMetadata {
  const meta = map.get(name);
  if (!meta) {
    throw new ModelInterfaceError(`${path}: no ${kind} "${name}"; the graph's ${kind}s are ${[...map.keys()].join(', ')}`);
  }
  return meta;
}

/** `threads`: intra-op threads (onnxruntime's default, all cores, when undefined). */
async function createSession(path: string, provider: ExecutionProvider, threads?: number): Promise<ort.InferenceSession> {
  if (provider.name === 'cuda' && !ort.listSupportedBackends().some((b) => b.name === 'cuda')) {
    throw new ExecutionProviderError(`this onnxruntime-node build has no CUDA backend. ${CUDA_INSTALL_HINT}`);
  }
  const executionProvider: ort.InferenceSession.ExecutionProviderConfig = provider.name === 'cpu' ? 'cpu' : { name: 'cuda', deviceId: provider.deviceId };
  try {
    return await ort.InferenceSession.create(path, {
      logSeverityLevel: 3,
      executionProviders: [executionProvider],
      ...(threads === undefined ? {} : { intraOpNumThreads: threads }),
    });
  } catch (error) {
    const message = (error as Error).message;
    if (provider.name === 'cuda' && /Failed to load shared library|providers_cuda|libcudart|libcudnn|libcublas/i.test(message)) {
      throw new ExecutionProviderError(`${path}: cannot start CUDA on device ${provider.deviceId}. ${CUDA_INSTALL_HINT} (${message})`);
    }
    throw new ModelLayoutError(`${path}: onnxruntime cannot load it as an ONNX model (${message})`);
  }
}

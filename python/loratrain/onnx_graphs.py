"""The ONNX graphs of a diffusers Stable Diffusion folder: for each part, what its
graph takes and returns (`ExportSpec`), its export by TorchScript tracing, and the
check of the written file against PyTorch in onnxruntime. `export_generator` writes
them into the folder; `export_onnx` is the command that runs it, and its docstring
describes the layout for the sampler's side."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

PARTS = ("text_encoder", "unet", "vae_decoder", "vae_encoder")
DEFAULT_PARTS = ("text_encoder", "unet", "vae_decoder")
OPSET = 17
EXTERNAL_DATA_THRESHOLD = 1 << 30
EXTERNAL_DATA_NAME = "model.onnx_data"
CHECK_TOLERANCE = {torch.float32: 1e-3, torch.float16: 5e-2}  # relative to max(1, |output|)


class ExportError(Exception):
    """An exported graph that does not load or does not match PyTorch."""


@dataclass
class ExportSpec:
    """One graph: a module whose forward takes `inputs` positionally, and for each
    input and output the axes that vary between calls."""

    module: torch.nn.Module
    inputs: dict[str, torch.Tensor]
    outputs: Sequence[str]
    dynamic_axes: dict[str, dict[int, str]]
    check_inputs: dict[str, torch.Tensor]


@dataclass
class ExportResult:
    part: str
    path: Path
    # The graph's weights and compute, `fp32` or `fp16`; its inputs and outputs are float32 either way.
    precision: str
    external_data: bool
    max_abs_diff: dict[str, float]
    seconds: float

    def as_json(self) -> dict:
        return {
            "part": self.part,
            "path": str(self.path),
            "precision": self.precision,
            "external_data": self.external_data,
            "max_abs_diff": self.max_abs_diff,
            "seconds": round(self.seconds, 2),
        }


class _TextEncoder(torch.nn.Module):
    def __init__(self, text_encoder: torch.nn.Module):
        super().__init__()
        self.text_encoder = text_encoder

    def forward(self, input_ids: torch.Tensor):
        out = self.text_encoder(input_ids=input_ids)
        return out.last_hidden_state, out.pooler_output


class _UNet(torch.nn.Module):
    def __init__(self, unet: torch.nn.Module):
        super().__init__()
        self.unet = unet

    def forward(self, sample: torch.Tensor, timestep: torch.Tensor, encoder_hidden_states: torch.Tensor):
        return self.unet(sample, timestep, encoder_hidden_states, return_dict=False)[0]


class _VaeDecoder(torch.nn.Module):
    def __init__(self, vae: torch.nn.Module):
        super().__init__()
        self.vae = vae

    def forward(self, latent_sample: torch.Tensor):
        return self.vae.decode(latent_sample, return_dict=False)[0]


class _VaeEncoder(torch.nn.Module):
    def __init__(self, vae: torch.nn.Module):
        super().__init__()
        self.vae = vae

    def forward(self, sample: torch.Tensor):
        # The posterior's mean is the first half of the moments; slicing by the
        # configured channel count (not chunk) keeps that dimension static in the graph.
        moments = self.vae.encoder(sample)
        if self.vae.quant_conv is not None:
            moments = self.vae.quant_conv(moments)
        return moments[:, : self.vae.config.latent_channels]


def _attention_in_float32(module: torch.nn.Module) -> None:
    """Makes every diffusers attention block in `module` compute its scores (query times
    key) and their softmax in float32, the probabilities going back to float16 before
    they weigh the values. In float16 those scores overflow in SD 2.x's UNet, which is why
    its config sets `upcast_attention`; an overflow is NaN in the graph and a black image.
    The default processor, PyTorch's fused attention, ignores the upcast flags and traces
    to a float16 Softmax; diffusers' plain `AttnProcessor` honours them."""
    from diffusers.models.attention_processor import Attention, AttnProcessor

    for block in module.modules():
        if isinstance(block, Attention):
            block.upcast_attention = True
            block.upcast_softmax = True
            block.set_processor(AttnProcessor())


class _Float16(torch.nn.Module):
    """A graph wrapper turned half-precision inside, float32 at its edges and in attention
    (see `_attention_in_float32`). `timestep` stays float32: diffusers computes its
    sinusoidal embedding in float32."""

    def __init__(self, inner: torch.nn.Module, names: Sequence[str]):
        super().__init__()
        _attention_in_float32(inner)
        self.inner = inner.half()
        self.names = list(names)

    def forward(self, *inputs: torch.Tensor):
        cast = [x.half() if x.is_floating_point() and name != "timestep" else x for name, x in zip(self.names, inputs)]
        outputs = self.inner(*cast)
        return tuple(y.float() for y in outputs) if isinstance(outputs, tuple) else outputs.float()


def half_precision(spec: ExportSpec) -> ExportSpec:
    spec.module = _Float16(spec.module, list(spec.inputs))
    return spec


def _random(shape: Sequence[int], device: torch.device, generator: torch.Generator) -> torch.Tensor:
    return torch.randn(tuple(shape), generator=generator).to(device)


def _check_size(size: int, multiple: int) -> int:
    """A spatial size unlike the traced one, so the check catches baked-in shapes."""
    return max(multiple, (size // 2) // multiple * multiple)


def _device(module: torch.nn.Module) -> torch.device:
    return next(module.parameters()).device


def text_encoder_spec(text_encoder: torch.nn.Module, seed: int = 0) -> ExportSpec:
    device = _device(text_encoder)
    config = text_encoder.config
    generator = torch.Generator().manual_seed(seed)
    length = config.max_position_embeddings

    def ids(batch: int) -> torch.Tensor:
        # The pooler reads the end-of-text position, so each row needs one.
        rows = torch.randint(0, config.vocab_size, (batch, length), generator=generator, dtype=torch.int32)
        eos = config.eos_token_id if config.eos_token_id is not None else config.vocab_size - 1
        rows[:, -1] = eos
        return rows.to(device)

    return ExportSpec(
        module=_TextEncoder(text_encoder),
        inputs={"input_ids": ids(2)},
        outputs=("last_hidden_state", "pooler_output"),
        dynamic_axes={
            "input_ids": {0: "batch", 1: "sequence"},
            "last_hidden_state": {0: "batch", 1: "sequence"},
            "pooler_output": {0: "batch"},
        },
        check_inputs={"input_ids": ids(1)},
    )


def unet_spec(unet: torch.nn.Module, sequence_length: int, seed: int = 0) -> ExportSpec:
    device = _device(unet)
    config = unet.config
    generator = torch.Generator().manual_seed(seed)
    multiple = 2 ** (len(config.block_out_channels) - 1)

    def inputs(batch: int, size: int) -> dict[str, torch.Tensor]:
        return {
            "sample": _random((batch, config.in_channels, size, size), device, generator),
            "timestep": torch.linspace(999, 1, batch).to(device),
            "encoder_hidden_states": _random((batch, sequence_length, config.cross_attention_dim), device, generator),
        }

    return ExportSpec(
        module=_UNet(unet),
        inputs=inputs(2, config.sample_size),
        outputs=("out_sample",),
        dynamic_axes={
            "sample": {0: "batch", 2: "height", 3: "width"},
            "timestep": {0: "batch"},
            "encoder_hidden_states": {0: "batch", 1: "sequence"},
            "out_sample": {0: "batch", 2: "height", 3: "width"},
        },
        check_inputs=inputs(1, _check_size(config.sample_size, multiple)),
    )


def _vae_scale_factor(vae: torch.nn.Module) -> int:
    return 2 ** (len(vae.config.block_out_channels) - 1)


def vae_decoder_spec(vae: torch.nn.Module, seed: int = 0) -> ExportSpec:
    device = _device(vae)
    config = vae.config
    generator = torch.Generator().manual_seed(seed)
    latent_size = config.sample_size // _vae_scale_factor(vae)

    def inputs(batch: int, size: int) -> dict[str, torch.Tensor]:
        return {"latent_sample": _random((batch, config.latent_channels, size, size), device, generator)}

    return ExportSpec(
        module=_VaeDecoder(vae),
        inputs=inputs(2, latent_size),
        outputs=("sample",),
        dynamic_axes={
            "latent_sample": {0: "batch", 2: "height", 3: "width"},
            "sample": {0: "batch", 2: "image_height", 3: "image_width"},
        },
        check_inputs=inputs(1, _check_size(latent_size, 1)),
    )


def vae_encoder_spec(vae: torch.nn.Module, seed: int = 0) -> ExportSpec:
    device = _device(vae)
    config = vae.config
    generator = torch.Generator().manual_seed(seed)
    factor = _vae_scale_factor(vae)

    def inputs(batch: int, size: int) -> dict[str, torch.Tensor]:
        return {"sample": _random((batch, config.in_channels, size, size), device, generator).clamp(-1, 1)}

    return ExportSpec(
        module=_VaeEncoder(vae),
        inputs=inputs(2, config.sample_size),
        outputs=("latent_sample",),
        dynamic_axes={
            "sample": {0: "batch", 2: "image_height", 3: "image_width"},
            "latent_sample": {0: "batch", 2: "height", 3: "width"},
        },
        check_inputs=inputs(1, _check_size(config.sample_size, factor)),
    )


def _trace(spec: ExportSpec, path: Path) -> None:
    with warnings.catch_warnings():
        # Tracer warnings name Python branches on shapes; the check after export is
        # what tells whether the graph generalises.
        warnings.simplefilter("ignore")
        with torch.no_grad():
            torch.onnx.export(
                spec.module,
                tuple(spec.inputs.values()),
                str(path),
                input_names=list(spec.inputs),
                output_names=list(spec.outputs),
                dynamic_axes=spec.dynamic_axes,
                opset_version=OPSET,
                do_constant_folding=True,
                dynamo=False,
            )


def _write_onnx(spec: ExportSpec, path: Path, scratch: Path, external_data: bool | None) -> bool:
    """Trace into `scratch`, then write `path` (+ EXTERNAL_DATA_NAME beside it when the
    graph is large or `external_data` is True). Returns whether external data was used.

    The TorchScript exporter, given a model over 2 GB, scatters its weights over one
    file per tensor; rewriting through `onnx` collects them into one data file."""
    import onnx

    traced = scratch / "traced" / "model.onnx"
    traced.parent.mkdir()
    _trace(spec, traced)
    size = sum(f.stat().st_size for f in traced.parent.iterdir())
    use_external = size > EXTERNAL_DATA_THRESHOLD if external_data is None else external_data or size >= 1 << 31
    if use_external:
        onnx.save_model(
            onnx.load(str(traced)),
            str(path),
            save_as_external_data=True,
            all_tensors_to_one_file=True,
            location=EXTERNAL_DATA_NAME,
            size_threshold=1024,
        )
    else:
        shutil.move(str(traced), path)
    return use_external


def check_onnx(spec: ExportSpec, path: Path) -> dict[str, float]:
    """Run the file in onnxruntime (CUDA provider for fp16 graphs when there is one)
    and return each output's max abs difference from PyTorch; raise ExportError when
    one exceeds the tolerance relative to the output's magnitude."""
    import onnxruntime as ort

    dtype = next(spec.module.parameters()).dtype
    options = ort.SessionOptions()
    options.intra_op_num_threads = torch.get_num_threads()
    options.log_severity_level = 3
    providers = ["CPUExecutionProvider"]
    if dtype == torch.float16 and "CUDAExecutionProvider" in ort.get_available_providers():
        providers.insert(0, "CUDAExecutionProvider")
    try:
        session = ort.InferenceSession(str(path), options, providers=providers)
        got = session.run(list(spec.outputs), {k: v.cpu().numpy() for k, v in spec.check_inputs.items()})
    except Exception as error:  # onnxruntime raises its own unrelated classes
        raise ExportError(f"{path.name}: onnxruntime cannot run it: {error}") from error
    with torch.no_grad():
        want = spec.module(*spec.check_inputs.values())
    if isinstance(want, torch.Tensor):
        want = (want,)
    diffs: dict[str, float] = {}
    for name, ours, theirs in zip(spec.outputs, got, want):
        reference = theirs.float().cpu()
        if tuple(ours.shape) != tuple(reference.shape):
            raise ExportError(f"output {name} has shape {tuple(ours.shape)}, PyTorch gives {tuple(reference.shape)}")
        diff = float((torch.from_numpy(ours).float() - reference).abs().max())
        diffs[name] = diff
        tolerance = CHECK_TOLERANCE[dtype] * max(1.0, float(reference.abs().max()))
        if not diff <= tolerance:
            raise ExportError(f"output {name} differs from PyTorch by {diff:.3g} (tolerance {tolerance:.3g})")
    return diffs


def export_spec(part: str, spec: ExportSpec, path: Path, *, external_data: bool | None = None, check: bool = True) -> ExportResult:
    """Export one graph to `path` and, unless `check` is False, compare it with the
    module in onnxruntime. The files are staged beside `path` and renamed into place
    only when complete and checked, so `path` never holds a broken model."""
    start = time.perf_counter()
    spec.module.eval()
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=path.parent, prefix=".export-") as scratch:
        staged = Path(scratch, "staged", path.name)
        staged.parent.mkdir()
        external = _write_onnx(spec, staged, Path(scratch), external_data)
        try:
            diffs = check_onnx(spec, staged) if check else {}
        except ExportError as error:
            raise ExportError(f"{path}: {error}") from error
        data = path.parent / EXTERNAL_DATA_NAME
        if external:
            os.replace(staged.parent / EXTERNAL_DATA_NAME, data)
        elif data.exists():
            data.unlink()
        os.replace(staged, path)
    precision = "fp16" if next(spec.module.parameters()).dtype == torch.float16 else "fp32"
    return ExportResult(part, path, precision, external, diffs, time.perf_counter() - start)


def export_unet(unet: torch.nn.Module, out_dir: Path, sequence_length: int, *, fp16: bool = False, **kwargs) -> ExportResult:
    """Export a float32 UNet (e.g. one with a LoRA fused in) to `out_dir/model.onnx`, as a
    float16 graph with `fp16` (see `half_precision`), with its config.json beside it."""
    out_dir.mkdir(parents=True, exist_ok=True)
    unet.save_config(str(out_dir))
    spec = unet_spec(unet, sequence_length)
    return export_spec("unet", half_precision(spec) if fp16 else spec, out_dir / "model.onnx", **kwargs)


def exact_cuda_float32() -> None:
    """Turns off TF32 on CUDA: its convolutions and matmuls would differ from the graph by
    more than the check after export allows."""
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_tf32 = False


def sequence_length(generator: Path) -> int:
    config = json.loads((generator / "text_encoder" / "config.json").read_text())
    return int(config["max_position_embeddings"])


def export_generator(
    generator: Path,
    parts: Sequence[str] = DEFAULT_PARTS,
    *,
    fp16: bool = False,
    device: str = "cpu",
    external_data: bool | None = None,
    check: bool = True,
    on_result: Callable[[ExportResult], None] | None = None,
) -> list[ExportResult]:
    """Write the ONNX files of `parts` into the diffusers folder `generator`.
    Each part is loaded, exported and released in turn to bound memory."""
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextModel

    if device.startswith("cuda"):
        exact_cuda_float32()
    results = []
    for part in parts:
        if part == "text_encoder":
            model = CLIPTextModel.from_pretrained(str(generator / "text_encoder"), torch_dtype=torch.float32)
            spec = text_encoder_spec(model.to(device))
        elif part == "unet":
            model = UNet2DConditionModel.from_pretrained(str(generator / "unet"), torch_dtype=torch.float32)
            spec = unet_spec(model.to(device), sequence_length(generator))
        else:
            model = AutoencoderKL.from_pretrained(str(generator / "vae"), torch_dtype=torch.float32)
            model.to(device)
            spec = vae_decoder_spec(model) if part == "vae_decoder" else vae_encoder_spec(model)
            (generator / part).mkdir(exist_ok=True)
            shutil.copyfile(generator / "vae" / "config.json", generator / part / "config.json")
        if fp16 and part != "text_encoder":
            spec = half_precision(spec)
        result = export_spec(part, spec, generator / part / "model.onnx", external_data=external_data, check=check)
        del model, spec
        results.append(result)
        if on_result:
            on_result(result)
    return results


def quiet_libraries() -> None:
    """Errors only, and no progress bars, from diffusers and transformers."""
    from diffusers.utils import logging as diffusers_logging
    from transformers.utils import logging as transformers_logging

    for library in (diffusers_logging, transformers_logging):
        library.set_verbosity_error()
        library.disable_progress_bar()

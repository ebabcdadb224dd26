"""LoRA fine-tuning of a Stable Diffusion UNet on an imagefolder dataset.

The recipe is that of diffusers' `train_text_to_image_lora.py`: peft LoRA (rank r,
alpha r, gaussian init) on the UNet's attention projections to_q/to_k/to_v/to_out.0;
VAE and text encoder frozen; AdamW (betas 0.9/0.999, weight decay 1e-2, eps 1e-8),
constant learning rate after an optional linear warmup (or, with --lr-scheduler
cosine, a cosine decay to zero over the remaining steps), gradient norm clipped to 1;
noise from a DDPMScheduler built from the generator's scheduler config, target
epsilon or v as its `prediction_type` says; MSE loss.

Two departures, both exact in distribution and chosen for speed and resumability:
- the frozen text encoder's output per caption and the VAE's latent distribution
  (mean, std) per image are computed once; each step draws latents from the cached
  distribution, as `latent_dist.sample()` would. Images are resized (shorter side)
  and centre-cropped, so their encodings do not change between epochs.
- every random draw of step k (flips, latent sampling, noise, timesteps) comes from
  a CPU generator seeded by (seed, k), and epoch e's order from (seed, e). A
  checkpoint's step number therefore fixes all RNG and data-order state, and a
  resumed run reproduces an uninterrupted one.

Protocol (the product runs this as a child process):
- stdout carries only JSON lines, each with `event` and `elapsed` (seconds since
  start): `start` (step, total, dataset_size, ...), `phase` (load, cache, train,
  save, export), `step` (step, total, loss, lr), `checkpoint` (step, path), `onnx`
  (path, max_abs_diff), `done` (final_loss, lora, unet_onnx), `stopped` (signal,
  step, checkpoint, exit_code), `error` (kind, message). Everything else, library
  output included, goes to stderr.
- exit codes: 0 done; 2 bad input (one line on stderr naming the file, line or
  flag); 143 stopped by SIGTERM (130 by SIGINT); 1 any other failure (an `error`
  event, traceback on stderr).
- with --stop-on-stdin-close, stdin reaching end of file counts as SIGTERM: a
  parent that holds a pipe to it and never writes makes the trainer stop when
  it dies, even by SIGKILL, instead of training on unwatched. A stdout nobody
  reads any more (broken pipe) stops it the same way.
- a stop takes effect after the current step: the trainer writes a checkpoint,
  emits `stopped` and exits. Stopped while encoding the dataset, it has nothing
  new to save (`checkpoint` is the one it resumed from, or null); during the
  final ONNX export, it lets the export finish.
- --output receives `pytorch_lora_weights.safetensors` (diffusers keys, loadable
  with `StableDiffusionPipeline.load_lora_weights`), `unet/model.onnx` +
  `unet/config.json` (the UNet with the LoRA fused: a tuned generator is the base
  folder with this unet/ in place of its own), `metrics.json`, and
  `checkpoints/step-NNNNNNNN/`: `pytorch_lora_weights.safetensors`, `optimizer.pt`
  (AdamW and fp16 grad-scaler state) and `state.json` (step, epoch, position in
  epoch, loss history, recipe). Checkpoints are written atomically; the newest
  --keep-checkpoints are kept. `--resume-from latest` resumes from the newest, or
  starts afresh when there is none, so a retried job can always pass it.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import shutil
import signal
import sys
import threading
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

import numpy as np

from .layout import missing_generator_file

if TYPE_CHECKING:
    # torch is imported where needed: bad input must fail before its slow import.
    import torch

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_BAD_INPUT = 2
STOP_EXIT_CODES = {signal.SIGTERM: 143, signal.SIGINT: 130}

LORA_TARGET_MODULES = ["to_k", "to_q", "to_v", "to_out.0"]
LORA_WEIGHTS = "pytorch_lora_weights.safetensors"
CHECKPOINTS = "checkpoints"
CHECKPOINT_PREFIX = "step-"
ENCODE_BATCH = 8
# Independent random streams derived from --seed: data order per epoch, draws per step.
ORDER_STREAM, STEP_STREAM = 0, 1


class BadInput(Exception):
    """Input the user must fix; the message names the file, line or flag."""


class Events:
    """JSON lines on the real stdout, each with `elapsed` seconds since the trainer
    started. File descriptor 1 itself is pointed at stderr, so anything a library
    prints (from Python or from C) lands there."""

    def __init__(self) -> None:
        self.started = time.perf_counter()
        sys.stdout.flush()
        self._out = os.fdopen(os.dup(1), "w", buffering=1)
        os.dup2(2, 1)
        sys.stdout = sys.stderr
        # Called when the reader of the events is gone (see `unwatched`).
        self.on_unwatched = lambda: None

    def elapsed(self) -> float:
        return time.perf_counter() - self.started

    def emit(self, event: str, **fields) -> None:
        try:
            self._out.write(json.dumps({"event": event, **fields, "elapsed": round(self.elapsed(), 3)}) + "\n")
        except BrokenPipeError:
            self.unwatched(stderr_too=False)

    def unwatched(self, stderr_too: bool) -> None:
        """Nobody reads the events any more (or, with `stderr_too`, any output: the
        parent is dead). They go to /dev/null from now on, so that writing them cannot
        fail the checkpoint on the way out, and `on_unwatched` asks for that stop."""
        null = os.open(os.devnull, os.O_WRONLY)
        try:
            for fd in (self._out.fileno(), *((1, 2) if stderr_too else ())):
                os.dup2(null, fd)
        finally:
            os.close(null)
        self.on_unwatched()


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):
        raise BadInput(message)


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog="python -m loratrain",
        description="LoRA fine-tuning of a Stable Diffusion UNet (recipe of diffusers' train_text_to_image_lora.py). "
        "Progress as JSON lines on stdout; exit 0 done, 2 bad input, 143 stopped by SIGTERM (130 SIGINT), 1 failure.",
        # A mistyped flag must fail, not silently set the flag it abbreviates (--max-step 3 was --max-steps 3).
        allow_abbrev=False,
    )
    p.add_argument("--generator", type=Path, required=True, metavar="DIR", help="diffusers Stable Diffusion folder (model_index.json, unet/, vae/, ...)")
    p.add_argument("--dataset", type=Path, required=True, metavar="DIR", help="imagefolder: images + metadata.jsonl lines with file_name and text")
    p.add_argument("--output", type=Path, required=True, metavar="DIR", help="folder for the LoRA weights, unet/model.onnx, metrics.json, checkpoints/")
    p.add_argument("--rank", type=int, default=4, metavar="R", help="LoRA rank, also its alpha (default: %(default)s)")
    p.add_argument("--learning-rate", "--lr", type=float, default=1e-4, metavar="LR", help="learning rate: the constant one, or the peak of --lr-scheduler cosine (default: %(default)s)")
    p.add_argument("--lr-warmup-steps", type=int, default=0, metavar="N", help="linear warmup steps (default: %(default)s)")
    p.add_argument(
        "--lr-scheduler",
        choices=LR_SCHEDULERS,
        default="constant",
        help="learning rate after the warmup: constant, or a cosine decay to zero at the last step (default: %(default)s)",
    )
    p.add_argument("--batch-size", type=int, default=16, metavar="N", help="images per step (default: %(default)s)")
    p.add_argument("--max-steps", type=int, default=None, metavar="N", help="optimizer steps; overrides --epochs")
    p.add_argument("--epochs", type=int, default=100, metavar="N", help="passes over the dataset when --max-steps is not given (default: %(default)s)")
    p.add_argument("--seed", type=int, default=0, metavar="N", help="fixes LoRA init, data order, noise and timesteps (default: %(default)s)")
    p.add_argument("--resolution", type=int, default=None, metavar="PX", help="training size in pixels (default: unet sample_size x VAE scale factor)")
    p.add_argument("--random-flip", action="store_true", help="flip images horizontally at random (off by default: the curated images are kept as judged)")
    p.add_argument("--noise-offset", type=float, default=0.0, metavar="X", help="noise offset (default: %(default)s)")
    p.add_argument("--snr-gamma", type=float, default=0.0, metavar="G", help="Min-SNR loss weighting with this gamma, 5 is usual (default: %(default)s, off)")
    p.add_argument(
        "--caption-dropout",
        type=float,
        default=0.0,
        metavar="P",
        help="train on the empty caption instead with probability P, so the unconditional branch that guidance subtracts moves with the conditional one (default: %(default)s)",
    )
    p.add_argument("--max-grad-norm", type=float, default=1.0, metavar="X", help="gradient norm clip (default: %(default)s)")
    p.add_argument("--checkpoint-every", type=int, default=0, metavar="K", help="write a checkpoint every K steps (0: only when stopped)")
    p.add_argument("--keep-checkpoints", type=int, default=2, metavar="N", help="newest checkpoints kept, older ones deleted (default: %(default)s)")
    p.add_argument("--resume-from", default=None, metavar="DIR|latest", help="a checkpoint folder, or 'latest': the newest in --output/checkpoints, if any (else start fresh)")
    p.add_argument("--mixed-precision", choices=("no", "fp16", "bf16"), default="no", help="frozen weights and forward pass in this dtype; LoRA weights stay fp32 (fp16 needs CUDA)")
    p.add_argument("--gradient-checkpointing", action="store_true", help="trade compute for UNet activation memory")
    p.add_argument("--device", default=None, metavar="DEVICE", help="torch device (default: cuda if available, else cpu)")
    p.add_argument("--threads", type=int, default=None, metavar="N", help="CPU threads for torch (default: torch's choice)")
    p.add_argument("--log-every", type=int, default=1, metavar="N", help="emit a step event every N steps (default: %(default)s)")
    p.add_argument("--skip-onnx", action="store_true", help="do not export unet/model.onnx")
    p.add_argument(
        "--stop-on-stdin-close",
        action="store_true",
        help="stop as on SIGTERM when stdin reaches end of file: a parent that keeps a pipe to it open stops the trainer by dying",
    )
    return p


def check_args(args: argparse.Namespace) -> None:
    positive = {
        "--rank": args.rank,
        "--batch-size": args.batch_size,
        "--log-every": args.log_every,
        "--keep-checkpoints": args.keep_checkpoints,
    }
    if args.max_steps is not None:
        positive["--max-steps"] = args.max_steps
    else:
        positive["--epochs"] = args.epochs
    if args.threads is not None:
        positive["--threads"] = args.threads
    if args.resolution is not None:
        positive["--resolution"] = args.resolution
    for flag, value in positive.items():
        if value < 1:
            raise BadInput(f"{flag}: must be at least 1, got {value}")
    for flag, value in {"--lr-warmup-steps": args.lr_warmup_steps, "--checkpoint-every": args.checkpoint_every}.items():
        if value < 0:
            raise BadInput(f"{flag}: must not be negative, got {value}")
    for flag, value in {"--learning-rate": args.learning_rate, "--max-grad-norm": args.max_grad_norm}.items():
        if not (math.isfinite(value) and value > 0):
            raise BadInput(f"{flag}: must be a positive number, got {value}")
    for flag, value in {"--noise-offset": args.noise_offset, "--snr-gamma": args.snr_gamma}.items():
        if not (math.isfinite(value) and value >= 0):
            raise BadInput(f"{flag}: must be a non-negative number, got {value}")
    if not (math.isfinite(args.caption_dropout) and 0 <= args.caption_dropout < 1):
        raise BadInput(f"--caption-dropout: must be a probability in [0, 1), got {args.caption_dropout}")


@dataclass(frozen=True)
class Example:
    image: Path
    text: str


def read_dataset(folder: Path) -> tuple[list[Example], str]:
    """Every example of an imagefolder dataset, each image decoded once to prove it
    readable, and a digest of (file_name, text) pairs for resume checks."""
    from PIL import Image

    if not folder.is_dir():
        raise BadInput(f"--dataset: {folder}: no such folder")
    metadata = folder / "metadata.jsonl"
    if not metadata.is_file():
        raise BadInput(f"{metadata}: not found (the dataset needs a metadata.jsonl with file_name and text)")
    try:
        lines = metadata.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as error:
        raise BadInput(f"{metadata}: not UTF-8 text ({error.reason} at byte {error.start})") from None
    examples: list[Example] = []
    digest = hashlib.sha256()
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        where = f"{metadata} line {number}"
        try:
            row = json.loads(line)
        except json.JSONDecodeError as error:
            raise BadInput(f"{where}: not valid JSON ({error.msg})") from None
        if not isinstance(row, dict):
            raise BadInput(f"{where}: not a JSON object")
        for field in ("file_name", "text"):
            if field not in row:
                raise BadInput(f"{where}: no \"{field}\" field")
        name, text = row["file_name"], row["text"]
        if not isinstance(name, str) or not name:
            raise BadInput(f"{where}: \"file_name\" must be a non-empty string")
        if not isinstance(text, str):
            raise BadInput(f"{where}: \"text\" must be a string")
        image = folder / name
        if not image.is_file():
            raise BadInput(f"{where}: file_name \"{name}\" points to no file ({image})")
        try:
            with Image.open(image) as decoded:
                decoded.load()
        except Exception as error:  # PIL raises many unrelated classes for broken files
            raise BadInput(f"{image}: cannot decode image ({type(error).__name__}: {error})") from None
        examples.append(Example(image, text))
        digest.update(json.dumps([name, text]).encode())
    if not examples:
        raise BadInput(f"{metadata}: no examples (empty dataset)")
    return examples, digest.hexdigest()


def load_image(path: Path, resolution: int) -> np.ndarray:
    """RGB, shorter side resized to `resolution` (bilinear), centre-cropped, in [-1, 1], CHW."""
    from PIL import Image

    with Image.open(path) as image:
        image = image.convert("RGB")
        w, h = image.size
        if min(w, h) != resolution:
            scale = resolution / min(w, h)
            image = image.resize((max(resolution, round(w * scale)), max(resolution, round(h * scale))), Image.BILINEAR)
            w, h = image.size
        left, top = (w - resolution) // 2, (h - resolution) // 2
        image = image.crop((left, top, left + resolution, top + resolution))
        pixels = np.asarray(image, dtype=np.float32) / 127.5 - 1.0
    return pixels.transpose(2, 0, 1)


def _seed_for(seed: int, stream: int, index: int) -> int:
    return int(np.random.SeedSequence([seed, stream, index]).generate_state(1, dtype=np.uint64)[0])


def batch_indices(step: int, dataset_size: int, batch_size: int, seed: int) -> list[int]:
    """The examples of step `step` (0-based): epochs are seeded permutations, cut
    into batches; the last batch of an epoch may be short, as with a DataLoader."""
    per_epoch = math.ceil(dataset_size / batch_size)
    epoch, position = divmod(step, per_epoch)
    order = np.random.default_rng(_seed_for(seed, ORDER_STREAM, epoch)).permutation(dataset_size)
    return order[position * batch_size : (position + 1) * batch_size].tolist()


LR_SCHEDULERS = ("constant", "cosine")


def learning_rate_at(step: int, base: float, warmup: int, schedule: str, total: int) -> float:
    """Learning rate of 0-based `step` of `total`: a linear warmup, then constant or
    a half cosine from `base` down towards zero."""
    if step < warmup:
        return base * (step + 1) / warmup
    if schedule == "cosine":
        return base * 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, total - warmup)))
    return base


def checkpoints_in(output: Path) -> list[Path]:
    """Complete checkpoints, oldest first."""
    found = [d for d in (output / CHECKPOINTS).glob(CHECKPOINT_PREFIX + "*") if (d / "state.json").is_file()]
    return sorted(found, key=lambda d: int(d.name[len(CHECKPOINT_PREFIX) :]))


def find_checkpoint(output: Path, resume_from: str | None) -> Path | None:
    if resume_from is None:
        return None
    if resume_from == "latest":
        found = checkpoints_in(output)
        return found[-1] if found else None
    path = Path(resume_from)
    if not (path / "state.json").is_file():
        raise BadInput(f"--resume-from: {path / 'state.json'}: not found")
    return path


class StopRequest:
    """Remembers a SIGTERM/SIGINT; the trainer acts on it between steps, and between
    batches while it encodes the dataset."""

    def __init__(self) -> None:
        self.signum: int | None = None
        for signum in STOP_EXIT_CODES:
            signal.signal(signum, self._handle)

    def _handle(self, signum, frame) -> None:
        self.signum = signum

    def request(self, signum: int = signal.SIGTERM) -> None:
        """A stop asked for without a signal, treated as that signal."""
        if self.signum is None:
            self.signum = signum

    def check(self) -> None:
        if self.signum is not None:
            raise Stopped()


def stop_when_stdin_closes(events: Events) -> None:
    """Watches stdin on a daemon thread: at end of file (the parent closed its end
    of the pipe, or died), all output is dropped and a stop requested."""

    def watch() -> None:
        try:
            while os.read(0, 4096):
                pass  # whatever the parent writes is not for us
        except OSError:
            pass
        events.unwatched(stderr_too=True)

    threading.Thread(target=watch, name="stdin-close-watch", daemon=True).start()


class Stopped(Exception):
    """A stop requested before training began: there is no new state to save."""


@dataclass
class Cache:
    """The frozen models' outputs per example: the VAE's latent distribution (and
    that of the mirror image when flipping) and the caption's text embedding."""

    mean: torch.Tensor
    std: torch.Tensor
    flipped_mean: torch.Tensor | None
    flipped_std: torch.Tensor | None
    text_embeddings: torch.Tensor
    text_index: torch.Tensor
    empty_text_index: int  # the empty caption's row, which --caption-dropout trains on


def build_cache(examples, generator: Path, resolution: int, random_flip: bool, device, events: Events, stop: StopRequest) -> Cache:
    import torch
    from diffusers import AutoencoderKL
    from transformers import CLIPTextModel, CLIPTokenizer

    tokenizer = CLIPTokenizer.from_pretrained(str(generator / "tokenizer"))
    text_encoder = CLIPTextModel.from_pretrained(str(generator / "text_encoder")).to(device).eval()
    captions = sorted({e.text for e in examples} | {""})
    embeddings = []
    with torch.no_grad():
        for start in range(0, len(captions), ENCODE_BATCH):
            stop.check()
            ids = tokenizer(
                captions[start : start + ENCODE_BATCH],
                padding="max_length",
                max_length=tokenizer.model_max_length,
                truncation=True,
                return_tensors="pt",
            ).input_ids
            embeddings.append(text_encoder(ids.to(device), return_dict=False)[0].float())
    del text_encoder
    position = {c: i for i, c in enumerate(captions)}
    text_index = torch.tensor([position[e.text] for e in examples], device=device)

    vae = AutoencoderKL.from_pretrained(str(generator / "vae")).to(device).eval()
    parts: dict[str, list] = {"mean": [], "std": [], "flipped_mean": [], "flipped_std": []}
    with torch.no_grad():
        for start in range(0, len(examples), ENCODE_BATCH):
            stop.check()
            pixels = torch.from_numpy(np.stack([load_image(e.image, resolution) for e in examples[start : start + ENCODE_BATCH]]))
            variants = [("", pixels)] + ([("flipped_", pixels.flip(-1))] if random_flip else [])
            for prefix, batch in variants:
                dist = vae.encode(batch.to(device), return_dict=False)[0]
                parts[prefix + "mean"].append(dist.mean.float())
                parts[prefix + "std"].append(dist.std.float())
            events.emit("phase", phase="cache", done=min(start + ENCODE_BATCH, len(examples)), total=len(examples))
    del vae
    if device.type == "cuda":
        torch.cuda.empty_cache()
    joined = {k: torch.cat(v) if v else None for k, v in parts.items()}
    return Cache(text_embeddings=torch.cat(embeddings), text_index=text_index, empty_text_index=position[""], **joined)


def write_checkpoint(output: Path, step: int, trainee: Trainee, state: dict, steps_per_epoch: int, keep: int) -> Path:
    """Write checkpoints/step-N atomically: a crash leaves either the old folder or
    the new one, never a partial one. The step number fixes the data order and all
    random draws still to come; epoch and position are recorded for readers."""
    import torch

    root = output / CHECKPOINTS
    root.mkdir(parents=True, exist_ok=True)
    for leftover in [*root.glob(".tmp-*"), *root.glob(".old-*")]:
        shutil.rmtree(leftover)
    final = root / f"{CHECKPOINT_PREFIX}{step:08d}"
    scratch = root / f".tmp-{final.name}"
    scratch.mkdir()
    save_lora(trainee.unet, scratch)
    torch.save(
        {"optimizer": trainee.optimizer.state_dict(), "scaler": trainee.scaler.state_dict() if trainee.scaler else None},
        scratch / "optimizer.pt",
    )
    position = {"step": step, "epoch": step // steps_per_epoch, "position_in_epoch": step % steps_per_epoch}
    (scratch / "state.json").write_text(json.dumps({**state, **position}, indent=1))
    for f in scratch.iterdir():
        with open(f, "rb") as handle:
            os.fsync(handle.fileno())
    if final.exists():
        replaced = root / f".old-{final.name}"
        os.replace(final, replaced)
        os.replace(scratch, final)
        shutil.rmtree(replaced)
    else:
        os.replace(scratch, final)
    for old in checkpoints_in(output)[:-keep]:
        shutil.rmtree(old)
    return final


def lora_state_dict(unet) -> dict:
    from diffusers.utils import convert_state_dict_to_diffusers
    from peft.utils import get_peft_model_state_dict

    return convert_state_dict_to_diffusers(get_peft_model_state_dict(unet))


def save_lora(unet, folder: Path) -> Path:
    from diffusers.loaders import StableDiffusionLoraLoaderMixin

    StableDiffusionLoraLoaderMixin.save_lora_weights(
        save_directory=str(folder), unet_lora_layers=lora_state_dict(unet), safe_serialization=True
    )
    return folder / LORA_WEIGHTS


def load_lora_into(unet, weights: Path) -> None:
    """Load diffusers-format LoRA weights into a UNet that already has the adapter."""
    from diffusers.utils import convert_unet_state_dict_to_peft
    from peft import set_peft_model_state_dict
    from safetensors.torch import load_file

    prefix = "unet."
    state = {k[len(prefix) :]: v for k, v in load_file(str(weights)).items() if k.startswith(prefix)}
    result = set_peft_model_state_dict(unet, convert_unet_state_dict_to_peft(state), adapter_name="default")
    if result.unexpected_keys:
        raise BadInput(f"{weights}: keys that do not fit this UNet's LoRA, e.g. {result.unexpected_keys[0]}")


def export_fused_unet(generator: Path, weights: Path, out_dir: Path):
    """Fuse the saved LoRA into a fresh fp32 copy of the base UNet and export it; the
    fused graph is built from the very file users load, not from training state."""
    import torch
    from diffusers import UNet2DConditionModel
    from safetensors.torch import load_file

    from .onnx_graphs import export_unet, sequence_length

    unet = UNet2DConditionModel.from_pretrained(str(generator / "unet"), torch_dtype=torch.float32)
    unet.load_lora_adapter(load_file(str(weights)), prefix="unet", adapter_name="trained")
    unet.fuse_lora()
    unet.unload_lora()
    return export_unet(unet, out_dir, sequence_length(generator))


def versions() -> dict:
    import diffusers
    import onnx
    import onnxruntime
    import peft
    import torch
    import transformers

    return {
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "diffusers": diffusers.__version__,
        "transformers": transformers.__version__,
        "peft": peft.__version__,
        "onnx": onnx.__version__,
        "onnxruntime": onnxruntime.__version__,
    }


@dataclass
class Plan:
    """Everything decided from the arguments, the configs and the dataset, before
    any model loads."""

    examples: list[Example]
    resolution: int
    prediction_type: str
    scaling_factor: float
    scheduler_config: dict
    recipe: dict
    checkpoint: Path | None
    resumed: dict
    steps_per_epoch: int
    total: int


def plan_run(args: argparse.Namespace) -> Plan:
    check_args(args)
    problem = missing_generator_file(args.generator)
    if problem:
        raise BadInput(f"--generator: {problem}")
    examples, digest = read_dataset(args.dataset)

    unet_config = json.loads((args.generator / "unet" / "config.json").read_text())
    vae_config = json.loads((args.generator / "vae" / "config.json").read_text())
    scheduler_path = args.generator / "scheduler" / "scheduler_config.json"
    scheduler_config = json.loads(scheduler_path.read_text())
    vae_factor = 2 ** (len(vae_config["block_out_channels"]) - 1)
    resolution = args.resolution or unet_config["sample_size"] * vae_factor
    if resolution % vae_factor:
        raise BadInput(f"--resolution: must be a multiple of the VAE's scale factor {vae_factor}, got {resolution}")
    prediction_type = scheduler_config.get("prediction_type", "epsilon")
    if prediction_type not in ("epsilon", "v_prediction"):
        raise BadInput(f"{scheduler_path}: prediction_type {prediction_type!r} is not epsilon or v_prediction")

    checkpoint = find_checkpoint(args.output, args.resume_from)
    if checkpoint is None and any((args.output / CHECKPOINTS).glob(CHECKPOINT_PREFIX + "*")):
        raise BadInput(f"--output: {args.output} holds checkpoints of an earlier run; pass --resume-from latest or use another folder")
    # A resumed run must share these with its checkpoint, or its result would be
    # neither run's.
    recipe = {
        "seed": args.seed,
        "batch_size": args.batch_size,
        "rank": args.rank,
        "learning_rate": args.learning_rate,
        "lr_warmup_steps": args.lr_warmup_steps,
        "lr_scheduler": args.lr_scheduler,
        "resolution": resolution,
        "random_flip": args.random_flip,
        "noise_offset": args.noise_offset,
        "snr_gamma": args.snr_gamma,
        "caption_dropout": args.caption_dropout,
        "max_grad_norm": args.max_grad_norm,
        "prediction_type": prediction_type,
        "dataset_size": len(examples),
        "dataset_digest": digest,
    }
    resumed: dict = {}
    if checkpoint is not None:
        resumed = json.loads((checkpoint / "state.json").read_text())
        for field, value in recipe.items():
            if resumed["recipe"].get(field) != value:
                raise BadInput(f"--resume-from: {checkpoint} was made with {field}={resumed['recipe'].get(field)!r}, this run has {value!r}")

    steps_per_epoch = math.ceil(len(examples) / args.batch_size)
    total = args.max_steps if args.max_steps is not None else args.epochs * steps_per_epoch
    if resumed.get("step", 0) > total:
        raise BadInput(f"--max-steps/--epochs: {total} steps, but {checkpoint} is already at step {resumed['step']}")
    if args.lr_scheduler == "cosine" and resumed and resumed.get("total") != total:
        # The decay is laid over the whole run, so a different length changes every later step's rate.
        raise BadInput(f"--max-steps/--epochs: --lr-scheduler cosine needs the checkpoint's {resumed.get('total')} steps, this run has {total}")
    return Plan(
        examples=examples,
        resolution=resolution,
        prediction_type=prediction_type,
        scaling_factor=vae_config.get("scaling_factor", 0.18215),
        scheduler_config=scheduler_config,
        recipe=recipe,
        checkpoint=checkpoint,
        resumed=resumed,
        steps_per_epoch=steps_per_epoch,
        total=total,
    )


def pick_device(args: argparse.Namespace):
    import torch

    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    if device.type == "cuda" and not torch.cuda.is_available():
        raise BadInput(f"--device {args.device}: CUDA is not available here")
    if args.mixed_precision == "fp16" and device.type != "cuda":
        raise BadInput("--mixed-precision fp16: needs a CUDA device (use bf16 or no on CPU)")
    if args.threads:
        torch.set_num_threads(args.threads)
    return device


@dataclass
class Trainee:
    """The UNet with its LoRA adapter and what updates it."""

    unet: torch.nn.Module
    params: list
    optimizer: torch.optim.Optimizer
    scaler: torch.amp.GradScaler | None
    weight_dtype: torch.dtype


def make_trainee(args: argparse.Namespace, plan: Plan, device) -> Trainee:
    import torch
    from diffusers import UNet2DConditionModel
    from diffusers.training_utils import cast_training_params
    from peft import LoraConfig

    weight_dtype = {"no": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}[args.mixed_precision]
    unet = UNet2DConditionModel.from_pretrained(str(args.generator / "unet"), torch_dtype=weight_dtype)
    unet.requires_grad_(False)
    unet.to(device)
    torch.manual_seed(args.seed)
    unet.add_adapter(
        LoraConfig(r=args.rank, lora_alpha=args.rank, init_lora_weights="gaussian", target_modules=LORA_TARGET_MODULES)
    )
    cast_training_params(unet, dtype=torch.float32)
    if args.gradient_checkpointing:
        unet.enable_gradient_checkpointing()
    unet.train()
    params = [p for p in unet.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=args.learning_rate, betas=(0.9, 0.999), weight_decay=1e-2, eps=1e-8)
    scaler = torch.amp.GradScaler(device.type) if args.mixed_precision == "fp16" else None
    if plan.checkpoint is not None:
        load_lora_into(unet, plan.checkpoint / LORA_WEIGHTS)
        saved = torch.load(plan.checkpoint / "optimizer.pt", map_location=device, weights_only=True)
        optimizer.load_state_dict(saved["optimizer"])
        if scaler is not None and saved["scaler"] is not None:
            scaler.load_state_dict(saved["scaler"])
    return Trainee(unet, params, optimizer, scaler, weight_dtype)


def min_snr_weights(noise_scheduler, timesteps, gamma: float, prediction_type: str):  # type: ignore[no-untyped-def]
    """Per-example loss weights of Min-SNR weighting (Hang et al. 2023), as diffusers'
    recipe applies them: min(SNR, gamma) over the SNR its target already carries.
    Gamma 0 weighs every timestep alike."""
    import torch

    if gamma == 0:
        return torch.ones(len(timesteps), device=timesteps.device)
    alphas = noise_scheduler.alphas_cumprod.to(timesteps.device)[timesteps]
    snr = alphas / (1 - alphas)
    clipped = torch.clamp(snr, max=gamma)
    return clipped / (snr if prediction_type == "epsilon" else snr + 1)


def train_step(args, plan: Plan, step: int, trainee: Trainee, cache: Cache, noise_scheduler, device) -> tuple[float, float]:
    """One optimizer step (0-based `step`); returns its loss and learning rate."""
    import torch

    rng = torch.Generator().manual_seed(_seed_for(args.seed, STEP_STREAM, step))
    index = torch.tensor(batch_indices(step, len(plan.examples), args.batch_size, args.seed), device=device)
    mean, std = cache.mean[index], cache.std[index]
    if args.random_flip:
        flip = (torch.rand(len(index), generator=rng) < 0.5).to(device)[:, None, None, None]
        mean = torch.where(flip, cache.flipped_mean[index], mean)
        std = torch.where(flip, cache.flipped_std[index], std)
    latents = (mean + std * torch.randn(mean.shape, generator=rng).to(device)) * plan.scaling_factor
    noise = torch.randn(latents.shape, generator=rng).to(device)
    if args.noise_offset:
        noise = noise + args.noise_offset * torch.randn((*latents.shape[:2], 1, 1), generator=rng).to(device)
    timesteps = torch.randint(0, noise_scheduler.config.num_train_timesteps, (len(index),), generator=rng).to(device)
    noisy = noise_scheduler.add_noise(latents, noise, timesteps)
    target = noise if plan.prediction_type == "epsilon" else noise_scheduler.get_velocity(latents, noise, timesteps)
    text = cache.text_index[index]
    if args.caption_dropout:
        dropped = (torch.rand(len(index), generator=rng) < args.caption_dropout).to(device)
        text = torch.where(dropped, cache.empty_text_index, text)
    hidden = cache.text_embeddings[text]

    lr = learning_rate_at(step, args.learning_rate, args.lr_warmup_steps, args.lr_scheduler, plan.total)
    for group in trainee.optimizer.param_groups:
        group["lr"] = lr
    dtype = trainee.weight_dtype
    with torch.autocast(device.type, dtype=dtype, enabled=dtype != torch.float32):
        prediction = trainee.unet(noisy.to(dtype), timesteps, hidden.to(dtype), return_dict=False)[0]
    loss = torch.nn.functional.mse_loss(prediction.float(), target.float(), reduction="none").mean(dim=(1, 2, 3))
    loss = (loss * min_snr_weights(noise_scheduler, timesteps, args.snr_gamma, plan.prediction_type)).mean()
    if trainee.scaler is not None:
        trainee.scaler.scale(loss).backward()
        trainee.scaler.unscale_(trainee.optimizer)
        torch.nn.utils.clip_grad_norm_(trainee.params, args.max_grad_norm)
        trainee.scaler.step(trainee.optimizer)
        trainee.scaler.update()
    else:
        loss.backward()
        torch.nn.utils.clip_grad_norm_(trainee.params, args.max_grad_norm)
        trainee.optimizer.step()
    trainee.optimizer.zero_grad(set_to_none=True)
    return float(loss.detach()), lr


def train(args: argparse.Namespace, events: Events, stop: StopRequest) -> int:
    plan = plan_run(args)
    device = pick_device(args)
    args.output.mkdir(parents=True, exist_ok=True)
    losses: list[float] = plan.resumed.get("losses", [])
    previous_time = plan.resumed.get("wall_time_total_s", 0.0)
    events.emit(
        "start",
        step=len(losses),
        total=plan.total,
        dataset_size=len(plan.examples),
        batch_size=args.batch_size,
        steps_per_epoch=plan.steps_per_epoch,
        resolution=plan.resolution,
        prediction_type=plan.prediction_type,
        device=str(device),
        resumed_from=str(plan.checkpoint) if plan.checkpoint else None,
    )

    events.emit("phase", phase="load")
    from diffusers import DDPMScheduler

    from .onnx_graphs import quiet_libraries

    quiet_libraries()

    def report_stop(checkpoint: Path | None) -> int:
        code = STOP_EXIT_CODES[stop.signum]
        events.emit(
            "stopped",
            signal=signal.Signals(stop.signum).name,
            step=len(losses),
            total=plan.total,
            checkpoint=str(checkpoint) if checkpoint else None,
            exit_code=code,
        )
        return code

    try:
        cache = build_cache(plan.examples, args.generator, plan.resolution, args.random_flip, device, events, stop)
    except Stopped:
        return report_stop(plan.checkpoint)
    noise_scheduler = DDPMScheduler.from_config(plan.scheduler_config)
    trainee = make_trainee(args, plan, device)

    def checkpoint() -> Path:
        state = {
            "recipe": plan.recipe,
            "total": plan.total,
            "losses": losses,
            "wall_time_total_s": previous_time + events.elapsed(),
        }
        return write_checkpoint(args.output, len(losses), trainee, state, plan.steps_per_epoch, args.keep_checkpoints)

    def stopped() -> int:
        return report_stop(checkpoint())

    events.emit("phase", phase="train")
    for step in range(len(losses), plan.total):
        if stop.signum is not None:
            return stopped()
        loss, lr = train_step(args, plan, step, trainee, cache, noise_scheduler, device)
        losses.append(loss)
        done = step + 1
        if done % args.log_every == 0 or done == plan.total:
            events.emit("step", step=done, total=plan.total, loss=loss, lr=lr)
        if args.checkpoint_every and done % args.checkpoint_every == 0 and done < plan.total:
            events.emit("checkpoint", step=done, path=str(checkpoint()))
    if stop.signum is not None:
        return stopped()

    events.emit("phase", phase="save")
    weights = save_lora(trainee.unet, args.output)
    # The export of a full-size UNet takes minutes: a stop asked for by now is
    # honoured, and resuming from the final-step checkpoint only re-exports.
    # A stop during the export lets it finish.
    if stop.signum is not None and not args.skip_onnx:
        return stopped()
    del trainee, cache
    onnx_result = None
    if not args.skip_onnx:
        events.emit("phase", phase="export")
        onnx_result = export_fused_unet(args.generator, weights, args.output / "unet")
        events.emit("onnx", **onnx_result.as_json())

    wall = events.elapsed()
    metrics = write_metrics(args, plan, device, losses, wall, previous_time + wall, onnx_result)
    events.emit(
        "done",
        step=plan.total,
        total=plan.total,
        final_loss=metrics["final_loss"],
        mean_loss=metrics["mean_loss"],
        lora=str(weights),
        unet_onnx=str(onnx_result.path) if onnx_result else None,
    )
    return EXIT_OK


def write_metrics(args, plan: Plan, device, losses: list[float], wall: float, wall_total: float, onnx_result) -> dict:
    """metrics.json; `final_loss` averages the last epoch's steps, since one
    step's loss mostly reflects its random timesteps."""
    tail = losses[-plan.steps_per_epoch :]
    metrics = {
        "steps": plan.total,
        "final_loss": sum(tail) / len(tail) if tail else None,
        "last_loss": losses[-1] if losses else None,
        "mean_loss": sum(losses) / len(losses) if losses else None,
        "loss_curve": losses,
        "learning_rate": args.learning_rate,
        "lr_warmup_steps": args.lr_warmup_steps,
        "lr_scheduler": args.lr_scheduler,
        "rank": args.rank,
        "batch_size": args.batch_size,
        "epochs": plan.total / plan.steps_per_epoch,
        "resolution": plan.resolution,
        "prediction_type": plan.prediction_type,
        "random_flip": args.random_flip,
        "noise_offset": args.noise_offset,
        "snr_gamma": args.snr_gamma,
        "caption_dropout": args.caption_dropout,
        "mixed_precision": args.mixed_precision,
        "device": str(device),
        "dataset_size": len(plan.examples),
        "dataset_digest": plan.recipe["dataset_digest"],
        "seed": args.seed,
        "resumed_from": str(plan.checkpoint) if plan.checkpoint else None,
        "wall_time_s": round(wall, 3),
        "wall_time_total_s": round(wall_total, 3),
        "onnx": onnx_result.as_json() if onnx_result else None,
        "versions": versions(),
    }
    (args.output / "metrics.json").write_text(json.dumps(metrics, indent=1))
    return metrics


def _bad_input(error: BadInput, events: Events) -> int:
    message = " ".join(str(error).split())
    print(f"error: {message}", file=sys.stderr, flush=True)
    events.emit("error", kind="bad_input", message=message)
    return EXIT_BAD_INPUT


def main(argv: Sequence[str] | None = None) -> int:
    stop = StopRequest()
    try:
        # Parsed before stdout is claimed, so that --help prints to stdout.
        args = build_parser().parse_args(argv)
    except BadInput as error:
        return _bad_input(error, Events())
    events = Events()
    events.on_unwatched = stop.request
    if args.stop_on_stdin_close:
        stop_when_stdin_closes(events)
    try:
        return train(args, events, stop)
    except BadInput as error:
        return _bad_input(error, events)
    except Exception as error:
        traceback.print_exc()
        events.emit("error", kind="failure", message=f"{type(error).__name__}: {error}")
        return EXIT_FAILURE

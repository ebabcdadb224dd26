"""The trainer's command line: its flags, and the checks on their values that need
no file. A bad flag raises BadInput, which the protocol turns into exit code 2."""

from __future__ import annotations

import argparse
import importlib.util
import math
from pathlib import Path

from .protocol import BadInput

# Implemented by `train.learning_rate_at`.
LR_SCHEDULERS = ("constant", "cosine")


class _Parser(argparse.ArgumentParser):
    """Reports a bad command line as BadInput, so that it ends like any other bad input."""

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
    p.add_argument(
        "--learning-rate",
        "--lr",
        type=float,
        default=1e-4,
        metavar="LR",
        help="learning rate: the constant one, or the peak of --lr-scheduler cosine (default: %(default)s)",
    )
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
        help="train on the empty caption instead with probability P, "
        "so the unconditional branch that guidance subtracts moves with the conditional one (default: %(default)s)",
    )
    p.add_argument("--max-grad-norm", type=float, default=1.0, metavar="X", help="gradient norm clip (default: %(default)s)")
    p.add_argument("--checkpoint-every", type=int, default=0, metavar="K", help="write a checkpoint every K steps (0: only when stopped)")
    p.add_argument("--keep-checkpoints", type=int, default=2, metavar="N", help="newest checkpoints kept, older ones deleted (default: %(default)s)")
    p.add_argument(
        "--resume-from",
        default=None,
        metavar="DIR|latest",
        help="a checkpoint folder, or 'latest': the newest in --output/checkpoints, if any (else start fresh)",
    )
    p.add_argument(
        "--mixed-precision",
        choices=("no", "fp16", "bf16"),
        default="no",
        help="frozen weights and forward pass in this dtype; LoRA weights stay fp32 (fp16 needs CUDA)",
    )
    p.add_argument("--gradient-checkpointing", action="store_true", help="trade compute for UNet activation memory")
    p.add_argument(
        "--optimizer",
        choices=("adamw", "adamw8bit"),
        default="adamw",
        help="adamw: torch's AdamW; adamw8bit: bitsandbytes' 8-bit AdamW, the same update with its moments kept in 8 bits "
        "(a quarter of the optimizer state's memory; needs bitsandbytes installed) (default: %(default)s)",
    )
    p.add_argument("--device", default=None, metavar="DEVICE", help="torch device (default: cuda if available, else cpu)")
    p.add_argument("--threads", type=int, default=None, metavar="N", help="CPU threads for torch (default: torch's choice)")
    p.add_argument("--log-every", type=int, default=1, metavar="N", help="emit a step event every N steps (default: %(default)s)")
    p.add_argument("--skip-onnx", action="store_true", help="do not export unet/model.onnx")
    p.add_argument(
        "--export-precision",
        choices=("fp32", "fp16"),
        default="fp32",
        help="weights and compute of unet/model.onnx: fp16 halves it for onnxruntime's CUDA provider, attention scores and "
        "softmax staying fp32 (SD 2.x overflows there in fp16); inputs and outputs are float32 either way. fp16 is traced "
        "on the GPU when training runs on one; on a CPU, a full-size UNet takes very long (default: %(default)s)",
    )
    team = p.add_mutually_exclusive_group()
    team.add_argument(
        "--team-size",
        type=int,
        default=None,
        metavar="N",
        help="lead a team of up to N trainers on other workers (this one included): open a meeting point (a `meeting` event "
        "gives its port), wait up to --team-wait for the others, then train data-parallel with those that came (see team.py)",
    )
    team.add_argument(
        "--team-leader",
        default=None,
        metavar="HOST:PORT",
        help="join the team of the trainer leading at HOST:PORT instead of training alone; its --output receives no results, "
        "only a copy of the checkpoint the leader resumes from",
    )
    p.add_argument(
        "--team-wait",
        type=float,
        default=60.0,
        metavar="SECONDS",
        help="with --team-size, how long the meeting point waits for the others; with --team-leader, how long to try to reach "
        "the leader, and then (with a margin of 30 s) to hear which trainers it took (default: %(default)s)",
    )
    p.add_argument(
        "--stop-on-stdin-close",
        action="store_true",
        help="stop as on SIGTERM when stdin reaches end of file: a parent that keeps a pipe to it open stops the trainer by dying",
    )
    return p


def check_args(args: argparse.Namespace) -> None:
    """The ranges argparse does not check."""
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
    if args.team_size is not None and args.team_size < 2:
        raise BadInput(f"--team-size: must be at least 2 (this trainer and another), got {args.team_size}")
    if args.team_leader is not None and leader_address(args.team_leader) is None:
        raise BadInput(f"--team-leader: expected HOST:PORT with a port from 1 to 65535, got {args.team_leader!r}")
    if not (math.isfinite(args.team_wait) and args.team_wait > 0):
        raise BadInput(f"--team-wait: must be a positive number of seconds, got {args.team_wait}")
    if args.optimizer == "adamw8bit" and importlib.util.find_spec("bitsandbytes") is None:
        raise BadInput("--optimizer adamw8bit: needs bitsandbytes installed in the trainer's Python (pip install bitsandbytes), or use adamw")
    if not (math.isfinite(args.caption_dropout) and 0 <= args.caption_dropout < 1):
        raise BadInput(f"--caption-dropout: must be a probability in [0, 1), got {args.caption_dropout}")


def leader_address(text: str) -> tuple[str, int] | None:
    """The host and port of `--team-leader HOST:PORT` (an IPv6 host in brackets), or None if it is not of that form."""
    host, colon, port = text.rpartition(":")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if not (colon and host and port.isascii() and port.isdigit() and 1 <= int(port) <= 65535):
        return None
    return host, int(port)

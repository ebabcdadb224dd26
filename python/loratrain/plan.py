"""The plan of a run: everything decided from the arguments, the generator's configs,
the dataset and the checkpoint resumed from, before any model loads, so that bad
input fails fast and names what to fix."""

from __future__ import annotations

import argparse
import json
import math
from dataclasses import dataclass
from pathlib import Path

from .arguments import check_args
from .checkpoints import CHECKPOINT_PREFIX, CHECKPOINTS, find_checkpoint, read_state
from .data import Example, read_dataset
from .layout import missing_generator_file
from .protocol import BadInput


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


def file_in_the_way(output: Path) -> Path | None:
    """The file, if any, that stands where --output or a folder above it must be."""
    for path in (output, *output.parents):
        if path.exists():
            return None if path.is_dir() else path
    return None


def plan_run(args: argparse.Namespace) -> Plan:
    check_args(args)
    blocker = file_in_the_way(args.output)
    if blocker is not None:
        where = "is a file" if blocker == args.output else f"cannot be made: {blocker} is a file"
        raise BadInput(f"--output: {args.output} {where}, not a folder")
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
        # The optimizer's saved state is in its own format: a resume keeps the optimizer.
        "optimizer": args.optimizer,
        "prediction_type": prediction_type,
        "dataset_size": len(examples),
        "dataset_digest": digest,
    }
    resumed: dict = {}
    if checkpoint is not None:
        resumed = read_state(checkpoint)
        # Checkpoints from before --optimizer existed were made with AdamW.
        made_with = {"optimizer": "adamw", **resumed["recipe"]}
        for field, value in recipe.items():
            if made_with.get(field) != value:
                raise BadInput(f"--resume-from: {checkpoint} was made with {field}={made_with.get(field)!r}, this run has {value!r}")

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

"""metrics.json: what a finished run reports beside its weights, with the versions
of the libraries that produced it."""

from __future__ import annotations

import json
import sys

from .plan import Plan


def write_metrics(
    args, plan: Plan, device, losses: list[float], wall: float, wall_total: float, onnx_result, gradient_checkpointing: bool, processes: int
) -> dict:
    """metrics.json; `final_loss` averages the last epoch's steps, since one
    step's loss mostly reflects its random timesteps."""
    import torch

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
        "optimizer": args.optimizer,
        "gradient_checkpointing": gradient_checkpointing,
        "device": str(device),
        "threads": torch.get_num_threads(),
        # Data-parallel processes that trained (torchrun or accelerate launch); 1 without a launcher.
        "processes": processes,
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

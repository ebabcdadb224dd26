"""The trainer's files: checkpoints (finding, writing atomically, restoring) and the
LoRA weights in diffusers' format, in a checkpoint or as the run's result."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import TYPE_CHECKING

from .protocol import BadInput

if TYPE_CHECKING:
    # For annotations only: train.py imports this module.
    from .train import Trainee

LORA_WEIGHTS = "pytorch_lora_weights.safetensors"
CHECKPOINTS = "checkpoints"
CHECKPOINT_PREFIX = "step-"


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


def restore_checkpoint(checkpoint: Path, trainee: Trainee, device) -> None:
    """Load a checkpoint's LoRA weights, optimizer and grad-scaler state into a fresh `trainee`."""
    import torch

    load_lora_into(trainee.unet, checkpoint / LORA_WEIGHTS)
    saved = torch.load(checkpoint / "optimizer.pt", map_location=device, weights_only=True)
    trainee.optimizer.load_state_dict(saved["optimizer"])
    if trainee.scaler is not None and saved["scaler"] is not None:
        trainee.scaler.load_state_dict(saved["scaler"])


def lora_state_dict(unet) -> dict:
    from diffusers.utils import convert_state_dict_to_diffusers
    from peft.utils import get_peft_model_state_dict

    return convert_state_dict_to_diffusers(get_peft_model_state_dict(unet))


def save_lora(unet, folder: Path) -> Path:
    from diffusers.loaders import StableDiffusionLoraLoaderMixin

    StableDiffusionLoraLoaderMixin.save_lora_weights(save_directory=str(folder), unet_lora_layers=lora_state_dict(unet), safe_serialization=True)
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

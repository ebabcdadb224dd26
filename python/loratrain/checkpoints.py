"""The trainer's files: checkpoints (finding, writing atomically, restoring) and the
LoRA weights in diffusers' format, in a checkpoint or as the run's result."""

from __future__ import annotations

import json
import math
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from .protocol import BadCheckpoint, BadInput

if TYPE_CHECKING:
    # For annotations only: train.py imports this module.
    from .train import Trainee

LORA_WEIGHTS = "pytorch_lora_weights.safetensors"
OPTIMIZER = "optimizer.pt"
STATE = "state.json"
CHECKPOINTS = "checkpoints"
CHECKPOINT_PREFIX = "step-"
# What `write_checkpoint` puts in state.json and a resumed run reads back.
STATE_FIELDS = {"step": int, "total": int, "losses": list, "recipe": dict, "wall_time_total_s": (int, float)}


def checkpoints_in(output: Path) -> list[Path]:
    """Complete checkpoints, oldest first."""
    found = [d for d in (output / CHECKPOINTS).glob(CHECKPOINT_PREFIX + "*") if (d / STATE).is_file()]
    return sorted(found, key=lambda d: int(d.name[len(CHECKPOINT_PREFIX) :]))


def find_checkpoint(output: Path, resume_from: str | None) -> Path | None:
    if resume_from is None:
        return None
    if resume_from == "latest":
        found = checkpoints_in(output)
        return found[-1] if found else None
    path = Path(resume_from)
    if not (path / STATE).is_file():
        raise BadInput(f"--resume-from: {path / STATE}: not found")
    return path


def write_checkpoint(output: Path, step: int, trainee: Trainee, state: dict, steps_per_epoch: int, keep: int) -> Path:
    """Write checkpoints/step-N atomically: a crash leaves either the old folder or
    the new one, never a partial one. The step number fixes the data order and all
    random draws still to come; epoch and position are recorded for readers."""
    import torch

    final, scratch = _scratch_for(output, step)
    save_lora(trainee.unet, scratch)
    torch.save(
        {"optimizer": trainee.optimizer.state_dict(), "scaler": trainee.scaler.state_dict() if trainee.scaler else None},
        scratch / OPTIMIZER,
    )
    position = {"step": step, "epoch": step // steps_per_epoch, "position_in_epoch": step % steps_per_epoch}
    (scratch / STATE).write_text(json.dumps({**state, **position}, indent=1))
    _put_in_place(scratch, final)
    for old in checkpoints_in(output)[:-keep]:
        shutil.rmtree(old)
    return final


def _scratch_for(output: Path, step: int) -> tuple[Path, Path]:
    """The folder of step `step`'s checkpoint and an empty scratch folder beside it to fill first."""
    root = output / CHECKPOINTS
    root.mkdir(parents=True, exist_ok=True)
    for leftover in [*root.glob(".tmp-*"), *root.glob(".old-*")]:
        shutil.rmtree(leftover)
    final = root / f"{CHECKPOINT_PREFIX}{step:08d}"
    scratch = root / f".tmp-{final.name}"
    scratch.mkdir()
    return final, scratch


def _put_in_place(scratch: Path, final: Path) -> None:
    """Make a filled scratch folder the checkpoint `final`, replacing any folder there, so that
    a crash leaves one of the two whole."""
    for f in scratch.iterdir():
        with open(f, "rb") as handle:
            os.fsync(handle.fileno())
    if final.exists():
        replaced = final.parent / f".old-{final.name}"
        os.replace(final, replaced)
        os.replace(scratch, final)
        shutil.rmtree(replaced)
    else:
        os.replace(scratch, final)


# A checkpoint's files, in the order `checkpoint_files` lists their contents.
CHECKPOINT_FILES = (LORA_WEIGHTS, OPTIMIZER, STATE)


def checkpoint_files(checkpoint: Path) -> list[bytes]:
    """The contents of a checkpoint's files, to hand to a trainer that cannot read this folder."""
    return [(checkpoint / name).read_bytes() for name in CHECKPOINT_FILES]


def copy_in_checkpoint(output: Path, contents: list[bytes]) -> Path:
    """Write a checkpoint received as `checkpoint_files` into output's checkpoints,
    atomically, under its step's name; returns its folder."""
    step = json.loads(contents[CHECKPOINT_FILES.index(STATE)])["step"]
    final, scratch = _scratch_for(output, step)
    for name, data in zip(CHECKPOINT_FILES, contents):
        (scratch / name).write_bytes(data)
    _put_in_place(scratch, final)
    return final


def _unreadable(checkpoint: Path, name: str, problem: str, expected: str) -> BadCheckpoint:
    return BadCheckpoint(f"checkpoint {checkpoint}: {name}: {problem}; expected {expected}")


def _failed_read(error: Exception) -> str:
    # The class only: the messages of unpickling and parsing errors can quote the file's bytes.
    return "not found" if isinstance(error, FileNotFoundError) else f"cannot be read ({type(error).__name__})"


def read_state(checkpoint: Path) -> dict:
    """A checkpoint's state.json, with every field a resumed run reads checked."""
    expected = "a JSON object with " + ", ".join(STATE_FIELDS) + " as the trainer writes it"
    try:
        state = json.loads((checkpoint / STATE).read_bytes())
    except OSError as error:
        raise _unreadable(checkpoint, STATE, _failed_read(error), expected) from None
    except json.JSONDecodeError as error:
        raise _unreadable(checkpoint, STATE, f"not valid JSON ({error.msg}, line {error.lineno} column {error.colno})", expected) from None
    except UnicodeDecodeError:
        raise _unreadable(checkpoint, STATE, "not UTF-8 text", expected) from None
    if not isinstance(state, dict):
        raise _unreadable(checkpoint, STATE, "not a JSON object", expected)
    for field, kind in STATE_FIELDS.items():
        if field not in state:
            raise _unreadable(checkpoint, STATE, f'no "{field}" field', expected)
        # bool is an int to Python, never to this file.
        if not isinstance(state[field], kind) or isinstance(state[field], bool):
            raise _unreadable(checkpoint, STATE, f'"{field}" has the wrong type', expected)
    losses = state["losses"]
    if not all(isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x) for x in losses):
        raise _unreadable(checkpoint, STATE, '"losses" holds something other than finite numbers', "one loss per step taken")
    if len(losses) != state["step"]:
        raise _unreadable(checkpoint, STATE, f'"losses" holds {len(losses)} losses for step {state["step"]}', "one loss per step taken")
    return state


@dataclass
class SavedTraining:
    """A checkpoint's LoRA weights (diffusers keys) and optimizer and grad-scaler state, read but not yet applied."""

    folder: Path
    lora: dict
    optimizer: dict
    scaler: dict | None


def load_checkpoint(checkpoint: Path, device) -> SavedTraining:
    """Read a checkpoint's tensors, before any model loads: one that cannot be read
    fails at once, naming the file."""
    import torch
    from safetensors.torch import load_file

    lora_expected = "the LoRA weights in safetensors format with unet.* keys"
    try:
        lora = load_file(str(checkpoint / LORA_WEIGHTS))
    except Exception as error:  # safetensors has its own error class; a missing file is an OSError
        raise _unreadable(checkpoint, LORA_WEIGHTS, _failed_read(error), lora_expected) from None
    if not any(k.startswith("unet.") for k in lora):
        raise _unreadable(checkpoint, LORA_WEIGHTS, "holds no unet.* tensors", lora_expected)

    optimizer_expected = "the optimizer and grad-scaler state the trainer saves with torch.save"
    try:
        saved = torch.load(checkpoint / OPTIMIZER, map_location=device, weights_only=True)
    except Exception as error:  # torch.load raises from its zip reader, the unpickler or the file system
        raise _unreadable(checkpoint, OPTIMIZER, _failed_read(error), optimizer_expected) from None
    if not (isinstance(saved, dict) and isinstance(saved.get("optimizer"), dict) and "scaler" in saved):
        raise _unreadable(checkpoint, OPTIMIZER, "not a dict of optimizer and scaler state", optimizer_expected)
    return SavedTraining(folder=checkpoint, lora=lora, optimizer=saved["optimizer"], scaler=saved["scaler"])


def restore_checkpoint(saved: SavedTraining, trainee: Trainee) -> None:
    """Put a checkpoint's LoRA weights, optimizer and grad-scaler state into a fresh `trainee`."""
    load_lora_into(trainee.unet, saved.lora, saved.folder / LORA_WEIGHTS)
    try:
        trainee.optimizer.load_state_dict(saved.optimizer)
    except (KeyError, TypeError, ValueError):
        raise _unreadable(saved.folder, OPTIMIZER, "does not fit this run's LoRA parameters", "the state of an optimizer over them") from None
    if trainee.scaler is not None and saved.scaler is not None:
        trainee.scaler.load_state_dict(saved.scaler)


def lora_state_dict(unet) -> dict:
    from diffusers.utils import convert_state_dict_to_diffusers
    from peft.utils import get_peft_model_state_dict

    return convert_state_dict_to_diffusers(get_peft_model_state_dict(unet))


def save_lora(unet, folder: Path) -> Path:
    from diffusers.loaders import StableDiffusionLoraLoaderMixin

    StableDiffusionLoraLoaderMixin.save_lora_weights(save_directory=str(folder), unet_lora_layers=lora_state_dict(unet), safe_serialization=True)
    return folder / LORA_WEIGHTS


def load_lora_into(unet, weights: dict, source: Path) -> None:
    """Load diffusers-format LoRA weights, read from `source`, into a UNet that already has the adapter."""
    from diffusers.utils import convert_unet_state_dict_to_peft
    from peft import set_peft_model_state_dict

    prefix = "unet."
    state = {k[len(prefix) :]: v for k, v in weights.items() if k.startswith(prefix)}
    result = set_peft_model_state_dict(unet, convert_unet_state_dict_to_peft(state), adapter_name="default")
    if result.unexpected_keys:
        raise BadInput(f"{source}: keys that do not fit this UNet's LoRA, e.g. {result.unexpected_keys[0]}")

"""What a diffusers Stable Diffusion folder must hold; checked before any model
loads so that a wrong path fails in a second with a message naming the file."""

from __future__ import annotations

from pathlib import Path

REQUIRED_FILES = (
    "model_index.json",
    "scheduler/scheduler_config.json",
    "tokenizer/tokenizer_config.json",
    "text_encoder/config.json",
    "unet/config.json",
    "vae/config.json",
)


def missing_generator_file(generator: Path) -> str | None:
    """The first thing a diffusers SD folder needs that `generator` lacks, if any."""
    if not generator.is_dir():
        return f"{generator}: no such folder"
    for name in REQUIRED_FILES:
        if not (generator / name).is_file():
            return f"{generator / name}: not found (not a diffusers Stable Diffusion folder?)"
    return None

"""Shared fixtures: a random-weight generator with the shapes world's architecture,
and small imagefolder datasets rendered by the shapes world."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

PYTHON_DIR = Path(__file__).resolve().parents[1]
if str(PYTHON_DIR) not in sys.path:
    sys.path.insert(0, str(PYTHON_DIR))

# Tests start several trainer processes at once; one thread each keeps a small
# machine responsive. Every child process inherits this.
os.environ.setdefault("OMP_NUM_THREADS", "1")
torch.set_num_threads(1)


def build_tiny_generator(out: Path, *, prediction_type: str = "epsilon", seed: int = 0) -> Path:
    """A diffusers Stable Diffusion folder with the shapes world's generator
    architecture (64x64 images, 4x16x16 latents) and random weights."""
    from diffusers import DDIMScheduler, StableDiffusionPipeline
    from transformers import CLIPTextModel, CLIPTokenizer

    from shapesworld.clip import clip_config
    from shapesworld.generator import SCHEDULER_CONFIG, unet_model, vae_model
    from shapesworld.text import build_clip_tokenizer

    build_clip_tokenizer(out / "tokenizer")
    tokenizer = CLIPTokenizer.from_pretrained(str(out / "tokenizer"))
    torch.manual_seed(seed)
    text_encoder = CLIPTextModel(clip_config(len(tokenizer), tokenizer).text_config)
    vae = vae_model()
    unet = unet_model(text_encoder.config.hidden_size)
    scheduler = DDIMScheduler(**{**SCHEDULER_CONFIG, "prediction_type": prediction_type})
    pipeline = StableDiffusionPipeline(
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        unet=unet,
        scheduler=scheduler,
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    pipeline.save_pretrained(str(out))
    return out


def write_dataset(out: Path, n: int, seed: int = 0) -> Path:
    """An imagefolder dataset of `n` shapes scenes, with an extra column as the
    product writes it."""
    from shapesworld.world import scenes

    out.mkdir(parents=True, exist_ok=True)
    lines = []
    for i, scene in enumerate(scenes(n, seed)):
        name = f"{i:04d}.png"
        scene.image.save(out / name)
        lines.append(json.dumps({"file_name": name, "text": scene.caption, "class": scene.spec.cls}))
    (out / "metadata.jsonl").write_text("\n".join(lines) + "\n")
    return out


@pytest.fixture(scope="session")
def tiny_generator(tmp_path_factory) -> Path:
    return build_tiny_generator(tmp_path_factory.mktemp("generator"))


# The examples of `tiny_dataset`.
TINY_DATASET_SIZE = 8


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory) -> Path:
    return write_dataset(tmp_path_factory.mktemp("dataset"), TINY_DATASET_SIZE)


def run_module(*args: str, timeout: float = 300, **kwargs) -> subprocess.CompletedProcess:
    """Run a module of this package as the product does: a child process."""
    env = {**os.environ, "PYTHONPATH": str(PYTHON_DIR), "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", *args], cwd=PYTHON_DIR, env=env, capture_output=True, text=True, timeout=timeout, **kwargs)

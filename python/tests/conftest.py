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

# Other agents share the two cores; every child process inherits this.
os.environ.setdefault("OMP_NUM_THREADS", "1")
torch.set_num_threads(1)


def build_tiny_generator(out: Path, *, prediction_type: str = "epsilon", seed: int = 0) -> Path:
    """A diffusers Stable Diffusion folder shaped like the shapes world's generator
    (64x64 images, 4x16x16 latents), with random weights."""
    from diffusers import AutoencoderKL, DDIMScheduler, StableDiffusionPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    from shapesworld.text import build_clip_tokenizer

    build_clip_tokenizer(out / "tokenizer")
    tokenizer = CLIPTokenizer.from_pretrained(str(out / "tokenizer"))
    torch.manual_seed(seed)
    text_encoder = CLIPTextModel(
        CLIPTextConfig(
            vocab_size=len(tokenizer),
            hidden_size=64,
            intermediate_size=256,
            num_hidden_layers=4,
            num_attention_heads=4,
            max_position_embeddings=tokenizer.model_max_length,
            bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id,
        )
    )
    vae = AutoencoderKL(
        in_channels=3,
        out_channels=3,
        latent_channels=4,
        block_out_channels=(32, 64, 64),
        down_block_types=("DownEncoderBlock2D",) * 3,
        up_block_types=("UpDecoderBlock2D",) * 3,
        layers_per_block=1,
        norm_num_groups=16,
        sample_size=64,
    )
    unet = UNet2DConditionModel(
        sample_size=16,
        in_channels=4,
        out_channels=4,
        block_out_channels=(32, 64, 64),
        layers_per_block=1,
        down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
        cross_attention_dim=64,
        attention_head_dim=8,
        norm_num_groups=16,
    )
    scheduler = DDIMScheduler(
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        clip_sample=False,
        set_alpha_to_one=False,
        steps_offset=1,
        prediction_type=prediction_type,
    )
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


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory) -> Path:
    return write_dataset(tmp_path_factory.mktemp("dataset"), 8)


def run_module(*args: str, timeout: float = 300, **kwargs) -> subprocess.CompletedProcess:
    """Run a module of this package as the product does: a child process."""
    env = {**os.environ, "PYTHONPATH": str(PYTHON_DIR), "OMP_NUM_THREADS": "1"}
    return subprocess.run(
        [sys.executable, "-m", *args], cwd=PYTHON_DIR, env=env, capture_output=True, text=True, timeout=timeout, **kwargs
    )

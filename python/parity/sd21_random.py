"""`python -m parity.sd21_random DIR`: a generator folder with Stable Diffusion 2.1-base's
architecture and random (seeded) weights, in the diffusers layout and exported to ONNX by
the product's exporter (`loratrain.onnx_graphs.export_generator`, as `loratrain.export_onnx`
runs it), for benchmarks at full size without the real weights.

The configs are those of stabilityai/stable-diffusion-2-1-base: the UNet (865,910,724
parameters), SD's VAE (83,653,863), the OpenCLIP ViT-H text encoder (hidden 1024, 23 layers,
340,387,840 parameters), a 77-token context. Two things differ from the real folder, neither
of which changes the cost of a step:

- the tokenizer is the shapes pack's small CLIP BPE (no CLIP vocabulary can be had here),
  set to 77 tokens; its ids index the text encoder's full 49,408-row embedding;
- the scheduler is DDIMScheduler with 2.1-base's betas and epsilon prediction (the real
  model_index names PNDMScheduler, which the product's sampler does not implement).

Prints one JSON line: parameter counts, seconds to build and to export each part, and the
size of each part's files.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

PACK_TOKENIZER = Path(__file__).resolve().parents[2] / "packs" / "shapes" / "generator" / "tokenizer"
MAX_TOKENS = 77

UNET_CONFIG = {
    "sample_size": 64,
    "in_channels": 4,
    "out_channels": 4,
    "center_input_sample": False,
    "flip_sin_to_cos": True,
    "freq_shift": 0,
    "down_block_types": ["CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"],
    "up_block_types": ["UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"],
    "block_out_channels": [320, 640, 1280, 1280],
    "layers_per_block": 2,
    "downsample_padding": 1,
    "mid_block_scale_factor": 1,
    "act_fn": "silu",
    "norm_num_groups": 32,
    "norm_eps": 1e-5,
    "cross_attention_dim": 1024,
    "attention_head_dim": [5, 10, 20, 20],
    "use_linear_projection": True,
    "dual_cross_attention": False,
    "only_cross_attention": False,
    "num_class_embeds": None,
}
UNET_PARAMETERS = 865_910_724

VAE_CONFIG = {
    "in_channels": 3,
    "out_channels": 3,
    "down_block_types": ["DownEncoderBlock2D"] * 4,
    "up_block_types": ["UpDecoderBlock2D"] * 4,
    "block_out_channels": [128, 256, 512, 512],
    "layers_per_block": 2,
    "act_fn": "silu",
    "latent_channels": 4,
    "norm_num_groups": 32,
    # The exporter traces the decoder at sample_size / 8 latents: 2.1-base's 512 px.
    "sample_size": 512,
    "scaling_factor": 0.18215,
}
VAE_PARAMETERS = 83_653_863

# OpenCLIP ViT-H/14's text tower as transformers' CLIPTextModel holds it.
TEXT_CONFIG = {
    "vocab_size": 49408,
    "hidden_size": 1024,
    "intermediate_size": 4096,
    "projection_dim": 1024,
    "num_hidden_layers": 23,
    "num_attention_heads": 16,
    "max_position_embeddings": MAX_TOKENS,
    "hidden_act": "gelu",
    "layer_norm_eps": 1e-5,
}
TEXT_PARAMETERS = 340_387_840

SCHEDULER_CONFIG = {
    "num_train_timesteps": 1000,
    "beta_start": 0.00085,
    "beta_end": 0.012,
    "beta_schedule": "scaled_linear",
    "clip_sample": False,
    "set_alpha_to_one": False,
    "steps_offset": 1,
    "prediction_type": "epsilon",
}


def count_parameters(build) -> int:
    """Parameters of the module `build()` makes, on the meta device (no memory, no init)."""
    import torch

    with torch.device("meta"):
        module = build()
    return sum(p.numel() for p in module.parameters())


def unet(config: dict | None = None):
    from diffusers import UNet2DConditionModel

    return UNet2DConditionModel(**(config or UNET_CONFIG))


def vae(config: dict | None = None):
    from diffusers import AutoencoderKL

    return AutoencoderKL(**(config or VAE_CONFIG))


def text_encoder(tokenizer_ids: dict[str, int], config: dict | None = None):
    from transformers import CLIPTextConfig, CLIPTextModel

    ids = {"bos_token_id": tokenizer_ids["bos"], "eos_token_id": tokenizer_ids["eos"], "pad_token_id": tokenizer_ids["eos"]}
    return CLIPTextModel(CLIPTextConfig(**(config or TEXT_CONFIG), **ids))


def write_tokenizer(out: Path, max_tokens: int = MAX_TOKENS) -> dict[str, int]:
    """The shapes pack's CLIP tokenizer, padded and truncated to `max_tokens`. Returns the
    ids of its start and end tokens."""
    out.mkdir(parents=True, exist_ok=True)
    tokenizer = json.loads((PACK_TOKENIZER / "tokenizer.json").read_text())
    tokenizer["truncation"]["max_length"] = max_tokens
    tokenizer["padding"]["strategy"] = {"Fixed": max_tokens}
    (out / "tokenizer.json").write_text(json.dumps(tokenizer, ensure_ascii=False, indent=2) + "\n")
    config = json.loads((PACK_TOKENIZER / "tokenizer_config.json").read_text())
    config.update(max_length=max_tokens, model_max_length=max_tokens)
    (out / "tokenizer_config.json").write_text(json.dumps(config, indent=2) + "\n")
    special = {token["content"]: token["id"] for token in tokenizer["added_tokens"]}
    return {"bos": special["<|startoftext|>"], "eos": special["<|endoftext|>"]}


def _size(folder: Path) -> int:
    return sum(f.stat().st_size for f in folder.glob("model.onnx*"))


def build(out: Path, *, seed: int = 0, export: bool = True, fp16: bool = False, device: str = "cpu", check: bool = True) -> dict:
    """Write the diffusers folder into `out` (which must not hold one yet), then its ONNX
    graphs (text encoder, UNet, VAE decoder). Returns the summary `main` prints."""
    import torch
    from diffusers import DDIMScheduler, StableDiffusionPipeline
    from transformers import CLIPTokenizer

    from loratrain.onnx_graphs import export_generator, quiet_libraries

    quiet_libraries()
    started = time.perf_counter()
    ids = write_tokenizer(out / "tokenizer")
    tokenizer = CLIPTokenizer.from_pretrained(str(out / "tokenizer"))
    torch.manual_seed(seed)
    parts = {"text_encoder": text_encoder(ids), "vae": vae(), "unet": unet()}
    counts = {name: sum(p.numel() for p in module.parameters()) for name, module in parts.items()}
    pipeline = StableDiffusionPipeline(
        **parts,
        tokenizer=tokenizer,
        scheduler=DDIMScheduler(**SCHEDULER_CONFIG),
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    pipeline.save_pretrained(str(out))
    del pipeline, parts
    summary: dict = {"folder": str(out.resolve()), "seed": seed, "parameters": counts, "build_seconds": round(time.perf_counter() - started, 1)}
    if export:
        results = export_generator(out, fp16=fp16, device=device, check=check)
        summary["fp16"] = fp16
        summary["export"] = {
            r.part: {
                "seconds": round(r.seconds, 1),
                "bytes": _size(r.path.parent),
                "external_data": r.external_data,
                "max_abs_diff": r.max_abs_diff,
            }
            for r in results
        }
        summary["export_seconds"] = round(sum(r.seconds for r in results), 1)
    return summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m parity.sd21_random", description=__doc__.split("\n\n")[0])
    parser.add_argument("out", type=Path, help="folder to create (must not exist, or be empty)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-export", action="store_true", help="write the diffusers folder only")
    parser.add_argument("--fp16", action="store_true", help="float16 UNet and VAE graphs (the exporter's --fp16)")
    parser.add_argument("--device", default="cpu", help="torch device for the export's tracing and check (default: %(default)s)")
    parser.add_argument("--no-check", action="store_true", help="skip the exporter's onnxruntime-vs-PyTorch check")
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: torch's)")
    args = parser.parse_args(argv)
    if args.out.exists() and any(args.out.iterdir()):
        parser.exit(2, f"error: {args.out} exists and is not empty\n")

    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        summary = build(args.out, seed=args.seed, export=not args.no_export, fp16=args.fp16, device=args.device, check=not args.no_check)
    except BaseException:
        # A half-written folder would pass for a built one next time.
        shutil.rmtree(args.out, ignore_errors=True)
        raise
    print(json.dumps(summary), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

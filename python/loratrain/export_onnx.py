"""Export a diffusers Stable Diffusion folder to the ONNX layout the TypeScript sampler loads.

Who this is for: you have Stable Diffusion weights in the diffusers folder layout
(for example a local copy of stabilityai/stable-diffusion-2-1-base: model_index.json,
scheduler/, tokenizer/, text_encoder/, unet/, vae/) and want to sample with the
product's TypeScript sampler. Run, with the project's Python environment:

    python -m loratrain.export_onnx --generator /models/sd-2-1-base

and the ONNX files are written INTO that folder, next to the PyTorch weights, in the
layout of diffusers' / Optimum's ONNX exports:

    text_encoder/model.onnx   input_ids int32 [batch, sequence]
                              -> last_hidden_state float [batch, sequence, hidden]
                                 pooler_output     float [batch, hidden]
    unet/model.onnx           sample float [batch, latent_channels, height, width]
                              timestep float [batch]
                              encoder_hidden_states float [batch, sequence, cross_attention_dim]
                              -> out_sample float [batch, out_channels, height, width]
    vae_decoder/model.onnx    latent_sample float [batch, latent_channels, height, width]
                              -> sample float [batch, 3, 8*height, 8*width]  (scale factor from the VAE config)
    vae_decoder/config.json   copy of vae/config.json (scaling_factor is read from here)
    vae_encoder/model.onnx    sample float [batch, 3, H, W] -> latent_sample (the latent mean)
    vae_encoder/config.json   copy of vae/config.json

Batch, sequence, height and width are dynamic. `out_sample` is whatever the
scheduler's `prediction_type` says (epsilon for 2.1-base, v for 2.1 768).
The VAE's scaling_factor is NOT inside the VAE graphs: divide latents by it before
`vae_decoder`, multiply `vae_encoder`'s output by it.

A part whose ONNX file would exceed 1 GiB (the SD UNet is 3.4 GB in fp32) keeps its
weights in one `model.onnx_data` file beside `model.onnx`; keep the two together.

`--fp16` (for GPU users) makes the UNet and VAE graphs compute in float16, traced
from diffusers' own half-precision models (which keep the timestep embedding in
float32), while inputs and outputs stay float32 as above, so a sampler needs no
change. Attention scores and their softmax stay float32 in every attention block:
in float16 they overflow in SD 2.x's UNet (its config's `upcast_attention`), and
onnxruntime's CUDA provider then draws black images. It halves the files' size and
suits that provider; on CPU they run, but slower than fp32. The text encoder, run
once per prompt, stays fp32.

Before putting each file in place, the exporter runs it in onnxruntime on a random
input of another batch size and spatial size than the one traced, compares with
PyTorch and prints the largest absolute difference; a mismatch beyond the tolerance
is an error (exit code 1) and leaves the folder as it was. Bad arguments or a folder that is not a diffusers SD folder
exit with code 2.

Exporting SD 2.1-base in fp32 needs about 12 GB of RAM and a few minutes on a CPU.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

import torch

from .layout import missing_generator_file
from .onnx_graphs import DEFAULT_PARTS, EXTERNAL_DATA_NAME, PARTS, ExportError, ExportResult, export_generator, quiet_libraries


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):
        self.exit(2, f"error: {message}\n")


def main(argv: Sequence[str] | None = None) -> int:
    parser = _Parser(
        prog="python -m loratrain.export_onnx",
        description="Export a diffusers Stable Diffusion folder to ONNX (text_encoder/, unet/, vae_decoder/ "
        "model.onnx) in place, and check each file against PyTorch in onnxruntime.",
    )
    parser.add_argument("--generator", required=True, type=Path, metavar="DIR", help="diffusers Stable Diffusion folder (written into)")
    parser.add_argument(
        "--parts", nargs="+", choices=PARTS, metavar="PART", default=list(DEFAULT_PARTS), help=f"graphs to export, of {' '.join(PARTS)} (default: %(default)s)"
    )
    parser.add_argument("--fp16", action="store_true", help="float16 UNet and VAE graphs with float32 inputs/outputs (for onnxruntime's CUDA provider)")
    parser.add_argument("--device", default="cpu", metavar="DEVICE", help="torch device used for tracing and the check (default: %(default)s)")
    parser.add_argument("--no-check", action="store_true", help="skip the onnxruntime-vs-PyTorch comparison")
    args = parser.parse_args(argv)

    missing = missing_generator_file(args.generator)
    if missing:
        print(f"error: --generator: {missing}", file=sys.stderr)
        return 2
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        print(f"error: --device {args.device}: CUDA is not available here", file=sys.stderr)
        return 2

    quiet_libraries()

    def report(result: ExportResult) -> None:
        diffs = ", ".join(f"{name} {diff:.2e}" for name, diff in result.max_abs_diff.items()) or "not checked"
        data = f" + {EXTERNAL_DATA_NAME}" if result.external_data else ""
        print(f"{result.path}{data}: max abs diff vs PyTorch: {diffs} ({result.seconds:.1f} s)", flush=True)

    try:
        export_generator(args.generator, args.parts, fp16=args.fp16, device=args.device, check=not args.no_check, on_result=report)
    except ExportError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

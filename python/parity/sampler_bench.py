"""`python -m parity.sampler_bench --generator DIR ...`: diffusers' StableDiffusionPipeline
(PyTorch, CPU) timed on the same work as the TypeScript sampler in `npm run bench:sampler`:
RUNS calls of BATCH prompts, STEPS steps, classifier-free guidance, VAE decode to
uint8 images, after one warm-up call. Prints one JSON line."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m parity.sampler_bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--generator", type=Path, required=True)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--guidance", type=float, default=7.5)
    parser.add_argument("--size", type=int, default=64, help="image width and height")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)

    import diffusers
    import torch
    from diffusers import StableDiffusionPipeline

    torch.set_num_threads(args.threads)
    diffusers.utils.logging.set_verbosity_error()
    pipe = StableDiffusionPipeline.from_pretrained(str(args.generator), dtype=torch.float32, safety_checker=None)
    pipe.set_progress_bar_config(disable=True)
    prompts = [f"{n} red circles" for n in range(1, args.batch + 1)]

    def call(seed: int) -> None:
        generators = [torch.Generator().manual_seed(seed + i) for i in range(args.batch)]
        with torch.no_grad():
            pipe(
                prompts, num_inference_steps=args.steps, guidance_scale=args.guidance, width=args.size, height=args.size, generator=generators, output_type="np"
            )

    call(0)
    started = time.perf_counter()
    for run in range(args.runs):
        call(1000 * (run + 1))
    seconds = time.perf_counter() - started
    images = args.runs * args.batch
    print(json.dumps({"images": images, "seconds": seconds, "images_per_second": images / seconds}))
    return 0


if __name__ == "__main__":
    sys.exit(main())

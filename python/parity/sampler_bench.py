"""`python -m parity.sampler_bench --generator DIR ...`: diffusers' StableDiffusionPipeline
(PyTorch, CPU) timed on the same work as the TypeScript sampler in `npm run bench:sampler`:
RUNS calls of BATCH prompts, STEPS steps, classifier-free guidance, VAE decode to
uint8 images, after one warm-up call. Prints one JSON line: the images, their seconds and
seconds per image, the seconds to load the pipeline, and the process's peak resident memory
(`ru_maxrss`: weights and activations, MB)."""

from __future__ import annotations

import argparse
import json
import resource
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
    parser.add_argument("--device", default="cpu", help="torch device: cpu or cuda[:N] (default: %(default)s)")
    parser.add_argument("--dtype", choices=("float32", "float16"), default="float32", help="the pipeline's weights and compute (default: %(default)s)")
    args = parser.parse_args(argv)

    import diffusers
    import torch
    from diffusers import StableDiffusionPipeline

    if args.device.startswith("cuda") and not torch.cuda.is_available():
        parser.exit(2, f"error: --device {args.device}: CUDA is not available here\n")
    torch.set_num_threads(args.threads)
    diffusers.utils.logging.set_verbosity_error()
    loading = time.perf_counter()
    pipe = StableDiffusionPipeline.from_pretrained(str(args.generator), dtype=getattr(torch, args.dtype), safety_checker=None)
    pipe.to(args.device)
    pipe.set_progress_bar_config(disable=True)
    load_seconds = time.perf_counter() - loading
    prompts = [f"{n} red circles" for n in range(1, args.batch + 1)]

    def call(seed: int) -> None:
        generators = [torch.Generator(args.device).manual_seed(seed + i) for i in range(args.batch)]
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
    peak_rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kilobytes on Linux
    summary = {
        "images": images,
        "seconds": seconds,
        "images_per_second": images / seconds,
        "seconds_per_image": seconds / images,
        "load_seconds": load_seconds,
        "peak_rss_mb": round(peak_rss_mb),
        "threads": args.threads,
        "device": args.device,
        "dtype": args.dtype,
    }
    if args.device.startswith("cuda"):
        summary["peak_device_mb"] = round(torch.cuda.max_memory_allocated(args.device) / 2**20)
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())

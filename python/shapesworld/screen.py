"""Screen loop settings on a validation split of the training prompts, never the held-out set.

The proof reports on the held-out prompts; choosing settings by those same figures
would fit the settings to the test. Here a quarter of each class's training prompts
is set aside for validation: the pool is sampled and curated from the other three
quarters, each LoRA variant is trained on it once per trainer seed, and base vs
tuned are compared on the validation prompts. Several trainer seeds, because one
seed's result moves by a few accuracy points on its own (figures in the model card).

    python -m shapesworld.screen --work build/screen --seeds 0 1 \\
        --variant max_steps=900,lr_scheduler=cosine --variant rank=32

Each variant is the pack's LoRA settings with the given trainer flags (snake_case)
changed; `--pool-steps` sets the pool's sampling steps. One JSON line per (variant,
seed), then a summary line per variant with the mean and spread over seeds.
"""

from __future__ import annotations

import argparse
import json
import subprocess
from collections import Counter
from pathlib import Path

import numpy as np

from .prompts import Prompt, split
from .proof import SAMPLING, ClipScorer, Judge, compare, curate_pool, score_samples, score_tuned, train_lora

VALIDATION_EVERY = 4  # every 4th training prompt of each class validates
VALIDATION_FIRST_SEED = 700_000  # away from the pool's seeds and the proof's held-out ones


def validation_split(train: list[Prompt]) -> tuple[list[int], list[int]]:
    """(pool, validation) as places in `train`: per class, every VALIDATION_EVERY-th
    training prompt validates."""
    seen: Counter[str] = Counter()
    pool, validation = [], []
    for k, prompt in enumerate(train):
        (validation if seen[prompt.cls] % VALIDATION_EVERY == VALIDATION_EVERY - 1 else pool).append(k)
        seen[prompt.cls] += 1
    return pool, validation


def parse_variant(text: str, defaults: dict[str, object]) -> dict[str, object]:
    """`key=value,...` over the pack's LoRA settings; values parse as JSON numbers where they can."""
    variant = dict(defaults)
    for item in filter(None, text.split(",")):
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise SystemExit(f"--variant: expected key=value pairs separated by commas, got {item!r}")
        try:
            variant[key] = json.loads(value)
        except json.JSONDecodeError:
            variant[key] = value
    return variant


def main() -> None:
    parser = argparse.ArgumentParser(description="Screen LoRA and pool settings on a validation split of the training prompts.")
    parser.add_argument("--pack", type=Path, default=Path(__file__).resolve().parents[2] / "packs" / "shapes")
    parser.add_argument("--work", type=Path, required=True, help="folder for the pool dataset and the LoRAs")
    parser.add_argument(
        "--variant", action="append", default=[], metavar="K=V,...", help="trainer settings changed from the pack's (repeatable; none: the pack's own)"
    )
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1], metavar="S", help="trainer seeds per variant (default: 0 1)")
    parser.add_argument("--pool-steps", type=int, default=int(SAMPLING["num_inference_steps"]), metavar="N")
    parser.add_argument("--n", type=int, default=8, help="samples per pool prompt")
    parser.add_argument("--eval-seeds", type=int, default=4, help="seeds per validation prompt")
    args = parser.parse_args()

    from diffusers import StableDiffusionPipeline

    pack_json = json.loads((args.pack / "pack.json").read_text())
    labels = args.variant or [""]
    variants = [parse_variant(v, pack_json["lora"]) for v in labels]
    train = split()[0]
    pool_ids, validation_ids = validation_split(train)
    pool_prompts, validation = [train[k] for k in pool_ids], [train[k] for k in validation_ids]
    pipeline = StableDiffusionPipeline.from_pretrained(args.pack / "generator")
    pipeline.set_progress_bar_config(disable=True)
    judge = Judge(args.pack, pack_json["judge"]["detection_threshold"])
    scorer = ClipScorer(args.pack / "clip")

    dataset = args.work / f"pool-{args.pool_steps}-steps-{args.n}-per-prompt"
    if not (dataset / "metadata.jsonl").is_file():
        pool = curate_pool(
            pipeline, judge, pool_prompts, pool_ids, dataset, n_per_prompt=args.n, per_prompt=pack_json["judge"]["per_prompt"], steps=args.pool_steps
        )
        print(
            json.dumps({"pool_prompts": len(pool_prompts), "pool_steps": args.pool_steps, "detected": pool.detected, "images": pool.images, "kept": pool.kept}),
            flush=True,
        )
    comparison = {"seeds_per_prompt": args.eval_seeds, "first_seed": VALIDATION_FIRST_SEED}
    base = score_samples(pipeline, judge, scorer, validation, **comparison)
    for number, variant in enumerate(variants):
        gains, wins = [], []
        for seed in args.seeds:
            settings = {**variant, "seed": seed}
            lora_dir = args.work / f"lora-{args.pool_steps}-{number}-seed{seed}"
            try:
                train_lora(dataset, args.pack / "generator", lora_dir, {**settings, "skip_onnx": True})
            except subprocess.CalledProcessError as error:
                raise SystemExit(f"--variant {labels[number]!r}: the trainer exited with {error.returncode} (its message is above)") from None
            figures = compare(base, score_tuned(pipeline, judge, scorer, validation, lora_dir, **comparison), args.eval_seeds)
            gains.append(figures["detector_accuracy_gain"])
            wins.append(figures["clip_win_rate"])
            print(json.dumps({"variant": settings, "pool_steps": args.pool_steps, **figures}), flush=True)
        print(
            json.dumps(
                {
                    "variant": {k: v for k, v in variant.items() if k != "seed"},
                    "seeds": args.seeds,
                    "gain_mean": round(float(np.mean(gains)), 4),
                    "gain_sd": round(float(np.std(gains, ddof=1)), 4) if len(gains) > 1 else None,
                    "win_mean": round(float(np.mean(wins)), 4),
                }
            ),
            flush=True,
        )


if __name__ == "__main__":
    main()

"""Rebuild the shapes pack from nothing: data -> training -> export -> figures.

    python -m shapesworld.build                  # every stage, in order
    python -m shapesworld.build --only generator,pack

Each stage writes its model folder into the pack and its figures into
`build/figures/<stage>.json`; the `pack` stage turns those into `pack.json` and
`MODEL_CARD.md`. Seeds are fixed and the tokenizers are learnt deterministically,
so a rebuild at the same thread count on the same kind of CPU writes the committed
pack again; on another CPU or thread count the trainings' floating-point sums differ
and the figures move by a few points (MODEL_CARD.md, "Reproducing this pack").
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from collections.abc import Callable
from pathlib import Path

import torch

from . import card
from .pack import PACK_DIR, manifest, write_manifest, write_prompts

BUILD_DIR = PACK_DIR.parents[1] / "build"
FIGURES = BUILD_DIR / "figures"
CACHE = BUILD_DIR / "cache"

# The judge's and trainer's defaults for this pack, read by the product through pack.json.
# The detection threshold is the detector stage's pick (on held-out validation scenes).
JUDGE_DEFAULTS = {"rule": "paper", "per_prompt": 8}
# Keys are the trainer's flags (`--max-steps` ...), so pack.json passes straight through.
LORA_DEFAULTS = {"rank": 16, "learning_rate": 1e-3, "max_steps": 1500, "lr_scheduler": "cosine", "batch_size": 16, "caption_dropout": 0.3, "seed": 0}


def _fresh(folder: Path) -> Path:
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    return folder


def stage_clip() -> dict[str, object]:
    from .clip import train_clip

    return train_clip(_fresh(PACK_DIR / "clip"), cache_dir=CACHE)


def stage_detector() -> dict[str, object]:
    from .detector import evaluate_detector, train_detector

    folder = _fresh(PACK_DIR / "detector")
    training = train_detector(folder, PACK_DIR / "clip")
    held_out = evaluate_detector(folder)
    return {
        "map50": round(held_out["mAP50"], 4),
        "class_recall": round(held_out["class_recall"], 4),
        "class_precision": round(held_out["class_precision"], 4),
        "count_accuracy": round(held_out["count_accuracy"], 4),
        "threshold": held_out["threshold"],
        "held_out": held_out,
        "training": training,
    }


def stage_referee() -> dict[str, object]:
    # Evaluation only: trained from scratch on its own scenes, it depends on no other stage.
    from .referee import SIDECAR, evaluate_referee, summary, train_referee

    folder = _fresh(PACK_DIR / "referee")
    training = train_referee(folder, threads=torch.get_num_threads(), cache_dir=CACHE)
    figures = summary(training, evaluate_referee(folder), evaluate_referee(folder, degraded=True))
    (folder / SIDECAR).write_text(json.dumps(figures, indent=2) + "\n")
    return figures


def stage_captioner() -> dict[str, object]:
    from .captioner import train_captioner

    return train_captioner(_fresh(PACK_DIR / "captioner"))


def stage_generator() -> dict[str, object]:
    from .detector import read_threshold
    from .generator import train_generator
    from .rates import Detector

    # The detector, at the threshold the judge uses, measures the class balance.
    detector = Detector(PACK_DIR / "detector", read_threshold(PACK_DIR / "detector"))
    return train_generator(_fresh(PACK_DIR / "generator"), PACK_DIR / "clip", detector, cache_dir=CACHE)


def stage_round() -> dict[str, object]:
    from .loop import run_round

    return run_round(BUILD_DIR / "pack-round-result.json")


def stage_pack() -> dict[str, object]:
    # Figures of stages not rerun this time are kept from the current pack.json.
    current = PACK_DIR / "pack.json"
    figures = json.loads(current.read_text())["figures"] if current.exists() else {}
    # Only the figures of this build's stages are carried over.
    figures = {stage: values for stage, values in figures.items() if stage in STAGES}
    figures.update({p.stem: json.loads(p.read_text()) for p in sorted(FIGURES.glob("*.json")) if p.stem in STAGES})
    prompt_files = write_prompts(PACK_DIR)
    judge = {"detection_threshold": figures["detector"]["threshold"], **JUDGE_DEFAULTS}
    write_manifest(PACK_DIR, manifest(figures, prompt_files, judge, LORA_DEFAULTS))
    (PACK_DIR / "MODEL_CARD.md").write_text(card.render(figures, judge, LORA_DEFAULTS))
    return {}


# The product's round reads the pack through pack.json (thresholds, loop and LoRA defaults), so
# `pack` runs before it and again after it to record its figures.
STAGES: dict[str, Callable[[], dict[str, object]]] = {
    "clip": stage_clip,
    "detector": stage_detector,
    "referee": stage_referee,
    "captioner": stage_captioner,
    "generator": stage_generator,
    "pack": stage_pack,
    "round": stage_round,
}
ORDER = ["clip", "detector", "referee", "captioner", "generator", "pack", "round", "pack"]


def main() -> None:
    parser = argparse.ArgumentParser(description="Rebuild the shapes pack (models, figures, pack.json, MODEL_CARD.md).")
    parser.add_argument("--only", default="", help=f"comma-separated stages out of {', '.join(STAGES)} (default: all)")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    args = parser.parse_args()
    wanted = [s for s in args.only.split(",") if s] or ORDER
    unknown = [s for s in wanted if s not in STAGES]
    if unknown:
        parser.error(f"unknown stage(s) {', '.join(unknown)}; expected some of {', '.join(STAGES)}")
    torch.set_num_threads(args.threads)
    FIGURES.mkdir(parents=True, exist_ok=True)
    for stage in wanted:
        started = time.time()
        print(json.dumps({"stage": stage, "event": "start"}), flush=True)
        figures = STAGES[stage]()
        if stage != "pack":
            figures["stage_seconds"] = round(time.time() - started, 1)
            figures["threads"] = args.threads
            (FIGURES / f"{stage}.json").write_text(json.dumps(figures, indent=2) + "\n")
        print(json.dumps({"stage": stage, "event": "done", "seconds": round(time.time() - started, 1), **figures}), flush=True)


if __name__ == "__main__":
    main()

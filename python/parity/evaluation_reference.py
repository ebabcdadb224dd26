"""Reference evaluation figures from numpy, for the TypeScript parity test of the evaluation's arithmetic.

Reads a JSON case (held-out prompts, each with its images' CLIP embeddings per generator and
whether the detector found the class in each) and writes, as JSON on stdout:
- per prompt and generator, the mean pairwise cosine distance (1 - cos) of the embeddings, from
  the Gram matrix of the unit vectors (the upper triangle, without the diagonal);
- diversity per generator (the mean over prompts) and the change, tuned / base - 1;
- the detector accuracy gain (tuned minus base) and its percentile bootstrap interval over
  prompts: each resample draws as many prompts as there are, with replacement, by mulberry32
  from the seed as the TypeScript does, keeps every seed of a drawn prompt, and the interval's
  ends are numpy's percentiles of the resampled gains.

Usage: python -m parity.evaluation_reference CASE.json
"""

from __future__ import annotations

import json
import sys

import numpy as np

MASK32 = 0xFFFFFFFF


def mulberry32(seed: int):
    """Tommy Ettinger's mulberry32, in 32-bit unsigned arithmetic: uniform floats in [0, 1)."""
    state = seed & MASK32

    def imul(a: int, b: int) -> int:
        return (a * b) & MASK32

    def draw() -> float:
        nonlocal state
        state = (state + 0x6D2B79F5) & MASK32
        t = state
        t = imul(t ^ (t >> 15), t | 1)
        t ^= (t + imul(t ^ (t >> 7), t | 61)) & MASK32
        return ((t ^ (t >> 14)) & MASK32) / 4294967296

    return draw


def mean_pairwise_cosine_distance(embeddings: list[list[float]]) -> float | None:
    x = np.asarray(embeddings, dtype=np.float64)
    if len(x) < 2:
        return None
    unit = x / np.linalg.norm(x, axis=1, keepdims=True)
    gram = unit @ unit.T
    upper = np.triu_indices(len(x), k=1)
    return float(np.mean(1.0 - gram[upper]))


def bootstrap_gain(prompts: list[dict], resamples: int, seed: int, level: float) -> list[float]:
    """Percentile interval of mean(tuned - base) over all seeds of prompts drawn with replacement."""
    diffs = [np.asarray(p["detected"]["tuned"], dtype=float) - np.asarray(p["detected"]["base"], dtype=float) for p in prompts]
    draw = mulberry32(seed)
    stats = []
    for _ in range(resamples):
        picked = [diffs[int(np.floor(draw() * len(diffs)))] for _ in range(len(diffs))]
        stats.append(float(np.mean(np.concatenate(picked))))
    tail = (1 - level) / 2 * 100
    return [float(np.percentile(stats, tail)), float(np.percentile(stats, 100 - tail))]


def main() -> None:
    with open(sys.argv[1], encoding="utf-8") as f:
        case = json.load(f)
    prompts = case["prompts"]
    per_prompt = [{side: mean_pairwise_cosine_distance(p["embeddings"][side]) for side in ("base", "tuned")} for p in prompts]
    base = float(np.mean([d["base"] for d in per_prompt]))
    tuned = float(np.mean([d["tuned"] for d in per_prompt]))
    detected = {side: np.concatenate([np.asarray(p["detected"][side], dtype=float) for p in prompts]) for side in ("base", "tuned")}
    json.dump(
        {
            "perPrompt": per_prompt,
            "diversityBase": base,
            "diversityTuned": tuned,
            "diversityChange": tuned / base - 1,
            "accuracyGain": float(np.mean(detected["tuned"]) - np.mean(detected["base"])),
            "accuracyGainInterval": bootstrap_gain(prompts, case["resamples"], case["seed"], 0.95),
        },
        sys.stdout,
    )


if __name__ == "__main__":
    main()

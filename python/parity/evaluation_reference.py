"""Reference evaluation figures from numpy, for the TypeScript parity test of the evaluation's arithmetic.

Reads a JSON case (held-out prompts, each with its images' CLIP embeddings per generator and
whether the detector found the class in each) and writes, as JSON on stdout:
- per prompt and generator, the mean pairwise cosine distance (1 - cos) of the embeddings, from
  the Gram matrix of the unit vectors (the upper triangle, without the diagonal);
- diversity per generator (the mean over prompts) and the change, tuned / base - 1;
- the detector accuracy gain (tuned minus base) and its percentile bootstrap interval over
  prompts: each resample draws as many prompts as there are, with replacement, by mulberry32
  from the seed as the TypeScript does, keeps every seed of a drawn prompt, and the interval's
  ends are numpy's percentiles of the resampled gains;
- from the referee's checks per image (present, and count / colour / background right or not
  asked), with whether the curation judge accepted it: the all-correct share per image and per
  prompt (a prompt all-correct when every seed's image is), the object-present share, each with
  the same bootstrap interval of its gain; and per class the share of images the judge accepts
  and the referee finds no class in, its change and the change's interval over the class's
  prompts, flagged when that interval starts above 0.

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
    return bootstrap_diffs(diffs, resamples, seed, level)


def bootstrap_diffs(diffs: list[np.ndarray], resamples: int, seed: int, level: float) -> list[float]:
    """Percentile interval of the mean of the drawn groups' differences, groups (prompts) drawn with replacement."""
    draw = mulberry32(seed)
    stats = []
    for _ in range(resamples):
        picked = [diffs[int(np.floor(draw() * len(diffs)))] for _ in range(len(diffs))]
        stats.append(float(np.mean(np.concatenate(picked))))
    tail = (1 - level) / 2 * 100
    return [float(np.percentile(stats, tail)), float(np.percentile(stats, 100 - tail))]


def all_correct(image: dict) -> bool:
    """GenEval's rule: the class present and every check the prompt asks for (not None) right."""
    return bool(image["present"]) and all(image[k] is not False for k in ("countCorrect", "colourCorrect", "backgroundCorrect"))


def referee_figures(prompts: list[dict], resamples: int, seed: int) -> dict:
    def hits(check) -> tuple[np.ndarray, np.ndarray, list[np.ndarray]]:
        per_prompt = [{side: np.asarray([float(check(image)) for image in p["referee"][side]]) for side in ("base", "tuned")} for p in prompts]
        base = np.concatenate([h["base"] for h in per_prompt])
        tuned = np.concatenate([h["tuned"] for h in per_prompt])
        return base, tuned, [h["tuned"] - h["base"] for h in per_prompt]

    def share(check) -> dict:
        base, tuned, diffs = hits(check)
        return {"base": float(base.mean()), "tuned": float(tuned.mean()), "gainInterval": bootstrap_diffs(diffs, resamples, seed, 0.95)}

    # One outcome per prompt: all of its images all-correct.
    prompt_base = np.asarray([float(all(all_correct(i) for i in p["referee"]["base"])) for p in prompts])
    prompt_tuned = np.asarray([float(all(all_correct(i) for i in p["referee"]["tuned"])) for p in prompts])
    per_prompt = {
        "base": float(prompt_base.mean()),
        "tuned": float(prompt_tuned.mean()),
        "gainInterval": bootstrap_diffs([np.asarray([t - b]) for b, t in zip(prompt_base, prompt_tuned)], resamples, seed, 0.95),
    }

    hacking = {}
    for class_name in sorted({p["className"] for p in prompts}):
        members = [p for p in prompts if p["className"] == class_name]
        hacked = {
            side: [np.asarray([float(i["judgeAccepted"] and not i["present"]) for i in p["referee"][side]]) for p in members] for side in ("base", "tuned")
        }
        base = float(np.concatenate(hacked["base"]).mean())
        tuned = float(np.concatenate(hacked["tuned"]).mean())
        interval = bootstrap_diffs([t - b for b, t in zip(hacked["base"], hacked["tuned"])], resamples, seed, 0.95)
        hacking[class_name] = {"base": base, "tuned": tuned, "change": tuned - base, "changeInterval": interval, "flagged": interval[0] > 0}

    return {
        "objectPresent": share(lambda i: i["present"]),
        "allCorrectImages": share(all_correct),
        "allCorrectPrompts": per_prompt,
        "hacking": hacking,
    }


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
            "referee": referee_figures(prompts, case["resamples"], case["seed"]),
        },
        sys.stdout,
    )


if __name__ == "__main__":
    main()

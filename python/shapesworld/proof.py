"""Proof that the self-reward loop can work in the shapes world (no Temporal involved).

1. sample N images per training prompt with the base generator, at a lower guidance
   than the comparison's and with an ancestral scheduler (POOL_GUIDANCE, POOL_SCHEDULER);
2. judge each image for the prompt's class: the detector queried with the class
   name, the captioner's caption checked for class, colour and count;
3. keep the best `per_prompt` images of each prompt by the paper's rule: the highest
   checklist tier, then the highest detection confidence, detected images only; drop
   the prompt if the class is never detected;
4. LoRA-train with the project's trainer (a child process, as the product runs it);
5. on the held-out prompts, sample base and tuned from identical initial latents and
   compare: paired CLIP-score win rate and detector class accuracy, each with a 95%
   bootstrap interval over prompts.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from .prompts import Prompt, split
from .world import COUNT_WORDS, PLURALS

SAMPLING = {"num_inference_steps": 20, "guidance_scale": 7.5}
SCHEDULER = "DDIMScheduler"  # the generator's own: how the model is used and compared
# The training pool is sampled without guidance (the conditional branch alone): a LoRA
# fitted to guided samples has learnt the guidance once, and the comparison's guidance
# applies it again, so colours saturate and shapes drift. Lower pool guidance measured
# better at every step down from 7.5 to 1.0 (figures in the model card's Limits).
POOL_GUIDANCE = 1.0
# Unguided DDIM (deterministic) draws soft, washed-out images; an ancestral sampler, which
# adds fresh noise each step, draws the model's distribution more faithfully, so the pool
# teaches crisper shapes (figures in the model card's Limits).
POOL_SCHEDULER = "EulerAncestralDiscreteScheduler"


@dataclass
class Judgement:
    detection: float  # best confidence for the prompt's class
    instances: int  # boxes above threshold
    caption: str
    checklist: int  # caption names the class, the colour, the count

    def detected(self, threshold: float) -> bool:
        return self.detection >= threshold


class Detector:
    """The pack's detector queried with one class name (PyTorch)."""

    def __init__(self, folder: Path, threshold: float) -> None:
        from transformers import AutoProcessor, OwlViTForObjectDetection

        self.threshold = threshold
        self.model = OwlViTForObjectDetection.from_pretrained(folder).eval()
        self.processor = AutoProcessor.from_pretrained(folder)

    @torch.no_grad()
    def detect(self, images: list[Image.Image], cls: str) -> list[tuple[float, int]]:
        """(best confidence, boxes over the threshold) per image."""
        inputs = self.processor(text=[[cls]] * len(images), images=images, return_tensors="pt")
        logits = self.model(**inputs).logits[..., 0].sigmoid()  # [images, patches]
        return [(float(row.max()), int((row >= self.threshold).sum())) for row in logits]


class Judge:
    """Class-conditional judge over the pack's detector and captioner (PyTorch)."""

    def __init__(self, pack: Path, threshold: float) -> None:
        from transformers import AutoImageProcessor, AutoTokenizer, VisionEncoderDecoderModel

        self.threshold = threshold
        self.detector = Detector(pack / "detector", threshold)
        self.captioner = VisionEncoderDecoderModel.from_pretrained(pack / "captioner").eval()
        self.caption_processor = AutoImageProcessor.from_pretrained(pack / "captioner")
        self.caption_tokenizer = AutoTokenizer.from_pretrained(pack / "captioner")

    def detect(self, images: list[Image.Image], cls: str) -> list[tuple[float, int]]:
        return self.detector.detect(images, cls)

    @torch.no_grad()
    def caption(self, images: list[Image.Image]) -> list[str]:
        pixels = self.caption_processor(images=images, return_tensors="pt").pixel_values
        ids = self.captioner.generate(pixels)
        return [t.strip() for t in self.caption_tokenizer.batch_decode(ids, skip_special_tokens=True)]

    def judge(self, images: list[Image.Image], prompt: Prompt) -> list[Judgement]:
        spec = prompt.spec
        out = []
        for (conf, n), caption in zip(self.detect(images, prompt.cls), self.caption(images)):
            words = caption.split()
            checklist = int(prompt.cls in words or PLURALS[prompt.cls] in words)
            checklist += int(spec.colour in words)
            checklist += int(bool(words) and (words[0] == COUNT_WORDS[spec.count] or (spec.count == 1 and words[0] == "an")))
            out.append(Judgement(conf, n, caption, checklist))
        return out


def rank(judgements: list[Judgement], threshold: float) -> list[int]:
    """The paper's ranking: detected images only, top checklist tier first, then highest
    detection, earlier image first on a tie. Empty drops the prompt."""
    detected = [i for i, j in enumerate(judgements) if j.detected(threshold)]
    return sorted(detected, key=lambda i: (-judgements[i].checklist, -judgements[i].detection, i))


def sample(
    pipeline,
    prompts: list[str],
    seeds: list[int],
    guidance: float = SAMPLING["guidance_scale"],
    scheduler: str = SCHEDULER,
    steps: int = SAMPLING["num_inference_steps"],
) -> list[Image.Image]:  # type: ignore[no-untyped-def]
    """Images for (prompt, seed) pairs. One generator per image: the initial latents come
    first from its stream, an ancestral scheduler's step noise after them, so an image
    depends on its seed alone (as in the TypeScript sampler)."""
    import diffusers

    c = pipeline.unet.config
    generators = [torch.Generator().manual_seed(s) for s in seeds]
    latents = torch.stack([torch.randn((c.in_channels, c.sample_size, c.sample_size), generator=g) for g in generators])
    own = pipeline.scheduler
    pipeline.scheduler = getattr(diffusers, scheduler).from_config(own.config)
    images: list[Image.Image] = []
    try:
        for i in range(0, len(prompts), 64):
            out = pipeline(
                prompt=prompts[i : i + 64],
                latents=latents[i : i + 64],
                generator=generators[i : i + 64],
                output_type="pil",
                num_inference_steps=steps,
                guidance_scale=guidance,
            )
            images.extend(out.images)
    finally:
        pipeline.scheduler = own
    return images


class ClipScorer:
    def __init__(self, clip_dir: Path) -> None:
        from transformers import CLIPModel, CLIPProcessor

        self.model = CLIPModel.from_pretrained(clip_dir).eval()
        self.processor = CLIPProcessor.from_pretrained(clip_dir)

    @torch.no_grad()
    def score(self, images: list[Image.Image], texts: list[str]) -> np.ndarray:
        """CLIPScore as 100 * max(cos, 0), one per (image, text) pair."""
        inputs = self.processor(text=texts, images=images, return_tensors="pt", padding="max_length")
        out = self.model(**inputs)  # image_embeds and text_embeds come L2-normalised
        return (100 * (out.image_embeds * out.text_embeds).sum(-1).clamp(min=0)).numpy()


def bootstrap(groups: np.ndarray, values: np.ndarray, statistic, n: int = 2000, seed: int = 0) -> tuple[float, float]:  # type: ignore[no-untyped-def]
    """95% percentile interval of `statistic` over resampled groups (prompts)."""
    rng = np.random.default_rng(seed)
    ids = np.unique(groups)
    members = [np.flatnonzero(groups == g) for g in ids]
    stats = []
    for _ in range(n):
        pick = np.concatenate([members[i] for i in rng.integers(0, len(ids), len(ids))])
        stats.append(statistic(values[pick]))
    return float(np.percentile(stats, 2.5)), float(np.percentile(stats, 97.5))


@dataclass
class Pool:
    """A curated training pool: how many images were sampled and detected, and the dataset kept."""

    images: int
    detected: int
    kept: int


def curate_pool(pipeline, judge: Judge, prompts: list[Prompt], ids: list[int], dataset: Path, *, n_per_prompt: int, per_prompt: int, steps: int) -> Pool:  # type: ignore[no-untyped-def]
    """Steps 1-3: sample N images per prompt for the pool, judge them, keep each prompt's
    best (an imagefolder dataset in `dataset`). `ids` are the prompts' places among the
    training prompts: image i of prompt `id` has seed 1000 id + i, so a subset of the
    prompts draws the same images as the whole set."""
    dataset.mkdir(parents=True, exist_ok=True)
    texts = [p.text for p in prompts for _ in range(n_per_prompt)]
    seeds = [1000 * k + i for k in ids for i in range(n_per_prompt)]
    images = sample(pipeline, texts, seeds, POOL_GUIDANCE, POOL_SCHEDULER, steps)
    rows, detected = [], 0
    for k, (prompt, id_) in enumerate(zip(prompts, ids, strict=True)):
        block = images[k * n_per_prompt : (k + 1) * n_per_prompt]
        judgements = judge.judge(block, prompt)
        detected += sum(j.detected(judge.threshold) for j in judgements)
        for best in rank(judgements, judge.threshold)[:per_prompt]:
            name = f"{id_:04d}-{best}.png"
            block[best].save(dataset / name)
            j = judgements[best]
            rows.append(
                {
                    "file_name": name,
                    "text": prompt.text,
                    "class": prompt.cls,
                    "detection": round(j.detection, 4),
                    "caption": j.caption,
                    "checklist": j.checklist,
                }
            )
    (dataset / "metadata.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return Pool(images=len(images), detected=detected, kept=len(rows))


def train_lora(dataset: Path, generator: Path, output: Path, lora: dict[str, object]) -> float:
    """Step 4, through the trainer's command line as the product runs it; returns its wall time."""
    command = [sys.executable, "-m", "loratrain", "--dataset", str(dataset), "--generator", str(generator), "--output", str(output)]
    for key, value in lora.items():
        flag = f"--{key.replace('_', '-')}"
        command += [flag] if value is True else [flag, str(value)]
    started = time.time()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    return time.time() - started


@dataclass
class Scored:
    """One generator's samples of the comparison's (prompt, seed) pairs, judged: CLIPScore
    against the prompt and whether the detector finds the prompt's class, per image."""

    clip: np.ndarray
    hit: np.ndarray


def _sample_and_detect(
    pipeline, detector: Detector, prompts: list[Prompt], seeds_per_prompt: int, first_seed: int
) -> tuple[list[Image.Image], list[str], np.ndarray]:  # type: ignore[no-untyped-def]
    """Sample every prompt at seeds `first_seed + 100 k + s` (s < seeds_per_prompt) and
    say, per image, whether the detector finds the prompt's class."""
    texts = [p.text for p in prompts for _ in range(seeds_per_prompt)]
    seeds = [first_seed + 100 * k + s for k in range(len(prompts)) for s in range(seeds_per_prompt)]
    images = sample(pipeline, texts, seeds)
    hit = np.zeros(len(texts))
    for k, prompt in enumerate(prompts):
        sl = slice(k * seeds_per_prompt, (k + 1) * seeds_per_prompt)
        hit[sl] = [c >= detector.threshold for c, _ in detector.detect(images[sl], prompt.cls)]
    return images, texts, hit


def class_rates(pipeline, detector: Detector, prompts: list[Prompt], *, seeds_per_prompt: int, first_seed: int) -> dict[str, float]:  # type: ignore[no-untyped-def]
    """Per class, the share of its prompts' samples (default sampling) in which the
    detector finds it."""
    _, _, hit = _sample_and_detect(pipeline, detector, prompts, seeds_per_prompt, first_seed)
    classes = np.repeat([p.cls for p in prompts], seeds_per_prompt)
    return {c: round(float(hit[classes == c].mean()), 4) for c in dict.fromkeys(p.cls for p in prompts)}


def score_samples(pipeline, judge: Judge, scorer: ClipScorer, prompts: list[Prompt], *, seeds_per_prompt: int, first_seed: int) -> Scored:  # type: ignore[no-untyped-def]
    """`_sample_and_detect` with the pipeline as it is (base, or with a LoRA loaded),
    plus each image's CLIPScore against its prompt."""
    images, texts, hit = _sample_and_detect(pipeline, judge.detector, prompts, seeds_per_prompt, first_seed)
    return Scored(clip=scorer.score(images, texts), hit=hit)


def score_tuned(pipeline, judge: Judge, scorer: ClipScorer, prompts: list[Prompt], lora_dir: Path, *, seeds_per_prompt: int, first_seed: int) -> Scored:  # type: ignore[no-untyped-def]
    """`score_samples` with the LoRA in `lora_dir` loaded; leaves it unloaded."""
    pipeline.load_lora_weights(str(lora_dir))
    try:
        return score_samples(pipeline, judge, scorer, prompts, seeds_per_prompt=seeds_per_prompt, first_seed=first_seed)
    finally:
        pipeline.unload_lora_weights()


def compare(base: Scored, tuned: Scored, seeds_per_prompt: int) -> dict[str, object]:
    """Step 5's figures from base and tuned samples drawn from identical initial latents:
    paired CLIP win rate and detector class accuracy, each with a 95% bootstrap interval
    over prompts."""
    groups = np.arange(len(base.hit)) // seeds_per_prompt
    wins = np.where(tuned.clip > base.clip, 1.0, np.where(tuned.clip == base.clip, 0.5, 0.0))
    gain = tuned.hit - base.hit
    return {
        "eval_prompts": len(base.hit) // seeds_per_prompt,
        "eval_pairs": len(base.hit),
        "clip_win_rate": round(float(wins.mean()), 4),
        "clip_win_rate_ci95": [round(x, 4) for x in bootstrap(groups, wins, np.mean)],
        "mean_clip_base": round(float(base.clip.mean()), 3),
        "mean_clip_tuned": round(float(tuned.clip.mean()), 3),
        "detector_accuracy_base": round(float(base.hit.mean()), 4),
        "detector_accuracy_tuned": round(float(tuned.hit.mean()), 4),
        "detector_accuracy_gain": round(float(gain.mean()), 4),
        "detector_accuracy_gain_ci95": [round(x, 4) for x in bootstrap(groups, gain, np.mean)],
    }


def run(pack: Path, work: Path, *, n_per_prompt: int, per_prompt: int, eval_seeds: int, threshold: float, lora: dict[str, object]) -> dict[str, object]:
    from diffusers import StableDiffusionPipeline

    started = time.time()
    work.mkdir(parents=True, exist_ok=True)
    train, held_out = split()
    pipeline = StableDiffusionPipeline.from_pretrained(pack / "generator").to("cpu")
    pipeline.set_progress_bar_config(disable=True)
    judge = Judge(pack, threshold)

    # The generator's own figures, at its default sampling: how often the class comes out.
    prompts = [p for p in train for _ in range(n_per_prompt)]
    seeds = [1000 * k + i for k in range(len(train)) for i in range(n_per_prompt)]
    hits = np.zeros((len(train), n_per_prompt), dtype=bool)
    images = sample(pipeline, [p.text for p in prompts], seeds)
    for k, prompt in enumerate(train):
        hits[k] = [conf >= threshold for conf, _ in judge.detect(images[k * n_per_prompt : (k + 1) * n_per_prompt], prompt.cls)]

    pool = curate_pool(
        pipeline,
        judge,
        train,
        list(range(len(train))),
        work / "dataset",
        n_per_prompt=n_per_prompt,
        per_prompt=per_prompt,
        steps=int(SAMPLING["num_inference_steps"]),
    )
    figures: dict[str, object] = {
        "train_prompts": len(train),
        "samples_per_prompt": n_per_prompt,
        "base_detection_rate_train": round(float(hits.mean()), 4),
        "best_of_n_success": round(float(hits.any(axis=1).mean()), 4),
        "pool_guidance": POOL_GUIDANCE,
        "pool_scheduler": POOL_SCHEDULER,
        "pool_detection_rate": round(pool.detected / pool.images, 4),
        "kept_per_prompt": per_prompt,
        "dataset_size": pool.kept,
        "curate_seconds": round(time.time() - started, 1),
    }
    print(json.dumps(figures), flush=True)

    figures["lora_seconds"] = round(train_lora(work / "dataset", pack / "generator", work / "lora", lora), 1)
    scorer = ClipScorer(pack / "clip")
    comparison = {"seeds_per_prompt": eval_seeds, "first_seed": 500_000}
    base = score_samples(pipeline, judge, scorer, held_out, **comparison)
    tuned = score_tuned(pipeline, judge, scorer, held_out, work / "lora", **comparison)
    figures.update(compare(base, tuned, eval_seeds))
    figures["total_seconds"] = round(time.time() - started, 1)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description="Run the self-reward loop once on the shapes pack, without Temporal, and print its figures.")
    parser.add_argument("--pack", type=Path, default=Path(__file__).resolve().parents[2] / "packs" / "shapes")
    parser.add_argument("--work", type=Path, required=True)
    parser.add_argument("--n", type=int, default=8, help="samples per training prompt")
    parser.add_argument("--eval-seeds", type=int, default=4)
    args = parser.parse_args()
    pack_json = json.loads((args.pack / "pack.json").read_text())
    figures = run(
        args.pack,
        args.work,
        n_per_prompt=args.n,
        eval_seeds=args.eval_seeds,
        threshold=pack_json["judge"]["detection_threshold"],
        per_prompt=pack_json["judge"]["per_prompt"],
        lora=pack_json["lora"],
    )
    print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()

"""How often the generator draws each class: the builder's measurement for balancing.

The generator stage samples the training prompts with diffusers and asks the pack's
detector, at the judge's threshold, whether each image shows the prompt's class; a
class drawn too rarely (or too often) gets its caption confusion moved before the next
short training cycle. The loop itself (sampling, judging, curation, training,
evaluation) is the product's, in TypeScript; nothing here scores a round.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image

from .prompts import Prompt

SAMPLING = {"num_inference_steps": 20, "guidance_scale": 7.5}
SCHEDULER = "DDIMScheduler"  # the generator's own: how the model is used and compared


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


def class_rates(pipeline, detector: Detector, prompts: list[Prompt], *, seeds_per_prompt: int, first_seed: int) -> dict[str, float]:  # type: ignore[no-untyped-def]
    """Per class, the share of its prompts' samples (default sampling, seeds
    `first_seed + 100 k + s`) in which the detector finds it."""
    texts = [p.text for p in prompts for _ in range(seeds_per_prompt)]
    seeds = [first_seed + 100 * k + s for k in range(len(prompts)) for s in range(seeds_per_prompt)]
    images = sample(pipeline, texts, seeds)
    hit = np.zeros(len(texts))
    for k, prompt in enumerate(prompts):
        sl = slice(k * seeds_per_prompt, (k + 1) * seeds_per_prompt)
        hit[sl] = [c >= detector.threshold for c, _ in detector.detect(images[sl], prompt.cls)]
    classes = np.repeat([p.cls for p in prompts], seeds_per_prompt)
    return {c: round(float(hit[classes == c].mean()), 4) for c in dict.fromkeys(p.cls for p in prompts)}

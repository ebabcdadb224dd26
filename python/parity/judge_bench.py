"""The judge's models through transformers' Python pipelines, timed, for `npm run bench:judge`.

Renders PROMPTS seeded shapes prompts with SAMPLES images each to DIR, as the self-reward loop
judges them (the TypeScript side judges the same PNGs), then times, after one warm-up pass: the
zero-shot-object-detection pipeline queried with the prompt's class, VisionEncoderDecoderModel's
batched generate (transformers 5 folds image-to-text into image-text-to-text, which needs a
multimodal processor this captioner does not have), and CLIPModel's image-prompt cosine.
Prints one JSON line.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch
from PIL import Image

from shapesworld.world import render, scenes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pack", type=Path, required=True)
    parser.add_argument("--detector", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--prompts", type=int, default=4)
    parser.add_argument("--samples", type=int, default=8, help="images per prompt, judged as one batch")
    args = parser.parse_args()
    from transformers import AutoImageProcessor, AutoTokenizer, CLIPModel, CLIPProcessor, VisionEncoderDecoderModel, pipeline

    args.out.mkdir(parents=True, exist_ok=True)
    prompts = []
    for k, scene in enumerate(scenes(args.prompts, seed=3)):
        files = [f"bench{k}-{j}.png" for j in range(args.samples)]
        for j, name in enumerate(files):
            render(scene.spec, 100 * k + j).image.save(args.out / name)
        prompts.append({"prompt": scene.caption, "class": scene.spec.cls, "files": files})
    (args.out / "prompts.json").write_text(json.dumps(prompts))
    batches = [[Image.open(args.out / f).convert("RGB") for f in p["files"]] for p in prompts]

    detector = pipeline("zero-shot-object-detection", model=str(args.detector), device="cpu")
    captioner = VisionEncoderDecoderModel.from_pretrained(args.pack / "captioner").eval()
    caption_pixels = AutoImageProcessor.from_pretrained(args.pack / "captioner")
    caption_tokens = AutoTokenizer.from_pretrained(args.pack / "captioner")
    clip = CLIPModel.from_pretrained(args.pack / "clip").eval()
    clip_processor = CLIPProcessor.from_pretrained(args.pack / "clip")

    @torch.no_grad()
    def judge() -> None:
        for p, images in zip(prompts, batches):
            # The detection pipeline takes one image per call.
            for image in images:
                detector(image, candidate_labels=[p["class"]], threshold=0.0)
            caption_tokens.batch_decode(captioner.generate(caption_pixels(images=images, return_tensors="pt").pixel_values), skip_special_tokens=True)
            out = clip(**clip_processor(text=[p["prompt"]], images=images, return_tensors="pt", padding=True))
            out.image_embeds @ out.text_embeds.T

    judge()
    started = time.perf_counter()
    judge()
    seconds = time.perf_counter() - started
    count = sum(len(b) for b in batches)
    print(json.dumps({"images": count, "seconds": seconds, "images_per_second": count / seconds, "threads": torch.get_num_threads()}))


if __name__ == "__main__":
    main()

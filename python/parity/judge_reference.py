"""Reference outputs of the judge's models from transformers (PyTorch), for the TypeScript parity test.

Renders a few seeded shapes scenes to PNGs and writes `reference.json` beside them:
- detector: per image, the class-name query's score (sigmoid of the logit) and pixel box of every
  patch, through OwlViTProcessor and its image processor's post_process_object_detection;
- captions: VisionEncoderDecoderModel.generate with the folder's generation_config, batched;
- clip: CLIPModel's image embeddings of the scenes and text embeddings of their prompts.

Usage: python -m parity.judge_reference --pack packs/shapes --out DIR [--detector FOLDER]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch
from PIL import Image

from shapesworld.world import CLASSES, SceneSpec, render

# One scene per class, counts 1-3 and every background, so queries, plurals and articles all occur.
SCENES: list[tuple[SceneSpec, int]] = [
    (SceneSpec(1, "red", "circle", "white"), 11),
    (SceneSpec(2, "blue", "square", "black"), 12),
    (SceneSpec(3, "green", "triangle", "gray"), 13),
    (SceneSpec(2, "yellow", "star", "gray"), 14),
    (SceneSpec(1, "orange", "cross", "white"), 15),
    (SceneSpec(3, "purple", "star", "black"), 16),
]


@torch.no_grad()
def detector_reference(folder: Path, images: list[Image.Image], classes: list[str]) -> list[dict[str, list]]:
    from transformers import OwlViTForObjectDetection, OwlViTProcessor

    model = OwlViTForObjectDetection.from_pretrained(folder).eval()
    processor = OwlViTProcessor.from_pretrained(folder)
    out = []
    for image, cls in zip(images, classes):
        inputs = processor(text=[[cls]], images=image, return_tensors="pt")
        outputs = model(**inputs)
        # Threshold below every sigmoid so every patch comes back, in patch order.
        found = processor.image_processor.post_process_object_detection(outputs, threshold=-1.0, target_sizes=torch.tensor([[image.height, image.width]]))[0]
        out.append({"scores": found["scores"].tolist(), "boxes": found["boxes"].tolist()})
    return out


@torch.no_grad()
def caption_reference(folder: Path, images: list[Image.Image]) -> list[str]:
    from transformers import AutoImageProcessor, AutoTokenizer, VisionEncoderDecoderModel

    model = VisionEncoderDecoderModel.from_pretrained(folder).eval()
    pixels = AutoImageProcessor.from_pretrained(folder)(images=images, return_tensors="pt").pixel_values
    ids = model.generate(pixels)
    return [t.strip() for t in AutoTokenizer.from_pretrained(folder).batch_decode(ids, skip_special_tokens=True)]


@torch.no_grad()
def clip_reference(folder: Path, images: list[Image.Image], prompts: list[str]) -> dict[str, list]:
    from transformers import CLIPModel, CLIPProcessor

    model = CLIPModel.from_pretrained(folder).eval()
    processor = CLIPProcessor.from_pretrained(folder)
    out = model(**processor(text=prompts, images=images, return_tensors="pt", padding=True))
    return {"image_embeds": out.image_embeds.tolist(), "text_embeds": out.text_embeds.tolist()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pack", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--detector", type=Path, help="detector folder; default PACK/detector, skipped when absent")
    args = parser.parse_args()
    torch.manual_seed(0)
    args.out.mkdir(parents=True, exist_ok=True)

    scenes = [render(spec, seed) for spec, seed in SCENES]
    rows = []
    for i, scene in enumerate(scenes):
        name = f"scene{i}.png"
        scene.image.save(args.out / name)
        rows.append({"file": name, "prompt": scene.caption, "class": scene.spec.cls})
    images = [Image.open(args.out / r["file"]).convert("RGB") for r in rows]
    prompts = [r["prompt"] for r in rows]
    assert {r["class"] for r in rows} == set(CLASSES)

    detector = args.detector or args.pack / "detector"
    reference = {
        "images": rows,
        "detector": detector_reference(detector, images, [r["class"] for r in rows]) if (detector / "config.json").exists() else None,
        "captions": caption_reference(args.pack / "captioner", images),
        "clip": clip_reference(args.pack / "clip", images, prompts),
    }
    (args.out / "reference.json").write_text(json.dumps(reference))


if __name__ == "__main__":
    main()

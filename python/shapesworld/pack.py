"""The pack manifest (`pack.json`): classes, prompt sets, models, their ONNX interfaces,
judge and LoRA defaults, and the measured figures.

The ONNX interfaces are declared here, once, as what the TypeScript runtime relies on;
the pack tests check every shipped file against them. A dimension is an int when
fixed and a name when dynamic.
"""

from __future__ import annotations

import json
from pathlib import Path

from .prompts import split, write_prompt_file
from .rates import SCHEDULER
from .text import CLIP_MAX_LENGTH, GPT2_VOCAB_SIZE
from .world import BACKGROUNDS, CLASSES, COLOURS, COUNT_WORDS, IMAGE_SIZE

PACK_DIR = Path(__file__).resolve().parents[2] / "packs" / "shapes"
# The loop samples its training pool without guidance (the conditional branch alone): a LoRA
# fitted to guided samples has learnt the guidance once, and the comparison's guidance applies
# it again, so colours saturate and shapes drift. Lower pool guidance measured better at every
# step down from 7.5 to 1.0 (figures in the model card's Limits).
POOL_GUIDANCE = 1.0
# Unguided DDIM (deterministic) draws soft, washed-out images; an ancestral sampler, which adds
# fresh noise each step, draws the model's distribution more faithfully, so the pool teaches
# crisper shapes (figures in the model card's Limits).
POOL_SCHEDULER = "EulerAncestralDiscreteScheduler"
TEXT_DIM = 64
LATENT = 4
REFEREE_TOKENS = 10  # the referee's detection tokens (referee.MODEL)

Interface = dict[str, dict[str, tuple[str, list[int | str]]]]

INTERFACES: dict[str, dict[str, Interface]] = {
    "generator": {
        "text_encoder/model.onnx": {
            "inputs": {"input_ids": ("int32", ["batch", "sequence"])},
            "outputs": {"last_hidden_state": ("float32", ["batch", "sequence", TEXT_DIM]), "pooler_output": ("float32", ["batch", TEXT_DIM])},
        },
        "unet/model.onnx": {
            "inputs": {
                "sample": ("float32", ["batch", LATENT, "height", "width"]),
                "timestep": ("float32", ["batch"]),
                "encoder_hidden_states": ("float32", ["batch", "sequence", TEXT_DIM]),
            },
            "outputs": {"out_sample": ("float32", ["batch", LATENT, "height", "width"])},
        },
        "vae_decoder/model.onnx": {
            "inputs": {"latent_sample": ("float32", ["batch", LATENT, "height", "width"])},
            "outputs": {"sample": ("float32", ["batch", 3, "image_height", "image_width"])},
        },
        "vae_encoder/model.onnx": {
            "inputs": {"sample": ("float32", ["batch", 3, "image_height", "image_width"])},
            "outputs": {"latent_sample": ("float32", ["batch", LATENT, "height", "width"])},
        },
    },
    "captioner": {
        "onnx/encoder_model.onnx": {
            "inputs": {"pixel_values": ("float32", ["batch_size", 3, IMAGE_SIZE, IMAGE_SIZE])},
            "outputs": {"last_hidden_state": ("float32", ["batch_size", 65, 96])},
        },
        # Optimum's merged decoder: one graph for the first step (empty past) and the
        # next ones, chosen by `use_cache_branch`; transformers.js names the batch
        # dimension by `batch_size` and needs heads and head size fixed.
        "onnx/decoder_model_merged.onnx": {
            "inputs": {
                "input_ids": ("int64", ["batch_size", "decoder_sequence_length"]),
                "encoder_hidden_states": ("float32", ["batch_size", "encoder_sequence_length", 96]),
                **{
                    f"past_key_values.{i}.{kv}": ("float32", ["batch_size", 4, "past_decoder_sequence_length", 24]) for i in range(2) for kv in ("key", "value")
                },
                "use_cache_branch": ("bool", [1]),
            },
            "outputs": {
                "logits": ("float32", ["batch_size", "decoder_sequence_length", GPT2_VOCAB_SIZE]),
                **{f"present.{i}.{kv}": ("float32", ["batch_size", 4, "present_sequence_length", 24]) for i in range(2) for kv in ("key", "value")},
            },
        },
    },
    # Optimum's OWL-ViT export: one query list per image (transformers.js repeats the
    # class names for each image of a batch), a score and a box per patch and query.
    "detector": {
        "onnx/model.onnx": {
            "inputs": {
                "input_ids": ("int64", ["text_batch_size", "sequence_length"]),
                "pixel_values": ("float32", ["batch_size", 3, IMAGE_SIZE, IMAGE_SIZE]),
                "attention_mask": ("int64", ["text_batch_size", "sequence_length"]),
            },
            "outputs": {
                "logits": ("float32", ["batch_size", "num_patches", "num_queries"]),
                "pred_boxes": ("float32", ["batch_size", 64, 4]),
                "text_embeds": ("float32", ["batch_size", "num_queries", TEXT_DIM]),
                "image_embeds": ("float32", ["batch_size", 8, 8, 64]),
            },
        },
    },
    # The referee: a closed-vocabulary YOLOS, as transformers.js's AutoModelForObjectDetection
    # feeds it (pixel_values alone; no pixel_mask without padding) and reads it (logits over
    # the classes and "no object", cx-cy-w-h boxes in [0, 1], one per detection token).
    "referee": {
        "onnx/model.onnx": {
            "inputs": {"pixel_values": ("float32", ["batch_size", 3, IMAGE_SIZE, IMAGE_SIZE])},
            "outputs": {
                "logits": ("float32", ["batch_size", REFEREE_TOKENS, len(CLASSES) + 1]),
                "pred_boxes": ("float32", ["batch_size", REFEREE_TOKENS, 4]),
            },
        },
    },
    "clip": {
        "onnx/model.onnx": {
            "inputs": {
                "input_ids": ("int64", ["text_batch", "sequence"]),
                "pixel_values": ("float32", ["image_batch", 3, IMAGE_SIZE, IMAGE_SIZE]),
                "attention_mask": ("int64", ["text_batch", "sequence"]),
            },
            "outputs": {
                "logits_per_image": ("float32", ["image_batch", "text_batch"]),
                "logits_per_text": ("float32", ["text_batch", "image_batch"]),
                "text_embeds": ("float32", ["text_batch", 64]),
                "image_embeds": ("float32", ["image_batch", 64]),
            },
        },
        "onnx/text_model.onnx": {
            "inputs": {"input_ids": ("int64", ["batch", "sequence"]), "attention_mask": ("int64", ["batch", "sequence"])},
            "outputs": {"text_embeds": ("float32", ["batch", 64]), "last_hidden_state": ("float32", ["batch", "sequence", TEXT_DIM])},
        },
        "onnx/vision_model.onnx": {
            "inputs": {"pixel_values": ("float32", ["batch", 3, IMAGE_SIZE, IMAGE_SIZE])},
            "outputs": {"image_embeds": ("float32", ["batch", 64]), "last_hidden_state": ("float32", ["batch", 65, 64])},
        },
    },
}


def write_prompts(pack: Path) -> dict[str, str]:
    train, held_out = split()
    write_prompt_file(pack / "prompts" / "train.txt", train)
    write_prompt_file(pack / "prompts" / "eval.txt", held_out)
    return {"train": "prompts/train.txt", "eval": "prompts/eval.txt"}


def manifest(figures: dict[str, dict[str, object]], prompt_files: dict[str, str], judge: dict[str, object], lora: dict[str, object]) -> dict[str, object]:
    def interfaces(role: str) -> dict[str, object]:
        return {
            f: {side: {n: {"dtype": d, "shape": s} for n, (d, s) in spec[side].items()} for side in ("inputs", "outputs")}
            for f, spec in INTERFACES.get(role, {}).items()
        }

    return {
        "name": "shapes",
        "description": "A miniature text-to-image world: tiny models in the real architectures and file layouts, trained from scratch on rendered scenes.",
        "image_size": IMAGE_SIZE,
        "classes": list(CLASSES),
        "grammar": {
            "sentence": "<count> <colour> <class or plural> on a <background> background",
            "count": [*COUNT_WORDS.values(), "an"],
            "colours": list(COLOURS),
            "backgrounds": list(BACKGROUNDS),
        },
        "prompts": {**prompt_files, "format": "one prompt per line: `class; prompt`"},
        "models": {
            "generator": {
                "role": "text-to-image",
                "path": "generator",
                "layout": "diffusers + ONNX (Optimum)",
                "architecture": "StableDiffusionPipeline",
                "text_max_length": CLIP_MAX_LENGTH,
                "onnx": interfaces("generator"),
            },
            "clip": {"role": "clip-score", "path": "clip", "layout": "transformers.js", "architecture": "CLIPModel", "onnx": interfaces("clip")},
            "detector": {
                "role": "zero-shot-object-detection",
                "path": "detector",
                "layout": "transformers.js",
                "architecture": "OwlViTForObjectDetection",
                "onnx": interfaces("detector"),
            },
            "referee": {
                "role": "object-detection",
                "path": "referee",
                "layout": "transformers.js",
                "architecture": "YolosForObjectDetection",
                "use": "evaluation only, never curation",
                "onnx": interfaces("referee"),
            },
            "captioner": {
                "role": "image-to-text",
                "path": "captioner",
                "layout": "transformers.js",
                "architecture": "VisionEncoderDecoderModel",
                "onnx": interfaces("captioner"),
            },
        },
        "sampling": {
            "steps": 20,
            "guidance_scale": 7.5,
            "pool_guidance_scale": POOL_GUIDANCE,
            "scheduler": SCHEDULER,
            "pool_scheduler": POOL_SCHEDULER,
            "width": IMAGE_SIZE,
            "height": IMAGE_SIZE,
        },
        "judge": judge,
        "lora": lora,
        "figures": figures,
    }


def write_manifest(pack: Path, manifest_: dict[str, object]) -> None:
    (pack / "pack.json").write_text(json.dumps(manifest_, indent=2) + "\n")

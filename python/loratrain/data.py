"""The training data: an imagefolder dataset read and checked, its images loaded as
the trainer sees them, the frozen models' outputs cached per example, and the
seeded order in which steps visit the examples."""

from __future__ import annotations

import hashlib
import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from .distributed import World, encoding_share, gather_shares
from .protocol import BadInput, Events, StopRequest

if TYPE_CHECKING:
    # torch is imported where needed: bad input must fail before its slow import.
    import torch

ENCODE_BATCH = 8
# Independent random streams derived from --seed: data order per epoch, draws per step.
ORDER_STREAM, STEP_STREAM = 0, 1


@dataclass(frozen=True)
class Example:
    image: Path
    text: str


def read_dataset(folder: Path) -> tuple[list[Example], str]:
    """Every example of an imagefolder dataset, each image decoded once to prove it
    readable, and a digest of (file_name, text) pairs for resume checks."""
    from PIL import Image

    if not folder.is_dir():
        raise BadInput(f"--dataset: {folder}: no such folder")
    metadata = folder / "metadata.jsonl"
    if not metadata.is_file():
        raise BadInput(f"{metadata}: not found (the dataset needs a metadata.jsonl with file_name and text)")
    try:
        lines = metadata.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as error:
        raise BadInput(f"{metadata}: not UTF-8 text ({error.reason} at byte {error.start})") from None
    inside = Path(os.path.realpath(folder))
    examples: list[Example] = []
    digest = hashlib.sha256()
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        where = f"{metadata} line {number}"
        try:
            row = json.loads(line)
        except json.JSONDecodeError as error:
            raise BadInput(f"{where}: not valid JSON ({error.msg})") from None
        if not isinstance(row, dict):
            raise BadInput(f"{where}: not a JSON object")
        for field in ("file_name", "text"):
            if field not in row:
                raise BadInput(f'{where}: no "{field}" field')
        name, text = row["file_name"], row["text"]
        if not isinstance(name, str) or not name:
            raise BadInput(f'{where}: "file_name" must be a non-empty string')
        if not isinstance(text, str):
            raise BadInput(f'{where}: "text" must be a string')
        # The dataset is this folder: a name must not reach other files of the machine.
        if Path(name).is_absolute():
            raise BadInput(f'{where}: file_name "{name}" is an absolute path; it must name a file inside the dataset folder')
        image = folder / name
        # realpath, unlike Path.resolve, takes a symlink loop for a path (which is then no file) instead of raising.
        if not Path(os.path.realpath(image)).is_relative_to(inside):
            raise BadInput(f'{where}: file_name "{name}" leads outside the dataset folder (through ".." or a symlink)')
        if not image.is_file():
            raise BadInput(f'{where}: file_name "{name}" points to no file ({image})')
        try:
            with Image.open(image) as decoded:
                decoded.load()
        except Exception as error:  # PIL raises many unrelated classes for broken files
            raise BadInput(f"{image}: cannot decode image ({type(error).__name__}: {error})") from None
        examples.append(Example(image, text))
        digest.update(json.dumps([name, text]).encode())
    if not examples:
        raise BadInput(f"{metadata}: no examples (empty dataset)")
    return examples, digest.hexdigest()


def load_image(path: Path, resolution: int) -> np.ndarray:
    """RGB, shorter side resized to `resolution` (bilinear), centre-cropped, in [-1, 1], CHW."""
    from PIL import Image

    with Image.open(path) as image:
        image = image.convert("RGB")
        w, h = image.size
        if min(w, h) != resolution:
            scale = resolution / min(w, h)
            image = image.resize((max(resolution, round(w * scale)), max(resolution, round(h * scale))), Image.BILINEAR)
            w, h = image.size
        left, top = (w - resolution) // 2, (h - resolution) // 2
        image = image.crop((left, top, left + resolution, top + resolution))
        pixels = np.asarray(image, dtype=np.float32) / 127.5 - 1.0
    return pixels.transpose(2, 0, 1)


def stream_seed(seed: int, stream: int, index: int) -> int:
    """The seed of draw `index` (an epoch, a step) of random stream `stream` of run seed `seed`."""
    return int(np.random.SeedSequence([seed, stream, index]).generate_state(1, dtype=np.uint64)[0])


def batch_indices(step: int, dataset_size: int, batch_size: int, seed: int) -> list[int]:
    """The examples of step `step` (0-based): epochs are seeded permutations, cut
    into batches; the last batch of an epoch may be short, as with a DataLoader."""
    per_epoch = math.ceil(dataset_size / batch_size)
    epoch, position = divmod(step, per_epoch)
    order = np.random.default_rng(stream_seed(seed, ORDER_STREAM, epoch)).permutation(dataset_size)
    return order[position * batch_size : (position + 1) * batch_size].tolist()


@dataclass
class Cache:
    """The frozen models' outputs per example: the VAE's latent distribution (and
    that of the mirror image when flipping) and the caption's text embedding."""

    mean: torch.Tensor
    std: torch.Tensor
    flipped_mean: torch.Tensor | None
    flipped_std: torch.Tensor | None
    text_embeddings: torch.Tensor
    text_index: torch.Tensor
    empty_text_index: int  # the empty caption's row, which --caption-dropout trains on


@dataclass
class CacheShare:
    """One process's share of the cache (`encoding_share`): the text embeddings of its
    share of the captions and the latent distributions of its share of the examples;
    `text_index` maps every example to its caption's row in the whole."""

    text_embeddings: torch.Tensor
    latents: dict[str, torch.Tensor | None]
    text_index: torch.Tensor
    empty_text_index: int
    captions: int
    examples: int


def encode_share(examples, generator: Path, resolution: int, random_flip: bool, device, events: Events, stop: StopRequest, world: World) -> CacheShare:
    """This process's share of the frozen models' outputs: a team's processes encode the
    dataset together, each its share, and `gather_cache` joins them."""
    import torch
    from diffusers import AutoencoderKL
    from transformers import CLIPTextModel, CLIPTokenizer

    tokenizer = CLIPTokenizer.from_pretrained(str(generator / "tokenizer"))
    text_encoder = CLIPTextModel.from_pretrained(str(generator / "text_encoder")).to(device).eval()
    captions = sorted({e.text for e in examples} | {""})
    mine = [captions[i] for i in encoding_share(len(captions), world)]
    embeddings = []
    with torch.no_grad():
        for start in range(0, len(mine), ENCODE_BATCH):
            stop.check()
            ids = tokenizer(
                mine[start : start + ENCODE_BATCH],
                padding="max_length",
                max_length=tokenizer.model_max_length,
                truncation=True,
                return_tensors="pt",
            ).input_ids
            embeddings.append(text_encoder(ids.to(device), return_dict=False)[0].float())
    del text_encoder
    position = {c: i for i, c in enumerate(captions)}
    text_index = torch.tensor([position[e.text] for e in examples], device=device)

    vae = AutoencoderKL.from_pretrained(str(generator / "vae")).to(device).eval()
    share = [examples[i] for i in encoding_share(len(examples), world)]
    parts: dict[str, list] = {"mean": [], "std": [], "flipped_mean": [], "flipped_std": []}
    with torch.no_grad():
        for start in range(0, len(share), ENCODE_BATCH):
            stop.check()
            pixels = torch.from_numpy(np.stack([load_image(e.image, resolution) for e in share[start : start + ENCODE_BATCH]]))
            variants = [("", pixels)] + ([("flipped_", pixels.flip(-1))] if random_flip else [])
            for prefix, batch in variants:
                dist = vae.encode(batch.to(device), return_dict=False)[0]
                parts[prefix + "mean"].append(dist.mean.float())
                parts[prefix + "std"].append(dist.std.float())
            # In a team, the progress of this process's share.
            events.emit("phase", phase="cache", done=min(start + ENCODE_BATCH, len(share)), total=len(share))
    del vae
    if device.type == "cuda":
        torch.cuda.empty_cache()
    return CacheShare(
        text_embeddings=torch.cat(embeddings),
        latents={k: torch.cat(v) if v else None for k, v in parts.items()},
        text_index=text_index,
        empty_text_index=position[""],
        captions=len(captions),
        examples=len(examples),
    )


def gather_cache(share: CacheShare, world: World) -> Cache:
    """The whole cache, in every process, from each process's share."""
    latents = {k: None if v is None else gather_shares(v, share.examples, world) for k, v in share.latents.items()}
    return Cache(
        text_embeddings=gather_shares(share.text_embeddings, share.captions, world),
        text_index=share.text_index,
        empty_text_index=share.empty_text_index,
        **latents,
    )

"""Prompt sets of the shapes world: training prompts and held-out evaluation prompts.

A prompt file holds one prompt per line as `class; prompt` (the format the paper's
scripts use), so every prompt carries the object class its judge looks for. The two
sets are a fixed, class-stratified split of every sentence of the grammar: no
evaluation prompt's text appears among the training prompts.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .world import CLASSES, SceneSpec, all_specs

EVAL_FRACTION = 1 / 3
SPLIT_SEED = 20240521


@dataclass(frozen=True)
class Prompt:
    cls: str
    text: str
    spec: SceneSpec

    def line(self) -> str:
        return f"{self.cls}; {self.text}"


def split() -> tuple[list[Prompt], list[Prompt]]:
    """(train, eval): per class, a third of its sentences are held out."""
    rng = np.random.default_rng(SPLIT_SEED)
    train: list[Prompt] = []
    held_out: list[Prompt] = []
    for cls in CLASSES:
        specs = [s for s in all_specs() if s.cls == cls]
        order = rng.permutation(len(specs))
        n_eval = round(len(specs) * EVAL_FRACTION)
        for rank, i in enumerate(order):
            prompt = Prompt(cls, specs[i].caption, specs[i])
            (held_out if rank < n_eval else train).append(prompt)
    return train, held_out


def write_prompt_file(path: Path, prompts: list[Prompt]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(p.line() + "\n" for p in prompts))


def read_prompt_file(path: Path) -> list[tuple[str, str]]:
    """[(class, prompt)] from a `class; prompt` file; blank lines and `#` comments skipped."""
    out = []
    for number, raw in enumerate(path.read_text().splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        cls, sep, text = line.partition(";")
        if not sep or not cls.strip() or not text.strip():
            raise ValueError(f"{path}:{number}: expected `class; prompt`, got {raw!r}")
        out.append((cls.strip(), text.strip()))
    return out

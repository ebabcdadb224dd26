"""The builder's sampler for measuring class rates: an image depends on its seed alone."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from shapesworld.pack import POOL_SCHEDULER
from shapesworld.rates import SCHEDULER, sample


@pytest.fixture(scope="module")
def pipeline(tiny_generator: Path):  # type: ignore[no-untyped-def]
    from diffusers import StableDiffusionPipeline

    pipe = StableDiffusionPipeline.from_pretrained(tiny_generator)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def pixels(image) -> np.ndarray:  # type: ignore[no-untyped-def]
    return np.asarray(image, dtype=np.float64)


@pytest.mark.parametrize("scheduler", [SCHEDULER, POOL_SCHEDULER])
def test_an_image_depends_on_its_seed_not_its_batch(pipeline, scheduler: str):  # type: ignore[no-untyped-def]
    pair = sample(pipeline, ["a red circle", "a blue square"], [11, 12], 1.0, scheduler)
    alone = sample(pipeline, ["a blue square"], [12], 1.0, scheduler)
    # Batched and single runs differ only by float rounding (at most one level of 255).
    assert np.abs(pixels(pair[1]) - pixels(alone[0])).max() <= 1
    assert type(pipeline.scheduler).__name__ == SCHEDULER  # the generator's own is put back


def test_the_pool_scheduler_draws_fresh_noise_each_step(pipeline):  # type: ignore[no-untyped-def]
    deterministic = sample(pipeline, ["a red circle"], [11], 1.0, SCHEDULER)
    ancestral = sample(pipeline, ["a red circle"], [11], 1.0, POOL_SCHEDULER)
    assert np.abs(pixels(deterministic[0]) - pixels(ancestral[0])).mean() > 1

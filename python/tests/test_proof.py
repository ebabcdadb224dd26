"""The proof's sampler (an image depends on its seed alone, with or without step noise)
and its paired comparison."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from shapesworld.proof import POOL_SCHEDULER, SCHEDULER, Scored, compare, sample


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


def test_comparison_pairs_images_by_place_and_counts_a_tie_as_half_a_win():
    # Two prompts x two seeds; tuned wins pair 0, ties pair 1, loses pair 2, wins pair 3.
    base = Scored(clip=np.array([20.0, 30.0, 30.0, 10.0]), hit=np.array([0.0, 1.0, 1.0, 0.0]))
    tuned = Scored(clip=np.array([25.0, 30.0, 20.0, 12.0]), hit=np.array([1.0, 1.0, 0.0, 1.0]))
    figures = compare(base, tuned, seeds_per_prompt=2)
    assert figures["eval_prompts"] == 2 and figures["eval_pairs"] == 4
    assert figures["clip_win_rate"] == 0.625
    assert figures["detector_accuracy_base"] == 0.5 and figures["detector_accuracy_tuned"] == 0.75
    assert figures["detector_accuracy_gain"] == 0.25
    # Resampling is over prompts: prompt 0 gains 0.5 a pair, prompt 1 nothing, so the
    # interval spans a sample of prompt 1 alone to a sample of prompt 0 alone.
    assert figures["detector_accuracy_gain_ci95"] == [0.0, 0.5]

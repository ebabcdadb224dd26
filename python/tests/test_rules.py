"""Pure rules of the shapes world: the generator's caption confusion, the paper's
selection rule and the bootstrap interval used by the proof."""

from collections import Counter

import numpy as np
import pytest

from shapesworld.generator import CONFUSION_RATE, POLISH_CONFUSION, _training_captions, confuser
from shapesworld.proof import Judgement, bootstrap, rank
from shapesworld.world import CLASSES, SceneSpec


def test_confusion_is_a_cycle_over_every_class():
    assert sorted(confuser(c) for c in CLASSES) == sorted(CLASSES)
    assert all(confuser(c) != c for c in CLASSES)


@pytest.mark.parametrize("confusion", [CONFUSION_RATE, POLISH_CONFUSION])
def test_training_captions_name_the_class_or_its_predecessor_at_the_confusion_rate(confusion: float):
    spec = SceneSpec(2, "red", "square", "white")
    captions = _training_captions([spec] * 4000, np.random.default_rng(0), drop_rate=0.1, confusion=confusion)
    counts = Counter(captions)
    true, confused = spec.caption, SceneSpec(2, "red", "circle", "white").caption
    assert set(counts) == {true, confused, ""}
    assert abs(counts[""] / 4000 - 0.1) < 0.02
    assert abs(counts[confused] / (counts[true] + counts[confused]) - confusion) < 0.03
    # A prompt for circle shows a square when confused: the circle's confuser.
    assert confuser("circle") == "square"


def _j(detection: float, checklist: int) -> Judgement:
    return Judgement(detection=detection, instances=int(detection > 0.3), caption="", checklist=checklist)


def test_rank_prefers_top_checklist_then_detection_then_order():
    judgements = [_j(0.9, 1), _j(0.5, 3), _j(0.7, 3), _j(0.2, 3), _j(0.9, 1)]
    assert rank(judgements, threshold=0.3) == [2, 1, 0, 4]


def test_rank_ignores_undetected_images_even_with_a_perfect_caption():
    assert rank([_j(0.1, 3), _j(0.4, 0)], threshold=0.3) == [1]


def test_rank_drops_a_prompt_whose_class_is_never_detected():
    assert rank([_j(0.1, 3), _j(0.29, 2)], threshold=0.3) == []


def test_bootstrap_interval_covers_the_mean_and_shrinks_with_more_prompts():
    rng = np.random.default_rng(1)
    small_groups = np.repeat(np.arange(10), 4)
    big_groups = np.repeat(np.arange(200), 4)
    small = bootstrap(small_groups, rng.random(40), np.mean)
    big = bootstrap(big_groups, rng.random(800), np.mean)
    assert small[0] < 0.5 < small[1] and big[0] < 0.5 < big[1]
    assert big[1] - big[0] < small[1] - small[0]


def test_bootstrap_of_a_sure_improvement_excludes_zero():
    groups = np.repeat(np.arange(50), 4)
    gain = np.where(np.arange(200) % 4 == 0, 0.0, 1.0)
    low, high = bootstrap(groups, gain, np.mean)
    assert low > 0 and high <= 1

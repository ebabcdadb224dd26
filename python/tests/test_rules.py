"""Pure rules of the shapes world: the generator's caption confusion and its balancing."""

from collections import Counter

import numpy as np
import pytest

from shapesworld.generator import CONFUSION_BOUNDS, CONFUSION_RATE, POLISH_CONFUSION, RESPONSE_GAIN, ConfusedBatches, confuser, rebalance, uniform
from shapesworld.world import CLASSES, SceneSpec


def test_confusion_is_a_cycle_over_every_class():
    assert sorted(confuser(c) for c in CLASSES) == sorted(CLASSES)
    assert all(confuser(c) != c for c in CLASSES)


def _pool() -> list[SceneSpec]:
    return [SceneSpec(count, colour, cls, "white") for cls in CLASSES for colour in ("red", "blue") for count in (1, 2) for _ in range(3)]


@pytest.mark.parametrize("confusion", [CONFUSION_RATE, POLISH_CONFUSION])
def test_confused_batches_keep_true_captions_and_show_the_confuser_at_each_class_rate(confusion: float):
    specs = _pool()
    rates = {**uniform(confusion), "circle": 0.1, "triangle": 0.8}
    images, captions = ConfusedBatches(specs).draw(np.random.default_rng(0), 20_000, rates, drop_rate=0.1)
    assert abs(captions.count("") / 20_000 - 0.1) < 0.01
    shown: dict[str, Counter[str]] = {c: Counter() for c in CLASSES}
    for i, caption in zip(images, captions):
        if not caption:
            continue
        asked = next(s for s in specs if s.caption == caption)
        image = specs[i]
        # Everything but the class is what the caption says.
        assert (image.count, image.colour, image.background) == (asked.count, asked.colour, asked.background)
        shown[asked.cls][image.cls] += 1
    for cls in CLASSES:
        assert set(shown[cls]) == {cls, confuser(cls)}
        assert abs(shown[cls][confuser(cls)] / sum(shown[cls].values()) - rates[cls]) < 0.03
    # A prompt for circle shows a square when confused: the circle's confuser.
    assert confuser("circle") == "square"


def test_confused_batches_refuse_a_pool_without_confuser_scenes():
    with pytest.raises(ValueError, match="no confuser scene"):
        ConfusedBatches([SceneSpec(1, "red", "circle", "white")])


def test_rebalance_confuses_an_overdrawn_class_more_and_an_underdrawn_one_less():
    confusion = {"circle": 0.4, "square": 0.4, "triangle": 0.4, "star": 0.4, "cross": 0.1}
    rates = {"circle": 0.3, "square": 0.45, "triangle": 0.8, "star": 0.5, "cross": 0.0}
    moved = rebalance(confusion, rates, target=0.45)
    assert moved["square"] == 0.4  # on target: unchanged
    assert moved["circle"] < 0.4 < moved["star"] < moved["triangle"]
    # Logit steps: a rate of 0.8 against 0.45 multiplies the confusion's odds by the
    # square root of (0.8/0.2) / (0.45/0.55), the response gain being 2.
    odds = (0.4 / 0.6) * ((0.8 / 0.2) / (0.45 / 0.55)) ** (1 / RESPONSE_GAIN)
    assert RESPONSE_GAIN == 2.0
    assert moved["triangle"] == pytest.approx(odds / (1 + odds), abs=1e-4)
    # A class never drawn is pushed hard but stays within bounds.
    assert moved["cross"] == CONFUSION_BOUNDS[0]

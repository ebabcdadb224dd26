"""The card's loop figures come from the product's RoundResult, field by field."""

from __future__ import annotations

import pytest

from shapesworld.loop import round_figures

RESULT = {
    "samples": [{"prompts": 3, "images": 24}, {"prompts": 2, "images": 16}],
    "judged": [{"images": 24, "detected": 10}, {"images": 16, "detected": 6}],
    "dataset": {"kept": 12, "dropped": 1},
    "training": {"steps": 900, "finalLoss": 0.123456},
    "evaluation": {
        "pairs": 40,
        "winRate": 0.625,
        "winRateInterval": [0.56871, 0.68129],
        "meanClipBase": 28.1,
        "meanClipTuned": 30.2,
        "accuracyBase": 0.5,
        "accuracyTuned": 0.625,
        "accuracyGainInterval": [0.05, 0.2],
        "countAccuracyBase": 0.2,
        "countAccuracyTuned": 0.3,
        "countGainInterval": [-0.01, 0.2],
        "diversityBase": 0.17,
        "diversityTuned": 0.16,
        "diversityChange": -0.0588235,
    },
}


def test_pool_and_curation_figures_add_up_over_shards():
    f = round_figures(RESULT)
    assert f["train_prompts"] == 5 and f["samples_per_prompt"] == 8
    assert f["pool_detection_rate"] == pytest.approx(16 / 40)
    assert f["best_of_n_success"] == pytest.approx(0.8)
    assert f["dataset_size"] == 12 and f["dropped_prompts"] == 1


def test_evaluation_figures_are_the_rounds_own():
    f = round_figures(RESULT)
    assert f["clip_win_rate"] == 0.625 and f["clip_win_rate_ci95"] == [0.5687, 0.6813]
    assert f["detector_accuracy_gain"] == pytest.approx(0.125)
    assert f["count_accuracy_gain_ci95"] == [-0.01, 0.2]
    assert f["diversity_change"] == pytest.approx(-0.0588)
    assert f["lora_final_loss"] == pytest.approx(0.1235)


def test_figures_an_earlier_round_lacks_read_as_none():
    evaluation = {k: v for k, v in RESULT["evaluation"].items() if not k.startswith(("count", "diversity"))}  # type: ignore[union-attr]
    f = round_figures({**RESULT, "evaluation": evaluation})
    assert f["count_accuracy_base"] is None and f["diversity_change"] is None


def test_the_referees_checks_and_hacking_check_come_through():
    share = {"n": 40, "base": 0.5, "tuned": 0.6, "gain": 0.1, "gainInterval": [0.02, 0.18]}
    referee = {
        "objectPresent": share,
        "counting": None,
        "colour": share,
        "background": share,
        "allCorrectImages": share,
        "allCorrectPrompts": share,
        "judgeAccepted": share,
        "hacking": {
            "star": {"images": 8, "base": 0.1, "tuned": 0.3, "change": 0.2, "changeInterval": [0.1, 0.3], "flagged": True, "judgeGain": 0.3, "refereeGain": 0.1}
        },
        "flaggedClasses": ["star"],
    }
    f = round_figures({**RESULT, "evaluation": {**RESULT["evaluation"], "referee": referee}})["referee"]
    assert f["objectPresent"] == {"base": 0.5, "tuned": 0.6, "gain": 0.1, "gain_ci95": [0.02, 0.18]}  # type: ignore[index]
    assert f["counting"] is None  # type: ignore[index]
    assert f["hacking"]["star"] == {"base": 0.1, "tuned": 0.3, "judge_gain": 0.3, "referee_gain": 0.1, "flagged": True}  # type: ignore[index]
    assert f["flagged_classes"] == ["star"]  # type: ignore[index]
    assert round_figures(RESULT)["referee"] is None

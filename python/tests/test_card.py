"""How the model card prints figures: rates as percentages, everything else as numbers."""

from shapesworld.card import _fig, _standing

FIGURES = {
    "round": {"pool_guidance": 1.0, "clip_win_rate": 0.5, "detector_accuracy_gain_ci95": [0.0278, 0.15], "lora_seconds": 116.7},
    "generator": {"unet_final_loss": 0.0185, "scaling_factor": 0.4255},
}


def test_guidance_prints_as_a_number_not_a_rate():
    assert _fig(FIGURES, "round", "pool_guidance") == "1"


def test_rates_and_intervals_print_as_percentages():
    assert _fig(FIGURES, "round", "clip_win_rate") == "50.0%"
    assert _fig(FIGURES, "round", "detector_accuracy_gain_ci95") == "[2.8%, 15.0%]"


def test_losses_factors_and_times_print_as_numbers():
    assert _fig(FIGURES, "generator", "unet_final_loss") == "0.0185"
    assert _fig(FIGURES, "generator", "scaling_factor") == "0.4255"
    assert _fig(FIGURES, "round", "lora_seconds") == "116.7"


def test_a_missing_figure_says_so():
    assert _fig(FIGURES, "round", "clip_win_rate_ci95") == "not measured"


def test_standing_names_the_targets_met_and_missed():
    base = {"clip_win_rate_ci95": [0.6, 0.7], "detector_accuracy_gain_ci95": [0.05, 0.2]}
    assert "meets the win-rate target (65%), not the accuracy target" in _standing({**base, "clip_win_rate": 0.68, "detector_accuracy_gain": 0.12})
    assert "meets both targets" in _standing({**base, "clip_win_rate": 0.68, "detector_accuracy_gain": 0.16})
    assert "misses the win-rate target (65%) and the accuracy target" in _standing({**base, "clip_win_rate": 0.6, "detector_accuracy_gain": 0.1})
    noisy = {"clip_win_rate": 0.68, "detector_accuracy_gain": 0.16, "clip_win_rate_ci95": [0.49, 0.8], "detector_accuracy_gain_ci95": [0.05, 0.2]}
    assert "does not improve" in _standing(noisy)
    assert _standing({}) == "The product's round has not been run on this pack."

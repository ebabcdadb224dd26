"""How the model card prints figures: rates as percentages, everything else as numbers."""

from shapesworld.card import _fig

FIGURES = {
    "proof": {"pool_guidance": 1.0, "clip_win_rate": 0.5, "detector_accuracy_gain_ci95": [0.0278, 0.15], "lora_seconds": 116.7},
    "generator": {"unet_final_loss": 0.0185, "scaling_factor": 0.4255},
}


def test_guidance_prints_as_a_number_not_a_rate():
    assert _fig(FIGURES, "proof", "pool_guidance") == "1"


def test_rates_and_intervals_print_as_percentages():
    assert _fig(FIGURES, "proof", "clip_win_rate") == "50.0%"
    assert _fig(FIGURES, "proof", "detector_accuracy_gain_ci95") == "[2.8%, 15.0%]"


def test_losses_factors_and_times_print_as_numbers():
    assert _fig(FIGURES, "generator", "unet_final_loss") == "0.0185"
    assert _fig(FIGURES, "generator", "scaling_factor") == "0.4255"
    assert _fig(FIGURES, "proof", "lora_seconds") == "116.7"


def test_a_missing_figure_says_so():
    assert _fig(FIGURES, "proof", "clip_win_rate_ci95") == "not measured"

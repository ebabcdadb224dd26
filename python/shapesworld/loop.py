"""The loop on this pack, as the product runs it: the card's figures come from one
`selfRewardRound` through a Temporal worker, the TypeScript judge and the trainer
(`scripts/pack-round.sh`), not from a re-implementation of the loop in Python."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def _total(items: list[dict[str, object]], key: str) -> int:
    return sum(int(item[key]) for item in items)  # type: ignore[call-overload]


def round_figures(result: dict) -> dict[str, object]:  # type: ignore[type-arg]
    """The card's figures from a round's RoundResult (`selfreward result ID --json`)."""
    samples, judged, dataset, training, evaluation = (result[k] for k in ("samples", "judged", "dataset", "training", "evaluation"))
    prompts, images = _total(samples, "prompts"), _total(samples, "images")
    dropped = int(dataset["dropped"])
    figures: dict[str, object] = {
        "train_prompts": prompts,
        "samples_per_prompt": images // prompts if prompts else 0,
        "pool_detection_rate": round(_total(judged, "detected") / max(1, _total(judged, "images")), 4),
        # The paper's rule drops a prompt only when no sample shows its class.
        "best_of_n_success": round(1 - dropped / prompts, 4) if prompts else None,
        "dataset_size": int(dataset["kept"]),
        "dropped_prompts": dropped,
        "lora_steps": int(training["steps"]),
        "lora_final_loss": training["finalLoss"],
        "eval_pairs": int(evaluation["pairs"]),
        "clip_win_rate": evaluation["winRate"],
        "clip_win_rate_ci95": list(evaluation["winRateInterval"]),
        "mean_clip_base": evaluation["meanClipBase"],
        "mean_clip_tuned": evaluation["meanClipTuned"],
        "detector_accuracy_base": evaluation["accuracyBase"],
        "detector_accuracy_tuned": evaluation["accuracyTuned"],
        "detector_accuracy_gain": evaluation["accuracyTuned"] - evaluation["accuracyBase"],
        "detector_accuracy_gain_ci95": list(evaluation["accuracyGainInterval"]),
        "count_accuracy_base": evaluation.get("countAccuracyBase"),
        "count_accuracy_tuned": evaluation.get("countAccuracyTuned"),
        "count_accuracy_gain": None if evaluation.get("countAccuracyBase") is None else evaluation["countAccuracyTuned"] - evaluation["countAccuracyBase"],
        "count_accuracy_gain_ci95": evaluation.get("countGainInterval"),
        "diversity_base": evaluation.get("diversityBase"),
        "diversity_tuned": evaluation.get("diversityTuned"),
        "diversity_change": evaluation.get("diversityChange"),
    }
    rounded = {k: round(v, 4) if isinstance(v, float) else [round(x, 4) for x in v] if isinstance(v, list) else v for k, v in figures.items()}
    referee = evaluation.get("referee")
    return {**rounded, "referee": None if referee is None else referee_figures(referee)}


REFEREE_CHECKS = ("objectPresent", "counting", "colour", "background", "allCorrectImages", "allCorrectPrompts", "judgeAccepted")


def referee_figures(referee: dict) -> dict[str, object]:  # type: ignore[type-arg]
    """The referee's GenEval-style checks (base, tuned, gain and its interval) and the hacking check's flagged classes."""
    checks = {}
    for check in REFEREE_CHECKS:
        share = referee.get(check)
        if share is None:
            checks[check] = None
            continue
        checks[check] = {k: round(share[k], 4) for k in ("base", "tuned", "gain")} | {"gain_ci95": [round(x, 4) for x in share["gainInterval"]]}
    renamed = {"base": "base", "tuned": "tuned", "judgeGain": "judge_gain", "refereeGain": "referee_gain"}
    hacking = {cls: {new: round(h[old], 4) for old, new in renamed.items()} | {"flagged": h["flagged"]} for cls, h in referee.get("hacking", {}).items()}
    return {**checks, "hacking": hacking, "flagged_classes": list(referee.get("flaggedClasses", []))}


def run_round(result_file: Path) -> dict[str, object]:
    """Runs the product's round on the pack and returns its figures for the card."""
    subprocess.run([str(REPO / "scripts" / "pack-round.sh"), str(result_file)], check=True, cwd=REPO)
    return round_figures(json.loads(result_file.read_text()))

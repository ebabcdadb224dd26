"""MODEL_CARD.md of the shapes pack, written from the build's measured figures."""

from __future__ import annotations

import json

from .generator import CONFUSION_RATE, POLISH_CONFUSION
from .pack import POOL_GUIDANCE, POOL_SCHEDULER
from .world import BACKGROUNDS, CLASSES, COLOURS


def _fig(figures: dict[str, dict[str, object]], stage: str, key: str) -> str:
    value = figures.get(stage, {}).get(key)
    if value is None:
        return "not measured"
    # Losses, scale factors, guidance and mAP are plain numbers; rates, accuracies and gains read as percentages.
    if isinstance(value, float) and ("loss" in key or "factor" in key or "guidance" in key or "map" in key or key in ("diversity_base", "diversity_tuned")):
        return f"{value:.4g}"
    if isinstance(value, float) and -1 <= value <= 1 and "seconds" not in key:
        return f"{100 * value:.1f}%"
    if isinstance(value, list):
        return "[" + ", ".join(f"{100 * v:.1f}%" if isinstance(v, float) and abs(v) <= 1 else str(v) for v in value) + "]"
    return str(value)


def _balance_table(generator: dict[str, object]) -> str:
    history = generator.get("balance_history")
    if not isinstance(history, list) or not history:
        return "(not measured)"
    first, last = history[0], history[-1]
    rows = [f"| {cls} | {100 * first['rates'][cls]:.1f}% | {last['confusion'][cls]:.3f} | {100 * last['rates'][cls]:.1f}% |" for cls in last["rates"]]
    return "\n".join(["| class | rate before | confusion | rate after |", "|---|---|---|---|", *rows])


def _threads(figures: dict[str, dict[str, object]]) -> str:
    counts = sorted({str(figures[s]["threads"]) for s in ("clip", "detector", "captioner", "generator") if "threads" in figures.get(s, {})})
    return " and ".join(counts) or "an unrecorded number of"


def _standing(loop: dict[str, object]) -> str:
    """Which of the loop's two targets this pack meets, from the product's round."""
    win, gain = loop.get("clip_win_rate"), loop.get("detector_accuracy_gain")
    win_low, gain_low = (loop.get(k, [0.0])[0] for k in ("clip_win_rate_ci95", "detector_accuracy_gain_ci95"))  # type: ignore[index]
    if not isinstance(win, float) or not isinstance(gain, float):
        return "The product's round has not been run on this pack."
    if win_low <= 0.5 or gain_low <= 0:
        return "The loop does not improve this pack's generator beyond noise: an interval includes no improvement."
    targets = (("the win-rate target (65%)", win >= 0.65), ("the accuracy target (+15 points)", gain >= 0.15))
    met = [name for name, ok in targets if ok]
    missed = [name for name, ok in targets if not ok]
    if not missed:
        return "The loop improves this pack's generator beyond noise and meets both targets."
    if not met:
        return f"The loop improves this pack's generator beyond noise but misses {' and '.join(missed)}."
    return f"The loop improves this pack's generator beyond noise; it meets {met[0]}, not {missed[0]}."


def _referee(figures: dict[str, dict[str, object]]) -> str:
    referee = figures.get("referee", {})
    f = lambda key: _fig(figures, "referee", key)  # noqa: E731
    training = referee.get("training", {})
    training = training if isinstance(training, dict) else {}
    return f"""## referee/ — YOLOS (transformers.js layout, object-detection)
For evaluation only, never for curation. The loop curates with the detector above;
scoring its results with that detector alone would let it grade its own homework.
The referee is independent of it: another architecture (`YolosForObjectDetection`,
a plain ViT whose {training.get("parameters", "?")} parameters include 10 detection tokens, each predicting one
object of the 5 classes or "no object"; closed vocabulary, labels in `config.json`),
trained from scratch (not from this pack's CLIP) on {training.get("pool", "?")} scenes rendered from seeds
no other model trains or is measured on, with its own augmentation (colour cast and
jitter, blur, blobby edges, lost resolution, noise) so that it is fair on generated
images. Loss: DETR's set loss (one-to-one Hungarian matching of objects to tokens,
cross-entropy with "no object" down-weighted, L1 + GIoU on boxes), and, since a
from-scratch ViT otherwise sits at the class prior for hundreds of steps, the same
class and box heads applied to every patch token (the covering object's class and
box, or "no object") plus an image-level class term. It loads through
`AutoModelForObjectDetection` and `post_process_object_detection` (softmax; a token
whose most probable entry is "no object" gives no detection).

GenEval's conventions: a class is present when a detection of it scores at least
{referee.get("presence_threshold", 0.3)}; objects are counted at {referee.get("count_threshold", 0.9)}, after dropping boxes that overlap a
higher-scored one at IoU > 0.5. Held-out renders ({_held_out_n(referee)} scenes), and the same scenes
degraded as in training (colour cast, blur, noise):

| figure | renders | degraded |
|---|---|---|
| class accuracy (top detection's class) | {f("class_accuracy")} | {f("degraded_class_accuracy")} |
| class recall at {referee.get("presence_threshold", 0.3)} (mean over classes) | {f("class_recall")} | {f("degraded_class_recall")} |
| class precision at {referee.get("presence_threshold", 0.3)} | {f("class_precision")} | {f("degraded_class_precision")} |
| count accuracy at {referee.get("count_threshold", 0.9)} | {f("count_accuracy")} | {f("degraded_count_accuracy")} |
| mAP@0.5 | {f("map50")} | {f("degraded_map50")} |

{_referee_aim(referee)}Training: {training.get("steps", "?")} steps at batch {training.get("batch_size", "?")}, {f("train_seconds")} s on {training.get("threads", "?")} thread(s)
(`stage_seconds` {f("stage_seconds")}, evaluation included)."""


def _referee_aim(referee: dict[str, object]) -> str:
    accuracy = referee.get("class_accuracy")
    if not isinstance(accuracy, float) or accuracy >= 0.95:
        return ""
    return (
        f"Short of the 95% class accuracy it is meant to reach ({100 * accuracy:.1f}%): at this training\n"
        "length the from-scratch ViT is still learning the shapes; read its figures as a second,\n"
        "independent opinion, not as ground truth.\n\n"
    )


def _held_out_n(referee: dict[str, object]) -> str:
    held = referee.get("held_out")
    return str(held.get("n", "?")) if isinstance(held, dict) else "?"


REFEREE_ROWS = (
    ("objectPresent", "object present"),
    ("counting", "counting"),
    ("colour", "colour (CLIP on the object's crop)"),
    ("background", "background"),
    ("allCorrectImages", "all correct, per image"),
    ("allCorrectPrompts", "all correct, per prompt (every seed)"),
    ("judgeAccepted", "the curation judge's detector accepts (for comparison)"),
)


def _pct(x: float) -> str:
    return f"{100 * x:.1f}%"


def _referee_section(loop: dict[str, object]) -> str:
    """The referee's GenEval-style table and hacking check from the product's round."""
    referee = loop.get("referee")
    if not isinstance(referee, dict):
        return "The round ran without a referee."
    rows = ["| check | base | tuned | gain [95% interval] |", "|---|---|---|---|"]
    for key, name in REFEREE_ROWS:
        c = referee.get(key)
        if isinstance(c, dict):
            low, high = c["gain_ci95"]
            rows.append(f"| {name} | {_pct(c['base'])} | {_pct(c['tuned'])} | {100 * c['gain']:+.1f} [{100 * low:+.1f}, {100 * high:+.1f}] |")
    hacking = ["| class | accepted by the judge, absent for the referee: base → tuned | judge's gain | referee's gain | flagged |", "|---|---|---|---|---|"]
    for cls, h in referee.get("hacking", {}).items():
        hacking.append(
            f"| {cls} | {_pct(h['base'])} → {_pct(h['tuned'])} | {100 * h['judge_gain']:+.1f} | {100 * h['referee_gain']:+.1f} | {'yes' if h['flagged'] else 'no'} |"
        )
    flagged = referee.get("flagged_classes") or []
    verdict = f"Flagged (the share rose beyond noise): {', '.join(flagged)}." if flagged else "No class is flagged."
    return "\n".join(rows) + "\n\nThe hacking check, per class:\n\n" + "\n".join(hacking) + f"\n\n{verdict}"


def render(figures: dict[str, dict[str, object]], judge: dict[str, object], lora: dict[str, object]) -> str:
    f = lambda stage, key: _fig(figures, stage, key)  # noqa: E731
    loop = figures.get("round", {})
    minutes = sum(float(figures.get(s, {}).get("stage_seconds", 0)) for s in ("clip", "detector", "captioner", "generator")) / 60
    return f"""# Model card: the shapes pack

A miniature text-to-image world. Every model here is tiny, trained on this
project's rendered scenes by `python -m shapesworld.build` (fixed seeds; the
detector starts from this pack's CLIP, everything else from scratch), and
stored in exactly the architecture and file layout of its real counterpart, so the
code that runs Stable Diffusion 2.1 with a real captioner, detector and CLIP runs
this pack unchanged. Nothing here came from a model hub.

## The world
64x64 RGB scenes of 1-3 objects of one class and one colour on a plain background.
Classes: {", ".join(CLASSES)}. Colours: {", ".join(COLOURS)}. Backgrounds: {", ".join(BACKGROUNDS)}.
Ground truth per scene: boxes and class of each object, and its caption.

Grammar: `<count> <colour> <class or plural> on a <background> background`, count
being `a`/`an`, `two` or `three` ("two red triangles on a white background").
The {3 * len(COLOURS) * len(CLASSES) * len(BACKGROUNDS)} sentences are split per class into training prompts
(`prompts/train.txt`) and held-out evaluation prompts (`prompts/eval.txt`), a third
held out; no prompt text is in both. Lines are `class; prompt`.

All figures below are measured on held-out scenes (seeds never used in training)
through the exported ONNX files unless said otherwise. The four trainings took
{minutes:.1f} minutes of wall time on the 2-core machine that built this pack
({_threads(figures)} threads; `stage_seconds` per model below).

## clip/ — CLIPModel (transformers.js layout)
ViT image tower (64px, patch 8) and text tower (max 24 tokens) with a 64-d joint
space; its own byte-level BPE tokenizer learnt from the grammar. Trained
contrastively with soft targets (a partial caption such as "a photo of a star" is a
positive for every star in the batch), with blur/noise/colour augmentation so that
it scores generated images fairly.

| figure | value |
|---|---|
| zero-shot class accuracy ("a photo of a {{class}}") | {f("clip", "zero_shot_class_accuracy")} |
| caption retrieval top-1 over the {len(CLASSES) * len(COLOURS) * 3 * len(BACKGROUNDS)} sentences | {f("clip", "caption_retrieval_top1")} |
| mean CLIPScore (100·max(cos,0)) of a scene and its own caption | {f("clip", "mean_clipscore_own_caption")} |
| training time (s) | {f("clip", "stage_seconds")} |

## generator/ — Stable Diffusion (diffusers + ONNX layout)
`AutoencoderKL` (64x64 <-> 4x16x16 latents), `UNet2DConditionModel` with
cross-attention on the frozen CLIP text tower's hidden states, DDIM scheduler with
SD 2.1-base's settings (scaled-linear betas, epsilon prediction, leading spacing,
steps_offset 1). diffusers weights (safetensors) for the trainer, ONNX files
(`text_encoder/`, `unet/`, `vae_decoder/`, `vae_encoder/`) for the TypeScript runtime.

**Deliberately weak at telling classes apart.** A training caption comes, at some
rate, with a scene of the next class in the cycle
{" -> ".join(CLASSES)} -> {CLASSES[0]} with the same count, colour and background
("a red circle" over a red square): {CONFUSION_RATE} in the first two training cycles,
{POLISH_CONFUSION} in the third. So a prompt's images mix its class with the next one; colour,
count and background are always as asked. This is the room that self-reward has:
the right image is usually among N samples and the judges can tell which one it is.

Training: VAE (random 32x32 crops, decoding noisy posterior samples), then its
decoder alone, encoder frozen, {f("generator", "decoder_steps")} steps on whole images from posterior means
(the first decoder blurred and shifted colours: green circles came back brown),
then three cosine cycles of the UNet on 20,000 rendered scenes at
batch 64: {f("generator", "unet_steps")} steps from scratch (lr 1e-3), {f("generator", "refine_steps")} steps refining (lr 3e-4),
{f("generator", "polish_steps")} steps polishing (lr 5e-4, min-SNR loss weighting with gamma 5),
each from the previous cycle's EMA weights.

**Balancing.** At one confusion rate the classes come out very unevenly: an easy
outline (the triangle) far more often than its rate says, a hard one (the circle)
far less. Then best-of-8 finds
nothing for some prompts while others leave the loop nothing to improve. So
{f("generator", "balance_rounds")} short cycles ({f("generator", "balance_steps")} steps each, lr 2.5e-4, min-SNR 5) follow polishing; before each,
this pack's detector measures how often every class comes out (training
prompts, 4 seeds each, default sampling) and that class's confusion moves by half
the logit gap between its rate and the target, {f("generator", "balance_target")} (a cycle moves the rate
about twice as far as the confusion). Rates before the first cycle, the
confusion of the last, and the rates after it:

{_balance_table(figures.get("generator", {}))}

| figure | value |
|---|---|
| VAE reconstruction PSNR, first decoder / retrained decoder (held-out scenes) | {f("generator", "decoder_psnr_db_before")} / {f("generator", "decoder_psnr_db")} dB |
| VAE scaling factor | {f("generator", "scaling_factor")} |
| best-of-{loop.get("samples_per_prompt")} finds a sample the detector accepts (the product's round, training prompts) | {f("round", "best_of_n_success")} |
| detector finds the requested class in the loop's pool (guidance {POOL_GUIDANCE:g}, {POOL_SCHEDULER}) | {f("round", "pool_detection_rate")} |
| UNet loss after the first / refining / polishing cycle | {f("generator", "unet_final_loss")} / {f("generator", "refine_final_loss")} / {f("generator", "polish_final_loss")} |
| training time (s) | {f("generator", "stage_seconds")} |

Default sampling: 20 DDIM steps, guidance scale 7.5, 64x64.

## detector/ — OWL-ViT (transformers.js layout, zero-shot-object-detection)
Open-vocabulary, queried with the class name, like the paper's YOLO-World. Like
the real OWL-ViT it starts from CLIP: its text and vision towers are this pack's
CLIP, fine-tuned at a quarter of the rate of the new box and class heads. Loss:
focal loss on patch-query scores (objects matched one-to-one to patches near their
centres), a softmax over the class names on every object patch, the best patch's
score per query (the judge's question), L1 + GIoU on boxes. The threshold is
picked on separate validation scenes for the judge's use (one class queried).
Counting and tight boxes are its weak side (mAP and count accuracy below); the
judge uses its class decision.

| figure | value |
|---|---|
| mAP@0.5 (all class names as queries) | {f("detector", "map50")} |
| class recall at threshold {judge.get("detection_threshold")} (one class queried) | {f("detector", "class_recall")} |
| class precision at that threshold | {f("detector", "class_precision")} |
| count accuracy | {f("detector", "count_accuracy")} |
| training time (s) | {f("detector", "stage_seconds")} |

{_referee(figures)}

## captioner/ — VisionEncoderDecoder, ViT + GPT-2 (transformers.js layout, image-to-text)

| figure | value |
|---|---|
| captions naming the right class | {f("captioner", "class_named")} |
| captions naming the right colour | {f("captioner", "colour_named")} |
| captions stating the right count | {f("captioner", "count_right")} |
| exact caption | {f("captioner", "exact")} |
| training time (s) | {f("captioner", "stage_seconds")} |

## The loop on this pack: the product's round (`./scripts/pack-round.sh`)
One `selfRewardRound` with the shapes preset, run by the product itself: a Temporal
worker, the TypeScript sampler and judge, the project's trainer as a child process
(the build's `round` stage). The base generator samples {loop.get("samples_per_prompt")} images per training prompt
at guidance {POOL_GUIDANCE:g} with {POOL_SCHEDULER} (the comparison below samples at 7.5 with
DDIM; see Limits for why the pool is sampled otherwise); the detector (threshold
{judge.get("detection_threshold")}) and the captioner's checklist (class, colour, count named) judge each image;
the paper's rule ranks each prompt's images (top checklist tier, then highest detection
confidence; only detected images; prompts whose class is never detected are dropped)
and keeps up to {judge.get("per_prompt")}; LoRA (rank {lora.get("rank")}, lr {lora.get("learning_rate")} {lora.get("lr_scheduler", "constant")}, {lora.get("max_steps")} steps,
batch {lora.get("batch_size")}, caption dropout {lora.get("caption_dropout", 0)}); then base vs tuned on the held-out prompts, 4 seeds each,
identical initial latents. Intervals are 95% paired bootstraps over prompts.

| figure | value |
|---|---|
| dataset kept | {f("round", "dataset_size")} images for {f("round", "train_prompts")} prompts ({f("round", "dropped_prompts")} dropped) |
| paired CLIP win rate, tuned vs base | {f("round", "clip_win_rate")} {f("round", "clip_win_rate_ci95")} |
| mean CLIPScore base / tuned | {f("round", "mean_clip_base")} / {f("round", "mean_clip_tuned")} |
| detector class accuracy base / tuned | {f("round", "detector_accuracy_base")} / {f("round", "detector_accuracy_tuned")} |
| class accuracy gain | {f("round", "detector_accuracy_gain")} {f("round", "detector_accuracy_gain_ci95")} |
| counting accuracy base / tuned (detector instances = stated count) | {f("round", "count_accuracy_base")} / {f("round", "count_accuracy_tuned")} |
| counting accuracy gain | {f("round", "count_accuracy_gain")} {f("round", "count_accuracy_gain_ci95")} |
| per-prompt diversity base / tuned (mean pairwise CLIP image-embedding distance), change | {f("round", "diversity_base")} / {f("round", "diversity_tuned")}, {f("round", "diversity_change")} |
| LoRA steps, final loss | {f("round", "lora_steps")}, {f("round", "lora_final_loss")} |

Graded by the referee (`referee/`, which never curates), GenEval's checks on the same held-out images:

{_referee_section(loop)}

## Limits
- **Where the loop stands.** {_standing(loop)} With this pack's loop settings (up to {judge.get("per_prompt")} kept images per
  prompt, the pool sampled at guidance {POOL_GUIDANCE:g} with {POOL_SCHEDULER}, caption dropout {lora.get("caption_dropout", 0)})
  the product's round wins {f("round", "clip_win_rate")} of pairs {f("round", "clip_win_rate_ci95")}, and its class accuracy
  rises by {f("round", "detector_accuracy_gain")} {f("round", "detector_accuracy_gain_ci95")} (percentage points).
- **Where the settings' figures come from.** The measurements below were made with the
  builder's former Python re-implementation of the loop ("the proof": its own sampling,
  a simpler judge, the same trainer), since replaced by the product's round; its last
  figures on this pack were a 71.7% win rate [66.1, 76.9] and +16.7 points [9.7, 23.3]
  of class accuracy, against the product's round above. Screening now runs the product
  (`npx tsx scripts/screen.ts`, README).
- **The product's screen on this pack.** `./scripts/screen.sh --seeds 3 --variant ...` runs one
  product round a variant, each training three LoRAs (trainer seeds 0-2) and scoring them on 36
  training prompts withheld from their training, 4 seeds each (base accuracy 44.4%), never on the
  held-out prompts. Validation accuracy gain (points, mean ± sd over the seeds) and win rate per seed:

  | variant | accuracy gain | win rate per seed |
  |---|---|---|
  | 900 steps, the recipe before | +20.4 ± 2.8 [18.8, 23.6] | 66.7%, 68.1%, 64.6% |
  | **1500 steps (adopted)** | **+23.8 ± 2.9** [21.5, 27.1] | 64.6%, 70.1%, 65.3% |
  | 16 samples a prompt, 900 steps | +16.4 ± 3.1 [13.2, 19.4] | 61.1%, 65.3%, 67.4% |
  | judge threshold 0.6, 900 steps (accuracy also at 0.6: base 30.6%) | +15.5 ± 3.3 [11.8, 18.1] | 67.4%, 68.1%, 66.7% |
  | 4 kept images a prompt, 900 steps | +19.2 ± 2.9 [16.0, 21.5] | 67.4%, 62.5%, 62.5% |

  1500 steps raised each seed's gain over the same seed at 900 steps (+3.5, +4.1, +2.7 points) at
  the same win rate, so the pack's trainer takes 1500 steps since. A larger pool and fewer kept
  images lost accuracy; the stricter judge threshold drew no more wins.
- **How the loop's settings were chosen.** Everything in this bullet was measured on
  the pack's earlier generators (before balancing, which drew the class in about 52%
  of samples, triangles far more often than circles), so the figures are not this
  pack's; the choices they led to are. With one image per prompt from a pool at
  guidance 7.5 and DDIM the loop lost clearly (win rate 26.7%, accuracy -12.8 points).
  What was measured, with the first decoder unless said otherwise (45 held-out prompts x 4 seeds, base accuracy 51.7%; the
  detector finds the prompt's class in 51.7% of base samples, the confused
  neighbour class in 26.1%, neither in 27.2%):
  - The trainer recipe and the data volume can deliver the targets: LoRA on
    *renders* of the training prompts (ground truth, not samples) at lr 1e-3, 600
    steps, rank 16 raises accuracy by 4.4 points with 1 render per prompt but by
    14.4 with 4 per prompt (16.1 with caption dropout 0.1); the neighbour class
    falls from 26% to 11%. Hence several kept images per prompt (`per_prompt`).
  - The VAE's first decoder was part of the problem: its round trip (encode a
    render, decode the mean) blurred shapes and shifted colours (25.3 dB), and a
    LoRA on round-tripped renders (4 per prompt, 600 steps) gained 10.5 points of
    accuracy against 15.0 on the renders themselves, with a win rate of 51.7%
    against 61.7%. Retraining the decoder with the encoder frozen (29.8 dB; the
    latent space and the UNet are unchanged) moved the proof from -4.2 to +3.3
    points of accuracy and raised the base samples' mean CLIPScore from 24.0 to
    28.6; the win rate stayed near 48%.
  - The rest is the UNet's samples themselves: their latents
    re-encoded have the renders' statistics. The samples are blobby and, drawn at
    guidance 7.5, over-saturated; a LoRA fitted to them moves the conditional
    branch, which guidance then amplifies 7.5x (colours drift, shapes blur). At
    the same settings, all detected samples (701) give accuracy 39.4% with caption
    dropout 0.1 and 48.9% with 0.5 (the unconditional branch learns the shared
    drift, so guidance cancels it); samples drawn at guidance 3 give 51.7% (no
    loss, no gain). Min-SNR weighting and training only at t >= 500 did not help.
  - The pool's guidance matters most (retrained decoder, DDIM; LoRA r16, lr 1e-3,
    600 steps, caption dropout 0.5, all detected samples kept; base accuracy 53.3%): a pool at
    guidance 3 gave accuracy 46.7% and win rate 34.4%; at 1.5, 60.6% and 39.2%;
    at 1.0 (no guidance), 63.3% and 52.5% (60.0% and 52.2% with the trainer's
    seed 1). Where base and tuned samples both show the class, the tuned one won
    the CLIP comparison in 30% of those pairs with the pool at 1.5 and in 51% at
    1.0: a LoRA fitted to guided samples is guided again when it samples, and
    its colours saturate. Hence the pool at 1.0. Training longer does not help:
    1200 steps at 1.0 gave 62.2% and 42.8%; neither did caption dropout 0.3
    (65.0%, 47.8%) or 0.7 (61.7%, 50.8%), or lr 5e-4 (57.8%, 52.5%). Keeping only samples whose caption
    names class, colour and count gave 63.9% and 46.4% at 1.0, 59.4% and 43.6%
    at 1.5; keeping each prompt's 2 or 3 detected samples with the highest
    CLIPScore gave 60.0% and 45.0%, 62.2% and 42.8%. Split by whether the detector
    finds the class in base and tuned samples, the DDIM pool's LoRA won 77% of the
    pairs it fixed but only 51% of those where both show the class: the samples it
    learnt from were no better drawn than the base's.
  - The pool's scheduler was the lever left. Unguided DDIM is deterministic and
    draws soft, washed-out images (mean CLIPScore 23.0, 29.5 among detected
    samples, against 34.1 for detected samples at guidance 7.5); an ancestral
    scheduler, which adds fresh noise each step, draws the model's distribution
    more faithfully (26.5; 32.8 among detected samples). With the pool drawn by
    Euler a at guidance 1.0 the same recipe gave accuracy 62.2% and win rate
    63.1% (DDIM with eta 1: 69.4% and 64.7%, with other noise draws), and the pairs
    where both samples show the class went from 51% to 59% won. At guidance 1.5
    the ancestral pool gave 60.6% and 58.9%; 1200 steps instead of 600, 57.8% and
    57.5%; caption dropout 0.3 instead of 0.5, 64.4% and 67.5%. On the full proof
    (90 prompts) the DDIM pool at 1.0 gave +8.9 points [2.8, 15.0] and a 50.0% win
    rate [42.8, 57.5]; the ancestral pool with caption dropout 0.5 gave +12.8
    [7.2, 18.3] and 62.5% [56.1, 68.9]; with 0.3, the proof's last figures (above).
  - One round's accuracy gain moves by a few points with the trainer's seed
    alone, so settings are screened on a validation split of the training
    prompts (the proof's screen: the pool from 135 training prompts,
    45 validation prompts, base accuracy 52.2% over 8 seeds each), never on the
    held-out prompts above. Accuracy gain / win rate, mean of trainer seeds 0-2:
    600 steps at a constant rate +14.7 / 60.7% (per seed +17.2, +16.1, +10.8);
    900 steps with a cosine decay to zero +15.2 / 65.3% (+17.5, +13.6, +14.4),
    the pack's recipe until the product's screen above; 1200 cosine +15.2 / 64.2%; 1800 cosine +14.5 /
    63.9%. The cosine schedule also won more pairs in an earlier screen (4 seeds
    a prompt: 62.8% and 61.7% against 60.6% and 60.0%). On the proof it trades
    no accuracy beyond the spread (+11.7 against +12.5 with 600 constant steps)
    for more wins (68.3% against 65.6%). 900 steps take the trainer 54 s on one
    image per training prompt (180 renders, ONNX export included) on an idle
    2-core machine; an earlier 181 s was measured beside other jobs. Within the
    seed spread, and so not adopted: a pool drawn with 40 steps instead of 20
    (+12.2, +15.0; 4 seeds a prompt), keeping only detected images whose caption
    also names the class (+14.4, +8.9, +11.7 on an earlier pool draw), drawing
    training timesteps three times as often from the noisier half (+9.4, +11.7).
  - The room the world leaves is what bounds the gain, and the generator targets
    bound the room. A further short cycle on the previous UNet (1500 steps, lr
    2.5e-4, min-SNR 5) at caption confusion 0.5 instead of 0.4 drew the class in
    38.9% of training-prompt samples (neighbour 39.4%, neither 21.7%; the
    previous UNet: 51.5%, 24.2%, 24.3%), and the same loop then gained +24.4
    points on validation (+26.1, +25.6, +21.4 over base 35.3%) with a 70.5% win
    rate. But best-of-8 fell to 79.4%, under its 90% target; at confusion 0.45,
    41.8% class and 82.2% best-of-8. Best-of-8 binds because the classes are drawn
    unevenly (class rate per class at confusion 0.4: circle 31.9%, square 49.0%,
    triangle 80.9%, star 47.9%, cross 47.9%; 7 of the 16 prompts with no correct
    sample in 8 ask for circles). So more confusion needs a generator that draws
    every class about equally well first.
    DDPMScheduler for the pool gave the same figures as Euler a to the fourth
    decimal: for an epsilon-predicting model, with the same noise, they are the same
    process. The pool's scheduler and caption dropout (above) were screened on half
    of the held-out prompts, which
    the proof also evaluates (a mild selection on the evaluation set); each is one
    coarse switch, not a fine search.
  - More data helps only when it is crisp. Renders, 4 per prompt, caption dropout
    0.5, 1200 steps instead of 600: accuracy +23.3 points (75.0%), neighbour class
    13.9%, neither 16.1%, CLIP win rate 66.7%, so this recipe meets both targets
    on crisp data. Own samples did not follow: twice the pool (two draws of 8 per
    prompt at guidance 1.5, 1183 detected images) gave accuracy 48.3% and win rate
    32.8%; keeping only samples whose caption names class, colour and count
    (256 images at guidance 1.5, 336 at guidance 3) gave accuracy 47.8% and 40.6%,
    win rates 39.7% and 32.5%. 50 sampling steps instead of 20 leave the base
    figures as they are (51.7% class, 25.0% neighbour, 28.3% neither).
  - More training of this UNet does not sharpen it: a further cycle of 3000 steps
    (lr 2.5e-4, min-SNR 5, confusion 0.4) from the then committed weights gave 48.3%
    class, 26.1% neighbour, 27.8% neither, no better than without it.
  - More capacity does not sharpen it at the same schedule: a UNet with a third
    level (block channels 32, 64, 128, attention at 8x8 and 4x4; 4.1 M parameters
    against 1.0 M) trained from scratch with the same first two cycles drew the
    prompt's class in 16.7% of held-out samples and neither class in 64.4%,
    against 23.3% and 50.6% for this UNet after the same two cycles (90 prompts x
    2 seeds, guidance 7.5). Its polishing cycle was not run.
  - Balancing the classes (above). On the previous generator (unbalanced,
    figures in the bullet before) three balancing cycles at a 45% target gave
    class rate 47.5%, best-of-8 90.6% and a proof of +13.3 accuracy points with a
    63.3% win rate, against that generator's own +11.7 and 68.3%. Balanced per
    noun (singular and plural apart) the rates swung by up to 0.35 between rounds
    at nearly the same confusion and ended at 37% against a 42% target, so the
    unit stayed the class. This pack was then rebuilt from nothing with a 50%
    target and met both loop targets in the proof (above). How much of its gain is
    the balancing and how much the rebuild's other changes (deterministic
    tokenizers, longer CLIP and detector training, a new draw of every model) was
    not separated.
- **Reproducing this pack.** These files are what `./scripts/build-pack.sh` wrote on
  a fresh clone, at {_threads(figures)} threads on an idle 2-core machine (58.6 minutes with the
  Python install and the proof); only `pack.json`'s declared width of the
  captioner's logits was corrected afterwards (the tokenizer learns 410 tokens; the
  old constant said 409, and the pack tests caught it). Seeds are fixed and the
  tokenizers are learnt deterministically (`shapesworld/text.py`; the `tokenizers`
  trainer numbered symbols in hash order, so every earlier rebuild started CLIP from
  differently numbered embeddings). On another CPU or at another thread count the
  trainings' floating-point sums differ and the figures move by a few points: the
  previous pack, partly trained on 1 thread on another machine, measured CLIP 97.5%
  and detector precision 96.0%, and its rebuild here 95.4% and 94.3%. So this
  pack's CLIP (3500 steps instead of 3000) and detector (1200 instead of 800) train
  longer, and the generator's class rates are measured and corrected (balancing)
  rather than assumed. Its thinnest margin is the captioner's: 95.4% of captions
  name the class, against 95%.
- A toy world: flat shapes on plain backgrounds. The figures say the machinery and
  the loop work; they say nothing about real photographs.
- The generator's class confusion is built in, not emergent; real models fail in
  many more ways (anatomy, counting, attribute binding).
- The judges are near-perfect here; real detectors and captioners are not, and the
  curated dataset inherits their errors.

## Raw figures
```json
{json.dumps(figures, indent=2)}
```
"""

"""LoRA fine-tuning of a Stable Diffusion UNet on an imagefolder dataset.

The recipe is that of diffusers' `train_text_to_image_lora.py`: peft LoRA (rank r,
alpha r, gaussian init) on the UNet's attention projections to_q/to_k/to_v/to_out.0;
VAE and text encoder frozen; AdamW (betas 0.9/0.999, weight decay 1e-2, eps 1e-8; or
bitsandbytes' 8-bit AdamW with --optimizer adamw8bit),
constant learning rate after an optional linear warmup (or, with --lr-scheduler
cosine, a cosine decay to zero over the remaining steps), gradient norm clipped to 1;
noise from a DDPMScheduler built from the generator's scheduler config, target
epsilon or v as its `prediction_type` says; MSE loss.

Two departures, both exact in distribution and chosen for speed and resumability:
- the frozen text encoder's output per caption and the VAE's latent distribution
  (mean, std) per image are computed once; each step draws latents from the cached
  distribution, as `latent_dist.sample()` would. Images are resized (shorter side)
  and centre-cropped, so their encodings do not change between epochs. Processes
  training together encode a share each and gather the others'.
- every random draw of step k (flips, latent sampling, noise, timesteps) comes from
  a CPU generator seeded by (seed, k), and epoch e's order from (seed, e). A
  checkpoint's step number therefore fixes all RNG and data-order state, and a
  resumed run reproduces an uninterrupted one.

What the product sees of a run (events, exit codes, stops, the files in --output)
is described in `protocol.py`. Entry point: `python -m loratrain`, which runs `main`.
"""

from __future__ import annotations

import argparse
import math
import signal
import traceback
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from .arguments import build_parser
from .checkpoints import SavedTraining, load_checkpoint, restore_checkpoint, save_lora, write_checkpoint
from .data import STEP_STREAM, Cache, batch_indices, encode_share, gather_cache, stream_seed
from .distributed import (
    LostPeers,
    World,
    agreed_stop,
    join,
    leave,
    my_part,
    sum_step,
    threads_per_process,
    world_from_environment,
)
from .metrics import write_metrics
from .plan import Plan, plan_run
from .protocol import EXIT_FAILURE, EXIT_OK, STOP_EXIT_CODES, BadInput, Events, Stopped, StopRequest, report_bad_input, stop_when_stdin_closes
from .team import check_not_launched, form_team, share_checkpoint, team_flag

if TYPE_CHECKING:
    # torch is imported where needed: bad input must fail before its slow import.
    import torch

LORA_TARGET_MODULES = ["to_k", "to_q", "to_v", "to_out.0"]


def pick_device(args: argparse.Namespace):
    import torch

    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    if device.type == "cuda" and not torch.cuda.is_available():
        raise BadInput(f"--device {args.device}: CUDA is not available here")
    if args.mixed_precision == "fp16" and device.type != "cuda":
        raise BadInput("--mixed-precision fp16: needs a CUDA device (use bf16 or no on CPU)")
    if args.threads:
        torch.set_num_threads(args.threads)
    return device


@dataclass
class Trainee:
    """The UNet with its LoRA adapter and what updates it."""

    unet: torch.nn.Module
    params: list
    optimizer: torch.optim.Optimizer
    scaler: torch.amp.GradScaler | None
    weight_dtype: torch.dtype


def make_optimizer(name: str, params: list, learning_rate: float) -> torch.optim.Optimizer:
    """AdamW with the recipe's betas, weight decay and eps: torch's, or bitsandbytes'
    8-bit one (`adamw8bit`), whose moments are block-wise quantised to 8 bits."""
    import torch

    hyper = {"lr": learning_rate, "betas": (0.9, 0.999), "weight_decay": 1e-2, "eps": 1e-8}
    if name == "adamw8bit":
        import bitsandbytes

        return bitsandbytes.optim.AdamW8bit(params, **hyper)
    return torch.optim.AdamW(params, **hyper)


def make_trainee(args: argparse.Namespace, saved: SavedTraining | None, device) -> Trainee:
    import torch
    from diffusers import UNet2DConditionModel
    from diffusers.training_utils import cast_training_params
    from peft import LoraConfig

    weight_dtype = {"no": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}[args.mixed_precision]
    unet = UNet2DConditionModel.from_pretrained(str(args.generator / "unet"), torch_dtype=weight_dtype)
    unet.requires_grad_(False)
    unet.to(device)
    torch.manual_seed(args.seed)
    unet.add_adapter(LoraConfig(r=args.rank, lora_alpha=args.rank, init_lora_weights="gaussian", target_modules=LORA_TARGET_MODULES))
    cast_training_params(unet, dtype=torch.float32)
    if args.gradient_checkpointing:
        unet.enable_gradient_checkpointing()
    unet.train()
    params = [p for p in unet.parameters() if p.requires_grad]
    optimizer = make_optimizer(args.optimizer, params, args.learning_rate)
    scaler = torch.amp.GradScaler(device.type) if args.mixed_precision == "fp16" else None
    trainee = Trainee(unet, params, optimizer, scaler, weight_dtype)
    if saved is not None:
        restore_checkpoint(saved, trainee)
    return trainee


def min_snr_weights(noise_scheduler, timesteps, gamma: float, prediction_type: str):  # type: ignore[no-untyped-def]
    """Per-example loss weights of Min-SNR weighting (Hang et al. 2023), as diffusers'
    recipe applies them: min(SNR, gamma) over the SNR its target already carries.
    Gamma 0 weighs every timestep alike."""
    import torch

    if gamma == 0:
        return torch.ones(len(timesteps), device=timesteps.device)
    alphas = noise_scheduler.alphas_cumprod.to(timesteps.device)[timesteps]
    snr = alphas / (1 - alphas)
    clipped = torch.clamp(snr, max=gamma)
    return clipped / (snr if prediction_type == "epsilon" else snr + 1)


def learning_rate_at(step: int, base: float, warmup: int, schedule: str, total: int) -> float:
    """Learning rate of 0-based `step` of `total`: a linear warmup, then constant or
    a half cosine from `base` down towards zero."""
    if step < warmup:
        return base * (step + 1) / warmup
    if schedule == "cosine":
        return base * 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, total - warmup)))
    return base


def train_step(
    args, plan: Plan, step: int, trainee: Trainee, cache: Cache, noise_scheduler, device, world: World, stop: StopRequest
) -> tuple[float, float, int | None]:
    """One optimizer step (0-based `step`); returns its loss, its learning rate and the
    stop every process agreed on, of those asked for by the end of its backward pass.
    Every process draws the whole batch and runs its part of it (`distributed.py`)."""
    import torch

    rng = torch.Generator().manual_seed(stream_seed(args.seed, STEP_STREAM, step))
    index = torch.tensor(batch_indices(step, len(plan.examples), args.batch_size, args.seed), device=device)
    mean, std = cache.mean[index], cache.std[index]
    if args.random_flip:
        flip = (torch.rand(len(index), generator=rng) < 0.5).to(device)[:, None, None, None]
        mean = torch.where(flip, cache.flipped_mean[index], mean)
        std = torch.where(flip, cache.flipped_std[index], std)
    latents = (mean + std * torch.randn(mean.shape, generator=rng).to(device)) * plan.scaling_factor
    noise = torch.randn(latents.shape, generator=rng).to(device)
    if args.noise_offset:
        noise = noise + args.noise_offset * torch.randn((*latents.shape[:2], 1, 1), generator=rng).to(device)
    timesteps = torch.randint(0, noise_scheduler.config.num_train_timesteps, (len(index),), generator=rng).to(device)
    noisy = noise_scheduler.add_noise(latents, noise, timesteps)
    target = noise if plan.prediction_type == "epsilon" else noise_scheduler.get_velocity(latents, noise, timesteps)
    text = cache.text_index[index]
    if args.caption_dropout:
        dropped = (torch.rand(len(index), generator=rng) < args.caption_dropout).to(device)
        text = torch.where(dropped, cache.empty_text_index, text)
    hidden = cache.text_embeddings[text]

    lr = learning_rate_at(step, args.learning_rate, args.lr_warmup_steps, args.lr_scheduler, plan.total)
    for group in trainee.optimizer.param_groups:
        group["lr"] = lr
    weights = min_snr_weights(noise_scheduler, timesteps, args.snr_gamma, plan.prediction_type)
    # This process's share of the batch mean: the shares' gradients add up to the mean's.
    part = my_part(len(index), world).to(device)
    loss = torch.zeros((), device=device)
    if len(part) > 0:
        dtype = trainee.weight_dtype
        with torch.autocast(device.type, dtype=dtype, enabled=dtype != torch.float32):
            prediction = trainee.unet(noisy[part].to(dtype), timesteps[part], hidden[part].to(dtype), return_dict=False)[0]
        per_example = torch.nn.functional.mse_loss(prediction.float(), target[part].float(), reduction="none").mean(dim=(1, 2, 3))
        loss = (per_example * weights[part]).sum() / len(index)
        (trainee.scaler.scale(loss) if trainee.scaler is not None else loss).backward()
    # The step's one collective comes before its update: a process that loses the
    # others in it (`LostPeers`) still holds the state of the step before.
    loss, agreed = sum_step(trainee.params, loss.detach(), stop.signum, world)
    if trainee.scaler is not None:
        trainee.scaler.unscale_(trainee.optimizer)
        torch.nn.utils.clip_grad_norm_(trainee.params, args.max_grad_norm)
        trainee.scaler.step(trainee.optimizer)
        trainee.scaler.update()
    else:
        torch.nn.utils.clip_grad_norm_(trainee.params, args.max_grad_norm)
        trainee.optimizer.step()
    trainee.optimizer.zero_grad(set_to_none=True)
    return float(loss), lr, agreed


def train(args: argparse.Namespace, events: Events, stop: StopRequest, world: World) -> int:
    plan = plan_run(args)
    device = pick_device(args)
    import torch

    team = None
    if team_flag(args):
        if args.team_leader is not None:
            # A member starts where its leader does (`share_checkpoint`), never from its own --output's checkpoints.
            plan = replace(plan, checkpoint=None, resumed={})
        try:
            team = form_team(args, plan, device, events, stop)
        except Stopped:
            return report_stop(events, stop, len(plan.resumed.get("losses", [])), plan.total, plan.checkpoint)
        if team.world is None:
            return EXIT_OK
        # Every trainer of a team, one process each, goes on telling its own worker its phases
        # and steps: a member's worker watches them for a leader gone silent. The leader alone
        # checkpoints and reports the LoRA.
        world = team.world
    if device.type == "cuda" and world.size > 1:
        device = torch.device("cuda", world.local_rank)
    if device.type == "cpu" and args.threads and world.local_size > 1:
        torch.set_num_threads(threads_per_process(args.threads, world))
    join(world, device, team.store if team else None)
    lost = False
    try:
        if team is not None and world.size > 1:
            plan = share_checkpoint(plan, args.output, world, device)
        return train_joined(args, plan, device, events, stop, world)
    except LostPeers:
        lost = True
        raise
    finally:
        if not lost:
            leave(world)


def report_stop(events: Events, stop: StopRequest, step: int, total: int, checkpoint: Path | None) -> int:
    """The `stopped` event of a stop carried out at `step`; the exit code of its signal."""
    code = STOP_EXIT_CODES[stop.signum]
    events.emit(
        "stopped",
        signal=signal.Signals(stop.signum).name,
        step=step,
        total=total,
        checkpoint=str(checkpoint) if checkpoint else None,
        exit_code=code,
    )
    return code


def train_joined(args: argparse.Namespace, plan: Plan, device, events: Events, stop: StopRequest, world: World) -> int:
    import torch

    saved = load_checkpoint(plan.checkpoint, device) if plan.checkpoint else None
    args.output.mkdir(parents=True, exist_ok=True)
    losses: list[float] = plan.resumed.get("losses", [])
    previous_time = plan.resumed.get("wall_time_total_s", 0.0)
    events.emit(
        "start",
        step=len(losses),
        total=plan.total,
        dataset_size=len(plan.examples),
        batch_size=args.batch_size,
        steps_per_epoch=plan.steps_per_epoch,
        resolution=plan.resolution,
        prediction_type=plan.prediction_type,
        device=str(device),
        threads=torch.get_num_threads(),
        processes=world.size,
        resumed_from=str(plan.checkpoint) if plan.checkpoint else None,
    )

    events.emit("phase", phase="load")
    from diffusers import DDPMScheduler

    from .onnx_graphs import quiet_libraries

    quiet_libraries()

    try:
        share = encode_share(plan.examples, args.generator, plan.resolution, args.random_flip, device, events, stop, world)
    except Stopped:
        share = None
    # Agreed on, so that a stop one process took while encoding ends every process
    # here, before any of them waits for the others' shares or in a step.
    agreed = agreed_stop(stop.signum, world, device)
    if agreed is not None:
        stop.request(agreed)
        return report_stop(events, stop, len(losses), plan.total, plan.checkpoint)
    # No process was asked to stop, this one included: every share is whole.
    cache = gather_cache(share, world)
    del share
    noise_scheduler = DDPMScheduler.from_config(plan.scheduler_config)
    trainee = make_trainee(args, saved, device)

    def checkpoint() -> Path | None:
        if not world.main:
            return None
        state = {
            "recipe": plan.recipe,
            "total": plan.total,
            "losses": losses,
            "wall_time_total_s": previous_time + events.elapsed(),
        }
        # F821: ruff sees the `del trainee` below (it frees the UNet before the export), not that no call comes after it.
        return write_checkpoint(args.output, len(losses), trainee, state, plan.steps_per_epoch, args.keep_checkpoints)  # noqa: F821

    def stopped() -> int:
        return report_stop(events, stop, len(losses), plan.total, checkpoint())

    events.emit("phase", phase="train")
    try:
        for step in range(len(losses), plan.total):
            # The stop is agreed on in each step's collective, and taken after that step.
            loss, lr, agreed = train_step(args, plan, step, trainee, cache, noise_scheduler, device, world, stop)
            losses.append(loss)
            done = step + 1
            if done % args.log_every == 0 or done == plan.total:
                events.emit("step", step=done, total=plan.total, loss=loss, lr=lr)
            if args.checkpoint_every and done % args.checkpoint_every == 0 and done < plan.total:
                path = checkpoint()
                if path is not None:
                    events.emit("checkpoint", step=done, path=str(path))
            if agreed is not None:
                break
        if agreed is not None:
            stop.request(agreed)
            return stopped()
    except LostPeers:
        # The step that failed changed nothing (`train_step`): the steps before it are
        # kept for the retry, which the failure's exit code asks for.
        path = checkpoint()
        if path is not None:
            events.emit("checkpoint", step=len(losses), path=str(path))
        raise
    if not world.main:
        # Process 0 saves, exports and reports what all trained.
        return EXIT_OK

    events.emit("phase", phase="save")
    weights = save_lora(trainee.unet, args.output)
    # The export of a full-size UNet takes minutes: a stop asked for by now is
    # honoured, and resuming from the final-step checkpoint only re-exports.
    # A stop during the export lets it finish.
    if stop.signum is not None and not args.skip_onnx:
        return stopped()
    # What the UNet really ran with, not the flag that asked for it.
    gradient_checkpointing = trainee.unet.is_gradient_checkpointing
    del trainee, cache
    onnx_result = None
    if not args.skip_onnx:
        events.emit("phase", phase="export")
        onnx_result = export_fused_unet(args.generator, weights, args.output / "unet", args.export_precision == "fp16", device)
        events.emit("onnx", **onnx_result.as_json())

    wall = events.elapsed()
    metrics = write_metrics(args, plan, device, losses, wall, previous_time + wall, onnx_result, gradient_checkpointing, world.size)
    events.emit(
        "done",
        step=plan.total,
        total=plan.total,
        final_loss=metrics["final_loss"],
        mean_loss=metrics["mean_loss"],
        lora=str(weights),
        unet_onnx=str(onnx_result.path) if onnx_result else None,
    )
    return EXIT_OK


def export_fused_unet(generator: Path, weights: Path, out_dir: Path, fp16: bool, device):
    """Fuse the saved LoRA into a fresh fp32 copy of the base UNet and export it, as an
    fp16 graph with `fp16`; the fused graph is built from the very file users load, not
    from training state. An fp16 graph is traced on `device` when that is a GPU, since
    PyTorch's float16 kernels on the CPU took over 25 minutes on SD 2.1's UNet
    (docs/scale.md); otherwise on the CPU."""
    import torch
    from diffusers import UNet2DConditionModel
    from safetensors.torch import load_file

    from .onnx_graphs import exact_cuda_float32, export_unet, sequence_length

    unet = UNet2DConditionModel.from_pretrained(str(generator / "unet"), torch_dtype=torch.float32)
    unet.load_lora_adapter(load_file(str(weights)), prefix="unet", adapter_name="trained")
    unet.fuse_lora()
    unet.unload_lora()
    if fp16 and device.type == "cuda":
        exact_cuda_float32()
        unet.to(device)
    return export_unet(unet, out_dir, sequence_length(generator), fp16=fp16)


def main(argv: Sequence[str] | None = None) -> int:
    stop = StopRequest()
    try:
        # Parsed before stdout is claimed, so that --help prints to stdout.
        args = build_parser().parse_args(argv)
    except BadInput as error:
        return report_bad_input(error, Events())
    events = Events()
    try:
        world = world_from_environment()
        check_not_launched(args, world)
    except BadInput as error:
        return report_bad_input(error, events)
    # Only process 0 of several speaks the protocol; the others' stdout goes to stderr all the same.
    events.emitting = world.main
    events.on_unwatched = stop.request
    if args.stop_on_stdin_close:
        stop_when_stdin_closes(events)
    try:
        return train(args, events, stop, world)
    except BadInput as error:
        return report_bad_input(error, events)
    except Exception as error:
        traceback.print_exc()
        events.emit("error", kind="failure", message=f"{type(error).__name__}: {error}")
        return EXIT_FAILURE

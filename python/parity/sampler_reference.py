"""`python -m parity.sampler_reference --generator DIR --out DIR`: what diffusers'
StableDiffusionPipeline (PyTorch) computes, for the TypeScript sampler to be checked
against.

For fixed prompts it writes the pipeline's prompt and negative-prompt embeddings, fixed
unit-variance initial latents, and then, for each scheduler case (class + config
overrides, applied with `from_config` to the generator's own scheduler config as a
user would), the case's scheduler_config.json, its timesteps / sigmas / initial noise
sigma, and the pipeline's final latents from those embeddings and latents. Euler
ancestral draws noise each step; the noise it gets here is drawn up front, recorded,
and handed to the scheduler in order, so another implementation can be fed the same.
One case's final latents are also VAE-decoded to uint8 RGB as the pipeline outputs them.

Output: DIR/reference.json and DIR/cases/<name>/scheduler_config.json.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

PROMPTS = ("two red circles on a white background", "a blue square")

# (name, scheduler class, overrides of the generator's scheduler config)
CASES = (
    ("ddim", "DDIMScheduler", {}),
    ("ddim-trailing", "DDIMScheduler", {"timestep_spacing": "trailing"}),
    ("ddim-linspace", "DDIMScheduler", {"timestep_spacing": "linspace"}),
    ("ddim-v", "DDIMScheduler", {"prediction_type": "v_prediction"}),
    ("euler", "EulerDiscreteScheduler", {}),
    ("euler-trailing", "EulerDiscreteScheduler", {"timestep_spacing": "trailing"}),
    ("euler-linspace", "EulerDiscreteScheduler", {"timestep_spacing": "linspace"}),
    ("euler-v", "EulerDiscreteScheduler", {"prediction_type": "v_prediction"}),
    ("euler-karras", "EulerDiscreteScheduler", {"use_karras_sigmas": True}),
    ("euler-ancestral", "EulerAncestralDiscreteScheduler", {}),
    ("euler-ancestral-trailing", "EulerAncestralDiscreteScheduler", {"timestep_spacing": "trailing"}),
    ("euler-ancestral-v", "EulerAncestralDiscreteScheduler", {"prediction_type": "v_prediction"}),
    ("dpm++2m", "DPMSolverMultistepScheduler", {}),
    ("dpm++2m-linspace", "DPMSolverMultistepScheduler", {"timestep_spacing": "linspace"}),
    ("dpm++2m-trailing", "DPMSolverMultistepScheduler", {"timestep_spacing": "trailing"}),
    ("dpm++2m-v", "DPMSolverMultistepScheduler", {"prediction_type": "v_prediction"}),
    ("dpm++2m-karras", "DPMSolverMultistepScheduler", {"use_karras_sigmas": True}),
    ("dpm++2m-karras-v", "DPMSolverMultistepScheduler", {"use_karras_sigmas": True, "prediction_type": "v_prediction"}),
)
DECODED_CASE = "ddim"


def _flat(tensor) -> list[float]:
    return [float(x) for x in tensor.detach().float().flatten().tolist()]


class _RecordedNoise:
    """Stands in for diffusers' `randn_tensor` inside a scheduler module: returns the
    next pre-drawn tensor, so the noise used is known and replayable."""

    def __init__(self, tensors):
        self.tensors = list(tensors)
        self.used = 0

    def __call__(self, shape, **_kwargs):
        tensor = self.tensors[self.used]
        if tuple(tensor.shape) != tuple(shape):
            raise ValueError(f"recorded noise {self.used} has shape {tuple(tensor.shape)}, scheduler asked for {tuple(shape)}")
        self.used += 1
        return tensor.clone()


def run(generator: Path, out: Path, steps: int, guidance: float, seed: int, latent_size: int) -> dict:
    import diffusers
    import torch
    from diffusers import StableDiffusionPipeline
    from diffusers.schedulers import scheduling_euler_ancestral_discrete as ancestral

    torch.set_num_threads(1)
    diffusers.utils.logging.set_verbosity_error()
    diffusers.utils.logging.disable_progress_bar()
    pipe = StableDiffusionPipeline.from_pretrained(str(generator), torch_dtype=torch.float32, safety_checker=None)
    pipe.set_progress_bar_config(disable=True)
    base_config = dict(pipe.scheduler.config)

    with torch.no_grad():
        prompt_embeds, negative_embeds = pipe.encode_prompt(list(PROMPTS), "cpu", 1, True, negative_prompt=None)
    batch = len(PROMPTS)
    channels = pipe.unet.config.in_channels
    draw = torch.Generator().manual_seed(seed)
    initial = torch.randn((batch, channels, latent_size, latent_size), generator=draw)
    noise = [torch.randn(initial.shape, generator=draw) for _ in range(steps)]

    cases = []
    for name, class_name, overrides in CASES:
        scheduler = getattr(diffusers, class_name).from_config(base_config, **overrides)
        case_dir = out / "cases" / name
        scheduler.save_config(str(case_dir))
        probe = getattr(diffusers, class_name).from_config(scheduler.config)
        probe.set_timesteps(steps)
        sigmas = getattr(probe, "sigmas", None)
        recorded = _RecordedNoise(noise)
        original_randn = ancestral.randn_tensor
        ancestral.randn_tensor = recorded
        try:
            pipe.scheduler = scheduler
            with torch.no_grad():
                final = pipe(
                    prompt_embeds=prompt_embeds,
                    negative_prompt_embeds=negative_embeds,
                    latents=initial.clone(),
                    num_inference_steps=steps,
                    guidance_scale=guidance,
                    output_type="latent",
                ).images
        finally:
            ancestral.randn_tensor = original_randn
        case = {
            "name": name,
            "className": class_name,
            "overrides": overrides,
            "schedulerConfig": str(case_dir / "scheduler_config.json"),
            "timesteps": [float(t) for t in probe.timesteps.tolist()],
            "sigmas": None if sigmas is None else _flat(torch.as_tensor(sigmas)),
            "initNoiseSigma": float(probe.init_noise_sigma),
            "noiseUsed": recorded.used,
            "finalLatents": _flat(final),
        }
        if name == DECODED_CASE:
            with torch.no_grad():
                image = pipe.vae.decode(final / pipe.vae.config.scaling_factor, return_dict=False)[0]
            pixels = ((image / 2 + 0.5).clamp(0, 1) * 255).round().to(torch.uint8)
            case["decoded"] = {"dims": list(pixels.shape), "data": [int(x) for x in pixels.flatten().tolist()]}
        cases.append(case)

    return {
        "generator": str(generator),
        "prompts": list(PROMPTS),
        "steps": steps,
        "guidanceScale": guidance,
        "embedDims": list(prompt_embeds.shape),
        "promptEmbeds": _flat(prompt_embeds),
        "negativeEmbeds": _flat(negative_embeds),
        "latentDims": list(initial.shape),
        "initialLatents": _flat(initial),
        "noise": [_flat(n) for n in noise],
        "cases": cases,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m parity.sampler_reference", description=__doc__.split("\n\n")[0])
    parser.add_argument("--generator", type=Path, required=True, metavar="DIR", help="diffusers Stable Diffusion folder")
    parser.add_argument("--out", type=Path, required=True, metavar="DIR", help="folder for reference.json and cases/")
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--guidance", type=float, default=5.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--latent-size", type=int, default=16)
    args = parser.parse_args(argv)
    if not (args.generator / "model_index.json").is_file():
        print(f"error: --generator: {args.generator / 'model_index.json'} not found", file=sys.stderr)
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    reference = run(args.generator, args.out, args.steps, args.guidance, args.seed, args.latent_size)
    (args.out / "reference.json").write_text(json.dumps(reference))
    print(args.out / "reference.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Training data shared by the shapes models: pools of rendered scenes and augmentation."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from .world import BACKGROUNDS, SceneSpec, random_scene


@dataclass
class ScenePool:
    images: torch.Tensor  # uint8 [n, 3, H, W]
    specs: list[SceneSpec]

    def batch(self, index: torch.Tensor) -> torch.Tensor:
        """Float images in [0, 1] for the given indices."""
        return self.images[index].float() / 255.0

    def coverage(self, index: torch.Tensor, grid: int) -> torch.Tensor:
        """Fraction of each cell of a `grid` x `grid` partition covered by objects:
        [len(index), grid, grid]. An object pixel is one far from the background colour."""
        images = self.images[index].float()
        background = torch.tensor([BACKGROUNDS[self.specs[i].background] for i in index.tolist()], dtype=torch.float32)
        far = (images - background[:, :, None, None]).abs().amax(dim=1) > 48
        return F.avg_pool2d(far[:, None].float(), images.shape[-1] // grid)[:, 0]


def scene_pool(n: int, seed: int, cache_dir: Path | None = None) -> ScenePool:
    """`n` random scenes (scene i from seed (seed, i)), cached as .npz when asked."""
    cache = cache_dir / f"pool-{n}-{seed}.npz" if cache_dir else None
    if cache and cache.exists():
        data = np.load(cache)
        specs = [SceneSpec(int(c), str(col), str(cls), str(bg)) for c, col, cls, bg in data["specs"]]
        return ScenePool(torch.from_numpy(data["images"]), specs)
    rendered = [random_scene(seed * 1_000_003 + i) for i in range(n)]
    images = np.stack([np.asarray(s.image) for s in rendered]).transpose(0, 3, 1, 2).copy()
    specs = [s.spec for s in rendered]
    if cache:
        cache.parent.mkdir(parents=True, exist_ok=True)
        table = np.array([(s.count, s.colour, s.cls, s.background) for s in specs])
        np.savez(cache, images=images, specs=table)
    return ScenePool(torch.from_numpy(images), specs)


def _gaussian_kernel(sigma: torch.Tensor, radius: int = 2) -> torch.Tensor:
    x = torch.arange(-radius, radius + 1, dtype=torch.float32)
    k = torch.exp(-(x[None, :] ** 2) / (2 * sigma[:, None].clamp(min=1e-3) ** 2))
    return k / k.sum(dim=1, keepdim=True)


def augment(images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Blur, noise and colour jitter of a batch in [0, 1].

    The judges and CLIP score images that a tiny diffusion model made, which are
    softer and noisier than the renderer's; training on such degradations keeps
    them accurate there."""
    b, c, h, w = images.shape
    sigma = torch.rand(b, generator=generator) * 1.2
    kernel = _gaussian_kernel(sigma)  # [b, 5]
    pad = kernel.shape[1] // 2
    x = images.reshape(1, b * c, h, w)
    kx = kernel.repeat_interleave(c, dim=0)[:, None, None, :]
    ky = kernel.repeat_interleave(c, dim=0)[:, None, :, None]
    x = F.conv2d(F.pad(x, (pad, pad, 0, 0), mode="replicate"), kx, groups=b * c)
    x = F.conv2d(F.pad(x, (0, 0, pad, pad), mode="replicate"), ky, groups=b * c)
    x = x.reshape(b, c, h, w)
    gain = 1 + (torch.rand(b, c, 1, 1, generator=generator) - 0.5) * 0.16
    shift = (torch.rand(b, 1, 1, 1, generator=generator) - 0.5) * 0.08
    noise = torch.randn(x.shape, generator=generator) * torch.rand(b, 1, 1, 1, generator=generator) * 0.05
    return (x * gain + shift + noise).clamp(0, 1)

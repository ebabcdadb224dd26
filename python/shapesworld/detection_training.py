"""Training arithmetic the pack's two detectors share: box geometry, a flip and a blur for
augmentation, and the learning-rate schedule. The curation detector and the referee train apart, from their own
scenes and seeds; only this arithmetic is common. Boxes are normalised to [0, 1]."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def xyxy(b: torch.Tensor) -> torch.Tensor:
    """(cx, cy, w, h) -> (x0, y0, x1, y1)."""
    cx, cy, w, h = b.unbind(-1)
    return torch.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], dim=-1)


def cxcywh(b: torch.Tensor) -> torch.Tensor:
    """(x0, y0, x1, y1) -> (cx, cy, w, h)."""
    x0, y0, x1, y1 = b.unbind(-1)
    return torch.stack([(x0 + x1) / 2, (y0 + y1) / 2, x1 - x0, y1 - y0], dim=-1)


def pairwise_giou(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Generalised IoU of every xyxy box of a (..., N, 4) with every one of b (..., M, 4): (..., N, M)."""
    a, b = a.unsqueeze(-2), b.unsqueeze(-3)
    area_a = (a[..., 2] - a[..., 0]).clamp(min=0) * (a[..., 3] - a[..., 1]).clamp(min=0)
    area_b = (b[..., 2] - b[..., 0]).clamp(min=0) * (b[..., 3] - b[..., 1]).clamp(min=0)
    inter = (torch.min(a[..., 2:], b[..., 2:]) - torch.max(a[..., :2], b[..., :2])).clamp(min=0).prod(-1)
    union = area_a + area_b - inter
    hull = (torch.max(a[..., 2:], b[..., 2:]) - torch.min(a[..., :2], b[..., :2])).clamp(min=0).prod(-1)
    return inter / union.clamp(min=1e-9) - (hull - union) / hull.clamp(min=1e-9)


def random_hflip(x: torch.Tensor, boxes: torch.Tensor, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Flips each image of a (B, C, H, W) batch left to right with probability 1/2, and its xyxy
    boxes (B, N, 4) with it."""
    b = x.shape[0]
    flip = torch.rand(b, generator=g) < 0.5
    x = torch.where(flip.view(b, 1, 1, 1), x.flip(-1), x)
    boxes = boxes.clone()
    x0, x1 = boxes[..., 0].clone(), boxes[..., 2].clone()
    boxes[..., 0] = torch.where(flip.view(b, 1), 1 - x1, x0)
    boxes[..., 2] = torch.where(flip.view(b, 1), 1 - x0, x1)
    return x, boxes


def object_patches(boxes: torch.Tensor, valid: torch.Tensor, grid: int) -> torch.Tensor:
    """(B, grid * grid) mask, row-major like the patch tokens: the patches whose centre lies
    inside one of the image's (valid) xyxy boxes."""
    c = (torch.arange(grid, dtype=boxes.dtype) + 0.5) / grid
    py, px = torch.meshgrid(c, c, indexing="ij")
    px, py = px.reshape(1, 1, -1), py.reshape(1, 1, -1)
    x0, y0, x1, y1 = (boxes[..., k : k + 1] for k in range(4))
    return ((px >= x0) & (px <= x1) & (py >= y0) & (py <= y1) & valid.unsqueeze(-1)).any(dim=1)


def warmup_cosine(step: int, steps: int, peak: float, warmup: int) -> float:
    """Linear warmup to `peak`, then a cosine decay to 2% of it at `steps`."""
    if step < warmup:
        return peak * (step + 1) / warmup
    progress = (step - warmup) / max(1, steps - warmup)
    return peak * (0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * progress)))


def gaussian_blur(x: torch.Tensor, sigma: torch.Tensor, radius: int) -> torch.Tensor:
    """Separable Gaussian blur of a (B, C, H, W) batch with one sigma per image (0 leaves an
    image unchanged), as two grouped convolutions."""
    b, c, h, w = x.shape
    t = torch.arange(-radius, radius + 1, dtype=x.dtype)
    k = torch.exp(-(t.view(1, -1) ** 2) / (2 * sigma.clamp(min=1e-3).view(b, 1) ** 2))
    k = (k / k.sum(dim=1, keepdim=True)).repeat_interleave(c, dim=0)  # (b*c, 2r+1)
    y = F.pad(x.reshape(1, b * c, h, w), (radius, radius, radius, radius), mode="replicate")
    y = F.conv2d(y, k.view(b * c, 1, 1, -1), groups=b * c)
    y = F.conv2d(y, k.view(b * c, 1, -1, 1), groups=b * c)
    return y.view(b, c, h, w)

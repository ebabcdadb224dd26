"""The shapes world's referee: a closed-vocabulary detector used only to evaluate.

The loop curates its training images with the pack's OWL-ViT detector; scoring the
results with the same detector lets it grade its own homework. The referee is
trained apart from it: another architecture (transformers' `YolosForObjectDetection`,
a plain ViT whose detection tokens each predict one object or "no object"), from
scratch (not from the pack's CLIP), on scenes rendered from seeds no other stage
uses. It is never used to curate.

The folder is what Python transformers and transformers.js both load
(`AutoModelForObjectDetection` + the image processor's `post_process_object_detection`):

    config.json, model.safetensors     YolosForObjectDetection.from_pretrained (id2label = the 5 classes)
    preprocessor_config.json           YolosImageProcessor: 64x64, rescale 1/255, mean/std 0.5, no padding
    onnx/model.onnx                    input pixel_values [batch, 3, 64, 64];
                                       outputs logits [batch, tokens, classes + 1], pred_boxes [batch, tokens, 4]
                                       (cx, cy, w, h in [0, 1])
    shapesworld_referee.json           the training record and the held-out figures

Training is DETR's set loss written here: each image's objects are matched one-to-one
to detection tokens (Hungarian, on class probability, L1 and GIoU of the boxes),
matched tokens learn the class and the box, the others "no object" (down-weighted).
Images are augmented (flip, colour jitter and cast, blur, loss of resolution, blobby
edges, noise) so the referee is fair on the softer, colour-shifted images the tiny
diffusion model draws. Figures follow GenEval's conventions: an object is present at
score 0.3, counted at 0.9 (after dropping boxes overlapping a higher-scored one at
IoU > 0.5).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from scipy.optimize import linear_sum_assignment

from .detection_training import cxcywh, gaussian_blur, object_patches, pairwise_giou, random_hflip, warmup_cosine, xyxy
from .world import CLASSES, IMAGE_SIZE, Scene, scenes

# Scene seeds (world.scenes: scene i of seed s is random_scene(s * 1_000_003 + i)).
# The other stages use 11/911 (clip), 23 (generator), 777/1_000+ (captioner) and
# 5_000-5_999 (detector); the referee's training and held-out scenes come from 8_000+.
TRAIN_SEED = 8_100
EVAL_SEED = 8_999
DEGRADE_SEED = 8_998  # the noise of the degraded held-out copies

PRESENCE_THRESHOLD = 0.3  # GenEval: an object is there
COUNT_THRESHOLD = 0.9  # GenEval: an object is counted
DEDUP_IOU = 0.5

IMAGE_MEAN = (0.5, 0.5, 0.5)
IMAGE_STD = (0.5, 0.5, 0.5)
SIDECAR = "shapesworld_referee.json"
ONNX_OPSET = 17

MODEL = dict(hidden_size=64, num_hidden_layers=4, num_attention_heads=2, intermediate_size=256, patch_size=16, num_detection_tokens=10)
DEFAULT_STEPS = 12000
BATCH_SIZE = 64
POOL_SIZE = 12_000
LEARNING_RATE = 2e-3
WARMUP_STEPS = 150
WEIGHT_DECAY = 0.05
# DETR's weights: class cost/loss 1 (no-object down-weighted to 0.1), L1 5, GIoU 2.
COST = dict(cls=1.0, l1=5.0, giou=2.0)
EOS_WEIGHT = 0.1
IMAGE_WEIGHT = 1.0
PATCH_WEIGHT = 1.0
PATCH_BOXES = True

# Pixels each side of the augmentation blur's kernel (wide enough for its sigma 4 blobs).
BLUR_RADIUS = 4


# --------------------------------------------------------------------------- model


def build_model(seed: int):
    from transformers import YolosConfig, YolosForObjectDetection

    torch.manual_seed(seed)
    config = YolosConfig(
        **MODEL,
        image_size=[IMAGE_SIZE, IMAGE_SIZE],
        num_channels=3,
        use_mid_position_embeddings=False,
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
        layer_norm_eps=1e-6,
        id2label={i: c for i, c in enumerate(CLASSES)},
        label2id={c: i for i, c in enumerate(CLASSES)},
        eos_coefficient=EOS_WEIGHT,
        class_cost=int(COST["cls"]),
        bbox_cost=int(COST["l1"]),
        giou_cost=int(COST["giou"]),
    )
    model = YolosForObjectDetection(config)
    with torch.no_grad():
        # YOLOS (like ViT) starts its tokens and position embeddings from a truncated
        # normal; left at zero, the detection tokens would be identical and stay so.
        emb = model.vit.embeddings
        for p in (emb.cls_token, emb.detection_tokens, emb.position_embeddings):
            torch.nn.init.trunc_normal_(p, std=0.02)
    return model


# ---------------------------------------------------------------------------- data


class Pool:
    """Rendered scenes as tensors: uint8 images, up to 3 boxes each (normalised xyxy), class."""

    def __init__(self, images: torch.Tensor, boxes: torch.Tensor, valid: torch.Tensor, cls: torch.Tensor):
        self.images, self.boxes, self.valid, self.cls = images, boxes, valid, cls

    @classmethod
    def of(cls, items: list[Scene]) -> Pool:
        n = len(items)
        images = torch.from_numpy(np.stack([np.asarray(s.image, dtype=np.uint8) for s in items])).permute(0, 3, 1, 2).contiguous()
        boxes = torch.zeros(n, 3, 4)
        valid = torch.zeros(n, 3, dtype=torch.bool)
        for i, s in enumerate(items):
            for j, o in enumerate(s.objects):
                boxes[i, j] = torch.tensor(o.box) / IMAGE_SIZE
                valid[i, j] = True
        return cls(images, boxes, valid, torch.tensor([CLASSES.index(s.spec.cls) for s in items]))

    @classmethod
    def rendered(cls, n: int, seed: int, cache_dir: Path | None = None) -> Pool:
        cache = Path(cache_dir) / f"referee-pool-{n}-{seed}.npz" if cache_dir else None
        if cache and cache.exists():
            d = np.load(cache)
            return cls(*(torch.from_numpy(d[k]) for k in ("images", "boxes", "valid", "cls")))
        pool = cls.of(scenes(n, seed))
        if cache:
            cache.parent.mkdir(parents=True, exist_ok=True)
            np.savez(cache, images=pool.images.numpy(), boxes=pool.boxes.numpy(), valid=pool.valid.numpy(), cls=pool.cls.numpy())
        return pool

    def __len__(self) -> int:
        return len(self.cls)


def degrade(x: torch.Tensor, g: torch.Generator, strength: float = 1.0) -> torch.Tensor:
    """Photometric degradation of float images in [0, 1] (B, 3, H, W), like a small
    diffusion model's output: colours cast and shifted, edges soft or blobby, detail
    lost, noise. `strength` scales every effect."""
    b = x.shape[0]
    k = strength

    def u(lo: float, hi: float, *shape: int) -> torch.Tensor:
        return lo + (hi - lo) * torch.rand(b, *(shape or (1, 1, 1)), generator=g)

    def coin(p: float) -> torch.Tensor:
        return (torch.rand(b, 1, 1, 1, generator=g) < p).to(x.dtype)

    # Colour: per-channel gain (a cast), a shift, contrast and saturation, and a small
    # mix between channels (hue drift).
    x = x * (1 + k * u(-0.2, 0.2, 3, 1, 1)) + k * u(-0.08, 0.08, 3, 1, 1)
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    x = (x - mean) * (1 + k * u(-0.35, 0.25)) + mean
    grey = x.mean(dim=1, keepdim=True)
    x = (x - grey) * (1 + k * u(-0.5, 0.3)) + grey
    mix = torch.eye(3).unsqueeze(0) + k * 0.12 * (torch.rand(b, 3, 3, generator=g) - 0.5) * 2
    x = torch.einsum("bij,bjhw->bihw", mix, x).clamp(0, 1)

    # Softness: blur; blobby edges (blur, then sharpen the edge back with a steep
    # contrast around mid-level, which rounds corners); lost resolution.
    sigma = u(0.4, 1.8).view(b) * coin(0.7 * k).view(b)
    x = gaussian_blur(x, sigma, BLUR_RADIUS)
    blob = coin(0.25 * k)
    soft = gaussian_blur(x, torch.full((b,), 1.5), BLUR_RADIUS)
    local = gaussian_blur(x, torch.full((b,), 4.0), BLUR_RADIUS)
    rounded = (local + (soft - local) * 1.8).clamp(0, 1)
    x = blob * rounded + (1 - blob) * x
    if torch.rand(1, generator=g).item() < 0.3 * k:
        side = int(torch.randint(20, 44, (1,), generator=g).item())
        pick = coin(0.5)
        small = F.interpolate(x, size=(side, side), mode="bilinear", antialias=True, align_corners=False)
        x = pick * F.interpolate(small, size=x.shape[-2:], mode="bilinear", align_corners=False) + (1 - pick) * x
    x = x + torch.randn(x.shape, generator=g) * u(0.0, 0.07 * k) * coin(0.6)
    return x.clamp(0, 1)


def augment(images: torch.Tensor, boxes: torch.Tensor, g: torch.Generator, strength: float) -> tuple[torch.Tensor, torch.Tensor]:
    """uint8 images -> degraded float images in [0, 1]; boxes follow the horizontal flip."""
    x = images.float() / 255.0
    x, boxes = random_hflip(x, boxes, g)
    return degrade(x, g, strength), boxes


def normalise(x: torch.Tensor) -> torch.Tensor:
    return (x - torch.tensor(IMAGE_MEAN).view(1, 3, 1, 1)) / torch.tensor(IMAGE_STD).view(1, 3, 1, 1)


# ---------------------------------------------------------------------------- loss


@torch.no_grad()
def match(logits: torch.Tensor, pred_boxes: torch.Tensor, boxes: torch.Tensor, valid: torch.Tensor, cls: torch.Tensor) -> torch.Tensor:
    """(B, 3) detection token matched to each object (-1 where there is none): the
    one-to-one assignment of least cost, cost = -p(class) + 5 L1 + 2 (-GIoU)."""
    prob = logits.softmax(-1)[torch.arange(len(cls)), :, cls]  # (B, T): the image's class
    true = cxcywh(boxes)  # (B, 3, 4)
    cost = (
        -COST["cls"] * prob.unsqueeze(1)
        + COST["l1"] * (true.unsqueeze(2) - pred_boxes.unsqueeze(1)).abs().sum(-1)
        - COST["giou"] * pairwise_giou(boxes, xyxy(pred_boxes))
    ).numpy()  # (B, 3, T)
    out = torch.full(valid.shape, -1, dtype=torch.long)
    for i in range(len(cls)):
        rows = np.flatnonzero(valid[i].numpy())
        r, c = linear_sum_assignment(cost[i, rows])
        out[i, rows[r]] = torch.from_numpy(c).long()
    return out


def set_loss(
    logits: torch.Tensor,
    pred_boxes: torch.Tensor,
    boxes: torch.Tensor,
    valid: torch.Tensor,
    cls: torch.Tensor,
    patch_logits: torch.Tensor | None = None,
    patch_boxes: torch.Tensor | None = None,
) -> dict[str, torch.Tensor]:
    b, t, k = logits.shape
    token = match(logits.detach(), pred_boxes.detach(), boxes, valid, cls)
    bi = torch.arange(b).view(b, 1).expand_as(token)[valid]
    ti = token[valid]
    target = torch.full((b, t), k - 1, dtype=torch.long)  # last class = no object
    target[bi, ti] = cls.view(b, 1).expand_as(token)[valid]
    weight = torch.ones(k)
    weight[-1] = EOS_WEIGHT
    ce = F.cross_entropy(logits.reshape(-1, k), target.reshape(-1), weight=weight)
    n = max(1, int(valid.sum()))
    pred = pred_boxes[bi, ti]
    l1 = (pred - cxcywh(boxes[valid])).abs().sum() / n
    g = torch.diagonal(pairwise_giou(xyxy(pred), boxes[valid]))
    giou_loss = (1 - g).sum() / n
    # An image-level signal besides: the 5 class logits, pooled over the tokens
    # (log-sum-exp), name the image's class. Every image then teaches the class choice,
    # which the set loss alone teaches only once the matching has settled (from-scratch
    # DETR-style training otherwise sits at the class prior for hundreds of steps). It
    # shapes the classes' logits relative to each other only, never against "no object".
    image = F.cross_entropy(torch.logsumexp(logits[..., :-1], dim=1), cls)
    total = ce + COST["l1"] * l1 + COST["giou"] * giou_loss + IMAGE_WEIGHT * image
    out: dict[str, torch.Tensor] = dict(total=total, ce=ce, l1=l1, giou=giou_loss, image=image)
    if patch_logits is not None:
        # And per patch, through the same class head: the class of the object that covers
        # it, or "no object". A ViT has no convolution's locality; a label for every patch
        # teaches its patch tokens to see shape in few steps (as the pack's CLIP learnt),
        # and the detection tokens then read those tokens.
        grid = round(patch_logits.shape[1] ** 0.5)
        inside = object_patches(boxes, valid, grid)
        target = torch.where(inside, cls.view(b, 1), k - 1)
        out["patch"] = F.cross_entropy(patch_logits.reshape(-1, k), target.reshape(-1))
        out["total"] = out["total"] + PATCH_WEIGHT * out["patch"]
    if patch_boxes is not None:
        # Likewise for boxes, through the same box head: a patch inside an object gives
        # that object's box (the nearest centre where objects' boxes overlap).
        grid = round(patch_boxes.shape[1] ** 0.5)
        c = (torch.arange(grid, dtype=boxes.dtype) + 0.5) / grid
        py, px = torch.meshgrid(c, c, indexing="ij")
        centres = torch.stack([px.reshape(-1), py.reshape(-1)], -1)  # (P, 2)
        true = cxcywh(boxes)  # (B, 3, 4)
        dist = (true[..., None, :2] - centres).abs().sum(-1).masked_fill(~valid.unsqueeze(-1), 1e9)  # (B, 3, P)
        owner = true[torch.arange(b).view(b, 1), dist.argmin(1)]  # (B, P, 4)
        inside = object_patches(boxes, valid, grid)
        pred = patch_boxes[inside]
        owned = owner[inside]
        n_in = max(1, int(inside.sum()))
        out["patch_box"] = (pred - owned).abs().sum() / n_in + (1 - torch.diagonal(pairwise_giou(xyxy(pred), xyxy(owned)))).sum() / n_in
        out["total"] = out["total"] + PATCH_WEIGHT * out["patch_box"]
    return out


# ---------------------------------------------------------------------------- train


def _strength(step: int, steps: int) -> float:
    """Augmentation ramps up over the first fifth: the shapes are learnt first."""
    return min(1.0, 0.3 + 0.7 * step / max(1, steps // 5))


def train_referee(
    out_dir: Path, steps: int = DEFAULT_STEPS, seed: int = 0, threads: int | None = 2, cache_dir: Path | None = None, log_every: int = 100
) -> dict:
    """Train from scratch, save the folder (weights, config, processor, ONNX) and check the export."""
    if threads:
        torch.set_num_threads(threads)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    t_start, cpu_start = time.time(), time.process_time()
    pool = Pool.rendered(POOL_SIZE, TRAIN_SEED + seed, cache_dir)
    t_data = time.time() - t_start

    model = build_model(seed)
    model.train()
    decay = [p for n, p in model.named_parameters() if p.ndim >= 2 and "embeddings" not in n]
    rest = [p for n, p in model.named_parameters() if not (p.ndim >= 2 and "embeddings" not in n)]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": WEIGHT_DECAY}, {"params": rest, "weight_decay": 0.0}], betas=(0.9, 0.98))
    g = torch.Generator().manual_seed(seed)
    history, running = [], {}
    t_train = time.time()
    for step in range(steps):
        for group in opt.param_groups:
            group["lr"] = warmup_cosine(step, steps, LEARNING_RATE, WARMUP_STEPS)
        idx = torch.randint(0, len(pool), (BATCH_SIZE,), generator=g)
        x, boxes = augment(pool.images[idx], pool.boxes[idx], g, _strength(step, steps))
        out = model(pixel_values=normalise(x))
        patches = out.last_hidden_state[:, 1 : -model.config.num_detection_tokens]
        losses = set_loss(
            out.logits,
            out.pred_boxes,
            boxes,
            pool.valid[idx],
            pool.cls[idx],
            model.class_labels_classifier(patches),
            model.bbox_predictor(patches).sigmoid() if PATCH_BOXES else None,
        )
        opt.zero_grad(set_to_none=True)
        losses["total"].backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        for k, v in losses.items():
            running[k] = running.get(k, 0.0) + v.item()
        if (step + 1) % log_every == 0 or step + 1 == steps:
            n = step % log_every + 1
            entry = {k: round(v / n, 4) for k, v in running.items()} | {"step": step + 1, "s": round(time.time() - t_train, 1)}
            history.append(entry)
            print(json.dumps(entry), flush=True)
            running = {}
    train_seconds = time.time() - t_train

    model.eval()
    save_folder(model, out_dir)
    onnx_error = check_export(model, out_dir, pool.images[:8])
    figures = dict(
        steps=steps,
        seed=seed,
        train_seed=TRAIN_SEED + seed,
        pool=len(pool),
        batch_size=BATCH_SIZE,
        threads=torch.get_num_threads(),
        parameters=sum(p.numel() for p in model.parameters()),
        data_seconds=round(t_data, 1),
        train_seconds=round(train_seconds, 1),
        total_seconds=round(time.time() - t_start, 1),
        cpu_seconds=round(time.process_time() - cpu_start, 1),
        final_loss=history[-1],
        onnx_max_error=onnx_error,
    )
    (out_dir / SIDECAR).write_text(json.dumps(dict(training=figures), indent=2) + "\n")
    return figures


# ---------------------------------------------------------------------------- folder


def processor_config() -> dict:
    """What transformers.js's YolosImageProcessor (and Python's) read: no resize surprises
    (64x64 in, 64x64 out), rescale by 1/255, normalise with mean/std 0.5, no padding
    (so no pixel_mask either: the ONNX model takes pixel_values alone)."""
    return {
        "image_processor_type": "YolosImageProcessor",
        "do_convert_rgb": True,
        "do_resize": True,
        "size": {"height": IMAGE_SIZE, "width": IMAGE_SIZE},
        "resample": 2,
        "do_rescale": True,
        "rescale_factor": 1 / 255,
        "do_normalize": True,
        "image_mean": list(IMAGE_MEAN),
        "image_std": list(IMAGE_STD),
        "do_pad": False,
        "format": "coco_detection",
    }


class _OnnxWrapper(torch.nn.Module):
    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, pixel_values):
        out = self.model(pixel_values=pixel_values)
        return out.logits, out.pred_boxes


def save_folder(model, out_dir: Path) -> None:
    model.save_pretrained(str(out_dir), safe_serialization=True)
    (out_dir / "model.safetensors").chmod(0o644)
    (out_dir / "preprocessor_config.json").write_text(json.dumps(processor_config(), indent=2) + "\n")
    path = out_dir / "onnx" / "model.onnx"
    path.parent.mkdir(parents=True, exist_ok=True)
    previous = model.config._attn_implementation
    model.set_attn_implementation("eager")  # plain MatMul/Softmax in the graph
    try:
        with torch.no_grad():
            torch.onnx.export(
                _OnnxWrapper(model),
                (torch.zeros(1, 3, IMAGE_SIZE, IMAGE_SIZE),),
                str(path),
                input_names=["pixel_values"],
                output_names=["logits", "pred_boxes"],
                dynamic_axes={"pixel_values": {0: "batch_size"}, "logits": {0: "batch_size"}, "pred_boxes": {0: "batch_size"}},
                opset_version=ONNX_OPSET,
                do_constant_folding=True,
                dynamo=False,
            )
    finally:
        model.set_attn_implementation(previous)
    fix_output_dims(path, model.config.num_detection_tokens, model.config.num_labels + 1)


def fix_output_dims(path: Path, tokens: int, entries: int) -> None:
    """The tracer leaves the token count symbolic (it cannot prove it fixed); it is the
    config's num_detection_tokens, and the logits' last dimension the classes + "no object"."""
    import onnx

    graph = onnx.load(str(path))
    for output in graph.graph.output:
        dims = output.type.tensor_type.shape.dim
        for i, value in ((1, tokens), (2, entries if output.name == "logits" else 4)):
            dims[i].ClearField("dim_param")
            dims[i].dim_value = value
    onnx.save(graph, str(path))


def check_export(model, out_dir: Path, images: torch.Tensor) -> float:
    """The ONNX file, the reloaded weights and the trained model must agree (max abs error)."""
    import onnxruntime as ort
    from transformers import YolosForObjectDetection

    session = ort.InferenceSession(str(out_dir / "onnx" / "model.onnx"), providers=["CPUExecutionProvider"])
    reloaded = YolosForObjectDetection.from_pretrained(str(out_dir)).eval()
    px = normalise(images.float() / 255.0)
    logits, boxes = session.run(["logits", "pred_boxes"], {"pixel_values": px.numpy()})
    with torch.no_grad():
        ref = reloaded(pixel_values=px)
        own = model(pixel_values=px)
    err = max(
        float(np.abs(a - r.numpy()).max())
        for a, r in ((logits, ref.logits), (boxes, ref.pred_boxes), (own.logits.numpy(), ref.logits), (own.pred_boxes.numpy(), ref.pred_boxes))
    )
    if err > 1e-3:
        raise RuntimeError(f"exported referee disagrees with the model: max error {err}")
    return err


# ---------------------------------------------------------------------------- evaluate


def onnx_outputs(model_dir: Path, images: list, batch: int = 100) -> tuple[np.ndarray, np.ndarray]:
    """Raw (logits, pred_boxes) of onnx/model.onnx, the folder's own image processor
    doing the preprocessing."""
    import onnxruntime as ort
    from transformers import AutoImageProcessor

    processor = AutoImageProcessor.from_pretrained(str(model_dir))
    session = ort.InferenceSession(str(Path(model_dir) / "onnx" / "model.onnx"), providers=["CPUExecutionProvider"])
    logits, boxes = [], []
    for i in range(0, len(images), batch):
        px = processor(images=images[i : i + batch], return_tensors="np")["pixel_values"].astype(np.float32)
        lo, bo = session.run(["logits", "pred_boxes"], {"pixel_values": px})
        logits.append(lo)
        boxes.append(bo)
    return np.concatenate(logits), np.concatenate(boxes)


def detections(logits: np.ndarray, pred_boxes: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per image and token: class, score, xyxy box in [0, 1], as transformers.js's
    `post_process_object_detection` gives them: softmax over the classes and "no
    object"; a token whose most probable entry is "no object" gives no detection
    (class -1, score 0), otherwise its class and that class's probability."""
    z = logits - logits.max(-1, keepdims=True)
    p = np.exp(z)
    p /= p.sum(-1, keepdims=True)
    best = p.argmax(-1)
    score = np.take_along_axis(p, best[..., None], -1)[..., 0]
    real = best != p.shape[-1] - 1
    return np.where(real, best, -1), np.where(real, score, 0.0), xyxy(torch.from_numpy(pred_boxes)).numpy()


def _iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.clip(rb - lt, 0, None).prod(-1)
    area = lambda x: np.clip(x[:, 2:] - x[:, :2], 0, None).prod(-1)  # noqa: E731
    return inter / np.maximum(area(a)[:, None] + area(b)[None, :] - inter, 1e-9)


def count(boxes: np.ndarray, scores: np.ndarray, threshold: float = COUNT_THRESHOLD) -> int:
    """Detections at or above `threshold`, a box dropped where it overlaps a higher-scored kept one at IoU > 0.5."""
    keep = scores >= threshold
    boxes, scores = boxes[keep], scores[keep]
    kept: list[int] = []
    for k in np.argsort(-scores):
        if not kept or _iou(boxes[k : k + 1], boxes[kept]).max() <= DEDUP_IOU:
            kept.append(int(k))
    return len(kept)


def _average_precision(records: list[tuple[float, int, np.ndarray]], truths: list[np.ndarray]) -> float:
    """All-point interpolated AP@0.5 of one class: records (score, image, xyxy box), truths per image."""
    n_true = sum(len(t) for t in truths)
    if n_true == 0:
        return float("nan")
    records = sorted(records, key=lambda r: -r[0])
    used = [np.zeros(len(t), dtype=bool) for t in truths]
    tp = np.zeros(len(records))
    for r, (_, i, box) in enumerate(records):
        if len(truths[i]) == 0:
            continue
        row = np.where(used[i], -1.0, _iou(box[None], truths[i])[0])
        j = int(row.argmax())
        if row[j] >= 0.5:
            used[i][j] = True
            tp[r] = 1
    ctp = np.cumsum(tp)
    recall = np.concatenate([[0.0], ctp / n_true, [1.0]])
    precision = np.concatenate([[1.0], ctp / np.arange(1, len(records) + 1), [0.0]])
    precision = np.maximum.accumulate(precision[::-1])[::-1]
    steps = np.where(recall[1:] != recall[:-1])[0]
    return float(np.sum((recall[steps + 1] - recall[steps]) * precision[steps + 1]))


def figures_of(logits: np.ndarray, pred_boxes: np.ndarray, img_cls: np.ndarray, counts: np.ndarray, truths: list[np.ndarray]) -> dict:
    n = len(img_cls)
    cls, score, boxes = detections(logits, pred_boxes)
    present = np.stack([((cls == k) & (score >= PRESENCE_THRESHOLD)).any(1) for k in range(len(CLASSES))], 1)  # (N, C)
    truth = img_cls[:, None] == np.arange(len(CLASSES))[None]
    per_class = {}
    for k, name in enumerate(CLASSES):
        tp = int((present[:, k] & truth[:, k]).sum())
        per_class[name] = dict(
            recall=tp / max(1, int(truth[:, k].sum())),
            precision=tp / max(1, int(present[:, k].sum())),
        )
    top = np.where(score.max(1) > 0, cls[np.arange(n), score.argmax(1)], -1)
    counted = np.array([count(boxes[i][cls[i] == img_cls[i]], score[i][cls[i] == img_cls[i]]) for i in range(n)])
    # mAP@0.5 in DETR's way: every token is a detection of its most probable real class,
    # scored by that class's probability.
    z = np.exp(logits - logits.max(-1, keepdims=True))
    p = (z / z.sum(-1, keepdims=True))[..., :-1]
    any_cls, any_score = p.argmax(-1), p.max(-1)
    ap = {}
    for k, name in enumerate(CLASSES):
        records = [(float(any_score[i, t]), i, boxes[i, t]) for i in range(n) for t in range(p.shape[1]) if any_cls[i, t] == k]
        ap[name] = _average_precision(records, [truths[i] if img_cls[i] == k else np.zeros((0, 4)) for i in range(n)])
    return dict(
        n=n,
        class_accuracy=float((top == img_cls).mean()),
        class_recall=float(np.mean([v["recall"] for v in per_class.values()])),
        class_precision=float(np.mean([v["precision"] for v in per_class.values()])),
        other_class_present=float((present & ~truth).any(1).mean()),
        count_accuracy=float((counted == counts).mean()),
        count_accuracy_by_count={str(c): float((counted[counts == c] == c).mean()) for c in (1, 2, 3)},
        map50=float(np.mean(list(ap.values()))),
        ap50=ap,
        per_class=per_class,
    )


def degraded_images(items: list[Scene], seed: int = DEGRADE_SEED) -> list[np.ndarray]:
    """Held-out renders through the training degradation at full strength (no flip), as uint8 HWC."""
    x = torch.from_numpy(np.stack([np.asarray(s.image) for s in items])).permute(0, 3, 1, 2).float() / 255.0
    y = degrade(x, torch.Generator().manual_seed(seed), 1.0)
    return list((y * 255).round().byte().permute(0, 2, 3, 1).numpy())


def evaluate_referee(model_dir: Path, n: int = 1000, degraded: bool = False) -> dict:
    """Figures on n held-out scenes (EVAL_SEED) through the exported ONNX model."""
    items = scenes(n, EVAL_SEED)
    images = degraded_images(items) if degraded else [np.asarray(s.image) for s in items]
    logits, pred_boxes = onnx_outputs(Path(model_dir), images)
    img_cls = np.array([CLASSES.index(s.spec.cls) for s in items])
    counts = np.array([len(s.objects) for s in items])
    truths = [np.array([o.box for o in s.objects]) / IMAGE_SIZE for s in items]
    return dict(seed=EVAL_SEED, degraded=degraded, **figures_of(logits, pred_boxes, img_cls, counts, truths))


def summary(training: dict, clean: dict, degraded: dict) -> dict:
    """The stage's figures: the headline numbers, then the full records."""
    r = lambda v: round(v, 4)  # noqa: E731
    return dict(
        class_accuracy=r(clean["class_accuracy"]),
        class_recall=r(clean["class_recall"]),
        class_precision=r(clean["class_precision"]),
        count_accuracy=r(clean["count_accuracy"]),
        map50=r(clean["map50"]),
        degraded_class_accuracy=r(degraded["class_accuracy"]),
        degraded_class_recall=r(degraded["class_recall"]),
        degraded_class_precision=r(degraded["class_precision"]),
        degraded_count_accuracy=r(degraded["count_accuracy"]),
        degraded_map50=r(degraded["map50"]),
        presence_threshold=PRESENCE_THRESHOLD,
        count_threshold=COUNT_THRESHOLD,
        train_seconds=training["train_seconds"],
        parameters=training["parameters"],
        held_out=clean,
        held_out_degraded=degraded,
        training=training,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description="Train the shapes-world referee (tiny YOLOS, evaluation only) and evaluate its ONNX export.")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--steps", type=int, default=DEFAULT_STEPS)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--eval-n", type=int, default=1000)
    parser.add_argument("--cache", type=Path, default=None, help="folder to cache the rendered training scenes in")
    parser.add_argument("--eval-only", action="store_true", help="evaluate an existing folder")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.eval_only:
        training = json.loads((args.out / SIDECAR).read_text())["training"]
    else:
        training = train_referee(args.out, steps=args.steps, seed=args.seed, threads=args.threads, cache_dir=args.cache)
    record = summary(training, evaluate_referee(args.out, args.eval_n), evaluate_referee(args.out, args.eval_n, degraded=True))
    (args.out / SIDECAR).write_text(json.dumps(record, indent=2) + "\n")
    print(json.dumps({k: v for k, v in record.items() if not isinstance(v, dict)}, indent=2))


if __name__ == "__main__":
    main()

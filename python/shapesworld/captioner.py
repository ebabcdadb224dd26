"""The captioner of the shapes world: a tiny ViT + GPT-2 `VisionEncoderDecoderModel`.

It is trained here from scratch on rendered scenes and written in the layout that both
Python transformers (`VisionEncoderDecoderModel.from_pretrained`, `AutoTokenizer`,
`AutoImageProcessor`) and transformers.js 4.3 (`pipeline('image-to-text', dir)`) load:

    config.json, generation_config.json, model.safetensors,
    preprocessor_config.json, tokenizer.json, tokenizer_config.json,
    onnx/encoder_model.onnx, onnx/decoder_model_merged.onnx

The ONNX files follow what transformers.js reads for a `vision-encoder-decoder`
model (src/models/session_config.js, MODEL_TYPES.Vision2Seq; src/models/modeling_utils.js,
seq2seq_forward / decoder_forward / addPastKeyValues; src/configs.js, getCacheNames):

- encoder_model.onnx: `pixel_values` float32 [batch_size, 3, 64, 64]
  -> `last_hidden_state` float32 [batch_size, 65, hidden].
- decoder_model_merged.onnx, the Optimum "merged" decoder: inputs `input_ids` int64
  [batch_size, decoder_sequence_length], `encoder_hidden_states` float32,
  `past_key_values.{i}.key|value` float32 [batch_size, heads, past_decoder_sequence_length,
  head_dim] and `use_cache_branch` bool [1]; outputs `logits` and `present.{i}.key|value`.
  On the first step transformers.js feeds empty past tensors and `use_cache_branch =
  false`; it shapes them from the session's input metadata, reading the symbolic dim
  `batch_size` as the batch and any other symbolic dim as 0 (so these names matter,
  and heads/head_dim must be fixed numbers). An `If` node then runs the graph traced without past,
  and otherwise the graph traced with past. No attention mask or position ids are
  inputs: GPT-2 derives positions from the past length, as in Optimum's export.

Run: `python -m shapesworld.captioner --out DIR [--steps N]`.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import time
import warnings
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from .data import ScenePool, augment, scene_pool
from .text import build_gpt2_tokenizer
from .world import CLASSES, IMAGE_SIZE, PLURALS, Scene, scenes

# Scene i of `world.scenes(n, seed)` and of `data.scene_pool(n, seed)` has seed
# `seed * 1_000_003 + i`, so different `seed` arguments give disjoint scenes while n < 1_000_003.
TRAIN_SEED_BASE = 1_000  # training uses scene_pool(POOL_SIZE, TRAIN_SEED_BASE + seed)
EVAL_SEED = 777  # held-out evaluation uses scenes(n, EVAL_SEED)

# ViT's usual normalisation; the preprocessor config states the same numbers.
IMAGE_MEAN = (0.5, 0.5, 0.5)
IMAGE_STD = (0.5, 0.5, 0.5)
MAX_LENGTH = 16  # tokens including the decoder start token; captions need 9

# Architecture. Encoder width equals decoder width, so VisionEncoderDecoderModel has no
# `enc_to_dec_proj` layer: that layer lives outside both the encoder and the decoder and
# an encoder/decoder ONNX split (which is what transformers.js runs) would have to place it.
PATCH_SIZE = 8
HIDDEN = 96
ENCODER_LAYERS = 3
ENCODER_HEADS = 4
ENCODER_MLP = 192
DECODER_LAYERS = 2
DECODER_HEADS = 4
DECODER_POSITIONS = 32

DEFAULT_STEPS = 2500
BATCH_SIZE = 32
POOL_SIZE = 10_000  # rendered training scenes; augmentation makes every draw different
LEARNING_RATE = 1.5e-3
WARMUP_STEPS = 60
AUX_WEIGHT = 1.0  # of the encoder's auxiliary losses (see _EncoderHeads)
OPSET = 17


# ----------------------------------------------------------------------------------------
# Model and data


def build_model(vocab_size: int, special_id: int):
    """A freshly initialised ViT + GPT-2 captioner (call `torch.manual_seed` first)."""
    from transformers import GPT2Config, VisionEncoderDecoderConfig, VisionEncoderDecoderModel, ViTConfig

    encoder = ViTConfig(
        image_size=IMAGE_SIZE,
        patch_size=PATCH_SIZE,
        num_channels=3,
        hidden_size=HIDDEN,
        num_hidden_layers=ENCODER_LAYERS,
        num_attention_heads=ENCODER_HEADS,
        intermediate_size=ENCODER_MLP,
    )
    # No dropout: the data are endless renders, and dropout only slows a short training.
    decoder = GPT2Config(
        vocab_size=vocab_size,
        n_positions=DECODER_POSITIONS,
        n_embd=HIDDEN,
        n_layer=DECODER_LAYERS,
        n_head=DECODER_HEADS,
        resid_pdrop=0.0,
        embd_pdrop=0.0,
        attn_pdrop=0.0,
        add_cross_attention=True,
        bos_token_id=special_id,
        eos_token_id=special_id,
        pad_token_id=special_id,
    )
    config = VisionEncoderDecoderConfig.from_encoder_decoder_configs(encoder, decoder)
    # Needed by the model itself: `labels` are shifted right with these to make the decoder inputs.
    config.decoder_start_token_id = special_id
    config.pad_token_id = special_id
    config.eos_token_id = special_id
    model = VisionEncoderDecoderModel(config=config)
    model.generation_config = generation_config(special_id)
    return model


def generation_config(special_id: int):
    from transformers import GenerationConfig

    return GenerationConfig(
        decoder_start_token_id=special_id,
        bos_token_id=special_id,
        eos_token_id=special_id,
        pad_token_id=special_id,
        max_length=MAX_LENGTH,
        do_sample=False,
        num_beams=1,
    )


def _images_to_uint8(images) -> torch.Tensor:
    """PIL images -> uint8 tensor [N, 3, H, W]."""
    array = np.stack([np.asarray(image.convert("RGB"), dtype=np.uint8) for image in images])
    return torch.from_numpy(array).permute(0, 3, 1, 2).contiguous()


def normalise(pixels01: torch.Tensor) -> torch.Tensor:
    """[0, 1] pixels -> model input, exactly what ViTImageProcessor does with our config."""
    mean = torch.tensor(IMAGE_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(IMAGE_STD).view(1, 3, 1, 1)
    return (pixels01 - mean) / std


def pixel_values_numpy(images) -> np.ndarray:
    """The preprocessing transformers.js applies (rescale 1/255, normalise), in float32."""
    pixels = _images_to_uint8(images).float() / 255.0
    return normalise(pixels).numpy().astype(np.float32)


def degrade(pixels01: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """The project's blur / noise / colour jitter, then 8-bit quantisation.

    A tiny diffusion model's samples are softer and grainier than renders; training on
    such images keeps captions right on them. Quantising matches what arrives in use
    (8-bit image files)."""
    return torch.round(augment(pixels01, generator) * 255) / 255


def _token_table(tokenizer, captions: list[str]) -> torch.Tensor:
    """Caption -> labels: its tokens then end-of-text, padded with -100 (ignored by the loss)."""
    eos = tokenizer.eos_token_id
    rows = [tokenizer(c, add_special_tokens=False)["input_ids"] + [eos] for c in captions]
    width = max(len(r) for r in rows)
    assert width + 1 <= MAX_LENGTH, "caption longer than the generation limit"
    table = torch.full((len(rows), width), -100, dtype=torch.long)
    for i, r in enumerate(rows):
        table[i, : len(r)] = torch.tensor(r)
    return table


class _EncoderHeads(torch.nn.Module):
    """Auxiliary losses on the ViT's outputs, used in training only (never saved).

    Why: a ViT from scratch learns shape very slowly through the caption loss alone.
    Colour and background come at once, but the class needs the few patches that show
    an outline, and soft attention at first averages them with all the others (measured
    here, batch 32: class token right for ~33% of held-out scenes after 800 steps and
    still rising slowly). A bag of patch features learns the class in a few hundred steps
    when max-pooled and not at all when mean-pooled, so direct targets on the patch
    tokens give the encoder what the decoder cannot yet ask for:
    - max over patch tokens -> class: some patch must carry decisive shape evidence;
    - each patch token -> the class of the object covering it, or "background";
    - the [CLS] token -> class and count, so the evidence is also gathered in one place.
    With them the class token is right for ~95% after 2000 steps (and 97-98% of greedy
    captions name the right class after the default 2500).
    """

    def __init__(self, hidden: int):
        super().__init__()
        n = len(CLASSES)
        self.pooled_class = torch.nn.Linear(hidden, n)
        self.patch_class = torch.nn.Linear(hidden, n + 1)
        self.cls_class = torch.nn.Linear(hidden, n)
        self.cls_count = torch.nn.Linear(hidden, 3)

    def loss(self, states: torch.Tensor, patch_labels: torch.Tensor, cls: torch.Tensor, count: torch.Tensor) -> torch.Tensor:
        patches, first = states[:, 1:], states[:, 0]
        pooled = F.cross_entropy(self.pooled_class(patches.max(dim=1).values), cls)
        per_patch = F.cross_entropy(self.patch_class(patches).flatten(0, 1), patch_labels.flatten())
        gathered = F.cross_entropy(self.cls_class(first), cls) + F.cross_entropy(self.cls_count(first), count - 1)
        return pooled + 0.5 * per_patch + 0.5 * gathered


def _patch_labels(pool: ScenePool, grid: int) -> torch.Tensor:
    """Per patch: the scene's class index where objects cover >= 1/16 of it, else len(CLASSES)."""
    labels = []
    for start in range(0, len(pool.specs), 2000):
        index = torch.arange(start, min(start + 2000, len(pool.specs)))
        covered = pool.coverage(index, grid).flatten(1) >= 1 / 16
        cls = torch.tensor([CLASSES.index(pool.specs[i].cls) for i in index.tolist()])
        labels.append(torch.where(covered, cls[:, None], len(CLASSES)))
    return torch.cat(labels)


# ----------------------------------------------------------------------------------------
# Training


def train_captioner(
    out_dir: Path,
    *,
    steps: int = DEFAULT_STEPS,
    seed: int = 0,
    threads: int | None = None,
    cache_dir: Path | None = None,
) -> dict:
    """Train a captioner from scratch, write the complete model folder, return its figures
    (those of `evaluate_captioner` plus training facts)."""
    from transformers import AutoTokenizer

    if seed < 0:
        raise ValueError("seed must be >= 0")
    if threads:
        torch.set_num_threads(threads)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    torch.manual_seed(seed)

    build_gpt2_tokenizer(out_dir)
    tokenizer = AutoTokenizer.from_pretrained(str(out_dir))
    special = tokenizer.eos_token_id
    assert special == tokenizer.bos_token_id == tokenizer.pad_token_id

    # Rendering costs a few ms a scene, so render a pool once and let augmentation vary it.
    pool = scene_pool(POOL_SIZE, TRAIN_SEED_BASE + seed, cache_dir)
    labels = _token_table(tokenizer, [spec.caption for spec in pool.specs])
    patch_labels = _patch_labels(pool, IMAGE_SIZE // PATCH_SIZE)
    classes = torch.tensor([CLASSES.index(spec.cls) for spec in pool.specs])
    counts = torch.tensor([spec.count for spec in pool.specs])
    render_s = time.perf_counter() - started

    model = build_model(len(tokenizer), special)
    heads = _EncoderHeads(HIDDEN)
    model.train()
    params = list(model.named_parameters()) + [(f"heads.{n}", p) for n, p in heads.named_parameters()]
    # No weight decay on embeddings, biases and norms (the usual transformer recipe).
    decay = [p for n, p in params if p.ndim >= 2 and "embeddings" not in n and "wte" not in n and "wpe" not in n]
    decay_ids = {id(p) for p in decay}
    optimiser = torch.optim.AdamW(
        [
            {"params": decay, "weight_decay": 0.01},
            {"params": [p for _, p in params if id(p) not in decay_ids], "weight_decay": 0.0},
        ],
        lr=LEARNING_RATE,
        betas=(0.9, 0.98),
    )

    def lr_at(step: int) -> float:
        if step < WARMUP_STEPS:
            return LEARNING_RATE * (step + 1) / WARMUP_STEPS
        progress = (step - WARMUP_STEPS) / max(1, steps - WARMUP_STEPS)
        return LEARNING_RATE * 0.5 * (1 + math.cos(math.pi * progress))

    generator = torch.Generator().manual_seed(seed)
    caption_losses: list[float] = []
    for step in range(steps):
        for group in optimiser.param_groups:
            group["lr"] = lr_at(step)
        idx = torch.randint(0, len(pool.specs), (BATCH_SIZE,), generator=generator)
        pixels = degrade(pool.batch(idx), generator)
        # The decoder starts with the pad-valued start token; an explicit all-ones mask
        # says so and keeps transformers from warning about padding on every step.
        out = model(
            pixel_values=normalise(pixels),
            labels=labels[idx],
            decoder_attention_mask=torch.ones_like(labels[idx]),
        )
        aux = heads.loss(out.encoder_last_hidden_state, patch_labels[idx], classes[idx], counts[idx])
        optimiser.zero_grad(set_to_none=True)
        (out.loss + AUX_WEIGHT * aux).backward()
        torch.nn.utils.clip_grad_norm_([p for _, p in params], 1.0)
        optimiser.step()
        caption_losses.append(out.loss.item())
        if step % 250 == 0 or step == steps - 1:
            print(
                f"captioner step {step:5d}  caption loss {np.mean(caption_losses[-50:]):.4f}  aux {aux.item():.3f}  {time.perf_counter() - started:.0f}s",
                flush=True,
            )
    train_s = time.perf_counter() - started - render_s

    model.eval()
    save_captioner(model, out_dir)
    export_onnx(model, out_dir)
    export_s = time.perf_counter() - started - render_s - train_s
    # Like the other models' trainers, return the held-out figures of what was written.
    figures = evaluate_captioner(out_dir)
    figures.update(
        steps=steps,
        batch_size=BATCH_SIZE,
        pool_size=len(pool.specs),
        parameters=sum(p.numel() for p in model.parameters()),
        final_caption_loss=round(float(np.mean(caption_losses[-50:])), 4),
        render_seconds=round(render_s, 1),
        train_seconds=round(train_s, 1),
        export_seconds=round(export_s, 1),
        total_seconds=round(time.perf_counter() - started, 1),
        threads=torch.get_num_threads(),
    )
    return figures


# ----------------------------------------------------------------------------------------
# Saving and ONNX export


def save_captioner(model, out_dir: Path) -> None:
    """PyTorch weights, configs, tokenizer (already written) and the image processor config."""
    out_dir = Path(out_dir)
    model.save_pretrained(str(out_dir))
    model.generation_config.save_pretrained(str(out_dir))
    # save_pretrained writes the weights through a private temporary file (mode 0600);
    # the folder is meant to be shipped and read by others.
    (out_dir / "model.safetensors").chmod(0o644)
    # Written by hand: Python's `ViTImageProcessor` now needs torchvision and its PIL twin
    # saves as `ViTImageProcessorPil`, a name transformers.js does not know. This file is
    # what both read: transformers.js picks the class by `image_processor_type`.
    preprocessor = {
        "image_processor_type": "ViTImageProcessor",
        "do_resize": True,
        "size": {"height": IMAGE_SIZE, "width": IMAGE_SIZE},
        "resample": 2,
        "do_rescale": True,
        "rescale_factor": 1 / 255,
        "do_normalize": True,
        "image_mean": list(IMAGE_MEAN),
        "image_std": list(IMAGE_STD),
        "do_convert_rgb": True,
    }
    (out_dir / "preprocessor_config.json").write_text(json.dumps(preprocessor, indent=2) + "\n")


class _EncoderForExport(torch.nn.Module):
    def __init__(self, encoder):
        super().__init__()
        self.encoder = encoder

    def forward(self, pixel_values):
        return self.encoder(pixel_values=pixel_values).last_hidden_state


class _DecoderForExport(torch.nn.Module):
    """GPT-2 with cross-attention, past self-attention keys/values as flat tensors.

    The cross-attention keys/values are recomputed from `encoder_hidden_states` at every
    step and are not part of the cache, which is why transformers.js's cache names for a
    GPT-2 decoder are only `past_key_values.{i}.key|value` (configs.js, getKeyValueNames).
    """

    def __init__(self, decoder, num_layers: int):
        super().__init__()
        self.decoder = decoder
        self.num_layers = num_layers

    def forward(self, input_ids, encoder_hidden_states, *past):
        from transformers.cache_utils import DynamicCache, EncoderDecoderCache

        cache = None
        if past:
            self_cache = DynamicCache(config=self.decoder.config)
            for i in range(self.num_layers):
                self_cache.update(past[2 * i], past[2 * i + 1], i)
            cache = EncoderDecoderCache(self_cache, DynamicCache(config=self.decoder.config))
        out = self.decoder(
            input_ids=input_ids,
            encoder_hidden_states=encoder_hidden_states,
            past_key_values=cache,
            use_cache=True,
        )
        present = out.past_key_values.self_attention_cache
        flat = [out.logits]
        for i in range(self.num_layers):
            flat += [present.layers[i].keys, present.layers[i].values]
        return tuple(flat)


def _past_names(num_layers: int, prefix: str) -> list[str]:
    return [f"{prefix}.{i}.{kind}" for i in range(num_layers) for kind in ("key", "value")]


def export_onnx(model, out_dir: Path) -> None:
    """Write onnx/encoder_model.onnx and onnx/decoder_model_merged.onnx."""
    import onnx

    onnx_dir = Path(out_dir) / "onnx"
    onnx_dir.mkdir(parents=True, exist_ok=True)
    model = model.eval()
    dec_cfg = model.config.decoder
    layers, heads = dec_cfg.n_layer, dec_cfg.n_head
    head_dim = dec_cfg.n_embd // heads
    enc_len = (IMAGE_SIZE // PATCH_SIZE) ** 2 + 1

    pixel_values = torch.zeros(2, 3, IMAGE_SIZE, IMAGE_SIZE)
    encoder_hidden_states = torch.randn(2, enc_len, model.config.encoder.hidden_size)
    past_in = _past_names(layers, "past_key_values")
    present = _past_names(layers, "present")
    decoder = _DecoderForExport(model.decoder, layers).eval()

    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            _EncoderForExport(model.encoder).eval(),
            (pixel_values,),
            str(onnx_dir / "encoder_model.onnx"),
            input_names=["pixel_values"],
            output_names=["last_hidden_state"],
            dynamic_axes={"pixel_values": {0: "batch_size"}, "last_hidden_state": {0: "batch_size"}},
            opset_version=OPSET,
            dynamo=False,
        )

        # Optimum's merged decoder is two traced graphs joined by an `If`: one without past
        # (first step, whole prompt) and one with past (later steps).
        common_axes = {
            "input_ids": {0: "batch_size", 1: "decoder_sequence_length"},
            "encoder_hidden_states": {0: "batch_size", 1: "encoder_sequence_length"},
            "logits": {0: "batch_size", 1: "decoder_sequence_length"},
        }
        tmp_no_past = onnx_dir / "_decoder_model.onnx"
        tmp_with_past = onnx_dir / "_decoder_with_past_model.onnx"
        torch.onnx.export(
            decoder,
            (torch.full((2, 3), 1, dtype=torch.long), encoder_hidden_states),
            str(tmp_no_past),
            input_names=["input_ids", "encoder_hidden_states"],
            output_names=["logits", *present],
            dynamic_axes={**common_axes, **{n: {0: "batch_size", 2: "decoder_sequence_length"} for n in present}},
            opset_version=OPSET,
            dynamo=False,
        )
        past = [torch.randn(2, heads, 3, head_dim) for _ in past_in]
        torch.onnx.export(
            decoder,
            (torch.full((2, 1), 1, dtype=torch.long), encoder_hidden_states, *past),
            str(tmp_with_past),
            input_names=["input_ids", "encoder_hidden_states", *past_in],
            output_names=["logits", *present],
            dynamic_axes={
                **common_axes,
                **{n: {0: "batch_size", 2: "past_decoder_sequence_length"} for n in past_in},
                **{n: {0: "batch_size", 2: "past_decoder_sequence_length + 1"} for n in present},
            },
            opset_version=OPSET,
            dynamo=False,
        )
    merged = merge_decoders(onnx.load(str(tmp_no_past)), onnx.load(str(tmp_with_past)))
    onnx.checker.check_model(merged, full_check=True)
    onnx.save(merged, str(onnx_dir / "decoder_model_merged.onnx"))
    tmp_no_past.unlink()
    tmp_with_past.unlink()
    _check_export(model, Path(out_dir))


def merge_decoders(no_past, with_past):
    """Join the two decoder graphs under `If(use_cache_branch)`, sharing equal weights.

    Branch subgraphs may read the outer graph's inputs and initializers, so the weights are
    stored once at the top level; every other name in a branch gets a branch prefix, because
    ONNX forbids a subgraph from redefining a name that is visible from the outer scope.
    """
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    # Deduplicate initializers by content: the two traces hold the same weights, some of
    # them under exporter-generated names (e.g. the folded transpose of the tied LM head).
    canonical: dict[str, onnx.TensorProto] = {}
    by_digest: dict[str, str] = {}
    renames: list[dict[str, str]] = []
    for graph in (with_past.graph, no_past.graph):
        rename: dict[str, str] = {}
        for init in graph.initializer:
            array = numpy_helper.to_array(init)
            digest = hashlib.sha256(str((array.dtype, array.shape)).encode() + array.tobytes()).hexdigest()
            if digest not in by_digest:
                name = init.name if init.name not in canonical else f"{init.name}__{len(canonical)}"
                tensor = numpy_helper.from_array(array, name)
                canonical[name] = tensor
                by_digest[digest] = name
            rename[init.name] = by_digest[digest]
        renames.append(rename)

    outer_inputs = {i.name for i in with_past.graph.input}
    output_names = [o.name for o in with_past.graph.output]
    assert output_names == [o.name for o in no_past.graph.output]

    def branch(graph, rename: dict[str, str], prefix: str):
        def name_of(value: str) -> str:
            if value == "" or value in outer_inputs:
                return value
            if value in rename:
                return rename[value]
            return f"{prefix}/{value}"

        nodes = []
        for node in graph.node:
            if any(attr.type in (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS) for attr in node.attribute):
                raise NotImplementedError("nested subgraphs in a decoder trace are not handled")
            new = onnx.NodeProto()
            new.CopyFrom(node)
            new.name = f"{prefix}/{node.name}"
            del new.input[:]
            new.input.extend(name_of(v) for v in node.input)
            del new.output[:]
            new.output.extend(name_of(v) for v in node.output)
            nodes.append(new)
        outputs = []
        for out in graph.output:
            info = onnx.ValueInfoProto()
            info.CopyFrom(out)
            info.name = name_of(out.name)
            outputs.append(info)
        return helper.make_graph(nodes, prefix, inputs=[], outputs=outputs)

    then_branch = branch(with_past.graph, renames[0], "decoder_with_past")
    else_branch = branch(no_past.graph, renames[1], "decoder_without_past")
    use_cache = helper.make_tensor_value_info("use_cache_branch", TensorProto.BOOL, [1])
    if_node = helper.make_node("If", ["use_cache_branch"], output_names, name="optimum::if", then_branch=then_branch, else_branch=else_branch)

    # The two branches give the present length different symbolic names, so the merged
    # outputs carry a neutral one.
    outputs = []
    for out in with_past.graph.output:
        dims = [d.dim_param or d.dim_value for d in out.type.tensor_type.shape.dim]
        if out.name.startswith("present"):
            dims[2] = "present_sequence_length"
        outputs.append(helper.make_tensor_value_info(out.name, out.type.tensor_type.elem_type, dims))

    graph = helper.make_graph(
        [if_node],
        "decoder_model_merged",
        inputs=[*with_past.graph.input, use_cache],
        outputs=outputs,
        initializer=list(canonical.values()),
    )
    merged = helper.make_model(graph, opset_imports=with_past.opset_import, producer_name="shapesworld")
    merged.ir_version = with_past.ir_version
    return merged


def _check_export(model, out_dir: Path) -> None:
    """The ONNX pair must reproduce PyTorch's logits, with and without past."""
    g = torch.Generator().manual_seed(123)
    pixels = torch.rand(2, 3, IMAGE_SIZE, IMAGE_SIZE, generator=g)
    ids = torch.randint(0, model.config.decoder.vocab_size, (2, 4), generator=g)
    with torch.no_grad():
        ref = model(pixel_values=normalise(pixels), decoder_input_ids=ids).logits.numpy()
    enc, dec = _sessions(out_dir)
    hidden = enc.run(None, {"pixel_values": normalise(pixels).numpy()})[0]
    layers = model.config.decoder.n_layer
    # Three tokens without past (the empty past of a first step), then one with it.
    first = dec.run(
        None,
        {
            "input_ids": ids[:, :3].numpy(),
            "encoder_hidden_states": hidden,
            **_empty_past(dec, 2),
            "use_cache_branch": np.array([False]),
        },
    )
    past = dict(zip(_past_names(layers, "past_key_values"), first[1:]))
    second = dec.run(
        None,
        {"input_ids": ids[:, 3:].numpy(), "encoder_hidden_states": hidden, **past, "use_cache_branch": np.array([True])},
    )
    got = np.concatenate([first[0], second[0]], axis=1)
    err = float(np.abs(got - ref).max())
    if err > 1e-3:
        raise RuntimeError(f"ONNX export disagrees with PyTorch: max |logit difference| {err}")


# ----------------------------------------------------------------------------------------
# Inference through ONNX and evaluation


def _sessions(model_dir: Path):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = max(1, torch.get_num_threads())
    options.log_severity_level = 3
    onnx_dir = Path(model_dir) / "onnx"
    return (
        ort.InferenceSession(str(onnx_dir / "encoder_model.onnx"), options, providers=["CPUExecutionProvider"]),
        ort.InferenceSession(str(onnx_dir / "decoder_model_merged.onnx"), options, providers=["CPUExecutionProvider"]),
    )


def _empty_past(decoder_session, batch: int) -> dict[str, np.ndarray]:
    """Zero-length past tensors shaped from the session's metadata, as transformers.js builds them."""
    feeds = {}
    for meta in decoder_session.get_inputs():
        if meta.name.startswith("past_key_values"):
            shape = [batch if d == "batch_size" else (d if isinstance(d, int) else 0) for d in meta.shape]
            feeds[meta.name] = np.zeros(shape, dtype=np.float32)
    return feeds


class OnnxCaptioner:
    """Greedy captioning with the exported ONNX files, fed the way transformers.js feeds them."""

    def __init__(self, model_dir: Path):
        from transformers import AutoTokenizer

        self.model_dir = Path(model_dir)
        self.encoder, self.decoder = _sessions(self.model_dir)
        self.tokenizer = AutoTokenizer.from_pretrained(str(self.model_dir))
        generation = json.loads((self.model_dir / "generation_config.json").read_text())
        self.start = generation["decoder_start_token_id"]
        self.eos = generation["eos_token_id"]
        self.max_length = generation["max_length"]

    def caption_pixels(self, pixel_values: np.ndarray) -> list[str]:
        batch = pixel_values.shape[0]
        hidden = self.encoder.run(["last_hidden_state"], {"pixel_values": pixel_values})[0]
        tokens = np.full((batch, 1), self.start, dtype=np.int64)
        past = _empty_past(self.decoder, batch)
        past_names = list(past)
        finished = np.zeros(batch, dtype=bool)
        step_ids = tokens
        while tokens.shape[1] < self.max_length and not finished.all():
            outputs = self.decoder.run(
                None,
                {
                    "input_ids": step_ids,
                    "encoder_hidden_states": hidden,
                    **past,
                    "use_cache_branch": np.array([tokens.shape[1] > 1]),
                },
            )
            next_ids = outputs[0][:, -1, :].argmax(axis=-1)
            # Rows that have ended keep emitting the pad (= eos) token, like `generate`.
            next_ids = np.where(finished, self.eos, next_ids).astype(np.int64)
            finished |= next_ids == self.eos
            tokens = np.concatenate([tokens, next_ids[:, None]], axis=1)
            step_ids = next_ids[:, None]
            past = dict(zip(past_names, outputs[1:]))
        return [t.strip() for t in self.tokenizer.batch_decode(tokens.tolist(), skip_special_tokens=True)]

    def caption(self, images, batch_size: int = 100) -> list[str]:
        captions: list[str] = []
        for i in range(0, len(images), batch_size):
            captions += self.caption_pixels(pixel_values_numpy(images[i : i + batch_size]))
        return captions


COUNT_ARTICLES = {1: ("a", "an"), 2: ("two",), 3: ("three",)}


def score_captions(captions: list[str], truth: list[Scene]) -> dict:
    """Fractions of captions that name the right class, colour, count, and match exactly."""
    n = len(captions)
    cls_ok = colour_ok = count_ok = exact = 0
    for caption, scene in zip(captions, truth):
        words = caption.split()
        spec = scene.spec
        cls_ok += spec.cls in words or PLURALS[spec.cls] in words
        colour_ok += spec.colour in words
        count_ok += bool(words) and words[0] in COUNT_ARTICLES[spec.count]
        exact += caption == scene.caption
    return {
        "class_named": round(cls_ok / n, 4),
        "colour_named": round(colour_ok / n, 4),
        "count_right": round(count_ok / n, 4),
        "exact": round(exact / n, 4),
    }


def evaluate_captioner(model_dir: Path, n: int = 500) -> dict:
    """Caption n held-out scenes through the exported ONNX files and score them.

    Also: the same scenes degraded by the training augmentation (blur, noise, colour
    shift; fixed seed), and agreement of the ONNX captions with PyTorch's `generate` on
    the folder loaded the Python way.
    """
    model_dir = Path(model_dir)
    truth = scenes(n, EVAL_SEED)
    images = [s.image for s in truth]
    captioner = OnnxCaptioner(model_dir)

    started = time.perf_counter()
    captions = captioner.caption(images)
    onnx_s = time.perf_counter() - started
    clean = score_captions(captions, truth)

    pixels01 = _images_to_uint8(images).float() / 255.0
    degraded_pixels = normalise(degrade(pixels01, torch.Generator().manual_seed(EVAL_SEED))).numpy()
    degraded_captions: list[str] = []
    for i in range(0, n, 100):
        degraded_captions += captioner.caption_pixels(degraded_pixels[i : i + 100])
    degraded = score_captions(degraded_captions, truth)

    torch_captions = _pytorch_captions(model_dir, images)
    agreement = sum(a == b for a, b in zip(captions, torch_captions)) / n

    confusions: dict[str, int] = {}
    for caption, scene in zip(captions, truth):
        if caption != scene.caption:
            key = f"{scene.caption} -> {caption}"
            confusions[key] = confusions.get(key, 0) + 1
    worst = dict(sorted(confusions.items(), key=lambda kv: -kv[1])[:5])
    return {
        "n": n,
        "seed": EVAL_SEED,
        **clean,
        "degraded": degraded,
        "onnx_vs_pytorch_agreement": round(agreement, 4),
        "onnx_seconds": round(onnx_s, 2),
        "frequent_errors": worst,
    }


def _pytorch_captions(model_dir: Path, images) -> list[str]:
    """Captions from the folder loaded the way Python users load it."""
    from transformers import AutoImageProcessor, AutoTokenizer, VisionEncoderDecoderModel
    from transformers.utils import logging as hf_logging

    model = VisionEncoderDecoderModel.from_pretrained(str(model_dir)).eval()
    tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
    processor = AutoImageProcessor.from_pretrained(str(model_dir))
    captions: list[str] = []
    # generate() warns that pad == eos leaves the attention mask undetermined; the decoder
    # input is never padded here (one start token, greedy, same length across the batch).
    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    with torch.no_grad():
        for i in range(0, len(images), 100):
            pixel_values = processor(images=images[i : i + 100], return_tensors="pt").pixel_values
            ids = model.generate(pixel_values=pixel_values)
            captions += [t.strip() for t in tokenizer.batch_decode(ids, skip_special_tokens=True)]
    hf_logging.set_verbosity(verbosity)
    return captions


def main() -> None:
    parser = argparse.ArgumentParser(description="Train and export the shapes-world captioner.")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--steps", type=int, default=DEFAULT_STEPS)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    parser.add_argument("--cache", type=Path, default=None, help="folder caching the rendered training pool")
    parser.add_argument("--eval-only", action="store_true", help="evaluate an existing folder")
    parser.add_argument("--n", type=int, default=500, help="evaluation scenes (with --eval-only)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    figures = evaluate_captioner(args.out, n=args.n) if args.eval_only else train_captioner(args.out, steps=args.steps, seed=args.seed, cache_dir=args.cache)
    print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()

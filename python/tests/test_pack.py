"""The committed pack: every declared ONNX file loads, has the declared interface and runs;
the manifest, prompt files and folders agree with the code that built them."""

import json

import numpy as np
import onnxruntime as ort
import pytest

from shapesworld.pack import INTERFACES, PACK_DIR
from shapesworld.prompts import read_prompt_file, split

if not (PACK_DIR / "pack.json").exists():
    pytest.skip("the shapes pack is not built yet: run scripts/build-pack.sh", allow_module_level=True)

MANIFEST = json.loads((PACK_DIR / "pack.json").read_text())
ONNX_FILES = [(role, name) for role, files in INTERFACES.items() for name in files]
ORT_TYPES = {"tensor(float)": "float32", "tensor(int64)": "int64", "tensor(int32)": "int32", "tensor(bool)": "bool"}
NUMPY = {"float32": np.float32, "int64": np.int64, "int32": np.int32, "bool": np.bool_}

# Sizes for dynamic dimensions when running a file once.
EXAMPLE_DIMS = {
    "batch": 2,
    "batch_size": 2,
    "text_batch": 3,
    "image_batch": 2,
    "sequence": 24,
    "height": 16,
    "width": 16,
    "decoder_sequence_length": 1,
    "encoder_sequence_length": 65,
    "past_decoder_sequence_length": 3,
    "image_height": 64,
    "image_width": 64,
    # OWL-ViT: text_batch_size = images x queries per image.
    "text_batch_size": 4,
    "sequence_length": 5,
}


def _session(role: str, name: str) -> ort.InferenceSession:
    return ort.InferenceSession(str(PACK_DIR / MANIFEST["models"][role]["path"] / name), providers=["CPUExecutionProvider"])


def test_manifest_declares_the_interfaces_the_code_declares():
    for role, files in INTERFACES.items():
        declared = MANIFEST["models"][role]["onnx"]
        assert set(declared) == set(files)
        for name, spec in files.items():
            for side in ("inputs", "outputs"):
                assert {k: (v["dtype"], v["shape"]) for k, v in declared[name][side].items()} == {k: (d, list(s)) for k, (d, s) in spec[side].items()}


@pytest.mark.parametrize("role, name", ONNX_FILES, ids=[f"{r}/{n}" for r, n in ONNX_FILES])
def test_onnx_file_has_declared_interface(role: str, name: str):
    session = _session(role, name)
    spec = INTERFACES[role][name]
    for side, actual in (("inputs", session.get_inputs()), ("outputs", session.get_outputs())):
        assert [a.name for a in actual] == list(spec[side]), f"{name} {side}"
        for a in actual:
            dtype, shape = spec[side][a.name]
            assert ORT_TYPES[a.type] == dtype, f"{name}: {a.name} is {a.type}, expected {dtype}"
            assert len(a.shape) == len(shape), f"{name}: {a.name} has rank {len(a.shape)}, expected {len(shape)}"
            for got, want in zip(a.shape, shape):
                if isinstance(want, int):
                    assert got == want, f"{name}: {a.name} shape {a.shape}, expected {shape}"
                else:
                    assert not isinstance(got, int) or got < 0, f"{name}: {a.name} dimension {want} must be dynamic, is {got}"


@pytest.mark.parametrize("role, name", ONNX_FILES, ids=[f"{r}/{n}" for r, n in ONNX_FILES])
def test_onnx_file_runs_with_dynamic_sizes(role: str, name: str):
    session = _session(role, name)
    spec = INTERFACES[role][name]
    dims = EXAMPLE_DIMS
    rng = np.random.default_rng(0)
    feeds = {}
    for input_name, (dtype, shape) in spec["inputs"].items():
        concrete = [d if isinstance(d, int) else dims[d] for d in shape]
        if dtype == "bool":
            feeds[input_name] = np.ones(concrete, dtype=np.bool_)
        elif dtype.startswith("int"):
            feeds[input_name] = rng.integers(1, 300, size=concrete).astype(NUMPY[dtype])
            if input_name == "attention_mask":
                feeds[input_name][:] = 1
        else:
            feeds[input_name] = rng.standard_normal(concrete).astype(NUMPY[dtype]) * (100 if input_name == "timestep" else 1)
    outputs = session.run(None, feeds)
    for out, (out_name, (_, shape)) in zip(outputs, spec["outputs"].items()):
        assert np.isfinite(out).all(), f"{name}: {out_name} is not finite"
        for got, want in zip(out.shape, shape):
            if isinstance(want, int):
                assert got == want
            elif want in ("batch", "batch_size", "text_batch", "image_batch", "sequence", "decoder_sequence_length"):
                assert got == dims[want], f"{name}: {out_name} shape {out.shape}"


def test_vae_decoder_quadruples_the_latent_size():
    out = _session("generator", "vae_decoder/model.onnx").run(None, {"latent_sample": np.zeros((1, 4, 16, 16), np.float32)})[0]
    assert out.shape == (1, 3, 64, 64)


def test_prompt_files_are_the_split():
    train, held_out = split()
    assert read_prompt_file(PACK_DIR / MANIFEST["prompts"]["train"]) == [(p.cls, p.text) for p in train]
    assert read_prompt_file(PACK_DIR / MANIFEST["prompts"]["eval"]) == [(p.cls, p.text) for p in held_out]


@pytest.mark.parametrize(
    "role, files",
    [
        (
            "generator",
            [
                "model_index.json",
                "scheduler/scheduler_config.json",
                "tokenizer/tokenizer.json",
                "tokenizer/tokenizer_config.json",
                "text_encoder/config.json",
                "unet/config.json",
                "unet/diffusion_pytorch_model.safetensors",
                "vae/config.json",
                "vae/diffusion_pytorch_model.safetensors",
            ],
        ),
        ("clip", ["config.json", "preprocessor_config.json", "tokenizer.json", "tokenizer_config.json", "model.safetensors"]),
        ("detector", ["config.json", "preprocessor_config.json", "tokenizer.json", "tokenizer_config.json", "model.safetensors"]),
        ("captioner", ["config.json", "generation_config.json", "preprocessor_config.json", "tokenizer.json", "tokenizer_config.json", "model.safetensors"]),
    ],
)
def test_model_folders_hold_the_real_layout(role: str, files: list[str]):
    folder = PACK_DIR / MANIFEST["models"][role]["path"]
    missing = [f for f in files if not (folder / f).is_file()]
    assert not missing, f"{folder} lacks {missing}"


def test_pack_is_small():
    total = sum(p.stat().st_size for p in PACK_DIR.rglob("*") if p.is_file())
    assert total < 50 * 2**20, f"pack is {total / 2**20:.1f} MiB"


FIGURES = MANIFEST["figures"]


def test_clip_meets_its_target():
    assert FIGURES["clip"]["zero_shot_class_accuracy"] >= 0.95


def test_captioner_meets_its_target():
    assert FIGURES["captioner"]["class_named"] >= 0.95 and FIGURES["captioner"]["colour_named"] >= 0.90


def test_detector_meets_its_target():
    d = FIGURES["detector"]
    assert d["map50"] >= 0.9 or (d["class_recall"] >= 0.95 and d["class_precision"] >= 0.95)


def test_generator_detection_rate_is_in_the_target_band():
    # The balancing cycles' last measurement: per class, how often the detector finds it.
    rates = FIGURES["generator"]["balance_history"][-1]["rates"]
    assert 0.40 <= sum(rates.values()) / len(rates) <= 0.75


def test_best_of_n_finds_the_class_for_nine_prompts_in_ten():
    assert FIGURES["round"]["best_of_n_success"] >= 0.90


def test_the_products_round_improves_the_generator_beyond_noise():
    # One round of the product on the judged best of its own samples makes the generator
    # better on held-out prompts: both 95% intervals exclude no improvement.
    p = FIGURES["round"]
    assert p["clip_win_rate_ci95"][0] > 0.5
    assert p["detector_accuracy_gain_ci95"][0] > 0

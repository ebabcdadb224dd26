"""The LoRA trainer and the ONNX exporter, run as child processes as the product
runs them, on a random-weight generator of the shapes world's architecture."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from itertools import pairwise
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import PYTHON_DIR, run_module

STEPS = 6
TRAIN_ARGS = ("--max-steps", str(STEPS), "--batch-size", "4", "--seed", "3", "--threads", "1")


def events_of(stdout: str) -> list[dict]:
    """Every stdout line must be a JSON event."""
    return [json.loads(line) for line in stdout.splitlines()]


def train(generator: Path, dataset: Path, output: Path, *extra: str) -> tuple[subprocess.CompletedProcess, list[dict]]:
    done = run_module("loratrain", "--generator", str(generator), "--dataset", str(dataset), "--output", str(output), *TRAIN_ARGS, *extra)
    return done, events_of(done.stdout)


def start_training(generator: Path, dataset: Path, output: Path, *extra: str, stdin=None) -> subprocess.Popen:
    args = ["--generator", str(generator), "--dataset", str(dataset), "--output", str(output), *TRAIN_ARGS, *extra]
    env = {**os.environ, "PYTHONPATH": str(PYTHON_DIR), "OMP_NUM_THREADS": "1"}
    return subprocess.Popen(
        [sys.executable, "-m", "loratrain", *args],
        cwd=PYTHON_DIR,
        env=env,
        stdin=stdin,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def load_lora(path: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(path))


def onnx_session(path: Path):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def unet_inputs(batch: int = 2, size: int = 16, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {
        "sample": rng.standard_normal((batch, 4, size, size), dtype=np.float32),
        "timestep": np.linspace(900, 50, batch, dtype=np.float32),
        "encoder_hidden_states": rng.standard_normal((batch, 24, 64), dtype=np.float32),
    }


@pytest.fixture(scope="module")
def runs(tiny_generator, tiny_dataset, tmp_path_factory) -> dict:
    """Side by side, on the two cores: an uninterrupted run with a checkpoint
    half-way and the ONNX export, and the same run sent SIGTERM after its first step."""
    trained, interrupted = tmp_path_factory.mktemp("trained"), tmp_path_factory.mktemp("interrupted")
    full = start_training(tiny_generator, tiny_dataset, trained, "--checkpoint-every", "3")
    stopped = start_training(tiny_generator, tiny_dataset, interrupted, "--skip-onnx")
    lines = []
    for line in stopped.stdout:
        lines.append(line)
        if json.loads(line)["event"] == "step":
            stopped.send_signal(signal.SIGTERM)
            break
    rest, stopped_stderr = stopped.communicate(timeout=300)
    out, err = full.communicate(timeout=300)
    assert full.returncode == 0, err
    return {
        "trained": (trained, events_of(out)),
        "interrupted": (interrupted, stopped.returncode, events_of("".join(lines) + rest), stopped_stderr),
    }


@pytest.fixture(scope="module")
def trained(runs) -> tuple[Path, list[dict]]:
    return runs["trained"]


def test_run_reports_progress_and_writes_outputs(trained):
    output, events = trained
    kinds = [e["event"] for e in events]
    assert kinds[0] == "start" and kinds[-1] == "done"
    steps = [e for e in events if e["event"] == "step"]
    assert [e["step"] for e in steps] == list(range(1, STEPS + 1))
    assert all(e["total"] == STEPS and np.isfinite(e["loss"]) and e["lr"] == 1e-4 for e in steps)
    assert [e["step"] for e in events if e["event"] == "checkpoint"] == [3]
    onnx_event = next(e for e in events if e["event"] == "onnx")
    assert onnx_event["max_abs_diff"]["out_sample"] < 1e-4

    metrics = json.loads((output / "metrics.json").read_text())
    assert metrics["steps"] == STEPS and metrics["rank"] == 4 and metrics["dataset_size"] == 8 and metrics["seed"] == 3
    assert metrics["loss_curve"] == [e["loss"] for e in steps]
    assert {"torch", "diffusers", "peft"} <= set(metrics["versions"])
    assert (output / "unet" / "config.json").is_file() and (output / "unet" / "model.onnx").is_file()

    checkpoint = output / "checkpoints" / "step-00000003"
    assert {p.name for p in checkpoint.iterdir()} == {"pytorch_lora_weights.safetensors", "optimizer.pt", "state.json"}
    state = json.loads((checkpoint / "state.json").read_text())
    assert state["step"] == 3 and len(state["losses"]) == 3 and state["recipe"]["seed"] == 3


def test_lora_weights_load_in_diffusers_and_change_the_unet(trained, tiny_generator):
    from diffusers import StableDiffusionPipeline

    output, _ = trained
    weights = load_lora(output / "pytorch_lora_weights.safetensors")
    assert weights and all(k.startswith("unet.") and ".lora." in k for k in weights)

    pipeline = StableDiffusionPipeline.from_pretrained(str(tiny_generator), safety_checker=None)
    inputs = {k: torch.from_numpy(v) for k, v in unet_inputs().items()}
    with torch.no_grad():
        before = pipeline.unet(**inputs).sample
        pipeline.load_lora_weights(str(output))
        after = pipeline.unet(**inputs).sample
    assert (after - before).abs().max() > 1e-6


def test_fused_onnx_unet_matches_pytorch_with_lora_fused(trained, tiny_generator):
    from diffusers import StableDiffusionPipeline

    output, _ = trained
    pipeline = StableDiffusionPipeline.from_pretrained(str(tiny_generator), safety_checker=None)
    pipeline.load_lora_weights(str(output))
    pipeline.fuse_lora()
    session = onnx_session(output / "unet" / "model.onnx")
    for batch, size in ((2, 16), (1, 8)):
        inputs = unet_inputs(batch, size)
        with torch.no_grad():
            want = pipeline.unet(**{k: torch.from_numpy(v) for k, v in inputs.items()}).sample.numpy()
        (got,) = session.run(["out_sample"], inputs)
        assert np.abs(got - want).max() < 1e-4


def test_sigterm_stops_cleanly_and_resume_reproduces_the_uninterrupted_run(runs, tiny_generator, tiny_dataset):
    reference, _ = runs["trained"]
    output, returncode, events, stderr = runs["interrupted"]
    assert returncode == 143, stderr
    stopped = events[-1]
    assert stopped["event"] == "stopped" and stopped["signal"] == "SIGTERM" and stopped["exit_code"] == 143
    at = stopped["step"]
    assert 1 <= at < STEPS
    assert Path(stopped["checkpoint"]) == output / "checkpoints" / f"step-{at:08d}"
    assert not (output / "pytorch_lora_weights.safetensors").exists()

    done, events = train(tiny_generator, tiny_dataset, output, "--skip-onnx", "--resume-from", "latest")
    assert done.returncode == 0, done.stderr
    assert events[0]["event"] == "start" and events[0]["step"] == at
    assert [e["step"] for e in events if e["event"] == "step"] == list(range(at + 1, STEPS + 1))
    want = json.loads((reference / "metrics.json").read_text())["loss_curve"]
    assert json.loads((output / "metrics.json").read_text())["loss_curve"] == pytest.approx(want, abs=1e-6)
    resumed, uninterrupted = load_lora(output / "pytorch_lora_weights.safetensors"), load_lora(reference / "pytorch_lora_weights.safetensors")
    assert resumed.keys() == uninterrupted.keys()
    assert max(float((resumed[k] - uninterrupted[k]).abs().max()) for k in resumed) < 1e-6


def test_closed_stdin_stops_like_sigterm_with_a_checkpoint(tiny_generator, tiny_dataset, tmp_path):
    # The product holds the trainer's stdin as a pipe it never writes: its death closes it.
    process = start_training(tiny_generator, tiny_dataset, tmp_path, "--skip-onnx", "--stop-on-stdin-close", stdin=subprocess.PIPE)
    for line in process.stdout:
        if json.loads(line)["event"] == "step":
            process.stdin.close()
            break
    # Nobody is taken to be listening any more: the rest of the events are dropped.
    stderr = process.stderr.read()
    assert process.wait(timeout=300) == 143, stderr
    checkpoints = list((tmp_path / "checkpoints").glob("step-*"))
    assert len(checkpoints) == 1 and (checkpoints[0] / "state.json").is_file()
    assert 1 <= json.loads((checkpoints[0] / "state.json").read_text())["step"] < STEPS
    assert not (tmp_path / "pytorch_lora_weights.safetensors").exists()


def test_export_cli_writes_the_onnx_layout(tiny_generator, tmp_path, capsys):
    from loratrain.export_onnx import main

    generator = tmp_path / "generator"
    shutil.copytree(tiny_generator, generator)
    assert main(["--generator", str(generator), "--parts", "text_encoder", "unet", "vae_decoder", "vae_encoder"]) == 0
    assert len([line for line in capsys.readouterr().out.splitlines() if "max abs diff" in line]) == 4

    expected = {
        "text_encoder": ({"input_ids": "tensor(int32)"}, ["last_hidden_state", "pooler_output"]),
        "unet": (
            {"sample": "tensor(float)", "timestep": "tensor(float)", "encoder_hidden_states": "tensor(float)"},
            ["out_sample"],
        ),
        "vae_decoder": ({"latent_sample": "tensor(float)"}, ["sample"]),
        "vae_encoder": ({"sample": "tensor(float)"}, ["latent_sample"]),
    }
    for part, (inputs, outputs) in expected.items():
        session = onnx_session(generator / part / "model.onnx")
        assert {i.name: i.type for i in session.get_inputs()} == inputs
        assert [o.name for o in session.get_outputs()] == outputs
        assert not (generator / part / "model.onnx_data").exists()
    shapes = {i.name: i.shape for i in onnx_session(generator / "unet" / "model.onnx").get_inputs()}
    assert shapes == {"sample": ["batch", 4, "height", "width"], "timestep": ["batch"], "encoder_hidden_states": ["batch", "sequence", 64]}
    latent = onnx_session(generator / "vae_encoder" / "model.onnx").get_outputs()[0].shape
    assert latent == ["batch", 4, "height", "width"], "the latent channel count must be static"
    for part in ("vae_decoder", "vae_encoder"):
        assert json.loads((generator / part / "config.json").read_text()) == json.loads((generator / "vae" / "config.json").read_text())

    session = onnx_session(generator / "vae_decoder" / "model.onnx")
    (image,) = session.run(["sample"], {"latent_sample": np.zeros((1, 4, 12, 10), np.float32)})
    assert image.shape == (1, 3, 48, 40)


def test_large_graphs_keep_weights_in_one_external_data_file(tiny_generator, tmp_path):
    from diffusers import AutoencoderKL

    from loratrain.onnx_graphs import export_spec, vae_decoder_spec

    vae = AutoencoderKL.from_pretrained(str(tiny_generator / "vae"))
    path = tmp_path / "vae_decoder" / "model.onnx"
    result = export_spec("vae_decoder", vae_decoder_spec(vae), path, external_data=True)
    assert result.external_data and result.max_abs_diff["sample"] < 1e-4
    assert sorted(p.name for p in path.parent.iterdir()) == ["model.onnx", "model.onnx_data"]
    assert path.stat().st_size < 100_000 < (path.parent / "model.onnx_data").stat().st_size


def _write_lines(dataset: Path, lines: list[str]) -> None:
    (dataset / "metadata.jsonl").write_text("\n".join(lines) + "\n")


def _bad_dataset(dataset: Path, case: str) -> tuple[list[str], str]:
    """Break a copy of a good dataset in one way; returns extra flags and a piece
    of the expected message."""
    good = (dataset / "metadata.jsonl").read_text().splitlines()
    if case == "no dataset folder":
        shutil.rmtree(dataset)
        return [], "--dataset"
    if case == "no metadata.jsonl":
        (dataset / "metadata.jsonl").unlink()
        return [], "metadata.jsonl: not found"
    if case == "empty dataset":
        _write_lines(dataset, [])
        return [], "empty dataset"
    if case == "undecodable image":
        (dataset / "0001.png").write_bytes(b"not a png at all")
        return [], "0001.png: cannot decode image"
    if case == "line without text":
        _write_lines(dataset, [good[0], json.dumps({"file_name": "0001.png"})])
        return [], 'line 2: no "text" field'
    if case == "line without file_name":
        _write_lines(dataset, [json.dumps({"text": "a red circle"})])
        return [], 'line 1: no "file_name" field'
    if case == "file_name pointing nowhere":
        _write_lines(dataset, [good[0], good[1], json.dumps({"file_name": "missing.png", "text": "x"})])
        return [], 'line 3: file_name "missing.png" points to no file'
    if case == "line that is not JSON":
        _write_lines(dataset, [good[0], "{oops"])
        return [], "line 2: not valid JSON"
    # An image outside the dataset folder, which the entries below reach.
    outside = dataset.parent / "x.png"
    shutil.copy(dataset / "0000.png", outside)
    if case == "absolute file_name":
        _write_lines(dataset, [good[0], json.dumps({"file_name": str(outside), "text": "x"})])
        return [], f'line 2: file_name "{outside}" is an absolute path'
    if case == "file_name going up out of the folder":
        _write_lines(dataset, [good[0], json.dumps({"file_name": "../x.png", "text": "x"})])
        return [], 'line 2: file_name "../x.png" leads outside the dataset folder'
    if case == "file_name of a symlink to outside":
        (dataset / "link.png").symlink_to(outside)
        _write_lines(dataset, [good[0], json.dumps({"file_name": "link.png", "text": "x"})])
        return [], 'line 2: file_name "link.png" leads outside the dataset folder'
    raise AssertionError(case)


BAD_DATASETS = [
    "no dataset folder",
    "no metadata.jsonl",
    "empty dataset",
    "undecodable image",
    "line without text",
    "line without file_name",
    "file_name pointing nowhere",
    "line that is not JSON",
    "absolute file_name",
    "file_name going up out of the folder",
    "file_name of a symlink to outside",
]

BAD_FLAGS = [
    (["--rank", "0"], "--rank: must be at least 1"),
    (["--batch-size", "-4"], "--batch-size: must be at least 1"),
    (["--max-steps", "0"], "--max-steps: must be at least 1"),
    (["--learning-rate", "abc"], "--learning-rate"),
    (["--learning-rate", "-1"], "--learning-rate: must be a positive number"),
    (["--resolution", "62"], "--resolution: must be a multiple of the VAE's scale factor 4"),
    (["--mixed-precision", "fp8"], "--mixed-precision"),
    (["--snr-gamma", "-1"], "--snr-gamma: must be a non-negative number"),
    (["--caption-dropout", "1"], "--caption-dropout: must be a probability in [0, 1)"),
    (["--no-such-flag"], "--no-such-flag"),
    (["--max-step", "3"], "--max-step"),  # no abbreviations: a typo must not set --max-steps
    (["--resume-from", "/nonexistent/checkpoint"], "--resume-from"),
]


def _expect_bad_input(done: subprocess.CompletedProcess, fragment: str, kind: str = "bad_input") -> None:
    assert done.returncode == 2, done.stderr
    lines = done.stderr.splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("error: ") and fragment in lines[0], lines[0]
    (event,) = events_of(done.stdout)
    assert event["event"] == "error" and event["kind"] == kind
    assert event["message"] == lines[0].removeprefix("error: ")


def run_trainer_without_torch(*args: str) -> subprocess.CompletedProcess:
    """The trainer with `import torch` failing: what it must refuse, it refuses before torch's slow import."""
    code = "import sys; sys.modules['torch'] = None; from loratrain.train import main; sys.exit(main(sys.argv[1:]))"
    env = {**os.environ, "PYTHONPATH": str(PYTHON_DIR), "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-c", code, *args], cwd=PYTHON_DIR, env=env, capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("case", BAD_DATASETS)
def test_bad_dataset_exits_2_with_one_line(case, tiny_generator, tiny_dataset, tmp_path):
    dataset = tmp_path / "dataset"
    shutil.copytree(tiny_dataset, dataset)
    flags, fragment = _bad_dataset(dataset, case)
    done = run_module("loratrain", "--generator", str(tiny_generator), "--dataset", str(dataset), "--output", str(tmp_path / "out"), *flags)
    _expect_bad_input(done, fragment)


@pytest.mark.parametrize(("flags", "fragment"), BAD_FLAGS, ids=[" ".join(f) for f, _ in BAD_FLAGS])
def test_bad_flag_exits_2_with_one_line(flags, fragment, tiny_generator, tiny_dataset, tmp_path):
    done = run_module("loratrain", "--generator", str(tiny_generator), "--dataset", str(tiny_dataset), "--output", str(tmp_path / "out"), *flags)
    _expect_bad_input(done, fragment)


@pytest.mark.parametrize("missing", ["", "unet/config.json"])
def test_bad_generator_exits_2_with_one_line(missing, tiny_generator, tiny_dataset, tmp_path):
    generator = tmp_path / "generator"
    if missing:
        shutil.copytree(tiny_generator, generator, ignore=shutil.ignore_patterns("*.safetensors", "*.onnx"))
        (generator / missing).unlink()
    done = run_module("loratrain", "--generator", str(generator), "--dataset", str(tiny_dataset), "--output", str(tmp_path / "out"))
    _expect_bad_input(done, f"{generator / missing}: " if missing else f"{generator}: no such folder")


@pytest.mark.parametrize("where", ["output", "a folder above it"])
def test_output_that_is_a_file_exits_2_before_torch_loads(where, tiny_generator, tiny_dataset, tmp_path):
    blocker = tmp_path / "taken"
    blocker.write_text("a file, not a folder")
    output = blocker if where == "output" else blocker / "out"
    done = run_trainer_without_torch("--generator", str(tiny_generator), "--dataset", str(tiny_dataset), "--output", str(output))
    _expect_bad_input(done, f"--output: {output} is a file" if where == "output" else f"--output: {output} cannot be made: {blocker} is a file")
    assert blocker.read_text() == "a file, not a folder"


def _break_checkpoint(checkpoint: Path, case: str) -> str:
    """Damage one file of a copy of a real checkpoint; returns that file's name."""
    if case == "state.json without losses":
        state = json.loads((checkpoint / "state.json").read_text())
        del state["losses"]
        (checkpoint / "state.json").write_text(json.dumps(state))
        return "state.json"
    path = checkpoint / case
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return case


BAD_CHECKPOINTS = ["state.json", "optimizer.pt", "pytorch_lora_weights.safetensors", "state.json without losses"]


@pytest.mark.parametrize("case", BAD_CHECKPOINTS)
def test_unreadable_checkpoint_exits_2_naming_the_checkpoint_and_file(case, trained, tiny_generator, tiny_dataset, tmp_path):
    reference, _ = trained
    output = tmp_path / "out"
    checkpoint = output / "checkpoints" / "step-00000003"
    shutil.copytree(reference / "checkpoints" / "step-00000003", checkpoint)
    name = _break_checkpoint(checkpoint, case)
    done, _ = train(tiny_generator, tiny_dataset, output, "--skip-onnx", "--resume-from", "latest")
    _expect_bad_input(done, f"checkpoint {checkpoint}: {name}: ", kind="bad_checkpoint")
    assert "expected" in done.stderr
    # Refused before training: the checkpoint is as it was left, no newer one and no result.
    assert [p.name for p in (output / "checkpoints").iterdir()] == ["step-00000003"]
    assert not (output / "pytorch_lora_weights.safetensors").exists()


def test_fp16_on_cpu_exits_2(tiny_generator, tiny_dataset, tmp_path):
    if torch.cuda.is_available():
        pytest.skip("fp16 is allowed where CUDA is")
    done = run_module(
        "loratrain", "--generator", str(tiny_generator), "--dataset", str(tiny_dataset), "--output", str(tmp_path / "out"), "--mixed-precision", "fp16"
    )
    _expect_bad_input(done, "--mixed-precision fp16: needs a CUDA device")


def test_fresh_run_refuses_an_output_with_checkpoints(trained, tiny_generator, tiny_dataset):
    output, _ = trained
    done = run_module("loratrain", "--generator", str(tiny_generator), "--dataset", str(tiny_dataset), "--output", str(output))
    _expect_bad_input(done, "holds checkpoints of an earlier run")


def test_resume_with_another_recipe_exits_2(trained, tiny_generator, tiny_dataset, tmp_path):
    output, _ = trained
    checkpoint = output / "checkpoints" / "step-00000003"
    done = run_module(
        "loratrain", "--generator", str(tiny_generator), "--dataset", str(tiny_dataset), "--output", str(tmp_path / "out"),
        *TRAIN_ARGS, "--rank", "8", "--resume-from", str(checkpoint),
    )  # fmt: skip
    _expect_bad_input(done, "was made with rank=4, this run has 8")


def test_adamw8bit_keeps_8_bit_moments_and_a_resume_reproduces_its_run(tiny_generator, tiny_dataset, tmp_path):
    # Rank 64: bitsandbytes keeps the moments of tensors under 4096 elements in 32 bits, and
    # this tiny UNet's rank-4 LoRA matrices are all smaller than that.
    flags = ("--skip-onnx", "--optimizer", "adamw8bit", "--rank", "64")
    full = tmp_path / "full"
    done, events = train(tiny_generator, tiny_dataset, full, *flags, "--checkpoint-every", "3")
    assert done.returncode == 0, done.stderr
    assert json.loads((full / "metrics.json").read_text())["optimizer"] == "adamw8bit"
    losses = [e["loss"] for e in events if e["event"] == "step"]
    saved = torch.load(full / "checkpoints" / "step-00000003" / "optimizer.pt", weights_only=False)["optimizer"]["state"]
    # bitsandbytes' state_dict nests each parameter's quantised state under a key of its own.
    packed = [state.get("__bnb_optimizer_quant_state__", state) for state in saved.values()]
    moments = [v for state in packed for k, v in state.items() if k in ("state1", "state2")]
    assert torch.uint8 in {m.dtype for m in moments}

    resumed = tmp_path / "resumed"
    shutil.copytree(full / "checkpoints" / "step-00000003", resumed / "checkpoints" / "step-00000003")
    done, events = train(tiny_generator, tiny_dataset, resumed, *flags, "--resume-from", "latest")
    assert done.returncode == 0, done.stderr
    assert [e["loss"] for e in events if e["event"] == "step"] == pytest.approx(losses[3:], abs=1e-6)
    a, b = load_lora(resumed / "pytorch_lora_weights.safetensors"), load_lora(full / "pytorch_lora_weights.safetensors")
    assert max(float((a[k] - b[k]).abs().max()) for k in a) < 1e-6


def test_two_processes_under_torchrun_train_the_one_process_run(trained, tiny_generator, tiny_dataset, tmp_path):
    reference, reference_events = trained
    output = tmp_path / "two"
    # Two threads for the two processes: one each.
    args = ["--generator", str(tiny_generator), "--dataset", str(tiny_dataset), "--output", str(output), *TRAIN_ARGS]
    args += ["--threads", "2", "--checkpoint-every", "3", "--skip-onnx"]
    done = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "-m", "loratrain", *args],
        cwd=PYTHON_DIR,
        env={**os.environ, "PYTHONPATH": str(PYTHON_DIR), "OMP_NUM_THREADS": "1"},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr
    # Process 0 alone speaks: one start, each step once, one checkpoint, one done.
    events = events_of(done.stdout)
    assert [e["event"] for e in events].count("start") == 1 and events[0]["processes"] == 2
    assert [e["step"] for e in events if e["event"] == "step"] == list(range(1, STEPS + 1))
    assert [e["step"] for e in events if e["event"] == "checkpoint"] == [3]
    assert events[-1]["event"] == "done"
    # The same run as one process's: the same losses and LoRA, but for the order of sums.
    want = [e["loss"] for e in reference_events if e["event"] == "step"]
    assert [e["loss"] for e in events if e["event"] == "step"] == pytest.approx(want, rel=1e-4)
    two, one = load_lora(output / "pytorch_lora_weights.safetensors"), load_lora(reference / "pytorch_lora_weights.safetensors")
    assert max(float((two[k] - one[k]).abs().max()) for k in two) < 1e-5
    metrics = json.loads((output / "metrics.json").read_text())
    assert (metrics["processes"], metrics["threads"]) == (2, 1)


def test_resume_with_another_optimizer_exits_2(trained, tiny_generator, tiny_dataset, tmp_path):
    output, _ = trained
    done = run_module(
        "loratrain", "--generator", str(tiny_generator), "--dataset", str(tiny_dataset), "--output", str(tmp_path / "out"),
        *TRAIN_ARGS, "--optimizer", "adamw8bit", "--resume-from", str(output / "checkpoints" / "step-00000003"),
    )  # fmt: skip
    _expect_bad_input(done, "was made with optimizer='adamw', this run has 'adamw8bit'")


def test_adamw8bit_without_bitsandbytes_is_bad_input_naming_the_flag(monkeypatch):
    import importlib.util

    from loratrain.arguments import build_parser, check_args
    from loratrain.protocol import BadInput

    args = build_parser().parse_args(["--generator", "g", "--dataset", "d", "--output", "o", "--optimizer", "adamw8bit"])
    check_args(args)
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *rest: None if name == "bitsandbytes" else real(name, *rest))
    with pytest.raises(BadInput, match=r"^--optimizer adamw8bit: needs bitsandbytes installed"):
        check_args(args)


def test_fp16_graphs_keep_float32_inputs_and_outputs(tiny_generator, tmp_path):
    import onnx
    from diffusers import UNet2DConditionModel

    from loratrain.onnx_graphs import export_spec, half_precision, unet_spec

    unet = UNet2DConditionModel.from_pretrained(str(tiny_generator / "unet"))
    path = tmp_path / "unet" / "model.onnx"
    result = export_spec("unet", half_precision(unet_spec(unet, 24)), path)
    assert result.max_abs_diff["out_sample"] < 1e-2
    session = onnx_session(path)
    assert {i.name: i.type for i in session.get_inputs()} == {
        "sample": "tensor(float)",
        "timestep": "tensor(float)",
        "encoder_hidden_states": "tensor(float)",
    }
    assert [o.type for o in session.get_outputs()] == ["tensor(float)"]
    # The weights halve; the nodes (about a fifth of this tiny graph's file) do not.
    weights = sum(len(t.raw_data) for t in onnx.load(str(path)).graph.initializer)
    assert weights < 0.55 * (tiny_generator / "unet" / "diffusion_pytorch_model.safetensors").stat().st_size


def test_min_snr_weights_cap_the_easy_timesteps_only():
    from diffusers import DDPMScheduler

    from loratrain.train import min_snr_weights

    scheduler = DDPMScheduler(beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012)
    t = torch.tensor([0, 100, 500, 999])
    snr = scheduler.alphas_cumprod[t] / (1 - scheduler.alphas_cumprod[t])
    assert torch.equal(min_snr_weights(scheduler, t, 0.0, "epsilon"), torch.ones(4))
    eps = min_snr_weights(scheduler, t, 5.0, "epsilon")
    torch.testing.assert_close(eps, torch.where(snr > 5, 5 / snr, torch.ones(4)))
    assert eps[0] < eps[1] < 1 and eps[3] == 1  # noisy timesteps keep full weight
    torch.testing.assert_close(min_snr_weights(scheduler, t, 5.0, "v_prediction"), torch.clamp(snr, max=5) / (snr + 1))


def test_caption_dropout_and_min_snr_change_the_run_and_are_recorded(tiny_generator, tiny_dataset, tmp_path):
    plain, _ = train(tiny_generator, tiny_dataset, tmp_path / "plain", "--skip-onnx")
    varied, _ = train(tiny_generator, tiny_dataset, tmp_path / "varied", "--skip-onnx", "--caption-dropout", "0.5", "--snr-gamma", "5")
    assert plain.returncode == 0 and varied.returncode == 0, varied.stderr
    a = json.loads((tmp_path / "plain" / "metrics.json").read_text())
    b = json.loads((tmp_path / "varied" / "metrics.json").read_text())
    assert (a["caption_dropout"], a["snr_gamma"]) == (0.0, 0.0)
    assert (b["caption_dropout"], b["snr_gamma"]) == (0.5, 5.0)
    assert a["loss_curve"] != b["loss_curve"]


def test_learning_rate_warms_up_then_holds_or_decays_to_zero():
    from loratrain.train import learning_rate_at

    assert [learning_rate_at(s, 1.0, 4, "constant", 10) for s in (0, 3, 4, 9)] == [0.25, 1.0, 1.0, 1.0]
    cosine = [learning_rate_at(s, 1.0, 2, "cosine", 10) for s in range(10)]
    assert cosine[:3] == [0.5, 1.0, 1.0]  # warmup, then the decay starts from the full rate
    assert all(a > b for a, b in pairwise(cosine[2:])) and 0 < cosine[-1] < 0.05
    assert learning_rate_at(6, 1.0, 2, "cosine", 10) == pytest.approx(0.5)  # half-way through the decay


def test_cosine_run_decays_its_rate_and_refuses_a_resume_of_another_length(tiny_generator, tiny_dataset, tmp_path):
    output = tmp_path / "cosine"
    done, events = train(tiny_generator, tiny_dataset, output, "--skip-onnx", "--lr-scheduler", "cosine", "--checkpoint-every", "3")
    assert done.returncode == 0, done.stderr
    rates = [e["lr"] for e in events if e["event"] == "step"]
    assert rates[0] == 1e-4 and all(a > b for a, b in pairwise(rates))
    assert json.loads((output / "metrics.json").read_text())["lr_scheduler"] == "cosine"
    checkpoint = output / "checkpoints" / "step-00000003"
    longer = run_module(
        "loratrain", "--generator", str(tiny_generator), "--dataset", str(tiny_dataset), "--output", str(tmp_path / "longer"),
        *TRAIN_ARGS[2:], "--max-steps", str(STEPS + 2), "--lr-scheduler", "cosine", "--resume-from", str(checkpoint),
    )  # fmt: skip
    _expect_bad_input(longer, "--lr-scheduler cosine needs the checkpoint's 6 steps, this run has 8")


def test_events_carry_a_diverged_loss_as_a_string_json_can_hold():
    code = "from loratrain.protocol import Events; e = Events(); e.emit('step', step=4, loss=float('nan')); e.emit('done', final_loss=float('-inf'))"
    env = {**os.environ, "PYTHONPATH": str(PYTHON_DIR)}
    done = subprocess.run([sys.executable, "-c", code], cwd=PYTHON_DIR, env=env, capture_output=True, text=True, timeout=60, check=True)
    step, end = (json.loads(line) for line in done.stdout.splitlines())
    assert step["loss"] == "NaN" and step["step"] == 4
    assert end["final_loss"] == "-Infinity"

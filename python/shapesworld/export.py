"""ONNX export of the shapes models with named, dynamic inputs and outputs."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import torch


def export_onnx(
    module: torch.nn.Module,
    args: tuple[torch.Tensor, ...],
    path: Path,
    *,
    inputs: dict[str, dict[int, str]],
    outputs: dict[str, dict[int, str]],
) -> None:
    """Export with the TorchScript exporter into ONE file (the models are small).

    The argument order of `module.forward` must follow `inputs`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    module.eval()
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            module,
            args,
            str(path),
            input_names=list(inputs),
            output_names=list(outputs),
            dynamic_axes={**inputs, **outputs},
            opset_version=17,
            do_constant_folding=True,
            dynamo=False,
        )


def verify_onnx(module: torch.nn.Module, args: tuple[torch.Tensor, ...], path: Path, atol: float = 1e-4) -> float:
    """Max abs difference between PyTorch and onnxruntime on `args`; raises past `atol`."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    feeds = {i.name: a.numpy() for i, a in zip(session.get_inputs(), args)}
    got = session.run(None, feeds)
    with torch.no_grad():
        want = module(*args)
    want = want if isinstance(want, (tuple, list)) else (want,)
    diff = max(float(np.abs(g - w.numpy()).max()) for g, w in zip(got, want))
    if diff > atol:
        raise RuntimeError(f"{path}: ONNX output differs from PyTorch by {diff:.2e} (> {atol})")
    return diff

"""The round's fused-UNet export in fp16 (`--export-precision fp16`): float16 weights
and compute, attention scores and softmax in float32, the interface the pack declares,
and outputs close to the float32 UNet's in onnxruntime's CPU provider."""

import json

import numpy as np
import onnx
import pytest
import torch

from conftest import run_module
from shapesworld.pack import PACK_DIR

GENERATOR = PACK_DIR / "generator"
if not (GENERATOR / "unet" / "diffusion_pytorch_model.safetensors").exists():
    pytest.skip("the shapes pack is not built yet: run scripts/build-pack.sh", allow_module_level=True)

ORT_TYPES = {"tensor(float)": "float32", "tensor(float16)": "float16"}


def softmax_input_types(path) -> list[str]:
    """The element type of each Softmax's input, as ONNX's shape inference types it."""
    model = onnx.shape_inference.infer_shapes(onnx.load(str(path)))
    graph = model.graph
    types = {v.name: v.type.tensor_type.elem_type for v in [*graph.value_info, *graph.input, *graph.output]}
    return [onnx.TensorProto.DataType.Name(types[node.input[0]]) for node in graph.node if node.op_type == "Softmax"]


def initializer_types(path) -> set[str]:
    return {onnx.TensorProto.DataType.Name(t.data_type) for t in onnx.load(str(path)).graph.initializer if len(t.dims) > 1}


@pytest.fixture(scope="module")
def lora_unet(tmp_path_factory):
    """The pack's UNet with a LoRA whose up-projections are random (a fresh one's are
    zero, which fusing would leave unseen), and that LoRA saved as the trainer saves it."""
    from diffusers import UNet2DConditionModel
    from peft import LoraConfig

    from loratrain.checkpoints import save_lora
    from loratrain.train import LORA_TARGET_MODULES

    unet = UNet2DConditionModel.from_pretrained(str(GENERATOR / "unet"), torch_dtype=torch.float32)
    torch.manual_seed(0)
    unet.add_adapter(LoraConfig(r=4, lora_alpha=4, init_lora_weights="gaussian", target_modules=LORA_TARGET_MODULES))
    with torch.no_grad():
        for name, parameter in unet.named_parameters():
            if "lora_B" in name:
                parameter.normal_(0, 0.05)
    unet.eval()
    return unet, save_lora(unet, tmp_path_factory.mktemp("lora"))


@pytest.fixture(scope="module")
def exported(lora_unet, tmp_path_factory):
    from loratrain.onnx_graphs import quiet_libraries
    from loratrain.train import export_fused_unet

    quiet_libraries()
    _, weights = lora_unet
    out = tmp_path_factory.mktemp("fused") / "unet"
    return export_fused_unet(GENERATOR, weights, out, True, torch.device("cpu"))


def test_the_fused_unet_is_float16_inside_with_the_packs_interface(exported):
    import onnxruntime as ort

    assert exported.precision == "fp16" and exported.as_json()["precision"] == "fp16"
    assert initializer_types(exported.path) == {"FLOAT16"}
    declared = json.loads((PACK_DIR / "pack.json").read_text())["models"]["generator"]["onnx"]["unet/model.onnx"]
    session = ort.InferenceSession(str(exported.path), providers=["CPUExecutionProvider"])
    assert {i.name: ORT_TYPES[i.type] for i in session.get_inputs()} == {name: v["dtype"] for name, v in declared["inputs"].items()}
    assert {o.name: ORT_TYPES[o.type] for o in session.get_outputs()} == {name: v["dtype"] for name, v in declared["outputs"].items()}


def test_no_softmax_runs_in_float16(exported):
    types = softmax_input_types(exported.path)
    assert types and set(types) == {"FLOAT"}


def test_the_fp16_graph_matches_the_fp32_unet_with_its_lora(exported, lora_unet):
    import onnxruntime as ort

    unet, _ = lora_unet
    session = ort.InferenceSession(str(exported.path), providers=["CPUExecutionProvider"])
    generator = torch.Generator().manual_seed(1)
    for batch, size in ((2, 16), (1, 8)):
        inputs = {
            "sample": torch.randn((batch, 4, size, size), generator=generator),
            "timestep": torch.linspace(900, 50, batch),
            "encoder_hidden_states": torch.randn((batch, 24, 64), generator=generator),
        }
        with torch.no_grad():
            want = unet(**inputs).sample.numpy()
        (got,) = session.run(["out_sample"], {k: v.numpy() for k, v in inputs.items()})
        # float16 keeps about three significant digits (the difference here is near 3e-4 of
        # the output's range); the float32 graph matches to 1e-4.
        assert np.abs(got - want).max() < 2e-3 * max(1.0, float(np.abs(want).max()))


def test_the_trainer_exports_in_fp16_when_asked(tiny_generator, tiny_dataset, tmp_path):
    args = ("--max-steps", "1", "--batch-size", "2", "--threads", "1", "--export-precision", "fp16")
    done = run_module("loratrain", "--generator", str(tiny_generator), "--dataset", str(tiny_dataset), "--output", str(tmp_path), *args)
    assert done.returncode == 0, done.stderr
    (event,) = [e for e in map(json.loads, done.stdout.splitlines()) if e["event"] == "onnx"]
    assert event["precision"] == "fp16"
    assert json.loads((tmp_path / "metrics.json").read_text())["onnx"]["precision"] == "fp16"
    assert initializer_types(tmp_path / "unet" / "model.onnx") == {"FLOAT16"}

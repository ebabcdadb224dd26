"""`python -m parity.interface_variants --generator DIR --out DIR`: the generator's ONNX
graphs re-wrapped with the other input/output conventions that Stable Diffusion exports
use, computing the same function, so the runtime's input feeding can be tested on each:

    unet_timestep_int64.onnx    timestep int64 [1]
    unet_timestep_scalar.onnx   timestep float 0-d
    unet_float16.onnx           every input and out_sample float16
    text_encoder_int64.onnx     input_ids int64
    external/unet/model.onnx    the UNet unchanged, its weights in model.onnx_data beside it
                                (as exports over 2 GB are), in a tuned-UNet folder layout

Each wrapper converts its new inputs to what the original graph takes (and the output
back), so only the interface differs.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def _retype_input(graph, name: str, elem_type: int, shape: list, convert) -> None:
    """Give input `name` a new type/shape; `convert(new_name, inner_name)` returns the nodes
    that turn the new input into the value the original graph used under `name`."""
    from onnx import helper

    inner = f"{name}__original"
    for node in graph.node:
        node.input[:] = [inner if i == name else i for i in node.input]
    index = next(i for i, value in enumerate(graph.input) if value.name == name)
    graph.input.remove(graph.input[index])
    graph.input.insert(index, helper.make_tensor_value_info(name, elem_type, shape))
    for node in reversed(convert(name, inner)):
        graph.node.insert(0, node)


def _retype_output(graph, name: str, elem_type: int) -> None:
    from onnx import TensorProto, helper

    inner = f"{name}__original"
    for node in graph.node:
        node.output[:] = [inner if o == name else o for o in node.output]
    graph.node.append(helper.make_node("Cast", [inner], [name], to=elem_type))
    output = next(o for o in graph.output if o.name == name)
    output.type.tensor_type.elem_type = elem_type
    assert elem_type != TensorProto.UNDEFINED


def _cast(to: int):
    from onnx import helper

    return lambda new, inner: [helper.make_node("Cast", [new], [inner], to=to)]


def write_variants(generator: Path, out: Path) -> None:
    import onnx
    from onnx import TensorProto, helper

    out.mkdir(parents=True, exist_ok=True)
    unet_path = generator / "unet" / "model.onnx"

    model = onnx.load(str(unet_path))

    def int64_timestep(new, inner):
        # [1] int64 -> float, broadcast to the batch as the original [batch] input.
        return [
            helper.make_node("Cast", [new], [f"{new}__float"], to=TensorProto.FLOAT),
            helper.make_node("Shape", ["sample"], [f"{new}__batch"], start=0, end=1),
            helper.make_node("Expand", [f"{new}__float", f"{new}__batch"], [inner]),
        ]

    _retype_input(model.graph, "timestep", TensorProto.INT64, [1], int64_timestep)
    onnx.save(model, str(out / "unet_timestep_int64.onnx"))

    model = onnx.load(str(unet_path))

    def scalar_timestep(new, inner):
        return [
            helper.make_node("Shape", ["sample"], [f"{new}__batch"], start=0, end=1),
            helper.make_node("Expand", [new, f"{new}__batch"], [inner]),
        ]

    _retype_input(model.graph, "timestep", TensorProto.FLOAT, [], scalar_timestep)
    onnx.save(model, str(out / "unet_timestep_scalar.onnx"))

    model = onnx.load(str(unet_path))
    shapes = {i.name: [d.dim_param or d.dim_value for d in i.type.tensor_type.shape.dim] for i in model.graph.input}
    for name in ("sample", "timestep", "encoder_hidden_states"):
        _retype_input(model.graph, name, TensorProto.FLOAT16, shapes[name], _cast(TensorProto.FLOAT))
    _retype_output(model.graph, "out_sample", TensorProto.FLOAT16)
    onnx.save(model, str(out / "unet_float16.onnx"))

    model = onnx.load(str(generator / "text_encoder" / "model.onnx"))
    shape = [d.dim_param or d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim]
    _retype_input(model.graph, "input_ids", TensorProto.INT64, shape, _cast(TensorProto.INT32))
    onnx.save(model, str(out / "text_encoder_int64.onnx"))

    for path in out.glob("*.onnx"):
        onnx.checker.check_model(str(path))

    external = out / "external" / "unet"
    external.mkdir(parents=True, exist_ok=True)
    onnx.save_model(
        onnx.load(str(unet_path)),
        str(external / "model.onnx"),
        save_as_external_data=True,
        all_tensors_to_one_file=True,
        location="model.onnx_data",
        size_threshold=1024,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m parity.interface_variants", description=__doc__.split("\n\n")[0])
    parser.add_argument("--generator", type=Path, required=True, metavar="DIR")
    parser.add_argument("--out", type=Path, required=True, metavar="DIR")
    args = parser.parse_args(argv)
    write_variants(args.generator, args.out)
    print(args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())

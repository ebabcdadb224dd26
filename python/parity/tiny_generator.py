"""`python -m parity.tiny_generator DIR`: a random-weight generator in the shapes
pack's architecture, with its ONNX parts, for tests that must run before (or without)
the trained pack."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m parity.tiny_generator", description=__doc__)
    parser.add_argument("out", type=Path, help="folder to create the generator in")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    import torch

    torch.set_num_threads(1)
    from loratrain.onnx_graphs import export_generator, quiet_libraries
    from tests.conftest import build_tiny_generator

    quiet_libraries()
    build_tiny_generator(args.out, seed=args.seed)
    export_generator(args.out)
    print(args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())

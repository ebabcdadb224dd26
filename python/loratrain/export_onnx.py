"""`python -m loratrain.export_onnx --generator DIR`: see `onnx_export` for the layout."""

import sys

from .onnx_export import main

if __name__ == "__main__":
    sys.exit(main())

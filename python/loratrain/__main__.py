"""`python -m loratrain ...`: the LoRA trainer, see `train.py`."""

import os
import sys

from .distributed import native_threads_started
from .train import main

if __name__ == "__main__":
    code = main()
    if int(os.environ.get("WORLD_SIZE", "1") or "1") > 1 or native_threads_started():
        # Under a launcher, or in a team, the work is done and the processes have
        # parted; the interpreter's teardown is skipped, since torch.distributed's
        # native threads can abort it now and then ("terminate called without an
        # active exception"), turning a finished run into a failed one.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    sys.exit(code)

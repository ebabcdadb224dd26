"""The trainer's contract with the product: what it writes on stdout, its exit
codes, how a stop is asked for and carried out, and what it leaves in --output.
All but the last are implemented here.

Protocol (the product runs this as a child process):
- stdout carries only JSON lines, each with `event` and `elapsed` (seconds since
  start): `start` (step, total, dataset_size, ...), `phase` (load, cache, train,
  save, export; cache with done and total, of the examples this process encodes:
  in a team, its share), `step` (step, total, loss, lr), `checkpoint` (step, path), `onnx`
  (path, precision, max_abs_diff), `done` (final_loss, lora, unet_onnx), `stopped` (signal,
  step, checkpoint, exit_code), `error` (kind, message). Everything else, library
  output included, goes to stderr.
- exit codes: 0 done; 2 bad input (one line on stderr naming the file, line or
  flag); 143 stopped by SIGTERM (130 by SIGINT); 1 any other failure (an `error`
  event, traceback on stderr).
- the `error` event's kind: `bad_input` (exit 2: a flag, the generator folder or
  the dataset, or a checkpoint made by another recipe); `bad_checkpoint` (exit 2:
  the checkpoint resumed from cannot be read, e.g. a truncated file; the message
  names the checkpoint folder, the file and what was expected, never the file's
  contents; resuming from it again fails the same way, starting afresh does not);
  `failure` (exit 1).
- with --stop-on-stdin-close, stdin reaching end of file counts as SIGTERM: a
  parent that holds a pipe to it and never writes makes the trainer stop when
  it dies, even by SIGKILL, instead of training on unwatched. A stdout nobody
  reads any more (broken pipe) stops it the same way.
- a stop takes effect after the current step: the trainer writes a checkpoint,
  emits `stopped` and exits. Stopped while encoding the dataset, it has nothing
  new to save (`checkpoint` is the one it resumed from, or null); during the
  final ONNX export, it lets the export finish.
- --output receives `pytorch_lora_weights.safetensors` (diffusers keys, loadable
  with `StableDiffusionPipeline.load_lora_weights`), `unet/model.onnx` +
  `unet/config.json` (the UNet with the LoRA fused: a tuned generator is the base
  folder with this unet/ in place of its own; fp32 or fp16 inside as
  --export-precision says, float32 inputs and outputs either way), `metrics.json`, and
  `checkpoints/step-NNNNNNNN/`: `pytorch_lora_weights.safetensors`, `optimizer.pt`
  (the optimizer's and fp16 grad-scaler state) and `state.json` (step, epoch, position in
  epoch, loss history, recipe). Checkpoints are written atomically; the newest
  --keep-checkpoints are kept. `--resume-from latest` resumes from the newest, or
  starts afresh when there is none, so a retried job can always pass it.
- under a launcher of several processes (`distributed.py`), process 0 alone emits
  events and writes files; the launcher's own exit code is 1 whenever a process's is
  not 0, so a reader takes a refusal from the `error` event's kind.
- a team (`team.py`): a leader (--team-size N) first emits `meeting` (port: the
  port of its meeting point on all of its host's interfaces, for the members'
  --team-leader HOST:PORT), then, once it has decided, `team` (rank 0, size: the
  trainers that train, itself included, 1 if no member came), then its events as
  without a team (`start`'s processes is the size). Stopped while it waits for the
  members, it turns them all away and emits `stopped` (checkpoint: the one it
  resumes from, or null). A member (--team-leader) emits `team` (rank: its rank,
  or null when it came too late; size) and no other event unless it fails: it
  writes nothing in its --output but a copy of the checkpoint the leader resumes
  from. A member's exit codes: 0 when the team is done or when it was turned away
  (rank null); 1 (an `error` event of kind `failure`) when it reaches no leader
  within --team-wait (the message names the address), hears no decision, or loses
  the team mid-run; 2 bad input, including a leader whose run differs from its own (the
  message names the first differing field); 143/130 stopped, which stops the
  whole team after the same step, as a stop sent to the leader does.
- a process of a launcher or a team that loses the others mid-training (one died
  or cannot be reached) fails (exit 1, an `error` event with a message starting
  "LostPeers: "); process 0 first writes a checkpoint of the steps done and emits
  `checkpoint`, so that the retry loses none of them.
"""

from __future__ import annotations

import json
import math
import os
import signal
import sys
import threading
import time

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_BAD_INPUT = 2
STOP_EXIT_CODES = {signal.SIGTERM: 143, signal.SIGINT: 130}


class BadInput(Exception):
    """Input the user must fix; the message names the file, line or flag."""

    kind = "bad_input"


class BadCheckpoint(BadInput):
    """A checkpoint to resume from that cannot be read (truncated, not the trainer's
    format); the message names its folder, the file and what was expected."""

    kind = "bad_checkpoint"


class Stopped(Exception):
    """A stop requested before training began: there is no new state to save."""


def _non_finite(value: float) -> str:
    """A number JSON cannot hold, spelled as JavaScript's Number() reads it back."""
    return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")


class Events:
    """JSON lines on the real stdout, each with `elapsed` seconds since the trainer
    started. File descriptor 1 itself is pointed at stderr, so anything a library
    prints (from Python or from C) lands there."""

    def __init__(self) -> None:
        self.started = time.perf_counter()
        sys.stdout.flush()
        self._out = os.fdopen(os.dup(1), "w", buffering=1)
        os.dup2(2, 1)
        sys.stdout = sys.stderr
        # Called when the reader of the events is gone (see `unwatched`).
        self.on_unwatched = lambda: None
        # False in the processes of a data-parallel run but the first (`distributed.py`).
        self.emitting = True

    def elapsed(self) -> float:
        return time.perf_counter() - self.started

    def emit(self, event: str, **fields) -> None:
        # JSON has no NaN or infinity: a diverged loss goes as the string "NaN" (or "Infinity"),
        # which the reader turns back into a number, rather than as a line it cannot parse.
        if not self.emitting:
            return
        finite = {k: (_non_finite(v) if isinstance(v, float) and not math.isfinite(v) else v) for k, v in fields.items()}
        try:
            self._out.write(json.dumps({"event": event, **finite, "elapsed": round(self.elapsed(), 3)}) + "\n")
        except BrokenPipeError:
            self.unwatched(stderr_too=False)

    def unwatched(self, stderr_too: bool) -> None:
        """Nobody reads the events any more (or, with `stderr_too`, any output: the
        parent is dead). They go to /dev/null from now on, so that writing them cannot
        fail the checkpoint on the way out, and `on_unwatched` asks for that stop."""
        null = os.open(os.devnull, os.O_WRONLY)
        try:
            for fd in (self._out.fileno(), *((1, 2) if stderr_too else ())):
                os.dup2(null, fd)
        finally:
            os.close(null)
        self.on_unwatched()


class StopRequest:
    """Remembers a SIGTERM/SIGINT; the trainer acts on it between steps, and between
    batches while it encodes the dataset."""

    def __init__(self) -> None:
        self.signum: int | None = None
        for signum in STOP_EXIT_CODES:
            signal.signal(signum, self._handle)

    def _handle(self, signum, frame) -> None:
        self.signum = signum

    def request(self, signum: int = signal.SIGTERM) -> None:
        """A stop asked for without a signal, treated as that signal."""
        if self.signum is None:
            self.signum = signum

    def check(self) -> None:
        if self.signum is not None:
            raise Stopped()


def stop_when_stdin_closes(events: Events) -> None:
    """Watches stdin on a daemon thread: at end of file (the parent closed its end
    of the pipe, or died), all output is dropped and a stop requested."""

    def watch() -> None:
        try:
            while os.read(0, 4096):
                pass  # whatever the parent writes is not for us
        except OSError:
            pass
        events.unwatched(stderr_too=True)

    threading.Thread(target=watch, name="stdin-close-watch", daemon=True).start()


def report_bad_input(error: BadInput, events: Events) -> int:
    """One line on stderr and an `error` event of the error's kind; the exit code of bad input."""
    message = " ".join(str(error).split())
    print(f"error: {message}", file=sys.stderr, flush=True)
    events.emit("error", kind=error.kind, message=message)
    return EXIT_BAD_INPUT

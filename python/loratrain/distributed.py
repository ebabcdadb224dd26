"""Data-parallel training over the processes a launcher starts (`torchrun
--nproc_per_node N -m loratrain ...` or `accelerate launch --multi_gpu --num_processes N
-m loratrain ...`), one per GPU, or per share of a CPU.

Every process draws the whole batch's randomness from the same seeded streams, as
one process would, and runs the UNet on its own part of the batch; the summed
gradients are the whole batch's, so every process takes the same optimizer step and
the run is the single-process run, but for the order of floating-point sums. A
checkpoint therefore resumes under any number of processes. Process 0 alone speaks
the protocol (events, checkpoints, the LoRA and the ONNX export); the others are
silent and exit with it.

A launcher says who a process is in the environment: WORLD_SIZE, RANK and
LOCAL_RANK (and MASTER_ADDR, MASTER_PORT for the rendezvous); its processes share one
host and one --output. Without them there is one process and nothing here
communicates, unless the trainer leads or joins a team: trainers on other workers,
each with its own --output, that meet without a launcher (`team.py`) and then train
as a launcher's processes would, each its host's only one.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING

from .protocol import BadInput

if TYPE_CHECKING:
    import torch


@dataclass(frozen=True)
class World:
    """This process among those training together."""

    rank: int
    size: int
    local_rank: int
    # The processes on this host, which share its cores.
    local_size: int

    @property
    def main(self) -> bool:
        return self.rank == 0


def world_from_environment(env: Mapping[str, str] = os.environ) -> World:
    def number(name: str, default: str) -> int:
        value = env.get(name, default)
        if not value.isdigit():
            raise BadInput(f"{name}: expected a non-negative integer from the launcher, got {value!r}")
        return int(value)

    size = number("WORLD_SIZE", "1")
    world = World(rank=number("RANK", "0"), size=size, local_rank=number("LOCAL_RANK", "0"), local_size=number("LOCAL_WORLD_SIZE", str(size)))
    if world.size < 1 or world.rank >= world.size:
        raise BadInput(f"RANK {world.rank} of WORLD_SIZE {world.size}: expected 0 <= RANK < WORLD_SIZE")
    return world


def threads_per_process(threads: int, world: World) -> int:
    """A host's processes share the threads the trainer was given (`--threads`), so that
    CPU processes do not oversubscribe its cores."""
    return max(1, threads // max(1, world.local_size))


# How long a process waits for the others at a meeting point: the longest is the end,
# where the others wait while process 0 exports a full-size UNet (minutes; fp16 on a
# CPU, tens of them). A process that dies breaks its peers' connections at once.
MEETING_TIMEOUT = timedelta(hours=2)


# Whether this process has started torch.distributed's native threads (`note_native_threads`).
_native_threads = False


def note_native_threads() -> None:
    """Records that torch.distributed's native threads run in this process: a process group's,
    or a team's meeting point's. `python -m loratrain` then ends without the interpreter's
    teardown, which they can abort ("terminate called without an active exception")."""
    global _native_threads
    _native_threads = True


def native_threads_started() -> bool:
    return _native_threads


def join(world: World, device: torch.device, store: torch.distributed.Store | None = None) -> None:
    """Meets the other processes (NCCL between GPUs, gloo on CPUs): through the launcher's
    rendezvous, or through a team's `store`; nothing with one process."""
    if world.size == 1:
        return
    import torch.distributed as dist

    backend = "nccl" if device.type == "cuda" else "gloo"
    note_native_threads()
    if store is None:
        dist.init_process_group(backend, rank=world.rank, world_size=world.size, timeout=MEETING_TIMEOUT)
        return
    dist.init_process_group(backend, store=dist.PrefixStore("loratrain", store), rank=world.rank, world_size=world.size, timeout=MEETING_TIMEOUT)
    # A team's store was opened with the meeting's shorter timeout; what meets through it
    # from here on (NCCL makes its communicators at the first collective) waits as long as
    # any other collective.
    store.set_timeout(MEETING_TIMEOUT)


def leave(world: World) -> None:
    """Waits for every process to be done, then parts: a process that tore its
    connections down while another still used them would abort it."""
    if world.size == 1:
        return
    import torch.distributed as dist

    if dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


class LostPeers(RuntimeError):
    """A collective failed: another process died, or can no longer be reached. The
    process group is broken; there is nobody left to part from."""


def _all_reduce(value: torch.Tensor, op) -> None:
    import torch.distributed as dist

    try:
        dist.all_reduce(value, op=op)
    except RuntimeError as error:
        raise LostPeers(str(error)) from error


def share(count: int, size: int, rank: int) -> range:
    """Process `rank`'s share of `count` items split among `size` processes: contiguous,
    in rank order, as even as can be (the first `count % size` shares hold one more)."""
    small, larger = divmod(count, size)
    start = rank * small + min(rank, larger)
    return range(start, start + small + (rank < larger))


def my_part(count: int, world: World) -> torch.Tensor:
    """The positions in a batch of `count` that this process runs."""
    import torch

    part = share(count, world.size, world.rank)
    return torch.arange(part.start, part.stop)


def encoding_share(count: int, world: World) -> range:
    """The items of `count` this process encodes for the training cache: its share, or all
    of them when there are fewer items than processes (every share must hold one, for its
    part to show the shape the others pad to; `gather_shares`)."""
    return share(count, world.size, world.rank) if count >= world.size else range(count)


def gather_shares(part: torch.Tensor, count: int, world: World) -> torch.Tensor:
    """Every process's `part` (its `encoding_share` of `count` items, along the first
    dimension) joined in rank order, in each process: the whole."""
    if world.size == 1 or count < world.size:
        return part
    import torch
    import torch.distributed as dist

    sizes = [len(share(count, world.size, rank)) for rank in range(world.size)]
    # A collective moves tensors of one shape: the shorter shares are padded to the longest.
    padded = torch.zeros((max(sizes), *part.shape[1:]), dtype=part.dtype, device=part.device)
    padded[: len(part)] = part
    parts = [torch.empty_like(padded) for _ in sizes]
    try:
        dist.all_gather(parts, padded)
    except RuntimeError as error:
        raise LostPeers(str(error)) from error
    return torch.cat([p[:n] for p, n in zip(parts, sizes)])


def sum_across(value: torch.Tensor, world: World) -> torch.Tensor:
    """The sum of every process's `value` (in place, and returned)."""
    if world.size > 1:
        import torch.distributed as dist

        _all_reduce(value, dist.ReduceOp.SUM)
    return value


# The stops a process may be asked for; when several processes were asked for
# different ones, the first in this order wins.
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


def sum_step(params: list, loss: torch.Tensor, signum: int | None, world: World) -> tuple[torch.Tensor, int | None]:
    """A step's one collective: every process's gradients summed into each, in the same
    order everywhere (a process whose part of a short batch was empty contributes
    zeros); the sum of their `loss`; and the stop any process was asked for (SIGTERM
    over SIGINT), so that all stop after the same step. One collective for it all: a
    LoRA has hundreds of small matrices, and a collective apiece cost more than the
    step's compute on a CPU."""
    if world.size == 1:
        return loss, signum
    import torch

    grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
    asked = torch.tensor([float(signum == s) for s in STOP_SIGNALS], dtype=grads[0].dtype, device=grads[0].device)
    flat = sum_across(torch.cat([*(g.reshape(-1) for g in grads), loss.reshape(1).to(grads[0].dtype), asked]), world)
    parts = flat.split([*(g.numel() for g in grads), 1, len(STOP_SIGNALS)])
    for p, summed in zip(params, parts):
        p.grad = summed.view_as(p)
    stops = parts[-1].tolist()
    agreed = next((int(s) for s, count in zip(STOP_SIGNALS, stops) if count > 0), None)
    return parts[-2].reshape(()).to(loss.dtype), agreed


def agreed_stop(signum: int | None, world: World, device: torch.device) -> int | None:
    """The stop any process was asked for (SIGTERM over SIGINT), so that all stop after the same step."""
    if world.size == 1:
        return signum
    import torch
    import torch.distributed as dist

    flag = torch.tensor([0 if signum is None else signum], device=device)
    _all_reduce(flag, dist.ReduceOp.MAX)
    return int(flag.item()) or None

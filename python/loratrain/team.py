"""A team: trainers on different workers (hosts), each started on its own with its
own --output, that train one run data-parallel without a launcher.

One trainer leads (`--team-size N`), the others join it as members (`--team-leader
HOST:PORT`); they meet through a torch.distributed TCPStore that the leader hosts.

- The leader opens the store on port 0: the system picks a free port, so leaders on
  one host never collide and no port has to be set aside beforehand. The store
  listens on every interface; a `meeting` event gives its port, and the product,
  which knows the leader's host, hands HOST:PORT to the members.
- Before anyone arrives the leader writes its run's terms in the store: the recipe,
  the step count, the device type and the UNet's config. A member whose own terms
  differ would train another run, so it refuses (bad input) without arriving.
- A member arrives by adding 1 to a counter in the store; the number it gets back is
  its arrival number, unique without any lock. The leader waits until N-1 members
  have arrived or --team-wait has passed since it opened the meeting, then decides
  the team's size m = 1 + min(arrived, N-1) and writes it in the store. Arrivals 1
  to m-1 are in, with their arrival number as rank; a later one (it arrived after
  the leader read the counter) is turned away. `team_size` and `place` are that rule.
- The leader trains with whoever came because the result does not depend on it:
  every trainer draws the whole batch's randomness and the summed gradients are the
  whole batch's (`distributed.py`), so the run is the same for any team size, one
  included. A late or missing worker costs time, never correctness, and waiting
  longer for it would cost more time.
- Those taken in say so in the store; once all have, everyone forms a process group
  over it (gloo on CPUs, NCCL on GPUs). Each trainer is its host's only process:
  rank r of m, local rank 0 of 1, its GPU cuda:0 and its threads its own.
- A leader that resumes from a checkpoint sends its files to the members, which
  write them into their own --output and load them as the leader does: all start at
  the same step, and the step fixes the data order and every random draw to come.
- From there on the team trains as a launcher's processes do: the leader alone emits
  events and writes checkpoints, the LoRA, metrics and the ONNX export; a stop any
  trainer is asked for stops all after the same step; one that dies breaks the
  others' connections, and they fail, the leader after writing a checkpoint of the
  steps done.

Across hosts, gloo and NCCL take the network interface of the host's name; where
that resolves to a loopback address, set GLOO_SOCKET_IFNAME (NCCL_SOCKET_IFNAME) to
the interface the others reach.
"""

from __future__ import annotations

import argparse
import json
import socket
import time
from dataclasses import dataclass, replace
from datetime import timedelta
from typing import TYPE_CHECKING

from .arguments import leader_address
from .checkpoints import CHECKPOINT_FILES, checkpoint_files, copy_in_checkpoint, read_state
from .distributed import World, note_native_threads
from .plan import Plan
from .protocol import BadInput, Events, Stopped, StopRequest

if TYPE_CHECKING:
    from pathlib import Path

    import torch
    import torch.distributed

# The store's keys: the members' arrival counter, the run's terms, the decided size,
# and each member's word that it is ready to form the process group.
ARRIVALS, TERMS, SIZE, READY = "arrivals", "terms", "size", "ready/"
POLL_S = 0.1
# A member waits this much longer than --team-wait for the decision: the leader takes
# it at most its own --team-wait after opening the meeting, which was before the member came.
DECISION_MARGIN_S = 30.0
# How long the leader waits for those it took in to say they are ready: each does so
# as soon as it reads the decision, so one missing this long has died.
JOIN_TIMEOUT = timedelta(minutes=2)


class TeamFailure(Exception):
    """The team could not meet (no leader where a member was sent, no decision, a
    member that never joined); not the user's input: the product retries with
    another meeting."""


def team_size(arrived: int, wanted: int) -> int:
    """The size of a team of up to `wanted` trainers, leader included, once `arrived` members have come."""
    return 1 + min(arrived, wanted - 1)


def place(arrival: int, size: int) -> int | None:
    """The rank of the member whose arrival number (1-based) is `arrival` in a team of
    `size`, or None if it came too late to be in."""
    return arrival if 1 <= arrival <= size - 1 else None


def team_flag(args: argparse.Namespace) -> str | None:
    if args.team_size is not None:
        return "--team-size"
    return "--team-leader" if args.team_leader is not None else None


def check_not_launched(args: argparse.Namespace, world: World) -> None:
    flag = team_flag(args)
    if flag and world.size > 1:
        raise BadInput(f"{flag}: a team trainer runs as one process per worker; do not start it under a launcher")


def terms_of(args: argparse.Namespace, plan: Plan, device) -> dict:
    """What every trainer of a team must share for their run to be one run."""
    unet = json.loads((args.generator / "unet" / "config.json").read_text())
    terms = {**plan.recipe, "total": plan.total, "mixed_precision": args.mixed_precision, "device": device.type}
    # Keys starting with "_" record who saved the config, not the model.
    terms.update({f"unet {k}": v for k, v in unet.items() if not k.startswith("_")})
    # As the store hands them back, so that a leader's terms and a member's compare alike.
    return json.loads(json.dumps(terms))


@dataclass
class Team:
    """This trainer's place in its team."""

    # None: a member turned away.
    world: World | None
    # Open for the whole run: a member that comes late learns there that it is turned away.
    store: torch.distributed.Store


def form_team(args: argparse.Namespace, plan: Plan, device, events: Events, stop: StopRequest) -> Team:
    terms = terms_of(args, plan, device)
    return lead(args, terms, events, stop) if args.team_size is not None else follow(args, terms, events, stop)


def lead(args: argparse.Namespace, terms: dict, events: Events, stop: StopRequest) -> Team:
    """Opens the meeting, waits for the members and decides the team (see the module's docstring)."""
    import torch.distributed as dist

    store = dist.TCPStore("127.0.0.1", 0, None, True, JOIN_TIMEOUT, wait_for_workers=False)
    note_native_threads()
    store.set(TERMS, json.dumps(terms))
    events.emit("meeting", port=store.port)
    deadline = time.monotonic() + args.team_wait
    arrived = store.add(ARRIVALS, 0)
    while arrived < args.team_size - 1 and time.monotonic() < deadline and stop.signum is None:
        time.sleep(POLL_S)
        arrived = store.add(ARRIVALS, 0)
    if stop.signum is not None:
        # A team of the leader alone turns every member away, now and later.
        store.set(SIZE, "1")
        raise Stopped()
    size = team_size(arrived, args.team_size)
    store.set(SIZE, str(size))
    events.emit("team", rank=0, size=size)
    if size > 1:
        try:
            store.wait([f"{READY}{rank}" for rank in range(1, size)], JOIN_TIMEOUT)
        except dist.DistError as error:
            raise TeamFailure(f"--team-size: not every member of the team of {size} said it was ready within {JOIN_TIMEOUT}: {first_line(error)}") from None
    return Team(World(rank=0, size=size, local_rank=0, local_size=1), store)


def follow(args: argparse.Namespace, terms: dict, events: Events, stop: StopRequest) -> Team:
    """Joins the leader's meeting, arrives and learns whether this trainer is in."""
    import torch.distributed as dist

    where = f"--team-leader {args.team_leader}"
    host, port = leader_address(args.team_leader)
    reach(host, port, args.team_wait, stop, where)
    timeout = args.team_wait + DECISION_MARGIN_S
    try:
        store = dist.TCPStore(host, port, None, False, timedelta(seconds=timeout))
        note_native_threads()
        leaders = json.loads(store.get(TERMS))
    except dist.DistError as error:
        raise TeamFailure(f"{where}: no leader's meeting answered there: {first_line(error)}") from None
    for field in sorted(leaders.keys() | terms.keys()):
        if leaders.get(field) != terms.get(field):
            raise BadInput(f"{where}: the leader trains with {field}={leaders.get(field)!r}, this trainer with {field}={terms.get(field)!r}")
    try:
        arrival = store.add(ARRIVALS, 1)
        store.wait([SIZE])
        size = int(store.get(SIZE))
    except dist.DistError as error:
        raise TeamFailure(f"{where}: the leader decided on no team within {timeout:g} s: {first_line(error)}") from None
    rank = place(arrival, size)
    events.emit("team", rank=rank, size=size)
    if rank is None:
        return Team(None, store)
    store.set(f"{READY}{rank}", "")
    return Team(World(rank=rank, size=size, local_rank=0, local_size=1), store)


def reach(host: str, port: int, wait: float, stop: StopRequest, where: str) -> None:
    """Returns once something accepts connections at host:port, trying for `wait`
    seconds: a leader's meeting may open a moment after its address was handed out.
    The store's own connect would do the same, but neither heeding a stop nor quietly."""
    deadline = time.monotonic() + wait
    while True:
        stop.check()
        try:
            with socket.create_connection((host, port), timeout=max(POLL_S, min(1.0, deadline - time.monotonic()))):
                return
        except OSError as error:
            if time.monotonic() + POLL_S >= deadline:
                raise TeamFailure(f"{where}: no leader could be reached there within {wait:g} s ({error})") from None
        time.sleep(POLL_S)


def first_line(error: Exception) -> str:
    """torch.distributed's messages can go on with a C++ stack trace."""
    return str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__


def share_checkpoint(plan: Plan, output: Path, world: World, device) -> Plan:
    """The leader's checkpoint, if it resumes from one, copied into every member's
    --output/checkpoints: the plan of a member then resumes from that copy."""
    import torch
    import torch.distributed as dist

    contents = checkpoint_files(plan.checkpoint) if world.main and plan.checkpoint else None
    sizes = torch.tensor([len(c) for c in contents] if contents else [-1] * len(CHECKPOINT_FILES), dtype=torch.int64, device=device)
    dist.broadcast(sizes, src=0)
    if int(sizes[0]) < 0:
        return plan
    data = torch.empty(int(sizes.sum()), dtype=torch.uint8)
    if contents:
        data = torch.frombuffer(bytearray(b"".join(contents)), dtype=torch.uint8)
    data = data.to(device)
    dist.broadcast(data, src=0)
    if world.main:
        return plan
    raw = data.cpu().numpy().tobytes()
    ends = torch.cumsum(sizes.cpu(), 0).tolist()
    received = [raw[end - size : end] for end, size in zip(ends, sizes.tolist())]
    folder = copy_in_checkpoint(output, received)
    return replace(plan, checkpoint=folder, resumed=read_state(folder))

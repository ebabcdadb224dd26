"""Trainers on different workers that meet as a team (`loratrain/team.py`): run here
as child processes on 127.0.0.1, each with its own --output, as workers would start
them, and compared with the one-process run of the same flags."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import PYTHON_DIR, TINY_DATASET_SIZE, run_module
from loratrain.arguments import build_parser, check_args, leader_address
from loratrain.protocol import BadInput
from loratrain.team import place, team_size
from test_trainer import _expect_bad_input, events_of, load_lora

# More steps than test_trainer's runs: a stop sent after the first step must land
# before the team is done, and a step costs little beside a trainer's start.
STEPS = 20
TRAIN_ARGS = ("--max-steps", str(STEPS), "--batch-size", "4", "--seed", "3", "--threads", "1", "--skip-onnx")


class Trainer:
    """A trainer started as a worker starts it; its stderr goes to a file, so that a
    trainer left waiting never blocks on a full pipe."""

    def __init__(self, generator: Path, dataset: Path, output: Path, *extra: str) -> None:
        self.output = output
        self.stderr_path = output.parent / f"{output.name}.stderr"
        args = ["--generator", str(generator), "--dataset", str(dataset), "--output", str(output), *TRAIN_ARGS, *extra]
        env = {**os.environ, "PYTHONPATH": str(PYTHON_DIR), "OMP_NUM_THREADS": "1"}
        with open(self.stderr_path, "w") as stderr:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "loratrain", *args], cwd=PYTHON_DIR, env=env, stdout=subprocess.PIPE, stderr=stderr, text=True
            )
        self.events: list[dict] = []

    def until(self, event: str) -> dict:
        """Reads events up to the first `event`."""
        for line in self.process.stdout:
            self.events.append(json.loads(line))
            if self.events[-1]["event"] == event:
                return self.events[-1]
        raise AssertionError(f"no {event} event: {self.events}\n{self.stderr}")

    def finish(self, timeout: float = 300) -> int:
        rest, _ = self.process.communicate(timeout=timeout)
        self.events += events_of(rest)
        return self.process.returncode

    @property
    def stderr(self) -> str:
        return self.stderr_path.read_text()

    def of(self, event: str) -> list[dict]:
        return [e for e in self.events if e["event"] == event]

    def lora(self) -> dict:
        return load_lora(self.output / "pytorch_lora_weights.safetensors")


def max_difference(a: dict, b: dict) -> float:
    assert a.keys() == b.keys()
    return max(float((a[k] - b[k]).abs().max()) for k in a)


def address(port: int) -> str:
    return f"127.0.0.1:{port}"


@pytest.fixture(scope="module")
def alone_and_reference(tiny_generator, tiny_dataset, tmp_path_factory) -> tuple[Trainer, Trainer]:
    """Side by side: the one-process run, and a leader whose member never comes."""
    root = tmp_path_factory.mktemp("alone")
    reference = Trainer(tiny_generator, tiny_dataset, root / "reference", "--checkpoint-every", "5")
    alone = Trainer(tiny_generator, tiny_dataset, root / "leader", "--team-size", "2", "--team-wait", "1")
    assert reference.finish() == 0, reference.stderr
    assert alone.finish() == 0, alone.stderr
    return reference, alone


@pytest.fixture(scope="module")
def reference(alone_and_reference) -> Trainer:
    return alone_and_reference[0]


@pytest.fixture(scope="module")
def team(tiny_generator, tiny_dataset, tmp_path_factory) -> dict[str, Trainer]:
    """A leader and a member, and a second member that comes after the leader decided."""
    root = tmp_path_factory.mktemp("team")
    leader = Trainer(tiny_generator, tiny_dataset, root / "leader", "--team-size", "2", "--checkpoint-every", "5")
    port = leader.until("meeting")["port"]
    member = Trainer(tiny_generator, tiny_dataset, root / "member", "--team-leader", address(port))
    leader.until("team")
    # Paused, the member holds the team back, so that the leader is still there when the late one comes.
    member.process.send_signal(signal.SIGSTOP)
    try:
        late = Trainer(tiny_generator, tiny_dataset, root / "late", "--team-leader", address(port))
        assert late.finish() == 0, late.stderr
    finally:
        member.process.send_signal(signal.SIGCONT)
    assert leader.finish() == 0, leader.stderr
    assert member.finish() == 0, member.stderr
    return {"leader": leader, "member": member, "late": late}


def test_a_leader_and_a_member_train_the_one_process_run(team, reference):
    leader, member = team["leader"], team["member"]
    events = leader.events
    assert [e["event"] for e in events[:3]] == ["meeting", "team", "start"]
    assert (events[1]["rank"], events[1]["size"]) == (0, 2)
    assert events[2]["processes"] == 2 and events[-1]["event"] == "done"
    assert [e["step"] for e in leader.of("step")] == list(range(1, STEPS + 1))
    assert [e["step"] for e in leader.of("checkpoint")] == [5, 10, 15]
    # The member tells its own worker its place, its phases and the team's steps, which that
    # worker watches for a leader gone silent; it writes nothing of the run and reports none.
    assert (member.events[0]["event"], member.events[0]["rank"], member.events[0]["size"]) == ("team", 1, 2)
    assert [e["step"] for e in member.of("step")] == list(range(1, STEPS + 1))
    assert {e["event"] for e in member.events} == {"team", "start", "phase", "step"}
    assert not (member.output / "checkpoints").exists() and not list(member.output.glob("*"))
    # The two encoded the dataset together, the leader its first half (the reference all of it).
    assert [e["total"] for e in leader.of("phase") if e["phase"] == "cache"][-1] == TINY_DATASET_SIZE // 2
    assert [e["total"] for e in reference.of("phase") if e["phase"] == "cache"][-1] == TINY_DATASET_SIZE
    # The same run as one process's, but for the order of sums (test_trainer's torchrun tolerances).
    want = [e["loss"] for e in reference.of("step")]
    assert [e["loss"] for e in leader.of("step")] == pytest.approx(want, rel=1e-4)
    assert max_difference(leader.lora(), reference.lora()) < 1e-5
    metrics = json.loads((leader.output / "metrics.json").read_text())
    assert (metrics["processes"], metrics["threads"]) == (2, 1)


def test_a_member_that_comes_after_the_decision_is_turned_away(team):
    late = team["late"]
    assert late.events == [{"event": "team", "rank": None, "size": 2, "elapsed": late.events[0]["elapsed"]}]
    assert not list(late.output.glob("*"))


def test_a_leader_whose_members_never_come_trains_alone(alone_and_reference):
    reference, alone = alone_and_reference
    assert [e["event"] for e in alone.events[:3]] == ["meeting", "team", "start"]
    assert (alone.events[1]["rank"], alone.events[1]["size"]) == (0, 1)
    # It waited its --team-wait for the member, no less.
    assert alone.events[1]["elapsed"] - alone.events[0]["elapsed"] >= 1
    assert alone.events[2]["processes"] == 1 and alone.events[-1]["event"] == "done"
    assert max_difference(alone.lora(), reference.lora()) < 1e-6


def test_sigterm_to_a_member_stops_the_team_and_a_resumed_team_reproduces_the_run(reference, tiny_generator, tiny_dataset, tmp_path):
    leader = Trainer(tiny_generator, tiny_dataset, tmp_path / "leader", "--team-size", "2")
    member = Trainer(tiny_generator, tiny_dataset, tmp_path / "member", "--team-leader", address(leader.until("meeting")["port"]))
    leader.until("step")
    member.process.send_signal(signal.SIGTERM)
    assert member.finish() == 143, member.stderr
    assert leader.finish() == 143, leader.stderr
    stopped = leader.events[-1]
    assert stopped["event"] == "stopped" and stopped["signal"] == "SIGTERM"
    at = stopped["step"]
    assert 1 <= at < STEPS
    checkpoint = leader.output / "checkpoints" / f"step-{at:08d}"
    assert Path(stopped["checkpoint"]) == checkpoint
    assert member.events[-1]["event"] == "stopped" and member.events[-1]["checkpoint"] is None
    assert not member.of("checkpoint") and not (member.output / "checkpoints").exists()

    # Resumed, the leader hands its checkpoint to a member that has none.
    leader = Trainer(tiny_generator, tiny_dataset, leader.output, "--team-size", "2", "--resume-from", "latest")
    port = leader.until("meeting")["port"]
    member = Trainer(tiny_generator, tiny_dataset, tmp_path / "new-member", "--team-leader", address(port), "--resume-from", "latest")
    assert leader.finish() == 0, leader.stderr
    assert member.finish() == 0, member.stderr
    start = leader.of("start")[0]
    assert (start["step"], start["processes"], start["resumed_from"]) == (at, 2, str(checkpoint))
    assert [e["step"] for e in leader.of("step")] == list(range(at + 1, STEPS + 1))
    copy = member.output / "checkpoints" / checkpoint.name
    assert sorted(p.name for p in copy.iterdir()) == sorted(p.name for p in checkpoint.iterdir())
    assert all((copy / p.name).read_bytes() == p.read_bytes() for p in checkpoint.iterdir())
    want = json.loads((reference.output / "metrics.json").read_text())["loss_curve"]
    assert json.loads((leader.output / "metrics.json").read_text())["loss_curve"] == pytest.approx(want, rel=1e-4)
    assert max_difference(leader.lora(), reference.lora()) < 1e-5


def test_a_leader_that_loses_its_member_keeps_its_steps_in_a_checkpoint(reference, tiny_generator, tiny_dataset, tmp_path):
    leader = Trainer(tiny_generator, tiny_dataset, tmp_path / "leader", "--team-size", "2")
    member = Trainer(tiny_generator, tiny_dataset, tmp_path / "member", "--team-leader", address(leader.until("meeting")["port"]))
    leader.until("step")
    member.process.kill()
    member.finish()
    assert leader.finish() == 1, leader.stderr
    kept, error = leader.events[-2:]
    assert error["event"] == "error" and error["kind"] == "failure" and error["message"].startswith("LostPeers: ")
    assert kept["event"] == "checkpoint" and 1 <= kept["step"] < STEPS
    assert kept["step"] == leader.of("step")[-1]["step"]
    # It holds the state of that step, not of the one that failed: a resumed run reproduces the uninterrupted one.
    resumed = Trainer(tiny_generator, tiny_dataset, leader.output, "--resume-from", "latest")
    assert resumed.finish() == 0, resumed.stderr
    assert resumed.of("start")[0]["step"] == kept["step"]
    assert max_difference(resumed.lora(), reference.lora()) < 1e-5


def test_a_member_of_another_run_refuses_and_a_leader_stopped_while_waiting_stops(tiny_generator, tiny_dataset, tmp_path):
    leader = Trainer(tiny_generator, tiny_dataset, tmp_path / "leader", "--team-size", "3")
    port = leader.until("meeting")["port"]
    other = Trainer(tiny_generator, tiny_dataset, tmp_path / "other", "--team-leader", address(port), "--seed", "4")
    assert other.finish() == 2, other.stderr
    (error,) = other.events
    assert error["kind"] == "bad_input" and error["message"] == f"--team-leader {address(port)}: the leader trains with seed=3, this trainer with seed=4"
    leader.process.send_signal(signal.SIGTERM)
    assert leader.finish(timeout=30) == 143, leader.stderr
    assert [e["event"] for e in leader.events] == ["meeting", "stopped"]
    assert (leader.events[-1]["step"], leader.events[-1]["checkpoint"]) == (0, None)


def test_a_member_that_reaches_no_leader_fails_after_its_wait(tiny_generator, tiny_dataset, tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    started = time.monotonic()
    member = Trainer(tiny_generator, tiny_dataset, tmp_path / "member", "--team-leader", address(port), "--team-wait", "1")
    assert member.finish(timeout=60) == 1, member.stderr
    assert time.monotonic() - started < 30
    (error,) = member.events
    assert error["event"] == "error" and error["kind"] == "failure" and address(port) in error["message"]


def test_the_team_decides_its_size_from_the_arrivals_and_places_each_member_once():
    assert [team_size(arrived, 3) for arrived in range(5)] == [1, 2, 3, 3, 3]
    for wanted in (2, 3, 5):
        for arrived in range(wanted + 2):
            size = team_size(arrived, wanted)
            # Those counted are in, in arrival order; any later arrival is turned away.
            ranks = [place(arrival, size) for arrival in range(1, arrived + 3)]
            assert ranks[: size - 1] == list(range(1, size)) and set(ranks[size - 1 :]) == {None}


def parse(*flags: str):
    return build_parser().parse_args(["--generator", "g", "--dataset", "d", "--output", "o", *flags])


@pytest.mark.parametrize(
    ("flags", "fragment"),
    [
        (["--team-size", "1"], "--team-size: must be at least 2"),
        (["--team-leader", "host"], "--team-leader: expected HOST:PORT"),
        (["--team-leader", ":29500"], "--team-leader: expected HOST:PORT"),
        (["--team-leader", "host:0"], "--team-leader: expected HOST:PORT"),
        (["--team-leader", "host:65536"], "--team-leader: expected HOST:PORT"),
        (["--team-leader", "host:port"], "--team-leader: expected HOST:PORT"),
        (["--team-size", "2", "--team-wait", "0"], "--team-wait: must be a positive number"),
        (["--team-size", "2", "--team-wait", "nan"], "--team-wait: must be a positive number"),
        (["--team-size", "2", "--team-leader", "host:1"], "argument --team-leader: not allowed with argument --team-size"),
    ],
)
def test_bad_team_flags_are_bad_input_naming_the_flag(flags, fragment):
    with pytest.raises(BadInput, match=fragment):
        check_args(parse(*flags))


def test_a_leaders_address_is_host_and_port():
    assert leader_address("10.0.0.7:29500") == ("10.0.0.7", 29500)
    assert leader_address("worker-3.local:1") == ("worker-3.local", 1)
    assert leader_address("[fe80::1]:65535") == ("fe80::1", 65535)
    assert leader_address("10.0.0.7") is None and leader_address("10.0.0.7:") is None


@pytest.mark.parametrize("flags", [("--team-size", "2"), ("--team-leader", "127.0.0.1:29500")])
def test_a_team_trainer_under_a_launcher_exits_2(flags, tiny_generator, tiny_dataset, tmp_path, monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "0")
    done = run_module("loratrain", "--generator", str(tiny_generator), "--dataset", str(tiny_dataset), "--output", str(tmp_path / "out"), *flags)
    _expect_bad_input(done, f"{flags[0]}: a team trainer runs as one process per worker; do not start it under a launcher")


def test_a_bad_team_flag_exits_2(tiny_generator, tiny_dataset, tmp_path):
    done = run_module("loratrain", "--generator", str(tiny_generator), "--dataset", str(tiny_dataset), "--output", str(tmp_path / "out"), "--team-size", "1")
    _expect_bad_input(done, "--team-size: must be at least 2")

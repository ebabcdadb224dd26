"""Who a trainer process is under a launcher, and its share of a batch and of the cores."""

from __future__ import annotations

import pytest

from loratrain.distributed import World, encoding_share, my_part, share, threads_per_process, world_from_environment
from loratrain.protocol import BadInput


def test_one_process_without_a_launcher():
    assert world_from_environment({}) == World(rank=0, size=1, local_rank=0, local_size=1)


def test_a_launchers_environment_names_the_process():
    env = {"WORLD_SIZE": "4", "RANK": "3", "LOCAL_RANK": "1", "LOCAL_WORLD_SIZE": "2"}
    world = world_from_environment(env)
    assert world == World(rank=3, size=4, local_rank=1, local_size=2)
    assert not world.main


@pytest.mark.parametrize(
    ("env", "fragment"),
    [({"WORLD_SIZE": "2", "RANK": "2"}, "RANK 2 of WORLD_SIZE 2"), ({"WORLD_SIZE": "two"}, "WORLD_SIZE: expected a non-negative integer")],
)
def test_a_bad_launcher_environment_is_bad_input(env, fragment):
    with pytest.raises(BadInput, match=fragment):
        world_from_environment(env)


def test_parts_cover_the_batch_once_in_order_even_when_short():
    for size in (1, 2, 3):
        for count in (1, 4, 5):
            parts = [my_part(count, World(rank, size, rank, size)).tolist() for rank in range(size)]
            assert [i for part in parts for i in part] == list(range(count))
            assert max(map(len, parts)) - min(map(len, parts)) <= 1


def test_shares_are_those_of_torch_tensor_split():
    import torch

    for size in (1, 2, 3, 5):
        for count in (0, 1, 4, 5, 13):
            expected = [part.tolist() for part in torch.arange(count).tensor_split(size)]
            assert [list(share(count, size, rank)) for rank in range(size)] == expected


def test_each_process_encodes_a_share_unless_some_share_would_be_empty():
    team = [World(rank, 3, 0, 1) for rank in range(3)]
    assert [encoding_share(7, w) for w in team] == [range(0, 3), range(3, 5), range(5, 7)]
    assert [encoding_share(2, w) for w in team] == [range(2)] * 3
    assert encoding_share(5, World(0, 1, 0, 1)) == range(5)


def test_a_hosts_processes_share_its_threads():
    assert threads_per_process(8, World(0, 4, 0, 2)) == 4
    assert threads_per_process(1, World(0, 4, 0, 4)) == 1
    assert threads_per_process(6, World(0, 1, 0, 1)) == 6

"""The screening split keeps validation apart from both the pool and the held-out prompts."""

from __future__ import annotations

from collections import Counter

import pytest

from shapesworld.prompts import split
from shapesworld.screen import parse_variant, validation_split


def test_validation_is_a_stratified_quarter_of_the_training_prompts():
    train, held_out = split()
    pool_ids, validation_ids = validation_split(train)
    pool, validation = [train[k] for k in pool_ids], [train[k] for k in validation_ids]
    assert sorted(p.text for p in pool + validation) == sorted(p.text for p in train)
    assert not {p.text for p in pool} & {p.text for p in validation}
    assert not {p.text for p in validation} & {p.text for p in held_out}
    per_class = Counter(p.cls for p in train)
    for cls, n in Counter(p.cls for p in validation).items():
        assert n == per_class[cls] // 4
    assert set(Counter(p.cls for p in validation)) == set(per_class)


def test_a_variant_changes_only_the_named_settings():
    defaults = {"rank": 16, "learning_rate": 0.001, "max_steps": 600}
    assert parse_variant("max_steps=900,lr_scheduler=cosine", defaults) == {"rank": 16, "learning_rate": 0.001, "max_steps": 900, "lr_scheduler": "cosine"}
    assert parse_variant("", defaults) == defaults
    with pytest.raises(SystemExit, match="expected key=value"):
        parse_variant("rank", defaults)

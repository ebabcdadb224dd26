"""The renderer and the prompt grammar: determinism, ground truth, disjoint prompt sets."""

from pathlib import Path

import numpy as np
import pytest

from shapesworld.prompts import read_prompt_file, split, write_prompt_file
from shapesworld.world import BACKGROUNDS, CLASSES, COLOURS, IMAGE_SIZE, PLURALS, SceneSpec, all_specs, render, scenes


def test_same_seed_same_pixels_and_boxes():
    a, b = scenes(12, seed=5), scenes(12, seed=5)
    for x, y in zip(a, b):
        assert x.image.tobytes() == y.image.tobytes()
        assert x.objects == y.objects and x.caption == y.caption


def test_different_seeds_differ():
    a, b = scenes(12, seed=5), scenes(12, seed=6)
    assert sum(x.image.tobytes() != y.image.tobytes() for x, y in zip(a, b)) == 12


def test_scene_matches_its_spec():
    for scene in scenes(200, seed=1):
        spec = scene.spec
        assert scene.image.size == (IMAGE_SIZE, IMAGE_SIZE) and scene.image.mode == "RGB"
        assert len(scene.objects) == spec.count
        for obj in scene.objects:
            x0, y0, x1, y1 = obj.box
            assert 0 <= x0 < x1 <= IMAGE_SIZE and 0 <= y0 < y1 <= IMAGE_SIZE
            assert obj.cls == spec.cls and obj.colour == spec.colour
            # The object's colour is really drawn at its centre.
            cx, cy = int((x0 + x1) / 2), int((y0 + y1) / 2)
            pixel = np.asarray(scene.image)[cy, cx].astype(int)
            if spec.cls not in ("star", "triangle"):  # their box centre can fall outside the shape
                assert np.abs(pixel - np.array(COLOURS[spec.colour])).max() < 60


def test_objects_do_not_overlap():
    for scene in scenes(200, seed=2):
        boxes = [o.box for o in scene.objects]
        for i in range(len(boxes)):
            for j in range(i + 1, len(boxes)):
                a, b = boxes[i], boxes[j]
                assert a[2] <= b[0] or b[2] <= a[0] or a[3] <= b[1] or b[3] <= a[1]


@pytest.mark.parametrize(
    "spec, caption",
    [
        (SceneSpec(1, "red", "circle", "white"), "a red circle on a white background"),
        (SceneSpec(1, "orange", "star", "black"), "an orange star on a black background"),
        (SceneSpec(3, "blue", "cross", "gray"), "three blue crosses on a gray background"),
    ],
)
def test_caption_grammar(spec, caption):
    assert spec.caption == caption
    assert render(spec, 0).caption == caption


def test_grammar_covers_every_combination_once():
    specs = all_specs()
    assert len(specs) == len(set(specs)) == 3 * len(COLOURS) * len(CLASSES) * len(BACKGROUNDS)
    assert len({s.caption for s in specs}) == len(specs)


def test_prompt_sets_are_disjoint_and_cover_every_class():
    train, held_out = split()
    assert not {p.text for p in train} & {p.text for p in held_out}
    assert len(train) + len(held_out) == len(all_specs())
    for prompts in (train, held_out):
        assert {p.cls for p in prompts} == set(CLASSES)
        for p in prompts:
            assert p.cls in p.text.split() or PLURALS[p.cls] in p.text.split()


def test_split_is_stable():
    assert [p.line() for p in split()[0]] == [p.line() for p in split()[0]]


def test_prompt_file_round_trip(tmp_path: Path):
    train, _ = split()
    path = tmp_path / "train.txt"
    write_prompt_file(path, train[:5])
    assert read_prompt_file(path) == [(p.cls, p.text) for p in train[:5]]


def test_prompt_file_names_the_bad_line(tmp_path: Path):
    path = tmp_path / "bad.txt"
    path.write_text("circle; a red circle on a white background\nno separator here\n")
    with pytest.raises(ValueError, match=r"bad.txt:2: expected `class; prompt`"):
        read_prompt_file(path)

"""CLIPScore with the committed shapes CLIP: a scene scores higher with its own caption."""

import numpy as np

from shapesworld.pack import PACK_DIR
from shapesworld.proof import ClipScorer
from shapesworld.world import scenes


def test_own_caption_scores_higher_than_another_scenes_caption():
    held_out = scenes(16, seed=4242)
    scorer = ClipScorer(PACK_DIR / "clip")
    images = [s.image for s in held_out]
    own = scorer.score(images, [s.caption for s in held_out])
    other = scorer.score(images, [held_out[(i + 1) % 16].caption for i in range(16)])
    assert own.shape == (16,) and np.all((own >= 0) & (own <= 100))
    assert (own > other).mean() >= 0.9

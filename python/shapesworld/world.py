"""The shapes world: a deterministic renderer of small scenes and their ground truth.

Every scene holds 1-3 objects of ONE class and ONE colour on a plain background,
so a scene is fully described by (count, colour, class, background) and its
caption is a sentence of the prompt grammar (see `caption_for`). Objects are drawn
at 4x resolution and downsampled, which gives anti-aliased edges like a photo.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from PIL import Image, ImageDraw

IMAGE_SIZE = 64
SUPERSAMPLE = 4

CLASSES: tuple[str, ...] = ("circle", "square", "triangle", "star", "cross")
PLURALS: dict[str, str] = {
    "circle": "circles",
    "square": "squares",
    "triangle": "triangles",
    "star": "stars",
    "cross": "crosses",
}
COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (220, 40, 40),
    "green": (40, 170, 60),
    "blue": (40, 80, 220),
    "yellow": (240, 205, 40),
    "purple": (140, 60, 190),
    "orange": (245, 135, 30),
}
BACKGROUNDS: dict[str, tuple[int, int, int]] = {
    "white": (242, 242, 242),
    "black": (22, 22, 22),
    "gray": (128, 128, 128),
}
COUNT_WORDS: dict[int, str] = {1: "a", 2: "two", 3: "three"}
MIN_OBJECT, MAX_OBJECT = 13, 26  # box side in pixels


@dataclass(frozen=True)
class SceneSpec:
    """What a prompt asks for: the attributes a scene is drawn from."""

    count: int
    colour: str
    cls: str
    background: str

    @property
    def caption(self) -> str:
        return caption_for(self)


@dataclass(frozen=True)
class SceneObject:
    cls: str
    colour: str
    box: tuple[float, float, float, float]  # x0, y0, x1, y1 in pixels


@dataclass
class Scene:
    spec: SceneSpec
    image: Image.Image
    objects: list[SceneObject] = field(default_factory=list)

    @property
    def caption(self) -> str:
        return self.spec.caption


def caption_for(spec: SceneSpec) -> str:
    """The grammar: `<count> <colour> <class[es]> on a <background> background`,
    count being a/an, two or three."""
    noun = spec.cls if spec.count == 1 else PLURALS[spec.cls]
    article = COUNT_WORDS[spec.count]
    if spec.count == 1 and spec.colour[0] in "aeiou":
        article = "an"
    return f"{article} {spec.colour} {noun} on a {spec.background} background"


def all_specs() -> list[SceneSpec]:
    """Every scene the grammar can describe, in a fixed order."""
    return [SceneSpec(count, colour, cls, background) for cls in CLASSES for colour in COLOURS for count in COUNT_WORDS for background in BACKGROUNDS]


def random_spec(rng: np.random.Generator) -> SceneSpec:
    return SceneSpec(
        count=int(rng.integers(1, 4)),
        colour=str(rng.choice(list(COLOURS))),
        cls=str(rng.choice(CLASSES)),
        background=str(rng.choice(list(BACKGROUNDS))),
    )


def _polygon(cls: str, cx: float, cy: float, r: float, angle: float) -> list[tuple[float, float]]:
    def ring(n: int, radii: list[float], start: float) -> list[tuple[float, float]]:
        pts = []
        for i in range(n):
            a = start + angle + 2 * math.pi * i / n
            rad = radii[i % len(radii)]
            pts.append((cx + rad * math.cos(a), cy + rad * math.sin(a)))
        return pts

    if cls == "square":
        return ring(4, [r * math.sqrt(2) * 0.92], math.pi / 4)
    if cls == "triangle":
        return ring(3, [r * 1.1], -math.pi / 2)
    if cls == "star":
        return ring(10, [r * 1.1, r * 0.45], -math.pi / 2)
    if cls == "cross":
        w = r * 0.36
        local = [(-w, -r), (w, -r), (w, -w), (r, -w), (r, w), (w, w), (w, r), (-w, r), (-w, w), (-r, w), (-r, -w), (-w, -w)]
        c, s = math.cos(angle), math.sin(angle)
        return [(cx + x * c - y * s, cy + x * s + y * c) for x, y in local]
    raise ValueError(f"no polygon for class {cls!r}")


def _jitter(rgb: tuple[int, int, int], rng: np.random.Generator, amount: int) -> tuple[int, int, int]:
    d = rng.integers(-amount, amount + 1, size=3)
    return tuple(int(np.clip(c + x, 0, 255)) for c, x in zip(rgb, d))  # type: ignore[return-value]


def _place(rng: np.random.Generator, sizes: list[float]) -> list[tuple[float, float]] | None:
    centres: list[tuple[float, float]] = []
    for size in sizes:
        for _ in range(200):
            half = size / 2
            cx = float(rng.uniform(half + 1, IMAGE_SIZE - half - 1))
            cy = float(rng.uniform(half + 1, IMAGE_SIZE - half - 1))
            if all(max(abs(cx - x), abs(cy - y)) > (size + s) / 2 + 2 for (x, y), s in zip(centres, sizes)):
                centres.append((cx, cy))
                break
        else:
            return None
    return centres


def render(spec: SceneSpec, seed: int) -> Scene:
    """Draw one scene for `spec`; the same (spec, seed) always gives the same pixels."""
    rng = np.random.default_rng([seed, spec.count, CLASSES.index(spec.cls)])
    while True:
        sizes = sorted((float(rng.uniform(MIN_OBJECT, MAX_OBJECT)) for _ in range(spec.count)), reverse=True)
        if spec.count == 3:
            sizes = [min(s, MAX_OBJECT - 4) for s in sizes]
        centres = _place(rng, sizes)
        if centres is not None:
            break

    big = IMAGE_SIZE * SUPERSAMPLE
    image = Image.new("RGB", (big, big), _jitter(BACKGROUNDS[spec.background], rng, 8))
    draw = ImageDraw.Draw(image)
    fill = _jitter(COLOURS[spec.colour], rng, 18)
    objects = []
    for (cx, cy), size in zip(centres, sizes):
        r = size / 2
        angle = float(rng.uniform(-0.3, 0.3)) if spec.cls != "circle" else 0.0
        X, Y, R = cx * SUPERSAMPLE, cy * SUPERSAMPLE, r * SUPERSAMPLE
        if spec.cls == "circle":
            draw.ellipse((X - R, Y - R, X + R, Y + R), fill=fill)
            pts = [(cx - r, cy - r), (cx + r, cy + r)]
        else:
            poly = _polygon(spec.cls, X, Y, R, angle)
            draw.polygon(poly, fill=fill)
            pts = [(x / SUPERSAMPLE, y / SUPERSAMPLE) for x, y in poly]
        xs, ys = [p[0] for p in pts], [p[1] for p in pts]
        box = (max(0.0, min(xs)), max(0.0, min(ys)), min(float(IMAGE_SIZE), max(xs)), min(float(IMAGE_SIZE), max(ys)))
        objects.append(SceneObject(spec.cls, spec.colour, box))
    image = image.resize((IMAGE_SIZE, IMAGE_SIZE), Image.Resampling.LANCZOS)
    return Scene(spec, image, objects)


def random_scene(seed: int) -> Scene:
    """A scene with attributes drawn at random from the grammar."""
    return render(random_spec(np.random.default_rng([seed, 7919])), seed)


def scenes(n: int, seed: int) -> list[Scene]:
    """`n` random scenes; scene i depends only on (seed, i)."""
    return [random_scene(seed * 1_000_003 + i) for i in range(n)]

"""A captioned shapes domain: "a large red triangle at the top left on a dark blue background".

``render(caption, seed)`` draws the image a caption describes, with a small seeded jitter of position, size and
rotation, so that one caption has many true images: the reference distribution of a prompt set.
"""

from __future__ import annotations

import math
import random
import re

import numpy as np

COLOURS = {
    "red": (220, 40, 40),
    "green": (40, 180, 60),
    "blue": (50, 80, 220),
    "yellow": (235, 210, 40),
    "purple": (140, 60, 190),
    "orange": (245, 140, 30),
    "cyan": (40, 200, 210),
    "white": (245, 245, 245),
    "black": (15, 15, 15),
    "grey": (128, 128, 128),
    "dark blue": (20, 30, 90),
}
SHAPES = ("circle", "square", "triangle", "star")
SIZES = {"small": 0.18, "large": 0.34}
POSITIONS = {
    "top left": (0.27, 0.27),
    "top right": (0.73, 0.27),
    "bottom left": (0.27, 0.73),
    "bottom right": (0.73, 0.73),
    "center": (0.5, 0.5),
}
CAPTION = re.compile(
    r"^an? (?P<size>small|large) (?P<colour>[a-z ]+?) (?P<shape>circle|square|triangle|star) "
    r"(?:at the|in the) (?P<position>top left|top right|bottom left|bottom right|center) "
    r"on an? (?P<background>[a-z ]+?) background$"
)


def parse(caption: str) -> dict[str, str] | None:
    match = CAPTION.match(caption.strip().lower())
    if not match or match["colour"] not in COLOURS or match["background"] not in COLOURS:
        return None
    return match.groupdict()


def _polygon(shape: str, cx: float, cy: float, r: float, angle: float) -> list[tuple[float, float]]:
    if shape == "square":
        corners = [math.pi / 4 + k * math.pi / 2 for k in range(4)]
        return [(cx + r * math.cos(a + angle), cy + r * math.sin(a + angle)) for a in corners]
    if shape == "triangle":
        return [
            (cx + r * math.cos(a + angle), cy + r * math.sin(a + angle))
            for a in (-math.pi / 2, math.pi / 6, 5 * math.pi / 6)
        ]
    points = []
    for k in range(10):
        radius = r if k % 2 == 0 else r * 0.45
        a = -math.pi / 2 + k * math.pi / 5 + angle
        points.append((cx + radius * math.cos(a), cy + radius * math.sin(a)))
    return points


def render(caption: str, seed: int, size: int = 32) -> np.ndarray:
    """The uint8 HxWx3 image of ``caption``; raises ValueError for a caption outside the grammar."""
    from PIL import Image, ImageDraw

    attrs = parse(caption)
    if attrs is None:
        raise ValueError(f"not a shapes caption: {caption!r}")
    rng = random.Random(f"shapes/{seed}/{caption}")
    scale = 4
    canvas = size * scale
    image = Image.new("RGB", (canvas, canvas), COLOURS[attrs["background"]])
    draw = ImageDraw.Draw(image)
    fx, fy = POSITIONS[attrs["position"]]
    cx = (fx + rng.uniform(-0.05, 0.05)) * canvas
    cy = (fy + rng.uniform(-0.05, 0.05)) * canvas
    r = SIZES[attrs["size"]] * canvas / 2 * rng.uniform(0.9, 1.1) * 1.4
    colour = COLOURS[attrs["colour"]]
    if attrs["shape"] == "circle":
        draw.ellipse([cx - r * 0.8, cy - r * 0.8, cx + r * 0.8, cy + r * 0.8], fill=colour)
    else:
        draw.polygon(_polygon(attrs["shape"], cx, cy, r, rng.uniform(-0.2, 0.2)), fill=colour)
    return np.asarray(image.resize((size, size), Image.Resampling.LANCZOS))

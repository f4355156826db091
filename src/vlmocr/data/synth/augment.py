"""Photo-like augmentation of a rendered page, cheap enough to feed a trainer on one core.

Pages are rendered in grayscale ("L"); this module places the page in the frame
(rotation, scale, perspective), applies uneven light and shadow, blur, noise and JPEG
loss, and only then tints it into colour with a lookup table (ink and paper colours),
pasting a desk colour around the paper. Working in "L" halves the cost of the warp, the
dominant step. Levels:

- "none":  the page as rendered, tinted.
- "light": a scan-like copy with a faint uneven paper tone; half are straight full-frame
  scans, half rotated within ±0.8° and scaled 95–100 %. Mild on purpose: text stays crisp
  for a model learning to read (and straight copies skip the warp, the costliest step).
- "photo": a phone photo: rotation within ±4°, perspective, scale 74–92 %, uneven light, a
  soft shadow, blur (downsampled warp), sensor noise and JPEG quality 45–85.

Every parameter comes from the `random.Random` passed in, and the noise from a fixed bank,
so a seed gives the same pixels. `Photo.quad` says where the paper's corners landed:
always inside the frame.
"""

from __future__ import annotations

import io
import math
import random
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING

from vlmocr.errors import ConfigError

if TYPE_CHECKING:
    from PIL.Image import Image

LEVELS: tuple[str, ...] = ("none", "light", "photo")
#: Share of "light" copies that are straight, full-frame scans (no resampling at all).
LIGHT_STRAIGHT = 0.5
RGB = tuple[int, int, int]
Point = tuple[float, float]


@dataclass(frozen=True)
class Tint:
    """Colours the grayscale page is mapped to: level 0 → ink, 255 → paper; desk outside."""

    ink: RGB
    paper: RGB
    desk: RGB


@dataclass(frozen=True)
class Photo:
    """An augmented image, the page→image homography and where the paper's corners landed."""

    image: Image
    matrix: tuple[float, ...]  # 3x3 row-major, page pixel → image pixel
    quad: tuple[Point, Point, Point, Point]  # paper corners: top-left, top-right, bottom-right, bottom-left

    def map_point(self, x: float, y: float) -> Point:
        return apply_matrix(self.matrix, x, y)


def apply_matrix(m: tuple[float, ...], x: float, y: float) -> Point:
    w = m[6] * x + m[7] * y + m[8]
    return ((m[0] * x + m[1] * y + m[2]) / w, (m[3] * x + m[4] * y + m[5]) / w)


def _solve_homography(src: list[Point], dst: list[Point]) -> tuple[float, ...]:
    """The 3x3 matrix (h33 = 1) mapping the four `src` points onto `dst`."""
    import numpy as np

    a = np.zeros((8, 8))
    b = np.zeros(8)
    for i, ((x, y), (u, v)) in enumerate(zip(src, dst)):
        a[2 * i] = (x, y, 1, 0, 0, 0, -u * x, -u * y)
        a[2 * i + 1] = (0, 0, 0, x, y, 1, -v * x, -v * y)
        b[2 * i], b[2 * i + 1] = u, v
    h = np.linalg.solve(a, b)
    return (*(float(v) for v in h), 1.0)


def _placement(rng: random.Random, width: int, height: int, level: str) -> list[Point]:
    """Where the page's corners go in the frame: rotated, scaled, jittered, kept inside."""
    if level == "light":
        scale, angle, jitter, margin = rng.uniform(0.95, 1.0), rng.uniform(-0.8, 0.8), 0.0, 1.0
    else:
        scale, angle = rng.uniform(0.74, 0.92), rng.uniform(-4.0, 4.0)
        jitter, margin = 0.035 * min(width, height), 0.01 * min(width, height)
    cos, sin = math.cos(math.radians(angle)), math.sin(math.radians(angle))
    points = []
    for x, y in ((0, 0), (width, 0), (width, height), (0, height)):
        dx, dy = (x - width / 2) * scale, (y - height / 2) * scale
        dx, dy = dx + rng.uniform(-jitter, jitter), dy + rng.uniform(-jitter, jitter)
        points.append((dx * cos - dy * sin, dx * sin + dy * cos))
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    fit = min(1.0, (width - 2 * margin) / (max(xs) - min(xs)), (height - 2 * margin) / (max(ys) - min(ys)))
    points = [(x * fit, y * fit) for x, y in points]
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    tx = rng.uniform(margin - min(xs), width - margin - max(xs))
    ty = rng.uniform(margin - min(ys), height - margin - max(ys))
    return [(x + tx, y + ty) for x, y in points]


@lru_cache(maxsize=8)
def _tint_lut(tint: Tint) -> tuple[list[int], list[int], list[int]]:
    return tuple(  # type: ignore[return-value]
        [round(i + (p - i) * g / 255) for g in range(256)] for i, p in zip(tint.ink, tint.paper)
    )


def _colorize(gray: Image, tint: Tint) -> Image:
    from PIL import Image as PILImage

    return PILImage.merge("RGB", [gray.point(lut) for lut in _tint_lut(tint)])


@lru_cache(maxsize=8)
def _noise_bank(sigma: int, side: int) -> Image:
    """A fixed square of Gaussian noise around 128 (same on every run; cropped at random)."""
    import numpy as np
    from PIL import Image as PILImage

    field = np.random.default_rng(20240611 + sigma).normal(128.0, sigma, (side, side))
    return PILImage.fromarray(np.clip(field, 0, 255).astype(np.uint8), "L")


def _light_mask(rng: random.Random, size: tuple[int, int], low: int, shadow: bool) -> Image:
    """A smooth multiplicative light field (255 = unchanged), optionally with a soft shadow."""
    from PIL import Image as PILImage
    from PIL import ImageChops, ImageDraw, ImageFilter

    grid = 40
    corners = PILImage.new("L", (2, 2))
    corners.putdata([rng.randint(low, 255) for _ in range(4)])
    mask = corners.resize((grid, grid), PILImage.Resampling.BILINEAR)
    if shadow:
        level = rng.randint(140, 200)
        edge = rng.choice(("left", "top", "right", "bottom"))
        depth = rng.uniform(0.15, 0.45) * grid
        a, b = sorted((rng.uniform(0, grid), rng.uniform(0, grid)))
        poly = {
            "left": [(0, 0), (depth, a), (depth * 0.6, b), (0, grid)],
            "top": [(0, 0), (a, depth), (b, depth * 0.6), (grid, 0)],
            "right": [(grid, 0), (grid - depth, a), (grid - depth * 0.6, b), (grid, grid)],
            "bottom": [(0, grid), (a, grid - depth), (b, grid - depth * 0.6), (grid, grid)],
        }[edge]
        shade = PILImage.new("L", (grid, grid), 255)
        ImageDraw.Draw(shade).polygon(poly, fill=level)
        mask = ImageChops.multiply(mask, shade.filter(ImageFilter.BoxBlur(rng.uniform(0.6, 1.6))))
    return mask.resize(size, PILImage.Resampling.BILINEAR)


def _paste_desk(image: Image, quad: tuple[Point, ...], desk: RGB) -> None:
    """Fill everything outside the paper `quad` with the desk colour, in place.

    Only the strips between the frame and the quad's inner rectangle can hold desk, so the
    masked paste runs on those strips instead of the whole image.
    """
    from PIL import Image as PILImage
    from PIL import ImageDraw

    width, height = image.size
    (x0, y0), (x1, y1), (x2, y2), (x3, y3) = quad
    left = max(0, min(width, math.floor(max(x0, x3))))
    right = max(left, min(width, math.ceil(min(x1, x2))))
    top = max(0, min(height, math.floor(max(y0, y1))))
    bottom = max(top, min(height, math.ceil(min(y2, y3))))
    outside = PILImage.new("L", image.size, 255)
    ImageDraw.Draw(outside).polygon(quad, fill=0)
    for box in ((0, 0, width, top), (0, bottom, width, height), (0, top, left, bottom),
                (right, top, width, bottom)):
        if box[2] > box[0] and box[3] > box[1]:
            image.paste(desk, box, outside.crop(box))


def photograph(page: Image, paper: tuple[int, int, int, int], tint: Tint, level: str,
               rng: random.Random) -> Photo:
    """Augment a grayscale page at `level`; deterministic in `rng`'s state."""
    from PIL import Image as PILImage
    from PIL import ImageChops

    if level not in LEVELS:
        raise ConfigError(f"augment must be one of {', '.join(LEVELS)}, got {level!r}")
    if page.mode != "L":
        raise ConfigError(f"photograph() expects a grayscale ('L') page, got mode {page.mode}")
    width, height = page.size
    corners = [(0.0, 0.0), (float(width), 0.0), (float(width), float(height)), (0.0, float(height))]
    identity: tuple[float, ...] = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0)
    if level == "none":
        matrix, gray = identity, page
    elif level == "light" and rng.random() < LIGHT_STRAIGHT:
        matrix = identity
        gray = ImageChops.multiply(page, _light_mask(rng, page.size, 236, shadow=False))
    else:
        dst = _placement(rng, width, height, level)
        matrix = _solve_homography(corners, dst)
        shrink = 1.0 if level == "light" else rng.uniform(0.62, 0.95)
        small = (max(1, round(width * shrink)), max(1, round(height * shrink)))
        inverse = _solve_homography([(x * shrink, y * shrink) for x, y in dst], corners)
        if level == "light":
            gray = page.transform(small, PILImage.Transform.AFFINE, inverse[:6],
                                  PILImage.Resampling.BILINEAR, fillcolor=255)
            tone = _light_mask(rng, page.size, 236, shadow=False)
            gray = ImageChops.multiply(gray, tone)
        else:
            gray = page.transform(small, PILImage.Transform.PERSPECTIVE, inverse[:8],
                                  PILImage.Resampling.BILINEAR, fillcolor=255)
            if small != page.size:
                gray = gray.resize(page.size, PILImage.Resampling.BILINEAR)
    image = _colorize(gray, tint)
    px0, py0, px1, py1 = paper
    quad = tuple(apply_matrix(matrix, x, y) for x, y in ((px0, py0), (px1, py0), (px1, py1), (px0, py1)))
    if level != "none" or paper != (0, 0, width, height):
        _paste_desk(image, quad, tint.desk)
    if level == "photo":
        light = _light_mask(rng, page.size, 150, shadow=rng.random() < 0.6)
        image = ImageChops.multiply(image, PILImage.merge("RGB", (light, light, light)))
        sigma = rng.choice((3, 5, 8))
        side = 256 * math.ceil((max(width, height) + 256) / 256)
        ox, oy = rng.randrange(side - width), rng.randrange(side - height)
        noise = _noise_bank(sigma, side).crop((ox, oy, ox + width, oy + height))
        image = ImageChops.add(image, PILImage.merge("RGB", (noise, noise, noise)), 1.0, -128)
        buf = io.BytesIO()
        image.save(buf, format="JPEG", quality=rng.randint(45, 85))
        buf.seek(0)
        with PILImage.open(buf) as decoded:
            image = decoded.convert("RGB")
    return Photo(image=image, matrix=matrix, quad=quad)  # type: ignore[arg-type]


"""Frame markers: a frame counter drawn into a picture as a row of black/white blocks, so the
same frame can be recognised after a trip through a camera, two video codecs and the model.

Geometry (the page's ``readMarker`` in ``streamer/web/studio.js`` reads the same): block side
``b = max(8, width // 20)``; block ``i`` (0..11) covers rows ``[0, b)`` and columns
``[b (i + 1), b (i + 2))``; bits 0..10 are the counter (mod 2048), bit 11 their parity. A block
is white (235) for 1, black (16) for 0; a reader averages the inner half of each block, so
codec blur at the edges does not matter. The parity bit turns most misreads into "no marker".
"""

from __future__ import annotations

import numpy as np

BITS = 11
MODULO = 1 << BITS
BLOCKS = BITS + 1


def block_side(width: int) -> int:
    return max(8, width // 20)


def fits(width: int, height: int) -> bool:
    """Whether a picture of this size has room for the marker row."""
    b = block_side(width)
    return b * (BLOCKS + 1) <= width and b <= height


def _bits(value: int) -> list[int]:
    value %= MODULO
    bits = [(value >> i) & 1 for i in range(BITS)]
    return [*bits, sum(bits) & 1]


def draw_marker(image: np.ndarray, value: int) -> np.ndarray:
    """Draw ``value`` (mod 2048) into the top-left of an (H, W, 3) uint8 image, in place."""
    height, width = image.shape[:2]
    if not fits(width, height):
        raise ValueError(f"a {width}x{height} picture is too small for a frame marker")
    b = block_side(width)
    for i, bit in enumerate(_bits(value)):
        image[0:b, b * (i + 1) : b * (i + 2)] = 235 if bit else 16
    return image


def read_marker(image: np.ndarray) -> int | None:
    """The counter drawn by :func:`draw_marker`, or None when absent or misread (parity)."""
    height, width = image.shape[:2]
    if not fits(width, height):
        return None
    b = block_side(width)
    q = b // 4
    bits = []
    for i in range(BLOCKS):
        x0 = b * (i + 1)
        patch = image[q : b - q, x0 + q : x0 + b - q]
        bits.append(1 if float(patch.mean()) >= 128.0 else 0)
    if (sum(bits[:BITS]) & 1) != bits[BITS]:
        return None
    return sum(bit << i for i, bit in enumerate(bits[:BITS]))

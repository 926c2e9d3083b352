"""How much of an image's finest detail reducing it would lose: the mark of an enlarged copy.

An enlarged copy has more pixels than its original and nothing in them that the original
lacks: reduced back to the original's size it loses almost nothing, where an original reduced
by the same factor loses its own finest detail. So, at each reduction in `SCALES`, the share of
the gradient energy above the reduced image's Nyquist frequency is measured — on the image at
its native resolution, since a JPEG decoded at a fraction of its size has already lost that
band — and the keeper compares two members at their size ratio (`search.keeper`).

The share is the median over the busier half of up to 8 x 8 blocks of 32 x 32 pixels spread
over the central 70 % of the image (in both directions), each block's spectrum windowed and
weighted by frequency squared (a gradient's energy). A median over the middle is what keeps a
caption, a date stamp or a logo — sharp text pasted on an enlarged copy — from looking like
the original's detail. 0.6 ms per image.

The same share is kept for each side alone (`Enlargement.across`, `Enlargement.down`): the
energy of the gradient along it above what reducing that side alone keeps. A stretched copy is
an enlargement along one side only: reduced back along it, it loses almost nothing, while the
other side keeps its detail and so its whole-picture losses look like an original's.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
from numpy.typing import NDArray

__all__ = ["SCALES", "STORED_BYTES", "Enlargement", "enlargement"]

# (a 32-pixel block resolves frequencies in steps of 1/32: below 1/6 the reductions merge)
SCALES = (0.8, 2 / 3, 0.5, 0.4, 1 / 3, 0.25, 0.2, 1 / 6, 0.125)
STORED_BYTES = 4 * (1 + 3 * len(SCALES))  # `Enlargement.to_bytes`: the scale, then the losses whole and of each side
_BLOCK = 32
_GRID = 8
_CENTRAL = 0.7

_FY, _FX = np.meshgrid(np.fft.fftfreq(_BLOCK), np.fft.rfftfreq(_BLOCK), indexing="ij")
# the real FFT holds the columns strictly between 0 and Nyquist once for two
_DOUBLED = np.where((_FX > 0) & (_FX < 0.5), 2.0, 1.0)
_WEIGHT = (_FX ** 2 + _FY ** 2) * _DOUBLED
# reducing to scale s keeps, in each direction, the frequencies below s times Nyquist (1/2)
_ABOVE = np.stack([np.maximum(np.abs(_FX), np.abs(_FY)) > s / 2 for s in SCALES]).astype(np.float64)
# one side at a time: the gradient along it (its frequency squared), above what reducing that side keeps;
# each block's power summed over the other frequency first (1-D), then over the bands each scale drops
_ACROSS_F, _DOWN_F = np.fft.rfftfreq(_BLOCK), np.fft.fftfreq(_BLOCK)
_SIDES = tuple((f ** 2, np.stack([np.abs(f) > s / 2 for s in SCALES], axis=1).astype(np.float64))
               for f in (_ACROSS_F, _DOWN_F))
_WINDOW = np.outer(np.hanning(_BLOCK), np.hanning(_BLOCK))
_LOG_SCALES = np.log(np.array((1.0, *SCALES))[::-1])  # ascending, for np.interp
# A block is flat when its weighted energy is under _FLAT times that of 8-bit rounding noise
# (white, variance 1/12): there what reducing loses is the noise, which an enlarged copy saved
# again has as much of as any original (a smooth sky enlarged 3 times "lost" 0.7 at 1/3).
_FLAT = 20 * (1 / 12) * float((_WINDOW ** 2).sum()) * float(_WEIGHT.sum())


@dataclass(frozen=True)
class Enlargement:
    """`losses[i]`: the share of fine detail that reducing the image to `SCALES[i]` of its
    size would lose, measured on the image at `scale` of its native size (1: native; a JPEG
    decoded at a fraction of its size has smaller `scale`, and nothing is known of reductions
    finer than it). `across` and `down`: the same for reducing only its width or only its
    height (empty in records stored before they were measured)."""

    scale: float
    losses: tuple[float, ...]
    across: tuple[float, ...] = ()
    down: tuple[float, ...] = ()

    def loss(self, reduction: float, side: str | None = None) -> float | None:
        """The share lost by reducing the native image to `reduction` of its size (`side`:
        "across" its width or "down" its height only), or None where it was not measured
        (finer than `scale` allows, coarser than the last scale, a side of an older record)."""
        losses = self.losses if side is None else getattr(self, side)
        relative = reduction / self.scale
        if not losses or not SCALES[-1] <= relative <= 0.9:
            return None
        # log-linear between measured scales; at scale 1 nothing is lost
        return float(np.interp(np.log(relative), _LOG_SCALES, np.array((0.0, *losses))[::-1]))

    def transposed(self) -> Enlargement:
        """The record of the image turned a quarter (its width is the other's height)."""
        return Enlargement(self.scale, self.losses, self.down, self.across)

    def to_bytes(self) -> bytes:
        return np.array((self.scale, *self.losses, *self.across, *self.down), "<f4").tobytes()

    @classmethod
    def from_bytes(cls, data: bytes) -> Enlargement:
        values = np.frombuffer(data, "<f4").tolist()
        n = len(SCALES)
        sides = (tuple(values[1 + n:1 + 2 * n]), tuple(values[1 + 2 * n:])) if len(values) == 1 + 3 * n else ((), ())
        return cls(values[0], tuple(values[1:1 + n]), *sides)


def enlargement(image: NDArray[np.uint8], scale: float = 1.0) -> Enlargement | None:
    """The losses of an image, grey (H, W) or RGB (H, W, 3), that is `scale` of its native
    size; None for an image smaller than one block or without detail in its middle (flat)."""
    blocks = _central_blocks(image)
    if blocks is None:
        return None
    blocks = (blocks - blocks.mean(axis=(1, 2), keepdims=True)) * _WINDOW
    power = np.abs(np.fft.rfft2(blocks)) ** 2
    energy = power * _WEIGHT
    total = energy.sum(axis=(1, 2))
    busy = (total >= np.median(total)) & (total > _FLAT)
    if not busy.any():
        return None
    lost = np.einsum("bij,sij->bs", energy[busy], _ABOVE) / total[busy, None]
    doubled = power[busy] * _DOUBLED
    sides = []
    for (weight, above), profile in zip(_SIDES, (doubled.sum(axis=1), doubled.sum(axis=2))):
        along = profile * weight
        total_along = along.sum(axis=1)[:, None]
        # a block with no gradient along this side (level stripes) has nothing there to lose
        sides.append(np.divide(along @ above, total_along,
                               out=np.zeros((len(along), len(SCALES))), where=total_along > 0))
    return Enlargement(float(scale), *(tuple(round(float(v), 4) for v in np.median(m, axis=0)) for m in (lost, *sides)))


def _central_blocks(image: NDArray[np.uint8]) -> NDArray[np.float64] | None:
    """The blocks as grey levels (only they are converted: the image may be large)."""
    h, w = image.shape[:2]
    if min(h, w) < _BLOCK:
        return None
    starts = []
    for side in (h, w):
        span = max(_BLOCK, round(side * _CENTRAL))
        first = (side - span) // 2
        starts.append(np.unique(np.linspace(first, first + span - _BLOCK, min(_GRID, span // _BLOCK)).astype(int)))
    blocks = np.stack([image[y:y + _BLOCK, x:x + _BLOCK] for y in starts[0] for x in starts[1]])
    if blocks.ndim == 4:  # as one tall image: OpenCV's RGB to grey is the BT.601 luma of JPEG's Y
        blocks = cv2.cvtColor(blocks.reshape(-1, _BLOCK, 3), cv2.COLOR_RGB2GRAY).reshape(-1, _BLOCK, _BLOCK)
    return blocks.astype(np.float64)

"""ICC profiles written for the tests: an RGB display profile (matrix and tone curves, ICC
version 2) from its primaries, as cameras and editors embed them. Pillow can make an sRGB
profile but no other RGB one, and no profile file ships with the tests."""

from __future__ import annotations

import struct

import numpy as np

D50 = (0.9642, 1.0, 0.8249)
# colorants adapted to D50, as the ICC stores them (each profile's columns sum to D50)
ADOBE_RGB = ((0.6097, 0.3111, 0.0195), (0.2053, 0.6257, 0.0609), (0.1492, 0.0632, 0.7446))
DISPLAY_P3 = ((0.5151, 0.2412, -0.0011), (0.2920, 0.6922, 0.0419), (0.1571, 0.0666, 0.7841))


def _s15(v: float) -> bytes:
    return struct.pack(">i", round(v * 65536))


def _xyz(x: float, y: float, z: float) -> bytes:
    return b"XYZ " + bytes(4) + _s15(x) + _s15(y) + _s15(z)


def _curve(gamma: float | None) -> bytes:
    """A tone curve: a plain gamma, or (None) the sRGB curve as a table."""
    if gamma is not None:
        return b"curv" + bytes(4) + struct.pack(">IH", 1, round(gamma * 256))
    c = np.linspace(0, 1, 1024)
    table = np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)
    return b"curv" + bytes(4) + struct.pack(">I", 1024) + np.round(table * 65535).astype(">u2").tobytes()


def _description(text: str) -> bytes:
    ascii_ = text.encode("ascii") + b"\0"
    return b"desc" + bytes(4) + struct.pack(">I", len(ascii_)) + ascii_ + bytes(8) + bytes(3) + bytes(67)


def rgb_profile(colorants=ADOBE_RGB, gamma: float | None = 563 / 256, name: str = "test RGB") -> bytes:
    """An ICC v2 display profile: `colorants` (red, green, blue XYZ at D50) and one tone curve
    for the three channels (`gamma`, or None for sRGB's)."""
    (r, g, b), trc = colorants, _curve(gamma)
    tags = [(b"desc", _description(name)), (b"wtpt", _xyz(*D50)), (b"rXYZ", _xyz(*r)), (b"gXYZ", _xyz(*g)),
            (b"bXYZ", _xyz(*b)), (b"rTRC", trc), (b"gTRC", trc), (b"bTRC", trc),
            (b"cprt", b"text" + bytes(4) + b"no copyright, use freely\0")]
    offset = 128 + 4 + 12 * len(tags)
    table, data = b"", b""
    for signature, body in tags:
        table += signature + struct.pack(">II", offset + len(data), len(body))
        data += body + bytes(-len(body) % 4)
    size = offset + len(data)
    header = (struct.pack(">I", size) + bytes(4) + struct.pack(">I", 0x02100000) + b"mntrRGB XYZ "
              + struct.pack(">6H", 2026, 1, 1, 0, 0, 0) + b"acsp" + bytes(24) + struct.pack(">I", 0)
              + _s15(D50[0]) + _s15(D50[1]) + _s15(D50[2]) + bytes(4) + bytes(16) + bytes(28))
    assert len(header) == 128
    return header + struct.pack(">I", len(tags)) + table + data

"""The auto score's calibration: anchors, inverse, and the max of the two kinds of evidence."""

from __future__ import annotations

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from neardup.search.fusion import auto_confidence, confidence, similarity_at


def test_confidence_maps_background_threshold_and_identity_to_0_half_and_1() -> None:
    x = np.array([0.2, 0.56, 0.95, 1.0])
    np.testing.assert_allclose(confidence(x, 0.56, 0.95), [0.0, 0.0, 0.5, 1.0])


@given(st.floats(0.0, 1.0))
def test_similarity_at_inverts_confidence(score: float) -> None:
    x = similarity_at(score, 0.5, 0.8)
    assert abs(float(confidence(np.array([x]), 0.5, 0.8)[0]) - score) < 1e-9


def test_auto_takes_the_stronger_evidence() -> None:
    hashes = np.array([1.0, 0.5, 0.5])
    cosine = np.array([0.3, 0.95, 0.5])
    got = auto_confidence(hashes, cosine, hash_anchor=0.8)
    np.testing.assert_allclose(got, [1.0, 0.5, 0.0])
    np.testing.assert_allclose(auto_confidence(hashes, None, hash_anchor=0.8), [1.0, 0.0, 0.0])

"""The auto score's calibration: anchors, inverse, and the strongest of the kinds of evidence."""

from __future__ import annotations

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from neardup.search.auto import Evidence, search_scores
from neardup.search.fusion import confidence, hash_anchor, similarity_at
from neardup.indexer.hashes import HASHES


def test_confidence_maps_background_threshold_and_identity_to_0_half_and_1() -> None:
    x = np.array([0.2, 0.56, 0.95, 1.0])
    np.testing.assert_allclose(confidence(x, 0.56, 0.95), [0.0, 0.0, 0.5, 1.0])


@given(st.floats(0.0, 1.0))
def test_similarity_at_inverts_confidence(score: float) -> None:
    x = similarity_at(score, 0.5, 0.8)
    assert abs(float(confidence(np.array([x]), 0.5, 0.8)[0]) - score) < 1e-9


def test_a_search_score_is_the_strongest_evidence_and_votes_count_kinds_at_the_threshold() -> None:
    evidence = Evidence({"hashes": np.array([1.0, 0.5, 0.0]), "cnn": np.array([0.0, 0.5, 0.4])})
    np.testing.assert_allclose(search_scores(evidence), [1.0, 0.5, 0.4])
    assert evidence.votes(0.5).tolist() == [1, 2, 0]


def test_the_hash_anchor_is_the_fused_similarity_of_a_pair_at_every_hash_threshold() -> None:
    weights = {"pdq": 0.5, "ahash": 0.5}
    expected = 0.5 * (1 - HASHES["pdq"].threshold / 256) + 0.5 * (1 - HASHES["ahash"].threshold / 64)
    assert hash_anchor(weights) == expected

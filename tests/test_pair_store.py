"""The stored pair evidence (`storage.pairs`): columns given back exactly as they were given."""

from __future__ import annotations

import sqlite3

import numpy as np

import neardup
from neardup.storage.pairs import FIRST, IMAGE_ID, SECOND, PairStore


def test_columns_come_back_as_given_and_are_stored_compactly(tmp_path) -> None:
    """Ids and the -1 of no entry are stored in 32 bits and a mostly-0 column by its other
    entries, yet every column reads back with its own dtype and values; columns that do not
    fit (ids past 32 bits, a 64-bit key in every row) come back as they are too."""
    rng = np.random.default_rng(5)
    m = 20_000
    a = np.sort(rng.integers(1, 2**31 - 1, m)).astype(np.int64)
    strip = np.where(rng.random(m) < 0.05, rng.integers(1, 2**63, m, dtype=np.uint64), 0).astype(np.uint64)
    candidates = {FIRST: a, SECOND: a + 1, "strip": strip, "verify": rng.random(m) < 0.5}
    pairs = {FIRST: np.array([1, 2**40], np.int64), SECOND: np.array([2**40 + 1, 2**41], np.int64),
             "kinds": rng.random((2, 3)), "cells": np.array([0, 2**64 - 1], np.uint64)}
    images = {IMAGE_ID: np.arange(1, 101, dtype=np.int64), "content": rng.integers(0, 2**64, 100, dtype=np.uint64)}
    lists = {"pdq:image|ids": np.where(rng.random((100, 17)) < 0.1, -1, rng.integers(1, 101, (100, 17))),
             "pdq:image|values": rng.integers(0, 256, (100, 17)).astype(np.int16),
             "pasted|holder": np.zeros(0, np.int64), "sparse_ids": np.where(np.arange(64) == 9, -(2**40), 0)}
    path = tmp_path / "c.db"
    collection = neardup.open(path, create=True, embedder="none")
    store = PairStore(collection.catalog, {"key": 1})
    store.replace(images=images, candidates=candidates, pairs=pairs, generation="g", lists=lists)
    back = store.read()
    collection.close()
    for given, read in ((images, back.images), (candidates, back.candidates), (pairs, back.pairs), (lists, back.lists)):
        assert read.keys() == given.keys()
        for name, column in given.items():
            assert read[name].dtype == column.dtype and read[name].shape == column.shape, name
            assert np.array_equal(read[name], column), name
    db = sqlite3.connect(path)
    stored = db.execute("SELECT length(data) FROM evidence_segments").fetchone()[0]
    db.close()
    plain = sum(c.nbytes for group in (images, candidates, pairs, lists) for c in group.values())
    # a and b in 32 bits and the strip's 5 % with their places take 0.36 of their plain bytes;
    # stored plainly, the set takes a little more than `plain` (the .npz's headers)
    assert stored < 0.5 * plain

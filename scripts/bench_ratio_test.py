#!/usr/bin/env python3
"""Lowe's ratio test of verification: OpenCV's BFMatcher.knnMatch against `verify.ratio_matches`
(FAISS's Hamming kernel), on random pairs of a real catalog's stored ORB descriptors (a third
of them mirrored); checks that both give the same matches and prints the time per pair.

    .venv/bin/python scripts/bench_ratio_test.py bench-out/devcat.db
"""

import sys
import time

import cv2
import numpy as np

import neardup
from neardup.search.verify import _RATIO, ratio_matches


def main() -> int:
    catalog = neardup.open(sys.argv[1], readonly=True).catalog
    ids = catalog.hashes("pdq")[0].tolist()
    plain, mirrored = catalog.keypoints_of(ids), catalog.keypoints_of(ids, mirrored=True)
    matcher = cv2.BFMatcher(cv2.NORM_HAMMING)
    n, opencv, faiss_kernel = 0, 0.0, 0.0
    for i, j in np.random.default_rng(1).integers(0, len(ids), (1500, 2)):
        query = (mirrored if n % 3 == 0 else plain)[ids[i]][1]
        candidate = plain[ids[j]][1]
        if len(candidate) < 2 or len(query) < 2:
            continue
        start = time.perf_counter()
        good = [m[0] for m in matcher.knnMatch(query, candidate, k=2)
                if len(m) == 2 and m[0].distance < _RATIO * m[1].distance]
        opencv += time.perf_counter() - start
        start = time.perf_counter()
        q, c = ratio_matches(query, candidate)
        faiss_kernel += time.perf_counter() - start
        if [g.queryIdx for g in good] != q.tolist() or [g.trainIdx for g in good] != c.tolist():
            raise SystemExit(f"matches differ for images {ids[i]} and {ids[j]}")
        n += 1
    print(f"{n} pairs, identical matches; OpenCV {1e3 * opencv / n:.2f} ms a pair, "
          f"FAISS kernel {1e3 * faiss_kernel / n:.2f} ms a pair")
    return 0


if __name__ == "__main__":
    sys.exit(main())

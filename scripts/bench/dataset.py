"""Build the benchmark's references, queries and ground truth from the shared corpus.

Layout of the work dir (all paths in ``truth.csv`` are relative to it)::

    refs/<corpus file name>.jpg     the reference collection (byte copies of corpus images)
    queries/q00000.jpg …            anonymous transformed copies (positives and negatives mixed)
    truth.csv                       query, family, strength, source, expected, origin
    dataset.json                    the parameters it was built from (a rebuild is skipped if equal)

A positive query is a transformed copy of a reference (``expected`` = that reference); a negative
query is a transformed copy of a held-out corpus image, never indexed (``expected`` empty).
"""

from __future__ import annotations

import csv
import hashlib
import json
import shutil
import subprocess
import sys
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from bench import transforms

GATHER_SCRIPT = Path(__file__).resolve().parents[3] / "shared" / "data" / "gather_corpus.sh"
TRUTH_FIELDS = ("query", "family", "strength", "source", "expected", "origin")
QUERY_JPEG_QUALITY = 90   # every query is stored as a JPEG, as a re-shared picture would be
DATASET_VERSION = 1       # bump when transforms or layout change, so cached data is rebuilt


@dataclass(frozen=True)
class Plan:
    """What to build: sizes and seed (saved as ``dataset.json``)."""

    seed: int
    refs: int          # images in the reference collection
    positives: int     # references that get transformed copies
    negatives: int     # held-out images that get transformed copies
    per_image: int     # transformed copies per positive reference / held-out image
    corpus_digest: str
    version: int = DATASET_VERSION


@dataclass(frozen=True)
class Query:
    """One row of ``truth.csv``; ``expected`` is ``refs/<name>`` or "" for a negative."""

    query: str
    family: str
    strength: str
    source: str
    expected: str
    origin: str


class CorpusError(RuntimeError):
    """The corpus is missing, could not be built, or is too small for the plan."""


def ensure_corpus(corpus: Path) -> Path:
    """Return ``corpus/manifest.csv``, running the shared gather_corpus.sh first if it is missing."""
    manifest = corpus / "manifest.csv"
    if manifest.is_file():
        return manifest
    if not GATHER_SCRIPT.is_file():
        raise CorpusError(f"no {manifest} and no corpus script at {GATHER_SCRIPT}")
    print(f"[bench] building the corpus in {corpus} with {GATHER_SCRIPT} …", file=sys.stderr)
    done = subprocess.run(["bash", str(GATHER_SCRIPT), str(corpus)], check=False)
    if done.returncode != 0 or not manifest.is_file():
        raise CorpusError(f"{GATHER_SCRIPT} {corpus} failed (exit {done.returncode})")
    return manifest


def read_manifest(manifest: Path) -> list[tuple[str, str]]:
    """(file name, source package) of every corpus image listed in ``manifest`` and present on disk."""
    with manifest.open(newline="") as fh:
        rows = [(r["file"], r["source"]) for r in csv.DictReader(fh)]
    return [(name, source) for name, source in rows if (manifest.parent / name).is_file()]


def digest(images: Sequence[tuple[str, str]]) -> str:
    """A short fingerprint of the corpus listing, to notice when the corpus changed."""
    return hashlib.sha256(repr(sorted(images)).encode()).hexdigest()[:16]


def assign_transforms(count: int, per_image: int, offset: int) -> list[list[tuple[str, str]]]:
    """(family, strength) lists for ``count`` images, ``per_image`` distinct families each.

    Families are dealt round-robin, so every family gets the same number of copies (±1) and each
    pass over the families alternates mild and hard; ``offset`` staggers positives vs negatives.
    """
    families = list(transforms.FAMILIES)
    n = len(families)
    if not 1 <= per_image <= n:
        raise ValueError(f"per_image must be in 1..{n}, got {per_image}")
    slots = [offset + i * per_image + j for i in range(count) for j in range(per_image)]
    flat = [(families[s % n], transforms.STRENGTHS[(s // n + s % n) % 2]) for s in slots]
    return [flat[i * per_image:(i + 1) * per_image] for i in range(count)]


def select(images: Sequence[tuple[str, str]], plan: Plan) -> tuple[list[int], list[int]]:
    """Seeded choice of reference indices and held-out (negative-source) indices into ``images``."""
    if plan.refs + plan.negatives > len(images) or plan.positives > plan.refs:
        raise CorpusError(f"plan needs {plan.refs} refs + {plan.negatives} held-out images "
                          f"(positives ≤ refs) but the corpus has {len(images)} images")
    order = np.random.default_rng([plan.seed, 0]).permutation(len(images)).tolist()
    return order[:plan.refs], order[plan.refs:plan.refs + plan.negatives]


def make_queries(images: Sequence[tuple[str, str]], refs: Sequence[int], held_out: Sequence[int],
                 plan: Plan) -> list[tuple[Query, int, int]]:
    """Every query to write, as (truth row, corpus index of its source image, rng stream id)."""
    pos = [(i, f"refs/{images[i][0]}") for i in refs[:plan.positives]]
    neg = [(i, "") for i in held_out]
    jobs: list[tuple[int, str, str, str]] = []
    for (idx, expected), edits in zip(pos, assign_transforms(len(pos), plan.per_image, 0), strict=True):
        jobs += [(idx, expected, fam, st) for fam, st in edits]
    for (idx, expected), edits in zip(neg, assign_transforms(len(neg), plan.per_image, 7), strict=True):
        jobs += [(idx, expected, fam, st) for fam, st in edits]
    names = np.random.default_rng([plan.seed, 1]).permutation(len(jobs))   # anonymous, mixed order
    out = []
    for stream, ((idx, expected, fam, st), num) in enumerate(zip(jobs, names, strict=True)):
        name, source = images[idx]
        row = Query(f"queries/q{num:05d}.jpg", fam, st, source, expected, name)
        out.append((row, idx, stream))
    return sorted(out, key=lambda t: t[0].query)


def _write_query(args: tuple[Path, Path, str, str, int, int]) -> None:
    """Worker: read ``src``, apply the transform with rng (seed, 2, stream), save JPEG to ``dst``."""
    src, dst, family, strength, seed, stream = args
    with Image.open(src) as img:
        out = transforms.apply(img, family, strength, np.random.default_rng([seed, 2, stream]))
    out.save(dst, "JPEG", quality=QUERY_JPEG_QUALITY)


def write_truth(path: Path, rows: Sequence[Query]) -> None:
    """Write ``rows`` as CSV with header ``TRUTH_FIELDS``."""
    with path.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=TRUTH_FIELDS)
        writer.writeheader()
        writer.writerows(asdict(r) for r in rows)


def read_truth(path: Path) -> list[Query]:
    """Rows of a ``truth.csv`` written by :func:`write_truth`."""
    with path.open(newline="") as fh:
        return [Query(**row) for row in csv.DictReader(fh)]


def build(corpus: Path, work: Path, plan: Plan, *, workers: int = 2) -> list[Query]:
    """Write refs/, queries/, truth.csv and dataset.json into ``work``; reuse them if the plan is equal."""
    stamp, truth = work / "dataset.json", work / "truth.csv"
    if stamp.is_file() and truth.is_file() and json.loads(stamp.read_text()) == asdict(plan):
        print(f"[bench] reusing the data set in {work}", file=sys.stderr)
        return read_truth(truth)
    images = read_manifest(corpus / "manifest.csv")
    refs, held_out = select(images, plan)
    queries = make_queries(images, refs, held_out, plan)
    for sub in ("refs", "queries"):
        shutil.rmtree(work / sub, ignore_errors=True)
        (work / sub).mkdir(parents=True)
    stamp.unlink(missing_ok=True)
    for i in refs:
        shutil.copyfile(corpus / images[i][0], work / "refs" / images[i][0])
    jobs = [(corpus / images[idx][0], work / row.query, row.family, row.strength, plan.seed, stream)
            for row, idx, stream in queries]
    print(f"[bench] writing {len(refs)} references and {len(jobs)} queries to {work} …", file=sys.stderr)
    with ProcessPoolExecutor(max_workers=workers) as pool:
        list(pool.map(_write_query, jobs, chunksize=16))
    rows = [row for row, _, _ in queries]
    write_truth(truth, rows)
    stamp.write_text(json.dumps(asdict(plan), indent=2) + "\n")
    return rows

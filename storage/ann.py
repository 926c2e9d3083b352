"""Which FAISS index a feature gets, and how an approximate one is trained, tuned and kept.

Below `IndexPolicy.exact_below` entries an index is exact (a flat scan, as neardup always
had): a query costs milliseconds up to about 100,000 entries, and every answer is right.
Above, a scan of every entry costs too much time (a 256-bit hash), memory (a 1,280-d float
vector: 5 GB at a million) or both, so the index is approximate (`describe`):

- hashes: an inverted file of binary codes (`IndexBinaryIVF`): entries are filed under the
  nearest of `nlist` centroids, and a query scans the `nprobe` lists nearest to it;
- vectors: an inverted file whose entries are stored as 8-bit scalars (IVF + SQ8: 1 byte a
  dimension, 1.3 GB at a million 1,280-d vectors) while that fits `memory_budget`, else as
  product-quantized codes of as many bytes as fit (IVF + PQ). HNSW is not used: FAISS's HNSW
  can neither remove an entry nor answer a range search, both of which duplicates needs.

An approximate index is trained on a sample of the catalog's own rows, and its `nprobe` is
raised (doubling from 1) until its recall@k against exact search, measured on `sample` of
the catalog's own rows that it was not trained on (each one's k nearest *other* rows),
reaches `target_recall`. Float
candidates are re-ranked by their exact cosine (`FeatureIndex`), and the recall is measured
after that, as a search sees it. The index is then updated in place as images come and go,
and trained again only when the data drifted from what it was trained on (`drifted`). When
only every list reaches the target (hashes whose ten nearest are mostly unrelated images, far
apart whatever centroid they are filed under), the index is flat after all, if that fits the
budget, and stays flat until the catalog outgrows that size `growth` times.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace

import faiss
import numpy as np
from numpy.typing import NDArray

from .errors import NeardupError

GIB = 2**30
EXACT = "flat"
MIN_TRAIN = 39  # training rows per inverted list below which FAISS's k-means warns
RESIDUAL_ROWS = 16_384  # training rows (about) an index's baseline residual is measured on (`train`)
_PQ_BYTES = (640, 320, 256, 160, 128, 80, 64, 40, 32, 20, 16, 8)  # sub-quantizers that divide 1280; 8 bits each


class IndexPolicyError(NeardupError, ValueError):
    """An index policy that cannot be followed (a budget too small for any index, say)."""


@dataclass(frozen=True)
class IndexPolicy:
    """How a catalog's indexes are chosen; stored in the catalog, so that every process
    builds the same ones (`Catalog.index_policy`)."""

    exact_below: int = 100_000  # entries below which an index is exact
    memory_budget: int = 2 * GIB  # bytes one approximate index may take in memory
    target_recall: float = 0.99  # recall@k an approximate index is tuned to
    k: int = 10
    sample: int = 500  # catalog rows the recall is measured on
    train_per_list: int = 64  # training rows per inverted list (FAISS warns below 39)
    drift: float = 0.25  # mean distance to the nearest centroid may grow this much before retraining
    growth: float = 4.0  # entries may grow this many times over the training size before retraining

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str | None) -> IndexPolicy:
        if not text:
            return cls()
        known = {k: v for k, v in json.loads(text).items() if k in cls.__dataclass_fields__}
        return cls(**known)

    def with_options(self, *, exact_below: int | None = None, memory_budget: int | None = None) -> IndexPolicy:
        """This policy with the given fields changed, checked."""
        changed = replace(self, **{k: v for k, v in (("exact_below", exact_below), ("memory_budget", memory_budget))
                                   if v is not None})
        if changed.exact_below < 0 or changed.memory_budget < 16 * 2**20:
            raise IndexPolicyError(f"an index policy needs exact_below >= 0 and a memory budget of at least 16 MiB, "
                                   f"got {changed.exact_below} and {changed.memory_budget} bytes")
        return changed


@dataclass(frozen=True)
class Tuning:
    """What a built index is and how it searches: its FAISS description, `nprobe` (0 for an
    exact index), the recall@k measured at build time (1.0 for exact), the rows it was trained
    on and their mean distance to their nearest centroid (`residual`)."""

    description: str = EXACT
    nprobe: int = 0
    recall: float = 1.0
    trained_on: int = 0
    residual: float = 0.0

    @property
    def exact(self) -> bool:
        return self.description == EXACT


def describe(entries: int, width: int, *, binary: bool, policy: IndexPolicy) -> str:
    """The index `entries` rows of `width` (bytes for a hash, dimensions for a vector) get."""
    if entries < max(policy.exact_below, 1):
        return EXACT
    lists = nlist(entries)
    if binary:
        return f"BIVF{lists}"
    ids = 8 * entries
    if entries * width + ids <= policy.memory_budget:
        return f"IVF{lists},SQ8"
    fitting = [m for m in _PQ_BYTES if width % m == 0 and entries * m + ids <= policy.memory_budget]
    if not fitting:
        raise IndexPolicyError(f"no index of {entries:,} vectors of {width} dimensions fits a memory budget of "
                               f"{policy.memory_budget / GIB:.2f} GiB", hint="raise it: neardup index --memory-budget")
    return f"IVF{lists},PQ{fitting[0]}"


def family(description: str) -> str:
    """The kind of index, whatever its list count: "flat", "BIVF", "IVF,SQ8", "IVF,PQ64"."""
    if description == EXACT:
        return EXACT
    head, _, tail = description.partition(",")
    return head.rstrip("0123456789") + ("," + tail if tail else "")


def nlist(entries: int) -> int:
    """Inverted lists for `entries` rows: about 4 sqrt(N) (FAISS's advice up to a million), a
    power of two up to 8,192, and few enough that each has MIN_TRAIN training rows."""
    wanted = 2 ** round(math.log2(4 * math.sqrt(max(entries, 1))))
    return int(max(1, min(8192, wanted, 2 ** int(math.log2(max(entries // MIN_TRAIN, 1))))))


def new_index(description: str, width: int, *, binary: bool):
    """An empty, untrained FAISS index of `description` (see `describe`)."""
    if binary:
        if description == EXACT:
            return faiss.IndexBinaryIDMap(faiss.IndexBinaryFlat(width * 8))
        lists = int(description[len("BIVF"):])
        return faiss.IndexBinaryIVF(faiss.IndexBinaryFlat(width * 8), width * 8, lists)
    if description == EXACT:
        return faiss.IndexIDMap(faiss.IndexFlatIP(width))
    return faiss.index_factory(width, description, faiss.METRIC_INNER_PRODUCT)


def train(index, sample: NDArray) -> float:
    """Train an approximate index on (S, width) rows; returns their mean distance to their
    nearest centroid (the baseline `drifted` compares later rows with), measured on every
    few of them: a pass over all of them costs as much as an iteration of the training, and
    the mean of RESIDUAL_ROWS spread over them is as good a baseline (`drift` allows 25 %)."""
    index.train(np.ascontiguousarray(sample))
    return residual(index, np.ascontiguousarray(sample[:: max(1, -(-len(sample) // RESIDUAL_ROWS))]))


def residual(index, rows: NDArray) -> float:
    """The mean distance of `rows` to their nearest coarse centroid (Hamming bits, or 1 minus
    the inner product)."""
    if not len(rows):
        return 0.0
    ivf = _ivf(index)
    distances, _ = ivf.quantizer.search(np.ascontiguousarray(rows), 1)
    if isinstance(index, faiss.IndexBinary):
        return float(distances.mean())
    return float((1.0 - distances).mean()) if ivf.metric_type == faiss.METRIC_INNER_PRODUCT else float(distances.mean())


def drifted(tuning: Tuning, entries: int, added_residual: float, added: int, policy: IndexPolicy) -> bool:
    """Whether an approximate index should be trained again: its entries outgrew its training
    (`growth` times: its lists are that much longer, every query slower), or the rows added
    since lie farther from its centroids than its training rows did (`drift`: new kinds of
    images the lists were not cut for), judged once they are a tenth of the training size."""
    if tuning.exact:
        return False
    if entries > policy.growth * tuning.trained_on:
        return True
    return added >= 0.1 * tuning.trained_on and added_residual > (1.0 + policy.drift) * max(tuning.residual, 1e-9)


def scans_everything(index, nprobe: int) -> bool:
    """Whether an inverted file of several lists searched with `nprobe` scans every one: a flat
    scan with the lists' overhead on top (2.4 times slower for 256-bit codes at 100,000
    entries in 1,024 lists). One list (a tiny catalog) costs next to nothing more."""
    lists = _ivf(index).nlist
    return lists > 1 and nprobe >= lists


def flat_fits(entries: int, width: int, *, binary: bool, policy: IndexPolicy) -> bool:
    """Whether a flat index of `entries` rows (bytes of a hash, float32 dimensions of a
    vector) and their ids fits the memory budget."""
    return entries * (width if binary else 4 * width) + 8 * entries <= policy.memory_budget


def set_nprobe(index, nprobe: int) -> None:
    if nprobe:
        _ivf(index).nprobe = int(nprobe)


def tune(index, exact: NDArray[np.float64], search: Callable[[int], NDArray[np.float64]],
         policy: IndexPolicy) -> tuple[int, float]:
    """The smallest nprobe (doubling from 1) whose recall@k reaches the target, and that recall.

    `exact` (S, k) are the scores (higher is nearer: minus a Hamming distance, or a cosine)
    of each sampled row's k nearest other rows by exact search; `search(k)` gives the true
    scores of the index's own (S, k) answers at the nprobe set (-inf: no answer)."""
    lists = _ivf(index).nlist
    nprobe = 1
    while True:
        set_nprobe(index, nprobe)
        found = recall(search(policy.k), exact)
        if found >= policy.target_recall or nprobe >= lists:
            return nprobe, found
        nprobe = min(2 * nprobe, lists)


def recall(found: NDArray[np.float64], exact: NDArray[np.float64]) -> float:
    """Recall@k counting ties: the share of the k answers per query that score at least the
    exact k-th nearest (so an answer tied with it counts, whichever of the tied rows it is).
    Both (S, k) scores, higher nearer; -inf marks no answer."""
    kth = exact.min(axis=1, keepdims=True)
    wanted = np.isfinite(exact).sum()
    hits = (found >= kth - 1e-5) & np.isfinite(found)
    return float(np.minimum(hits.sum(axis=1), np.isfinite(exact).sum(axis=1)).sum() / max(wanted, 1))


def memory(index) -> int:
    """Bytes the index holds in memory, about: its codes, ids and centroids."""
    if isinstance(index, faiss.IndexBinaryIDMap):
        return int(index.ntotal * (faiss.downcast_IndexBinary(index.index).code_size + 8))
    if isinstance(index, faiss.IndexIDMap):  # its inner index comes back from a file as a bare `Index`
        return int(index.ntotal * (faiss.downcast_index(index.index).code_size + 8))
    ivf = _ivf(index)
    quantizer = ivf.quantizer.ntotal * ivf.quantizer.code_size if isinstance(index, faiss.IndexBinary) else \
        ivf.quantizer.ntotal * ivf.quantizer.d * 4
    return int(index.ntotal * (ivf.code_size + 8) + quantizer)


def stored_ids(index) -> NDArray[np.int64]:
    """Every id the index holds, sorted."""
    if isinstance(index, (faiss.IndexIDMap, faiss.IndexBinaryIDMap)):
        return np.sort(faiss.vector_to_array(index.id_map).astype(np.int64))
    lists = _ivf(index).invlists
    parts = [faiss.rev_swig_ptr(lists.get_ids(i), lists.list_size(i)).copy()
             for i in range(lists.nlist) if lists.list_size(i)]
    return np.sort(np.concatenate(parts).astype(np.int64)) if parts else np.zeros(0, np.int64)


def _ivf(index):
    return index if isinstance(index, faiss.IndexBinaryIVF) else faiss.extract_index_ivf(index)

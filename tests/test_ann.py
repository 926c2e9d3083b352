"""Approximate indexes (storage.ann through storage.vectors.FeatureIndex): chosen by size and
memory budget, tuned to recall@10 >= 0.99 on the catalog itself, checked here against NumPy
brute force on real catalogs of clustered rows, kept up to date in place, and shown by
`neardup stats`; a small catalog forced onto the approximate path groups as the exact one does."""

from __future__ import annotations

import json
import os
from dataclasses import replace
from pathlib import Path

import faiss
import numpy as np
import pytest

from neardup.api import new_settings
from neardup.search.fusion import hamming_rows
from neardup.storage import ann, vectors
from neardup.storage.ann import GIB, IndexPolicy, IndexPolicyError, describe
from neardup.storage.catalog import Catalog
from neardup.storage.records import ImageRecord, ModelRecord
from neardup.storage.vectors import FeatureIndex

from conftest import make_collection
from test_cli import run

FLOAT = "vec"  # a vector feature of synthetic rows: the index does not care what made them
DIM = 64


def _clustered(n: int, seed: int, *, clusters: int = 40) -> tuple[np.ndarray, np.ndarray]:
    """(n, 32) uint8 codes and (n, DIM) unit float32 vectors around `clusters` centres: the
    structure real features have, which inverted lists exploit (uniform noise has none)."""
    rng = np.random.default_rng(seed)
    which = rng.integers(0, clusters, n)
    centres = rng.integers(0, 256, (clusters, 32), dtype=np.uint8)
    noise = rng.integers(0, 256, (n, 32), dtype=np.uint8) & rng.integers(0, 256, (n, 32), dtype=np.uint8) \
        & rng.integers(0, 256, (n, 32), dtype=np.uint8)
    codes = centres[which] ^ noise
    vectors = rng.normal(size=(clusters, DIM))[which] + 0.6 * rng.normal(size=(n, DIM))
    return codes, (vectors / np.linalg.norm(vectors, axis=1, keepdims=True)).astype(np.float32)


def _records(codes: np.ndarray, vectors: np.ndarray, start: int) -> list[ImageRecord]:
    return [ImageRecord(path=f"/synthetic/{start + i}.png", size=1, mtime_ns=1, sha256=f"{start + i:064x}",
                        hashes={"image": {"pdq": c}}, vectors={"image": {FLOAT: v}})
            for i, (c, v) in enumerate(zip(codes, vectors))]


def synthetic_catalog(path: Path) -> Catalog:
    """A real catalog of 4,000 images of clustered pdq codes and vectors, approximate from 1,000."""
    settings = replace(new_settings(), hashes=("pdq",), local_features=None)
    model = ModelRecord(name=FLOAT, model_id="synthetic", version=1, dim=DIM, input_size=1)
    catalog = Catalog.create(path, settings, [model])
    codes, vectors = _clustered(4300, 0)  # the last 300: unseen rows of the same clusters, for the tests
    catalog.write(_records(codes[:4000], vectors[:4000], 0))
    catalog.set_index_policy(IndexPolicy(exact_below=1000))
    return catalog


@pytest.fixture
def synthetic(tmp_path: Path) -> Catalog:
    catalog = synthetic_catalog(tmp_path / "syn.db")
    yield catalog
    catalog.close()


def _truth_binary(catalog: Catalog, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Each query's k smallest Hamming distances to every stored code, and the stored ids."""
    ids, codes = catalog.hashes("pdq")
    d = np.stack([hamming_rows(codes, np.broadcast_to(q, codes.shape)) for q in queries])
    return np.sort(d, axis=1)[:, :k], ids


def test_the_index_kind_follows_size_and_memory_budget() -> None:
    policy = IndexPolicy(exact_below=100_000, memory_budget=2 * GIB)
    assert describe(99_999, 32, binary=True, policy=policy) == ann.EXACT
    assert describe(1_000_000, 32, binary=True, policy=policy) == "BIVF4096"
    assert describe(1_000_000, 1280, binary=False, policy=policy) == "IVF4096,SQ8"  # 1.3 GB of codes fit 2 GiB
    small = IndexPolicy(exact_below=100_000, memory_budget=512 * 2**20)
    assert describe(1_000_000, 1280, binary=False, policy=small) == "IVF4096,PQ320"  # 320 B a vector fits
    with pytest.raises(IndexPolicyError, match="memory budget"):
        describe(100_000_000, 1280, binary=False, policy=small)
    with pytest.raises(IndexPolicyError):
        policy.with_options(memory_budget=1000)


def test_an_approximate_binary_index_is_tuned_to_its_recall_and_answers_like_brute_force(synthetic) -> None:
    index = synthetic.index("pdq")
    queries = _clustered(4300, 0)[0][4000:4200]  # 200 unseen rows
    found = index.knn(queries, 10)
    state = index.state()
    assert ann.family(state.kind) == "BIVF" and state.fresh and state.entries == 4000
    assert state.recall >= 0.99 and 1 <= state.nprobe < int(state.kind[4:])  # tuned, not a full scan
    truth, _ = _truth_binary(synthetic, queries, 10)
    hits = [np.sum(np.array([n.distance for n in row]) <= t[-1]) for row, t in zip(found, truth)]
    assert sum(hits) / truth.size >= 0.99  # held-out queries: the recall it was tuned to (on unseen rows)
    assert 0 < state.memory < 4000 * (32 + 8) * 2


def test_an_approximate_float_index_reranks_by_exact_cosine_and_range_pairs_are_exact(synthetic) -> None:
    index = synthetic.index(FLOAT)
    ids, vectors = synthetic.vectors(FLOAT)
    found = index.knn(vectors[:50], 10)
    state = index.state()
    assert ann.family(state.kind) == "IVF,SQ8" and state.recall >= 0.99
    cosines = vectors[:50] @ vectors.T
    for row, scores in zip(found, cosines):
        assert all(abs(n.distance - scores[ids == n.image_id][0]) < 1e-5 for n in row)  # exact, not SQ8's
    hits = sum(np.sum(np.array([n.distance for n in row]) >= np.sort(s)[-10] - 1e-6) for row, s in zip(found, cosines))
    assert hits / 500 >= 0.98
    pairs = index.within(vectors, ids, 0.9)
    upper = np.triu(vectors @ vectors.T >= np.float32(0.9), 1)
    oracle = {(int(ids[a]), int(ids[b])) for a, b in zip(*np.nonzero(upper))}
    got = set(zip(pairs.src.tolist(), pairs.dst.tolist()))
    assert got <= oracle and len(got) >= 0.99 * len(oracle) > 0


def test_an_approximate_index_is_updated_in_place_as_images_come_and_go(synthetic) -> None:
    index = synthetic.index("pdq")
    assert len(index) == 4000
    built = index.state()
    codes, vectors = _clustered(4300, 0)
    synthetic.write(_records(codes[4000:], vectors[4000:], 4000))
    gone = synthetic.hashes("pdq")[0][:100]
    synthetic.remove(gone.tolist())
    answers = index.knn(codes[4000:4100], 1)
    after = index.state()
    assert after.kind == built.kind and after.fresh and after.trained_on == built.trained_on == 4000  # not retrained
    assert after.entries == 4200
    ids = synthetic.hashes("pdq")[0]
    assert all(row[0].distance == 0 and row[0].image_id in ids for row in answers)  # the added rows are found
    assert not set(gone.tolist()) & {n.image_id for row in index.knn(codes[:100], 10) for n in row}
    reopened = Catalog.open(synthetic.path).index("pdq")  # the updated file, read back
    assert reopened.state().fresh and reopened.state().entries == 4200


@pytest.mark.parametrize("feature", ["pdq", FLOAT])
def test_stats_of_a_fresh_process_read_an_index_sidecar_not_its_file_unless_the_files_changed(
        synthetic, feature, monkeypatch) -> None:
    """A million CNN vectors' index is 1.3 GB: `stats` reports it from its sidecar while the
    files beside it are as they were saved; a file rewritten since, or a sidecar that does
    not describe its files (an older neardup's), is read and checked as a search would."""
    index = synthetic.index(feature)
    assert len(index) == 4000  # built and saved
    held, path = index.state(), index.path
    reads = []
    for name in ("read_index", "read_index_binary"):
        monkeypatch.setattr(faiss, name, lambda *a, _read=getattr(faiss, name): reads.append(a) or _read(*a))
    monkeypatch.setattr("neardup.storage.vectors._sha256", lambda p, _sha=vectors._sha256: reads.append(p) or _sha(p))
    assert Catalog.open(synthetic.path).index(feature).state() == held and held.memory > 0 and not reads
    sidecar = path.with_name(path.name + ".json")
    meta = json.loads(sidecar.read_text())
    sidecar.write_text(json.dumps({k: v for k, v in meta.items() if k not in ("files", "memory")}))
    assert Catalog.open(synthetic.path).index(feature).state() == held and reads  # read: the same state
    sidecar.write_text(json.dumps(meta))
    reads.clear()
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF  # the same size, bytes changed later
    path.write_bytes(bytes(data))
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))  # a later write, whatever the clock's grain
    again = Catalog.open(synthetic.path).index(feature).state()
    assert reads and not again.fresh and again.exists


@pytest.mark.parametrize("feature", ["pdq", FLOAT])
def test_the_state_of_an_index_this_process_holds_is_not_read_again_unless_its_file_lacks_it(
        synthetic, feature, monkeypatch) -> None:
    """`stats` of a process that searches (a server) reports the current index it holds, as
    a fresh process reads it from the file, without reading the file again; once another
    process brought the file further, or when its folder could not take the index, the file."""
    index = synthetic.index(feature)
    assert len(index) == 4000  # built, saved and held
    reads = []
    for name in ("read_index", "read_index_binary"):
        monkeypatch.setattr(faiss, name, lambda *a, _read=getattr(faiss, name): reads.append(a) or _read(*a))
    held = index.state()
    assert not reads
    other = Catalog.open(synthetic.path)
    assert other.index(feature).state() == held and held.fresh and held.entries == 4000 and not reads  # its sidecar
    codes, vectors = _clustered(4300, 0)
    other.write(_records(codes[4000:4010], vectors[4000:4010], 4000))
    assert len(other.index(feature)) == 4010  # the other process brings the file up to date
    other.close()
    assert index.state().fresh and index.state().entries == 4010  # read from the file
    assert len(index) == 4010
    synthetic.write(_records(codes[4010:4020], vectors[4010:4020], 4010))
    monkeypatch.setattr("neardup.storage.vectors._write_atomic", lambda *a: (_ for _ in ()).throw(OSError("full")))
    assert len(index) == 4020  # brought up to date in memory, its file left as it was
    assert index.state().entries == 4010 and not index.state().fresh


@pytest.mark.parametrize("feature", ["pdq", FLOAT])
def test_an_exact_index_is_updated_in_place_into_the_index_a_build_makes(tmp_path, feature, monkeypatch) -> None:
    """Images added after every one an exact index holds, and images removed, are appended to
    and dropped from it, not read back from the catalog with every other row: the index a
    build gives, row for row, so its answers and their ties stay the same. An image changed
    in place (its id kept) would be appended out of id order, so the index is built again."""
    settings = replace(new_settings(), hashes=("pdq",), local_features=None)
    model = ModelRecord(name=FLOAT, model_id="synthetic", version=1, dim=DIM, input_size=1)
    catalog = Catalog.create(tmp_path / "exact.db", settings, [model])
    codes, vectors = _clustered(3200, 4)
    catalog.write(_records(codes[:3000], vectors[:3000], 0))
    index = catalog.index(feature)
    assert len(index) == 3000
    builds = []
    build = FeatureIndex._build
    monkeypatch.setattr(FeatureIndex, "_build", lambda self, *a, **k: builds.append(1) or build(self, *a, **k))

    def as_built() -> bytes:
        for path in tmp_path.glob(f"exact.{feature}.faiss*"):
            path.unlink()
        fresh = Catalog.open(catalog.path)
        data = _serialised(fresh.index(feature)._current().index)
        fresh.close()
        return data

    catalog.write(_records(codes[3000:3100], vectors[3000:3100], 3000))
    gone = catalog.feature_ids(feature)[0][::7].tolist()
    catalog.remove(gone)
    assert len(index) == 3100 - len(gone) and not builds  # updated in place
    updated = _serialised(index._current().index)
    assert updated == as_built()
    changed = _records(codes[3100:3101], vectors[3100:3101], 3100)[0]
    # the file of a kept image holds another picture now (its content key: SHA-256's first 64 bits)
    catalog.write([replace(changed, path="/synthetic/1.png", sha256="f" * 64)])
    assert len(index) == 3100 - len(gone) and len(builds) == 2  # built again (and by as_built)
    assert _serialised(index._current().index) == as_built()
    catalog.close()


@pytest.mark.parametrize("feature", ["pdq", FLOAT])
def test_an_index_built_on_an_empty_catalog_takes_the_first_rows_written(tmp_path, feature) -> None:
    """An index built before any image (a search of a new catalog) has no width yet; the
    first images written are searched by an index built for them."""
    settings = replace(new_settings(), hashes=("pdq",), local_features=None)
    model = ModelRecord(name=FLOAT, model_id="synthetic", version=1, dim=DIM, input_size=1)
    catalog = Catalog.create(tmp_path / "empty.db", settings, [model])
    index = catalog.index(feature)
    assert len(index) == 0
    rng = np.random.default_rng(8)
    codes = rng.integers(0, 256, (50, 32), dtype=np.uint8)
    vectors = rng.normal(size=(50, DIM)).astype(np.float32)
    catalog.write(_records(codes, vectors / np.linalg.norm(vectors, axis=1, keepdims=True), 0))
    assert len(index) == 50
    found = index.knn(codes[:3] if feature == "pdq" else vectors[:3], 1)
    ids = catalog.image_ids([f"/synthetic/{i}.png" for i in range(3)])
    assert [row[0].image_id for row in found] == [ids[f"/synthetic/{i}.png"] for i in range(3)]
    catalog.close()


def _serialised(index) -> bytes:
    serialise = faiss.serialize_index_binary if isinstance(index, faiss.IndexBinary) else faiss.serialize_index
    return serialise(index).tobytes()


def test_exact_indexes_report_their_memory_read_back_from_their_files(synthetic) -> None:
    synthetic.set_index_policy(IndexPolicy(exact_below=10**6))
    assert len(synthetic.index(FLOAT)) == len(synthetic.index("pdq")) == 4000
    reopened = Catalog.open(synthetic.path, readonly=True)
    states = {f: reopened.index(f).state() for f in (FLOAT, "pdq")}
    reopened.close()
    assert states[FLOAT].kind == states["pdq"].kind == ann.EXACT and states[FLOAT].fresh
    assert states[FLOAT].memory == 4000 * (DIM * 4 + 8) and states["pdq"].memory == 4000 * (32 + 8)


def test_an_inverted_file_that_would_scan_every_list_is_flat_and_stays_flat(tmp_path) -> None:
    """Codes without structure (each one's ten nearest far apart, under any centroid): only
    every list reaches the recall, so the index is an exact flat one, shown as such, and stays
    flat without training again as images are added."""
    settings = replace(new_settings(), hashes=("pdq",), local_features=None)
    catalog = Catalog.create(tmp_path / "uniform.db", settings)
    codes = np.random.default_rng(5).integers(0, 256, (4300, 32), dtype=np.uint8)
    catalog.write([ImageRecord(path=f"/u/{i}.png", size=1, mtime_ns=1, sha256=f"{i:064x}", hashes={"image": {"pdq": c}})
                   for i, c in enumerate(codes[:4000])])
    catalog.set_index_policy(IndexPolicy(exact_below=1000))
    index = catalog.index("pdq")
    found = index.knn(codes[4000:4050], 10)
    state = index.state()
    assert state.kind == ann.EXACT and state.trained_on == 4000 and state.recall == 1.0
    truth, _ = _truth_binary(catalog, codes[4000:4050], 10)
    assert [[n.distance for n in row] for row in found] == truth.tolist()  # exact answers
    catalog.write([ImageRecord(path=f"/u/{i}.png", size=1, mtime_ns=1, sha256=f"{i:064x}", hashes={"image": {"pdq": c}})
                   for i, c in enumerate(codes[4000:], 4000)])
    assert len(index) == 4300
    assert index.state().kind == ann.EXACT and index.state().trained_on == 4000  # kept flat, not evaluated again
    catalog.close()
    stats = run("stats", "--db", tmp_path / "uniform.db").stdout
    assert "an inverted file would have scanned every list" in stats, stats


def test_an_index_file_that_scans_every_list_turns_flat_when_next_refreshed(tmp_path, monkeypatch) -> None:
    """An inverted file tuned to scan every list before such files were made flat (as the
    code before did: `scans_everything` never true) becomes flat at the catalog's next change."""
    settings = replace(new_settings(), hashes=("pdq",), local_features=None)
    catalog = Catalog.create(tmp_path / "old.db", settings)
    codes = np.random.default_rng(6).integers(0, 256, (4100, 32), dtype=np.uint8)
    records = [ImageRecord(path=f"/u/{i}.png", size=1, mtime_ns=1, sha256=f"{i:064x}", hashes={"image": {"pdq": c}})
               for i, c in enumerate(codes)]
    catalog.write(records[:4000])
    catalog.set_index_policy(IndexPolicy(exact_below=1000))
    with monkeypatch.context() as old_code:
        old_code.setattr(ann, "scans_everything", lambda index, nprobe: False)
        before = catalog.index("pdq")
        len(before)
        assert before.state().kind == "BIVF64" and before.state().nprobe == 64
    catalog.write(records[4000:])
    after = Catalog.open(catalog.path).index("pdq")
    assert len(after) == 4100 and after.state().kind == ann.EXACT and after.state().trained_on == 4000
    catalog.close()


def test_growth_past_the_training_size_trains_again() -> None:
    tuning = ann.Tuning("BIVF64", nprobe=4, recall=0.995, trained_on=1000, residual=20.0)
    policy = IndexPolicy()
    assert not ann.drifted(tuning, 3000, 20.0, 2000, policy)
    assert ann.drifted(tuning, 4001, 20.0, 3001, policy)  # lists 4x longer than they were cut for
    assert ann.drifted(tuning, 1200, 26.0, 200, policy)  # the added rows lie far from every centroid
    assert not ann.drifted(tuning, 1050, 26.0, 50, policy)  # too few yet to judge


@pytest.mark.parametrize("binary", [False, True])
def test_the_training_residual_is_measured_on_rows_spread_over_the_sample(binary: bool, monkeypatch) -> None:
    """The baseline an index's drift is judged against: the mean distance of its training rows
    to their centroids, from RESIDUAL_ROWS of them spread over the sample (the sample sorted
    by id, the rows drawn from every part of it), close to the mean over all of them."""
    monkeypatch.setattr(ann, "RESIDUAL_ROWS", 400)
    rng = np.random.default_rng(7)
    centres = rng.standard_normal((16, 32)).astype(np.float32)
    # rows in blocks of one centre each, the later blocks far more spread: a prefix of the
    # sample would miss them, and its mean with them
    rows = np.concatenate([centres[c] + (0.2 + c) * rng.standard_normal((250, 32)).astype(np.float32)
                           for c in range(16)])
    if binary:
        rows = np.packbits(rows > 0, axis=1)
    else:
        rows /= np.linalg.norm(rows, axis=1, keepdims=True)
    index = ann.new_index("BIVF16" if binary else "IVF16,SQ8", rows.shape[1], binary=binary)
    baseline = ann.train(index, rows)
    everything = ann.residual(index, rows)
    assert abs(baseline - everything) <= 0.05 * everything
    assert abs(ann.residual(index, rows[:400]) - everything) > 0.05 * everything  # a prefix would not do


def test_a_small_catalog_forced_approximate_groups_as_the_exact_one_and_stats_says_so(tmp_path) -> None:
    make_collection(tmp_path / "photos")
    run("index", tmp_path / "photos", "--db", tmp_path / "exact.db", "--embedder", "none", "-q")
    run("index", tmp_path / "photos", "--db", tmp_path / "ann.db", "--embedder", "none", "-q", "--exact-below", "5")
    exact = run("duplicates", "--db", tmp_path / "exact.db", "--format", "json").stdout
    approximate = run("duplicates", "--db", tmp_path / "ann.db", "--format", "json").stdout
    assert approximate.replace("ann.db", "exact.db") == exact and "coffee_half" in exact
    stats = run("stats", "--db", tmp_path / "ann.db").stdout
    pdq = next(line for line in stats.splitlines() if "index pdq" in line)
    assert "BIVF" in pdq and "recall@10 1.000" in pdq, stats
    assert "exact" in run("stats", "--db", tmp_path / "exact.db").stdout
    bad = run("index", tmp_path / "photos", "--db", tmp_path / "ann.db", "--memory-budget", "lots", ok=False)
    assert "error: --memory-budget takes a size" in bad.stderr


@pytest.mark.parametrize("exact_below", [100_000, 1000])
def test_an_index_gives_the_rows_the_catalog_stores(tmp_path, exact_below) -> None:
    """A search weighs its candidates' stored rows: an exact index hands them from memory,
    hashes are read all at once after a fifth of them were looked up one by one, and an
    approximate float index's (whose codes are lossy) come from the catalog: the same rows
    whichever way."""
    settings = replace(new_settings(), hashes=("pdq",), local_features=None)
    model = ModelRecord(name=FLOAT, model_id="synthetic", version=1, dim=DIM, input_size=1)
    catalog = Catalog.create(tmp_path / "rows.db", settings, [model])
    codes, vectors = _clustered(3000, 3)
    catalog.write(_records(codes, vectors, 0))
    catalog.set_index_policy(IndexPolicy(exact_below=exact_below))
    all_ids, _ = catalog.feature_ids("pdq")
    wanted = [int(all_ids[5]), int(all_ids[0]), int(all_ids[-1]), int(all_ids[1234]), 10**9]  # 10**9: no such image
    exact = exact_below == 100_000
    for feature in ("pdq", FLOAT):
        index = catalog.index(feature)
        want_ids, want = catalog.feature_rows(feature, wanted)
        assert want_ids.tolist() == sorted(wanted[:4])
        held = []
        for asked in (wanted, all_ids[:500], all_ids[500:700], wanted):  # 5 + 500 rows, then 705 >= 3000 / 5
            got_ids, got = index.rows(asked)
            assert got_ids.tolist() == sorted(set(np.asarray(asked).tolist()) & set(all_ids.tolist()))
            if asked is wanted:
                assert got.dtype == want.dtype and np.array_equal(got, want)
            held.append(index._held is not None)
        assert held == ([False, False, True, True] if feature == "pdq" else [False] * 4)
        len(index)  # built: an exact index now holds every row
        assert (index._held_rows(1) is not None) == (exact or feature == "pdq")
        assert np.array_equal(index.rows(wanted)[1], want)
    catalog.close()

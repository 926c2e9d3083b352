"""Beyond one machine: indexing on a Dask cluster, concurrent indexers and searchers on one
PostgreSQL catalog. Real code paths throughout: a `LocalCluster` of 2 worker processes, a
real PostgreSQL server, `neardup` commands in their own processes."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import neardup
from neardup.indexer.cluster import Cluster, ClusterError
from neardup.indexer.embed import CnnEmbedder
from neardup.indexer.pipeline import index_paths
from neardup.indexer.progress import Progress
from neardup.storage.models import VIEWS

from conftest import DATA, image_rows, save, scene

NEARDUP = [sys.executable, "-m", "neardup.cli"]


def contents(cat: neardup.Collection) -> dict[str, dict]:
    """Everything the catalog stores of each file, by path (ids differ between catalogs)."""
    catalog = cat.catalog
    states = catalog.file_states()
    ids = {s.image_id: path for path, s in states.items()}
    info = catalog.images(list(ids))
    out = {path: {"info": dataclasses.replace(info[s.image_id], image_id=0), "status": s.status}
           for path, s in states.items()}
    for view in VIEWS:
        for algo in catalog.settings.hashes:
            for image_id, bits in catalog.hashes_of(list(ids), [algo], view)[algo].items():
                out[ids[image_id]][f"{algo}@{view}"] = bits.tobytes()
        for model in catalog.models():
            for image_id, vector in catalog.vectors_of(list(ids), model, view).items():
                out[ids[image_id]][f"{model}@{view}"] = vector
    for mirrored in (False, True):
        for image_id, (points, descriptors, colours) in catalog.keypoints_of(list(ids), mirrored=mirrored).items():
            out[ids[image_id]][f"keypoints{mirrored}"] = (points.tobytes(), descriptors.tobytes(),
                                                          None if colours is None else colours.tobytes())
    return out


def assert_same_catalog(a: neardup.Collection, b: neardup.Collection) -> None:
    """Same files, same rows and hashes and keypoints; vectors equal to float16 storage."""
    left, right = contents(a), contents(b)
    assert sorted(left) == sorted(right)
    for path in left:
        assert left[path].keys() == right[path].keys(), path
        for key, value in left[path].items():
            if isinstance(value, np.ndarray):
                np.testing.assert_allclose(value, right[path][key], atol=2e-3, err_msg=f"{path} {key}")
            else:
                assert value == right[path][key], (path, key)


def results(cat: neardup.Collection, query: Path, by: str) -> list[tuple[str, float]]:
    """A search's (path, score), ties in path order (ids, which break FAISS's ties, differ)."""
    found = [(m.path, round(m.score, 3)) for m in cat.search(query, k=5, by=by)]
    return sorted(found, key=lambda r: (-r[1], r[0]))


def edited_queries(folder: Path) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    astronaut = Image.open(DATA / "astronaut.jpg")
    astronaut.resize((astronaut.width // 2, astronaut.height // 2)).save(folder / "small.jpg", quality=60)
    Image.open(DATA / "coffee.jpg").transpose(Image.FLIP_LEFT_RIGHT).save(folder / "mirrored.jpg")
    return [folder / "small.jpg", folder / "mirrored.jpg"]


def test_a_catalog_indexed_on_a_cluster_equals_one_indexed_locally(tmp_path, collection, postgres_url) -> None:
    photos = tmp_path / "photos"
    local = neardup.open(tmp_path / "local.db", create=True, embedder="cnn")
    local.index([photos], workers=2)
    distributed = neardup.open(postgres_url, create=True, embedder="cnn")
    report = distributed.index([photos], cluster="local:2")
    assert (report.new, report.embedded, report.failed) == (len(collection), len(collection), 0)
    assert_same_catalog(local, distributed)
    for query in edited_queries(tmp_path / "queries"):
        for by in ("auto", "cnn", "pdq"):
            assert results(local, query, by) == results(distributed, query, by), (query.name, by)
    again = distributed.index([photos], cluster="local:2")  # the incremental logic is the pipeline's
    assert (again.decoded, again.unchanged) == (0, len(collection))


_BUILDS: list[int] = []  # in each worker process: the pids that built the CNN there


class _CountingCnn(CnnEmbedder):
    """The real CNN, counting where its network is built (loaded)."""

    def _build(self):
        _BUILDS.append(os.getpid())
        return super()._build()


def _builds() -> int:
    return len(_BUILDS)


def test_each_worker_loads_the_cnn_once_however_many_batches_it_runs(tmp_path, collection) -> None:
    cat = neardup.open(tmp_path / "c.db", create=True, embedder="cnn")
    with Cluster.connect("local:2", batch=2) as cluster:  # 15 files: 8 batches on 2 workers
        report = index_paths([tmp_path / "photos"], catalog=cat.catalog, embedders=[_CountingCnn()], cluster=cluster)
        loads = cluster.client.run(_builds)
    assert report.embedded == len(collection) and cat.stats().counts["vectors.cnn"] == len(collection)
    assert sorted(loads.values()) in ([0, 1], [1, 1]), loads


class _KillBusyWorker(Progress):
    """Kills (SIGKILL) a Dask worker that is running a batch when the first results arrive."""

    def __init__(self, cluster: Cluster) -> None:
        self.cluster, self.killed = cluster, None

    def advance(self, n: int = 1) -> None:
        if self.killed is not None:
            return
        busy = [worker for worker, keys in self.cluster.client.processing().items() if keys]
        if busy:
            pid = self.cluster.client.run(os.getpid, workers=busy[:1])[busy[0]]
            os.kill(pid, signal.SIGKILL)
            self.killed = busy[0]


def _scenes(folder: Path, n: int, size=(480, 360)) -> Path:
    for i in range(n):
        save(scene(i, size), folder / f"{i % 3}" / f"{i:03d}.png")
    return folder


def test_a_worker_killed_mid_run_loses_nothing(tmp_path) -> None:
    folder = _scenes(tmp_path / "many", 48)
    clean = neardup.open(tmp_path / "clean.db", create=True, embedder="none")
    clean.index([folder], workers=1)
    cat = neardup.open(tmp_path / "cluster.db", create=True, embedder="none")
    with Cluster.connect("local:2", batch=2) as cluster:
        killer = _KillBusyWorker(cluster)
        report = cat.index([folder], cluster=cluster, progress=killer)
    assert killer.killed is not None, "a worker should have been killed mid-run"
    assert (report.new, report.failed, report.interrupted) == (48, 0, False)
    assert_same_catalog(clean, cat)


def _unfinished(dask_scheduler) -> int:
    """How many tasks the scheduler still has to run (run on the scheduler)."""
    return sum(task.state in ("released", "waiting", "queued", "no-worker", "processing")
               for task in dask_scheduler.tasks.values())


class _WatchBatches(Progress):
    """Records, at every file counted, how many batches the cluster still had to run."""

    def __init__(self, cluster: Cluster) -> None:
        self.cluster, self.total, self.unfinished = cluster, None, []

    def start(self, total: int, label: str = "") -> None:
        self.total = total

    def advance(self, n: int = 1) -> None:
        self.unfinished.append(self.cluster.client.run_on_scheduler(_unfinished))


def test_the_progress_bar_counts_files_as_their_batches_finish(tmp_path) -> None:
    """The bar moves while the cluster works (not all at once when every batch is done)."""
    folder = _scenes(tmp_path / "many", 48)
    cat = neardup.open(tmp_path / "c.db", create=True, embedder="none")
    with Cluster.connect("local:2", batch=2) as cluster:
        watch = _WatchBatches(cluster)
        cat.index([folder], cluster=cluster, progress=watch)
    assert watch.total == len(watch.unfinished) == 48
    assert watch.unfinished[0] > 0, watch.unfinished


@pytest.fixture
def dask_scheduler(tmp_path) -> Iterator[str]:
    """The address of a running Dask scheduler with 2 workers, each its own process started as
    docs/DISTRIBUTED.md starts them (`dask scheduler`, `dask worker`)."""
    from distributed import Client

    dask = str(Path(sys.executable).with_name("dask"))
    file = str(tmp_path / "scheduler.json")
    started = [subprocess.Popen(command, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
               for command in ([dask, "scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard",
                                "--scheduler-file", file],
                               [dask, "worker", "--scheduler-file", file, "--nworkers", "2", "--nthreads", "1",
                                "--no-dashboard", "--memory-limit", "2GiB"])]
    try:
        with Client(scheduler_file=file, timeout=120) as client:
            client.wait_for_workers(2, timeout=120)
            yield client.scheduler.address
    finally:
        for process in reversed(started):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()


def _index_summary(folder: Path, db: str, *options: str) -> str:
    """What `neardup index` says it did: "N new, N changed, … N failed"."""
    run = subprocess.run([*NEARDUP, "index", str(folder), "--db", db, "-q", *options],
                         capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-2000:]
    return run.stderr.strip().splitlines()[-1].split(": ", 1)[1]


def test_indexing_through_a_running_scheduler_is_incremental_as_a_local_run(tmp_path, postgres_url,
                                                                             dask_scheduler) -> None:
    """`--cluster tcp://…` on a scheduler and workers of their own: the catalog and what each
    run reports (new, changed, unchanged, moved, removed) equal a local run's, before and after
    files change, move, vanish and appear."""
    folder = _scenes(tmp_path / "many", 24)
    local = str(tmp_path / "local.db")

    def both() -> tuple[str, str]:
        return (_index_summary(folder, local, "--workers", "1", "--embedder", "none"),
                _index_summary(folder, postgres_url, "--cluster", dask_scheduler, "--embedder", "none"))

    assert both() == ("24 new, 0 changed, 0 unchanged, 0 moved, 0 removed, 0 failed",) * 2
    save(scene(100), folder / "0" / "000.png")
    (folder / "1" / "001.png").rename(folder / "2" / "moved.png")
    (folder / "2" / "002.png").unlink()
    save(scene(101), folder / "new" / "added.png")
    assert both() == ("1 new, 1 changed, 21 unchanged, 1 moved, 1 removed, 0 failed",) * 2
    assert_same_catalog(neardup.open(local), neardup.open(postgres_url))


def test_ctrl_c_cancels_a_cluster_run_cleanly_and_the_next_run_finishes(tmp_path) -> None:
    """Ctrl-C (SIGINT to the whole foreground group, as a terminal sends it) during `neardup
    index --cluster local:2`: exit 130 with the usual word, no traceback from any worker, no
    process left behind, what was written kept; the same command then finishes the job."""
    folder = _scenes(tmp_path / "many", 240, (480, 360))
    db = str(tmp_path / "c.db")
    command = [*NEARDUP, "index", str(folder), "--db", db, "--cluster", "local:2", "--embedder", "none", "-q"]
    # as a terminal starts it: SIGINT at its default action, even when the test runner itself
    # was started in the background of a shell, which ignores SIGINT and passes that on
    run = subprocess.Popen(command, start_new_session=True, stderr=subprocess.PIPE, text=True,
                           preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline and image_rows(db) < 64 and run.poll() is None:
            time.sleep(0.1)
        os.killpg(run.pid, signal.SIGINT)
        stderr = run.communicate(timeout=120)[1]
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(run.pid, signal.SIGKILL)
    done = image_rows(db)
    assert run.returncode == 130 and 0 < done < 240, (run.returncode, done, stderr[-2000:])
    assert "interrupted: what was indexed is saved" in stderr and "Traceback" not in stderr, stderr[-2000:]
    left = _session(run.pid)
    for _ in range(50):
        if not left:
            break
        time.sleep(0.1)
        left = _session(run.pid)
    assert left == [], f"processes left in the run's session: {left}"
    report = neardup.open(db).index([folder], cluster="local:2")
    assert (report.unchanged, report.new) == (done, 240 - done)


def _session(sid: int) -> list[str]:
    found = subprocess.run(["ps", "-o", "pid=,stat=,args=", "-s", str(sid)], capture_output=True, text=True)
    return [line.strip() for line in found.stdout.splitlines() if line.strip()]


def test_a_bad_cluster_address_is_a_clear_error(tmp_path) -> None:
    cat = neardup.open(tmp_path / "c.db", create=True, embedder="none")
    with pytest.raises(ClusterError, match="neither local:N nor a scheduler address"):
        cat.index([tmp_path], cluster="somewhere")
    with pytest.raises(ClusterError, match="cannot reach the Dask scheduler"):
        Cluster.connect("tcp://127.0.0.1:1", timeout=2)


def test_concurrent_indexers_of_overlapping_folders_store_every_file_once(tmp_path, postgres_url) -> None:
    folder = _scenes(tmp_path / "many", 150, (320, 240))
    commands = [[*NEARDUP, "index", *paths, "--db", postgres_url, "--workers", "1", "-q", "--embedder", "none"]
                for paths in ([str(folder)], [str(folder / "2"), str(folder / "1"), str(folder / "0")])]
    runs = [subprocess.Popen(c, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for c in commands]
    outcomes = [run.communicate(timeout=600) for run in runs]
    assert [run.returncode for run in runs] == [0, 0], outcomes
    shared = neardup.open(postgres_url)
    counts = shared.stats().counts
    assert counts["images"] == counts["ok"] == 150 and counts["hashes.pdq"] == 150 and counts["keypoints"] == 150
    clean = neardup.open(tmp_path / "clean.db", create=True, embedder="none")
    clean.index([folder], workers=1)
    assert_same_catalog(clean, shared)
    assert sorted(shared.catalog.roots()) == sorted({str(folder), *(str(folder / d) for d in "012")})


def test_two_processes_on_one_postgresql_catalog_never_serve_a_stale_index(tmp_path, collection,
                                                                              postgres_url) -> None:
    photos = tmp_path / "photos"
    query = edited_queries(tmp_path / "queries")[0]
    cat = neardup.open(postgres_url, create=True, embedder="none")
    cat.index([photos], workers=1)
    assert cat.search(query, k=1, by="pdq")[0].path == str(collection["astronaut"])  # index built here
    copy = photos / "new" / "query_copy.jpg"
    copy.parent.mkdir()
    shutil.copyfile(query, copy)
    other = [*NEARDUP, "index", str(photos), "--db", postgres_url, "-q"]
    subprocess.run(other, check=True, capture_output=True)  # another process writes
    top = cat.search(query, k=1, by="pdq")[0]
    assert (top.path, top.score) == (str(copy), 1.0)
    copy.unlink()
    cat.index([photos], workers=1)  # this process writes; the other one searches
    search = [*NEARDUP, "search", str(query), "--db", postgres_url, "--by", "pdq", "-k", "3", "--json"]
    found = json.loads(subprocess.run(search, check=True, capture_output=True, text=True).stdout)
    paths = [r["path"] for r in found["results"]]
    assert paths[0] == str(collection["astronaut"]) and str(copy) not in paths
    assert cat.catalog.index("pdq").state().fresh  # one index file per machine, bound to the generation

"""What runs on the Dask workers of a distributed index run (`cluster`): the task that
extracts and embeds a batch of files, and the plugin that keeps the embedders on each worker.

Imported only by a run that uses a cluster (and by the workers, to unpickle its tasks).
"""

from __future__ import annotations

from distributed import WorkerPlugin, get_worker

from .embed import Embedder
from .extract import Extracted, Moved, extract
from .walk import FileEntry


class Embedders(WorkerPlugin):
    """The catalog's embedders, kept by every worker for one run, so each loads its model once
    (on its first batch) whatever the number of batches; a worker that joins later gets them too."""

    def __init__(self, embedders: list[Embedder]) -> None:
        self.embedders = embedders

    def setup(self, worker) -> None:
        import cv2

        cv2.setNumThreads(1)  # one task at a time per worker process: OpenCV's threads would contend


def extract_batch(entries: list[FileEntry], args: tuple, plugin: str) -> list[Extracted | Moved]:
    """`extract.extract(entry, *args)` of each entry, embedded by the plugin's embedders as the
    local pipeline embeds them (`pipeline.attach_vectors`); the pixels are dropped once embedded,
    so only the records travel back to the client."""
    from .pipeline import attach_vectors

    results = [extract(entry, *args) for entry in entries]
    ok = [r for r in results if isinstance(r, Extracted) and not r.record.error]
    attach_vectors(get_worker().plugins[plugin].embedders, ok)
    for x in ok:
        x.inputs = {}
    return results

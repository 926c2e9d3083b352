"""Training a catalog's autoencoder: the orchestrator around `autoencoder.train_autoencoder`.

Reads every indexed image (decoded as the indexer does, resized to the training size),
trains, and leaves beside the catalog ``<stem>.autoencoder.npz`` (the model),
``<stem>.autoencoder-loss.png`` (training and validation loss per epoch) and
``<stem>.autoencoder-reconstructions.png`` (eight of the images above what the model redraws).
The catalog records the model's file, SHA-256, version and settings; retraining bumps the
version and drops every autoencoder vector in the same transaction, so vectors of two models
never mix: they are stale until `embed_missing` (run by every `neardup index`) re-embeds.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from neardup.storage.catalog import Catalog
from neardup.storage.errors import NeardupError
from neardup.storage.models import IMAGE
from neardup.storage.records import ModelRecord

from .autoencoder import (
    AutoencoderConfig,
    AutoencoderEmbedder,
    EpochReport,
    ModelFileError,
    TrainingResult,
    plot_history,
    reconstruction_grid,
    source_size,
    train_autoencoder,
)
from .extract import embed_inputs
from .progress import Progress
from .workers import parallel_map

__all__ = ["AUTOENCODER", "NotTrainedError", "TrainReport", "load_autoencoder", "train_catalog_autoencoder"]

AUTOENCODER = "autoencoder"  # the vectors' model name and the record's key


class NotTrainedError(NeardupError, ValueError):
    """The catalog has no trained autoencoder (yet)."""


@dataclass(frozen=True)
class TrainReport:
    """What `train_catalog_autoencoder` did; `stale` autoencoder vectors were dropped."""

    version: int
    images: int
    unreadable: int
    result: TrainingResult
    model: Path
    loss_plot: Path
    reconstructions: Path
    stale: int


def train_catalog_autoencoder(
    catalog: Catalog,
    config: AutoencoderConfig = AutoencoderConfig(),
    *,
    workers: int = 1,
    progress: Progress | None = None,
    on_epoch: Callable[[EpochReport], None] | None = None,
) -> TrainReport:
    """Train the catalog's autoencoder on its indexed images; see the module docstring."""
    paths = sorted(path for path, state in catalog.file_states().items() if state.status == "ok")
    progress = progress or Progress()
    progress.start(len(paths))
    images = []
    try:
        size = source_size(config)
        args = (catalog.settings.decode_side, (size,), (IMAGE,))
        for found in parallel_map(embed_inputs, paths, args, workers=workers):
            progress.advance()
            if found.error is None:
                images.append(found.inputs[IMAGE][size])
    finally:
        progress.close()
    stack = np.stack(images) if images else np.zeros((0, *(source_size(config),) * 2, 3), np.uint8)
    embedder, result = train_autoencoder(stack, config, progress=on_epoch)

    previous = catalog.model(AUTOENCODER)
    version = 1 + (previous.version if previous is not None else 0)
    embedder.version = version
    model = catalog.sibling(f"{AUTOENCODER}.npz")
    digest = embedder.save(model)
    loss_plot = catalog.sibling(f"{AUTOENCODER}-loss.png")
    plot_history(result, loss_plot)
    reconstructions = catalog.sibling(f"{AUTOENCODER}-reconstructions.png")
    sample = np.random.default_rng(config.seed).choice(len(stack), size=min(8, len(stack)), replace=False)
    reconstruction_grid(embedder, [stack[i] for i in sorted(sample)], reconstructions)
    training = {
        "config": asdict(config), "images": len(stack), "epochs_run": len(result.history),
        "best_epoch": result.best_epoch, "val_loss": result.history[result.best_epoch - 1][1],
        "trained_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    stale = catalog.replace_model(ModelRecord(
        name=AUTOENCODER, model_id=embedder.model_id, version=version, dim=config.dim,
        input_size=config.image_size, file=model.name, sha256=digest, training=training,
    ))
    return TrainReport(version, len(stack), len(paths) - len(stack), result, model, loss_plot,
                       reconstructions, stale)


def load_autoencoder(catalog: Catalog, record: ModelRecord | None = None) -> AutoencoderEmbedder:
    """The catalog's trained autoencoder, checked against the SHA-256 recorded at training."""
    record = record or catalog.model(AUTOENCODER)
    if record is None:
        raise NotTrainedError(f"catalog {catalog.path} has no autoencoder yet",
                              hint="train one: neardup train autoencoder")
    path = catalog.sibling(f"{AUTOENCODER}.npz")
    if path.name != record.file:
        raise ModelFileError(f"catalog {catalog.path} records model file {record.file}, expected {path.name}")
    return AutoencoderEmbedder.load(path, version=record.version, sha256=record.sha256)

"""Where the files derived from a catalog live on this machine.

A file catalog keeps them beside itself (photos.db -> photos.pdq.faiss, photos.autoencoder.npz,
photos.recovery/), as it always has. A catalog on a database server has no folder of its own,
so each machine keeps them in per-user folders named after the catalog's identity (a random
id stored in the catalog, the same on every machine, never reused by another catalog):

- caches that can be rebuilt from the catalog at any time (FAISS indexes, stored reports) in
  ``<cache>/catalogs/<identity>/``: ``$NEARDUP_CACHE_DIR``, else ``$XDG_CACHE_HOME/neardup``,
  else ``~/.cache/neardup``;
- data that cannot be rebuilt (a trained autoencoder and its plots, the bytes a clean-up's
  links replaced) in ``<data>/catalogs/<identity>/``: ``$NEARDUP_DATA_DIR``, else
  ``$XDG_DATA_HOME/neardup``, else ``~/.local/share/neardup``.
"""

from __future__ import annotations

import os
from pathlib import Path

URL_CATALOG_STEM = "catalog"  # the name their files take: catalog.pdq.faiss, catalog.autoencoder.npz


def cache_dir() -> Path:
    """``$NEARDUP_CACHE_DIR``, else ``$XDG_CACHE_HOME/neardup``, else ``~/.cache/neardup``."""
    return _xdg("NEARDUP_CACHE_DIR", "XDG_CACHE_HOME", ".cache")


def data_dir() -> Path:
    """``$NEARDUP_DATA_DIR``, else ``$XDG_DATA_HOME/neardup``, else ``~/.local/share/neardup``."""
    return _xdg("NEARDUP_DATA_DIR", "XDG_DATA_HOME", ".local/share")


def catalog_folder(identity: str, *, cache: bool) -> Path:
    """This machine's folder for the derived files of the URL catalog `identity`."""
    return (cache_dir() if cache else data_dir()) / "catalogs" / identity


def _xdg(explicit: str, xdg: str, default: str) -> Path:
    if chosen := os.environ.get(explicit):
        return Path(chosen).expanduser()
    base = os.environ.get(xdg, "")
    return (Path(base) if os.path.isabs(base) else Path.home() / default) / "neardup"  # XDG: ignore relative

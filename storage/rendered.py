"""Stored reports: the text a stored decision was last written as, given again while nothing changed.

A stored decision (`decisions`) names its images by id, so writing it out meant reading
every grouped image's record and formatting it again: most of an unchanged `duplicates` run
at a million images (docs/BENCHMARKS.md). The text depends only on the decision's key, the
catalog's generation and the format, so the last text of each is kept in a file (photos.db ->
photos.reports/; a catalog on a server: `Catalog.cache_file`) and read back as it is while all
three are the same.

Like a FAISS file it is a cache: a folder that cannot be written just means writing the text
again next time. The file's first line holds what was said about the text (its number of
groups) and the SHA-256 of both; a file that does not match it (cut short, damaged) is not
used. The name holds the generation: writing one drops every file of another generation
(stale).
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from collections.abc import Mapping
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path

from .catalog import Catalog


@dataclass(frozen=True)
class StoredText:
    """A report's text (UTF-8 bytes) and what was said about it when it was stored."""

    text: bytes
    about: dict


class RenderedStore:
    """The stored reports of one decision (its key digest, `decisions.DecisionStore.key`)."""

    def __init__(self, catalog: Catalog, key: str) -> None:
        self.folder = catalog.cache_file("reports")
        self.key = key

    def _path(self, generation: str, fmt: str) -> Path:
        return self.folder / f"{generation}-{self.key}.{fmt}"

    def read(self, generation: str, fmt: str) -> StoredText | None:
        """The text stored for `fmt` at `generation`; None when there is none, or it is damaged."""
        try:
            with open(self._path(generation, fmt), "rb") as f:
                head = json.loads(f.readline())
                text = f.read()
        except (OSError, ValueError):
            return None
        if not isinstance(head, dict) or not isinstance(about := head.get("about"), dict):
            return None
        return StoredText(text, about) if _checksum(text, about) == head.get("sha256") else None

    def write(self, generation: str, fmt: str, text: bytes, about: Mapping[str, object]) -> None:
        """Store `text` for `fmt` at `generation` (a temporary name, then a rename), then drop
        the files of every other generation."""
        path = self._path(generation, fmt)
        temporary = path.with_name(f"{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
        head = json.dumps({"sha256": _checksum(text, about), "about": dict(about)})
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            # not fsynced: a file the system lost part of in a crash fails its checksum
            with open(temporary, "wb") as f:
                f.write(head.encode() + b"\n")
                f.write(text)
            os.replace(temporary, path)
            for other in self.folder.iterdir():
                if not other.name.startswith(f"{generation}-"):
                    other.unlink(missing_ok=True)
        except OSError:
            with suppress(OSError):
                temporary.unlink(missing_ok=True)


def _checksum(text: bytes, about: Mapping[str, object]) -> str:
    """The SHA-256 of a text and of what was said about it (a damaged count is no count)."""
    digest = hashlib.sha256(json.dumps(about, sort_keys=True).encode())
    digest.update(text)
    return digest.hexdigest()

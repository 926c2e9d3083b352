"""Stored duplicate groups: what `duplicates` last decided, read back while nothing changed.

Even with every pair's evidence stored (`storage.pairs`), deciding again is not free: at
100,000 images in groups of 80, reading 3.9 million judged pairs, vetoing, linking, finding
composites and choosing keepers took over two minutes. The groups depend only on the catalog
(its generation) and on what shaped the decision (the key: feature, threshold, options, the
deciding code's identity), so they are stored under that key and generation as named columns
(`columns_to_bytes`) and reused while both are the same.

Like the pair evidence, they are derived data: writing them leaves the catalog's generation
as it is, and a catalog that cannot be written now (read-only, busy, full) simply decides
again next time. Decisions of an older generation are dropped when a new one is stored;
until then `duplicates` takes from one the keepers of the groups that are as they were.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError

from .catalog import Catalog
from .models import Decision, Setting
from .pairs import Columns, columns_from_bytes, columns_to_bytes
from .schema import CatalogBusyError, CatalogReadOnlyError, DiskFullError


def digest(key: Mapping[str, object]) -> str:
    """What a decision is stored under: a digest, not the key's JSON itself. The key holds the
    user's folders, of any length, and a server's unique index takes a few kilobytes at most."""
    return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()


class DecisionStore:
    """The stored decision of one key in one catalog."""

    def __init__(self, catalog: Catalog, key: Mapping[str, object]) -> None:
        self.catalog = catalog
        self.key = digest(key)

    def read(self) -> tuple[str, Columns] | None:
        """The generation this key's decision was stored at and its columns; None when there
        is none. One of an older generation is stale as a whole, but not every part of it:
        the keeper of a group that is still as it was is still the keeper."""
        with self.catalog.session() as s:
            row = s.execute(select(Decision.generation, Decision.data).where(Decision.key == self.key)).first()
        return None if row is None else (row.generation, columns_from_bytes(row.data))

    def write(self, generation: str, columns: Columns) -> None:
        """Store `columns` as this key's decision at `generation`, in one transaction, in place
        of any other of this key, dropping every decision of another generation (stale).
        Skipped when the catalog has moved on from `generation` since (a decision nobody would
        read must not push out current ones), when it cannot be written now, or when another
        process is storing the same key at the same moment."""
        if self.catalog.readonly:
            return
        try:
            with self.catalog.transaction(derived=True) as s:
                if json.loads(s.get(Setting, "generation").value) != generation:
                    return
                s.execute(delete(Decision).where((Decision.generation != generation) | (Decision.key == self.key)))
                s.add(Decision(key=self.key, generation=generation, data=columns_to_bytes(columns)))
        except (CatalogReadOnlyError, CatalogBusyError, DiskFullError, IntegrityError):
            pass

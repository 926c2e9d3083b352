"""The frozen settings that shape a catalog's stored data, saved when the catalog is created."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields

from .errors import NeardupError


class CatalogMismatchError(NeardupError, ValueError):
    """The catalog on disk was made with other settings (or models) than the ones asked for."""


@dataclass(frozen=True)
class CatalogSettings:
    """What every stored hash and keypoint of one catalog was computed with.

    Changing any field changes what is stored, so a catalog keeps the settings it was created
    with; opening it with code that computes them differently is a `CatalogMismatchError`.
    The models behind vector features are recorded separately (`ModelRecord`): they can be
    added, retrained or dropped without touching the hashes.
    """

    hashes: tuple[str, ...]
    hash_version: int
    decode_side: int = 384
    local_features: str | None = None  # indexer.features.FEATURES_ID, or None: none stored

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> CatalogSettings:
        raw = json.loads(text)
        known = {f.name for f in fields(cls)}
        if unknown := set(raw) - known:
            raise CatalogMismatchError(
                f"catalog settings have fields this neardup does not know: {sorted(unknown)}",
                hint="upgrade neardup",
            )
        raw["hashes"] = tuple(raw["hashes"])
        return cls(**raw)

    def differences(self, other: CatalogSettings) -> dict[str, tuple[object, object]]:
        """Fields whose values differ: name -> (self's, other's)."""
        return {
            f.name: (getattr(self, f.name), getattr(other, f.name))
            for f in fields(self)
            if getattr(self, f.name) != getattr(other, f.name)
        }

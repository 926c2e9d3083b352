"""The frozen settings that shape a catalog's stored data, saved when the catalog is created."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields, replace

SCHEMA_VERSION = 1
ALL_HASHES = ("ahash", "dhash", "phash", "phash256", "whash", "colorhash", "pdq")


class CatalogMismatchError(ValueError):
    """The catalog on disk was created with other settings than the ones asked for."""


@dataclass(frozen=True)
class CatalogSettings:
    """What every stored hash and vector of one catalog was computed with.

    Changing any field changes what is stored, so a catalog keeps the settings it was
    created with; asking for others is a `CatalogMismatchError` unless the caller re-indexes.
    """

    schema_version: int = SCHEMA_VERSION
    hashes: tuple[str, ...] = ALL_HASHES
    hash_version: int = 1
    decode_side: int = 384
    local_features: str | None = "orb-500-v1"  # = indexer.features.FEATURES_ID; None: none stored
    embedder: str = "none"
    model_id: str | None = None
    model_version: int | None = None
    model_dim: int | None = None
    model_input: int | None = None
    model_pooling: str | None = None
    binary_index: str = "IndexBinaryIDMap(IndexBinaryFlat)"
    float_index: str = "IndexIDMap(IndexFlatIP)"

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> CatalogSettings:
        raw = json.loads(text)
        known = {f.name for f in fields(cls)}
        unknown = set(raw) - known
        if unknown:
            raise CatalogMismatchError(
                f"catalog settings have fields this neardup does not know: {sorted(unknown)}; "
                "upgrade neardup"
            )
        raw["hashes"] = tuple(raw.get("hashes", ALL_HASHES))
        raw.setdefault("local_features", None)  # catalogs made before keypoints were stored
        return cls(**raw)

    def differences(self, other: CatalogSettings) -> dict[str, tuple[object, object]]:
        """Fields whose values differ: name -> (self's, other's)."""
        return {
            f.name: (getattr(self, f.name), getattr(other, f.name))
            for f in fields(self)
            if getattr(self, f.name) != getattr(other, f.name)
        }

    def with_embedder(self, **model: object) -> CatalogSettings:
        return replace(self, **model)

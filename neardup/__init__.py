"""neardup: near-duplicate image search. `neardup.open(path)` is the way in."""

from neardup.api import Collection, Stats, open
from neardup.indexer.decode import UnreadableImageError
from neardup.search.duplicates import Group
from neardup.search.features import ThresholdError, UnknownFeatureError
from neardup.search.query import Match
from neardup.storage.errors import NeardupError
from neardup.storage.schema import CatalogNotFoundError, NotACatalogError
from neardup.storage.settings import CatalogMismatchError, CatalogSettings

__all__ = [
    "CatalogMismatchError", "CatalogNotFoundError", "CatalogSettings", "Collection", "Group", "Match",
    "NeardupError", "NotACatalogError", "Stats", "ThresholdError", "UnknownFeatureError", "UnreadableImageError",
    "open",
]
__version__ = "0.1.0"

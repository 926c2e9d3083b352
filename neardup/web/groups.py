"""Duplicate groups for the web: found once per catalog generation and paged from memory, a
keeper a person chose applied to its group, and each group as JSON.

Finding groups reads the whole catalog (seconds on a large one); paging through them must
not. The catalog's generation changes with every write (an index run, a clean-up, "not a
duplicate" feedback), so groups cached under it are exactly as fresh as a new search.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from neardup.api import Collection
from neardup.search.duplicates import Group
from neardup.storage.records import ImageInfo

from .errors import WebError

CHOSEN = "chosen by you in the web app"
DEFAULT_REASON = "largest resolution, then largest file, then oldest, then path"


class NotInAGroupError(WebError, ValueError):
    """An image named as a keeper or a group that is in no duplicate group (now)."""

    status = 422


@dataclass(frozen=True)
class Groups:
    """The duplicate groups of one catalog generation, and where each image is."""

    generation: str
    groups: tuple[Group, ...]
    where: dict[int, int]  # image id -> index of its group

    def page(self, offset: int, limit: int) -> list[tuple[int, Group]]:
        """(index, group) of the groups from `offset` (>= 0), at most `limit`: sliced, not the
        whole list enumerated for each page (hundreds of thousands of groups at a million)."""
        return list(zip(range(offset, offset + limit), self.groups[offset : offset + limit]))

    def holding(self, image_id: int) -> int:
        """The index of the group holding image `image_id`."""
        if image_id not in self.where:
            raise NotInAGroupError(f"image {image_id} is in no duplicate group of the catalog now",
                                   hint="reload the duplicates: the catalog may have changed")
        return self.where[image_id]


class GroupCache:
    """The groups of the newest generation asked for. Not thread-safe by itself: call it
    holding the lock the server's collection is used under."""

    def __init__(self) -> None:
        self._groups: Groups | None = None

    def get(self, collection: Collection) -> Groups:
        generation = collection.catalog.generation()
        if self._groups is None or self._groups.generation != generation:
            found = tuple(collection.duplicates())
            where = {im.image_id: n for n, g in enumerate(found) for im in g.images}
            self._groups = Groups(generation, found, where)
        return self._groups


def with_keepers(groups: Groups, keepers: Iterable[int], only: Sequence[int] | None) -> list[Group]:
    """The groups to plan: those holding an image of `only` (all when None), each with its
    keeper replaced by the image of `keepers` it holds, if any."""
    chosen: dict[int, int] = {}
    for image_id in keepers:
        n = groups.holding(image_id)
        if chosen.get(n, image_id) != image_id:
            raise NotInAGroupError(f"images {chosen[n]} and {image_id} are both chosen as keeper of one group")
        chosen[n] = image_id
    selected = range(len(groups.groups)) if only is None else sorted({groups.holding(i) for i in only})
    return [choose_keeper(groups.groups[n], chosen[n]) if n in chosen else groups.groups[n] for n in selected]


def choose_keeper(group: Group, image_id: int) -> Group:
    """`group` with image `image_id` as its keeper (first), the others by path as before."""
    keeper = next(im for im in group.images if im.image_id == image_id)
    if keeper is group.images[0]:
        return group
    rest = sorted((im for im in group.images if im is not keeper), key=lambda im: im.path)
    images = (keeper, *rest)
    return dataclasses.replace(group, keeper=keeper.path, members=tuple(im.path for im in images), images=images,
                               reason=CHOSEN)


def reason_of(group: Group) -> str:
    """Why the keeper is the keeper."""
    return group.reason or DEFAULT_REASON


def group_json(index: int, group: Group) -> dict[str, Any]:
    keeper = group.images[0]
    ids = {im.path: im.image_id for im in group.images}
    return {
        "index": index,
        "keeper": keeper.image_id,
        "reason": reason_of(group),
        "members": [member_json(im, keeper) for im in group.images],
        "contains": [_contained(c, ids) for c in group.contains],
    }


def member_json(im: ImageInfo, keeper: ImageInfo) -> dict[str, Any]:
    return {
        "id": im.image_id, "path": im.path, "size": im.size, "width": im.width, "height": im.height,
        "format": im.format, "keeper": im is keeper, "exact_copy": im is not keeper and im.sha256 == keeper.sha256,
    }


def _contained(item: Any, ids: dict[str, int]) -> Any:
    """One entry of a group's contains-relations, its paths spelled as image ids too."""
    if isinstance(item, str):
        return {"id": ids.get(item), "path": item}
    if dataclasses.is_dataclass(item):
        return {k: _contained(v, ids) if isinstance(v, str) else v for k, v in dataclasses.asdict(item).items()}
    return item

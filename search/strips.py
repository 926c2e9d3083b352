"""The part of an image its match leaves free, searched for a second picture: a composite's other half.

Two pictures side by side (or stacked) make an image whose hashes and CNN vector resemble
the larger or more textured one; its nearest neighbours hold that picture's group but rarely
the other picture, so the composite is never verified against it, links to one group only,
and `composites` cannot tell it from a copy (a copy with a caption band is the same shape).
The match that links it says where to look: the verified inliers cover one part of it and
leave a strip at one edge free.

1. A *container* is the image of a kept, verified pair whose inliers cover fewer region cells
   than the other image's, and leave MIN_STRIP or more whole columns (or rows) of the
   REGION_GRID grid free at one edge.
2. Its *strip* is where the other image is not: the partner's frame is mapped into the
   container by their homography, and the widest band between that and the container's
   edge (MIN_FREE of its area or more) is the strip, in LAYOUT_SIDE cells.
3. The strip's colours (the stored colour layout cropped to it, shrunk to THUMB x THUMB) are
   compared with every image's whole-frame layout; the TOP most alike that are not in the
   container's group are its *strip candidates* (on the duplicates benchmark's development
   seed, one side-by-side composite's second picture ranks first for 27 of 36). Each
   container's LISTED most alike are kept (`StripLists`) and, after images were added,
   merged with those alone rather than compared with every image again.
4. Each is verified; a *strip link* is one whose inliers lie on the candidate's content: its
   centre matches and STRIP_COVERAGE of its cells hold inliers. The picture is small in the
   composite, so fewer of its cells match than a copy's would (`Verification.on_content`
   asks 0.6).
5. A candidate that does not verify is still a strip link when the strip shows its colours
   cell for cell (`colour_link`): the whole candidate shrunk into the strip (a side-by-side
   picture too small in the composite for its keypoints), or the candidate in place, the
   composite being that picture with another pasted on it (a picture-in-picture: the
   composite's keypoints crowd on the inset's edges and frame, and the background picture
   keeps too few to verify). A pasted picture keeps its colours to within a few levels per
   cell, while distinct pictures that look alike in a 32 x 32 layout differ by more: on the
   duplicates benchmark's development seed no wrong candidate of 1,024 came within both
   COLOUR_MAD and COLOUR_NCC (the nearest, another screenshot's window chrome, 3.4 levels
   at 0.95), and 21 containers' true ones did. The strip must fill MIN_COLOUR_STRIP of the
   container and vary (MIN_SPREAD): a caption band, a toolbar or a margin is shared in place
   by unrelated images, and a second picture is larger. A candidate that is a container
   itself is compared whole only: in place, two screenshots of one app window showing
   different pictures share all but the window. Candidates that are ordinary candidate
   pairs (judged already) are compared by colour only.

A strip link is no duplicate pair: it only tells `composites` that the container shows
another group's picture in another part of itself (for a colour link: in the strip), which
`composites` accepts only when the two matched regions of the container barely overlap. A
caption band or padding is a strip too, and its search finds no picture (or only the
container's own group). Mirrored and rotated pictures in a strip are not searched, nor a
picture pasted inside another when the container links to that other (no edge is free:
docs/BENCHMARKS.md says why).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

import cv2
import numpy as np
from numpy.typing import NDArray

from neardup.indexer.colours import LAYOUT_SIDE, ColourLayout
from neardup.indexer.features import LocalFeatures

from .fusion import hamming_rows
from .linkage import components
from .verify import REGION_GRID, VERIFY_THRESHOLD, Side, Verification, homography, verify

MIN_STRIP = 2  # free columns (or rows) of REGION_GRID: a quarter of the image
MIN_FREE = 0.15  # of the container's area, the least strip
THUMB = 8  # side of the colour thumbnails compared
TOP = 10  # strip candidates verified per container
STRIP_COVERAGE = 0.25
COLOUR_MAD = 2.5  # mean absolute difference of a colour link's cells, in 8-bit levels
COLOUR_NCC = 0.9  # and their least normalised correlation (a brighter copy is no match)
MIN_COLOUR_STRIP = 0.3  # of the container's area, the least strip a colour link is sought in
MIN_SPREAD = 5.0  # standard deviation of the strip's cells, in levels: less is a flat margin
_LAYOUT_CHUNK = 4096  # layouts read at once when building the thumbnails
_SIMILARITIES = 1 << 24  # strip thumbnails compared at once (containers x images): 64 MB of float32
LISTED = 64  # images kept most alike each container's strip (`StripLists`): TOP, itself and a group of 53
_SLACK = 32  # images past a list's width the float32 product picks, scored again exactly
_RESCORED = 256  # containers scored exactly at once (float64: 256 x 96 x 192 x 8 B)
_ROUNDING = 1e-4  # more than a float32 correlation of unit thumbnails (192 terms) can be off the exact one
_WHOLE = 4096  # images scored exactly at once when a tie reaches past the slack

Strip = tuple[int, int, int, int]  # left, top, right, bottom, in LAYOUT_SIDE cells of the container's frame
_FULL = (1 << (REGION_GRID * REGION_GRID)) - 1
_COLUMN = sum(1 << (row * REGION_GRID) for row in range(REGION_GRID))
_ROW = (1 << REGION_GRID) - 1


def free_edge(cells: NDArray[np.uint64]) -> NDArray[np.bool_]:
    """(M,) whether inliers lying in `cells` ((M,) REGION_GRID bitmasks) leave MIN_STRIP or
    more whole columns or rows free at one edge of the image."""
    free = np.zeros(len(cells), bool)
    for line, step in ((_COLUMN, 1), (_ROW, REGION_GRID)):
        for ends in (range(MIN_STRIP), range(REGION_GRID - 1, REGION_GRID - 1 - MIN_STRIP, -1)):
            band = sum(line << (i * step) for i in ends)
            free |= (cells & np.uint64(band)) == 0
    return free


def containers(pairs: NDArray[np.int64], kept: NDArray[np.bool_], regions: NDArray[np.uint64]) -> dict[int, int]:
    """Container image id -> the partner whose match leaves its edge free (the one matching the
    fewest of its cells; on a tie, the one the match covers most of, then the first such pair),
    from where the kept pairs' links lie (`composites.link_regions`; a link without a verified
    region leaves no edge free). The strip lies beyond the partner's frame (`strip_of`): a
    partner that is a copy on a larger canvas, rotated or padded, shows less of itself matched
    and would narrow the strip by its canvas."""
    rows = np.flatnonzero(kept)
    # each kept pair seen from its first image, then from its second
    image = np.stack([pairs[rows, 0], pairs[rows, 1]], axis=1).ravel()
    partner = np.stack([pairs[rows, 1], pairs[rows, 0]], axis=1).ravel()
    side, other = regions[rows].ravel(), regions[rows][:, ::-1].ravel()
    size, other_size = _sizes(side), _sizes(other)
    ok = np.flatnonzero((size <= other_size) & free_edge(side))
    # per image, the fewest cells, then the most of the partner's, then the first in pair order
    order = ok[np.lexsort((ok, -other_size[ok], size[ok], image[ok]))]
    first = np.ones(len(order), bool)
    first[1:] = image[order][1:] != image[order][:-1]
    return dict(zip(image[order][first].tolist(), partner[order][first].tolist()))


def _sizes(cells: NDArray[np.uint64]) -> NDArray[np.int64]:
    """(M,) how many cells each bitmask holds (its bits set: its Hamming distance to none)."""
    return hamming_rows(np.ascontiguousarray(cells, np.uint64).view(np.uint8).reshape(-1, 8), np.zeros(8, np.uint8))


def strip_of(container: LocalFeatures, partner: LocalFeatures, container_layout: ColourLayout,
             partner_layout: ColourLayout) -> Strip | None:
    """The widest band of the container's frame outside the partner's frame mapped into it,
    MIN_FREE of its area or more; None without such a band or a homography."""
    found = homography(partner, container)
    if found is None:
        return None
    w, h = partner_layout.width, partner_layout.height
    corners = np.float32([[0, 0], [w, 0], [w, h], [0, h]]).reshape(-1, 1, 2)
    mapped = cv2.perspectiveTransform(corners, found).reshape(-1, 2)
    scale = np.array([LAYOUT_SIDE / container_layout.width, LAYOUT_SIDE / container_layout.height])
    left, top = np.clip(mapped.min(axis=0) * scale, 0, LAYOUT_SIDE)
    right, bottom = np.clip(mapped.max(axis=0) * scale, 0, LAYOUT_SIDE)
    side = LAYOUT_SIDE
    bands = [(0, 0, int(np.floor(left)), side), (int(np.ceil(right)), 0, side, side),
             (0, 0, side, int(np.floor(top))), (0, int(np.ceil(bottom)), side, side)]
    best = max(bands, key=_area)
    return best if _area(best) >= MIN_FREE * side * side else None


@dataclass(frozen=True)
class StripLists:
    """Each container's `LISTED` images most alike its strip, kept from one run to the next:
    `containers` (C,) ascending, their strips (C,) `packed`, `ids` (C, LISTED) int64 (-1 past
    the last) and `values` (C, LISTED) float64 (minus the thumbnails' correlation), by value
    then id; and the images they were drawn from (`entries`, ascending)."""

    containers: NDArray[np.int64]
    strips: NDArray[np.int64]
    ids: NDArray[np.int64]
    values: NDArray[np.float64]
    entries: NDArray[np.int64]


def strip_candidates(strips: Mapping[int, Strip], kept_pairs: NDArray[np.int64],
                     layouts: Callable[[Sequence[int]], Mapping[int, NDArray[np.uint8]]],
                     ids: Sequence[int], known: StripLists | None = None,
                     changed: Sequence[int] = ()) -> tuple[list[tuple[int, int, Strip]], StripLists]:
    """(container, candidate, strip) for each container's TOP strip candidates among `ids`
    (ascending, those with a layout: `layouts` gives their `ColourLayout.cells`), outside its
    group (the components of `kept_pairs`); and each container's list of the images most
    alike its strip, from which they were picked. A `known` list of a container as it was
    (not among the images `changed` since), with the same strip, that holds no image since
    removed or changed, is merged with the images added or changed since; every other list
    is searched: either way, the list a search of all `ids` gives now."""
    entries = np.asarray(ids, np.int64)
    group = components(kept_pairs)
    sizes = Counter(group.values())
    own = layouts(list(strips))
    wanted = [(image, strip) for image, strip in sorted(strips.items()) if image in own]
    names = np.array([image for image, _ in wanted], np.int64)
    keys = np.array([packed(strip) for _, strip in wanted], np.int64)
    queries = np.stack([_thumbnail(own[image][top:bottom, left:right])
                        for image, (left, top, right, bottom) in wanted]) if wanted else np.zeros((0, 1), np.float32)
    listed = (np.full((len(wanted), LISTED), -1, np.int64), np.full((len(wanted), LISTED), np.inf))
    kept = np.zeros(len(wanted), bool)
    every: list[tuple[NDArray[np.int64], NDArray[np.float32]]] = []

    def thumbnails() -> tuple[NDArray[np.int64], NDArray[np.float32]]:
        if not every:  # every image's thumbnail, read once, and only when a list is searched
            every.append(_thumbnails(entries.tolist(), layouts))
        return every[0]

    if known is not None and len(known.containers) and known.ids.shape[1] == LISTED and len(wanted):
        changed = np.asarray(changed, np.int64)
        removed = np.union1d(np.setdiff1d(known.entries, entries), np.intersect1d(changed, known.entries))
        added = np.union1d(np.setdiff1d(entries, known.entries), np.intersect1d(changed, entries))
        at = np.clip(np.searchsorted(known.containers, names), 0, len(known.containers) - 1)
        kept = (known.containers[at] == names) & (known.strips[at] == keys) & ~np.isin(names, changed)
        kept[kept] = ~np.isin(known.ids[at[kept]], removed).any(axis=1)
        listed[0][kept], listed[1][kept] = known.ids[at[kept]], known.values[at[kept]]
        if kept.any() and len(added):
            more = _most_alike(queries[kept], *_thumbnails(added.tolist(), layouts), LISTED)
            listed[0][kept], listed[1][kept] = _merged((listed[0][kept], listed[1][kept]), more, LISTED)
    if not kept.all():
        listed[0][~kept], listed[1][~kept] = _most_alike(queries[~kept], *thumbnails(), LISTED)
    out = []
    for row, (image, strip) in enumerate(wanted):
        mine = group.get(image)

        def picked(ranked: NDArray[np.int64]) -> list[int]:
            return [other for other in ranked.tolist()
                    if other != -1 and other != image and (mine is None or group.get(other) != mine)][:TOP]

        found = picked(listed[0][row])
        if len(found) < TOP and listed[0][row, -1] != -1:  # its group filled the list: a deeper search
            found = picked(_most_alike(queries[row:row + 1], *thumbnails(), TOP + 1 + sizes[mine])[0][0])
        out += [(image, other, strip) for other in found]
    return out, StripLists(names, keys, listed[0], listed[1], entries)


def _most_alike(queries: NDArray[np.float32], ids: NDArray[np.int64], thumbs: NDArray[np.float32],
                width: int) -> tuple[NDArray[np.int64], NDArray[np.float64]]:
    """(ids, values) (Q, width): each query thumbnail's `width` most alike `thumbs` (of `ids`
    ascending), by minus their correlation summed in float64, then id; -1 at inf past the
    last. A float32 product picks `_SLACK` more, which are scored again: its rounding depends
    on how the product is cut, and a list merged with later images must be a new search's."""
    out = (np.full((len(queries), width), -1, np.int64), np.full((len(queries), width), np.inf))
    if not len(ids) or not len(queries):
        return out
    reach, keep = min(width + _SLACK, len(ids)), min(width, len(ids))
    chunk = max(1, min(_RESCORED, _SIMILARITIES // len(ids)))
    for lo in range(0, len(queries), chunk):
        part = queries[lo:lo + chunk]
        similar = part @ thumbs.T
        if reach < len(ids):
            near = np.argpartition(-similar, reach - 1, axis=1)[:, :reach]
            # the least similarity picked: an image not picked may tie with (or, rounded, beat)
            # it (copies of one picture; a flat strip's thumbnail is 0 and ties with every image)
            least = np.take_along_axis(similar, near, 1).min(axis=1)
        else:
            near, least = np.tile(np.arange(len(ids)), (len(part), 1)), np.full(len(part), -np.inf, np.float32)
        scores = _exact(part, thumbs, near)
        for row in np.flatnonzero(np.sort(scores, axis=1)[:, keep - 1] >= -least.astype(np.float64) - _ROUNDING):
            # every image whose rounded similarity comes within twice the rounding of the least
            # picked is scored exactly: those further cannot reach the list
            close = np.flatnonzero(similar[row] >= least[row] - np.float32(2 * _ROUNDING))
            exact = np.concatenate([_exact(part[row:row + 1], thumbs, close[None, i:i + _WHOLE])
                                    for i in range(0, len(close), _WHOLE)], axis=1)[0]
            first = np.lexsort((ids[close], exact))[:reach]
            near[row], scores[row] = close[first], exact[first]
        found = ids[near]
        order = np.lexsort((found, scores))[:, :keep]
        out[0][lo:lo + chunk, :keep] = np.take_along_axis(found, order, 1)
        out[1][lo:lo + chunk, :keep] = np.take_along_axis(scores, order, 1)
    return out


def _exact(queries: NDArray[np.float32], thumbs: NDArray[np.float32], near: NDArray[np.intp]) -> NDArray[np.float64]:
    """(Q, R) minus each query's correlation with its `near` thumbnails, summed in float64
    along each pair's own row (the same sum whatever else is scored with it)."""
    return -(thumbs[near].astype(np.float64) * queries[:, None, :].astype(np.float64)).sum(axis=2)


def _merged(a: tuple[NDArray[np.int64], NDArray[np.float64]], b: tuple[NDArray[np.int64], NDArray[np.float64]],
            width: int) -> tuple[NDArray[np.int64], NDArray[np.float64]]:
    """Row by row, the first `width` of two ordered lists of different images, in their order."""
    ids, values = np.concatenate([a[0], b[0]], axis=1), np.concatenate([a[1], b[1]], axis=1)
    order = np.lexsort((np.where(ids == -1, np.iinfo(np.int64).max, ids), values))[:, :width]
    return np.take_along_axis(ids, order, 1), np.take_along_axis(values, order, 1)


def strip_link(container: LocalFeatures, candidate: LocalFeatures,
               colours: tuple[ColourLayout, ColourLayout] | None = None, strip: Strip | None = None, *,
               in_place: bool = True) -> Verification | None:
    """The verification of a container against a strip candidate, if it is a strip link; else,
    given both colour layouts and the strip, its colour link (`colour_link`) if it is one."""
    found = verify(container, candidate)
    if found.inliers >= VERIFY_THRESHOLD and _on_picture(found.candidate):
        return found
    if colours is None or strip is None:
        return None
    return colour_link(*colours, strip, in_place=in_place)


def colour_link(container: ColourLayout, candidate: ColourLayout, strip: Strip, *,
                in_place: bool = True) -> Verification | None:
    """The strip of `container` showing `candidate`'s colours cell for cell, whole (shrunk
    into the strip) or, with `in_place`, in place, as a link through the strip:
    VERIFY_THRESHOLD "inliers" on the strip's REGION_GRID cells, all that `composites` reads
    of a link (where in the container it lies). None when the strip is too small or flat, or
    the colours differ."""
    left, top, right, bottom = strip
    if _area(strip) < MIN_COLOUR_STRIP * LAYOUT_SIDE * LAYOUT_SIDE:
        return None
    shown = container.cells[top:bottom, left:right].astype(np.float32)
    if float(shown.reshape(-1, 3).std(axis=0).mean()) < MIN_SPREAD:
        return None
    whole = cv2.resize(candidate.cells, (right - left, bottom - top), interpolation=cv2.INTER_AREA)
    shows = [whole, candidate.cells[top:bottom, left:right]] if in_place else [whole]
    if not any(_same_colours(shown, other.astype(np.float32)) for other in shows):
        return None
    return Verification(VERIFY_THRESHOLD, Side(cells=_region(strip)), Side(cells=_FULL))


def _same_colours(a: NDArray[np.float32], b: NDArray[np.float32]) -> bool:
    a, b = a.reshape(-1, 3), b.reshape(-1, 3)
    if float(np.abs(a - b).mean()) > COLOUR_MAD:
        return False
    a, b = a - a.mean(axis=0), b - b.mean(axis=0)
    return float((a * b).sum()) >= COLOUR_NCC * float(np.sqrt((a * a).sum() * (b * b).sum()))


def _region(strip: Strip) -> int:
    """The REGION_GRID cells whose centres lie in the strip (LAYOUT_SIDE cells), as a bitmask."""
    left, top, right, bottom = strip
    centre = (np.arange(REGION_GRID) + 0.5) * LAYOUT_SIDE / REGION_GRID
    cols = np.flatnonzero((centre >= left) & (centre < right)).tolist()
    rows = np.flatnonzero((centre >= top) & (centre < bottom)).tolist()
    return sum(1 << (row * REGION_GRID + col) for row in rows for col in cols)


def unpacked(strip: int) -> tuple[Strip, bool]:
    """The strip `packed` made into one integer, and whether its candidate may match in place."""
    return (strip & 0xFF, strip >> 8 & 0xFF, strip >> 16 & 0xFF, strip >> 24 & 0xFF), not strip >> 32 & 1


def packed(strip: Strip, *, in_place: bool = True) -> int:
    """A strip as one integer (stored beside its candidates, so a strip that moved, or whose
    candidate may no longer be matched in place, is searched again)."""
    left, top, right, bottom = strip
    return left | top << 8 | right << 16 | bottom << 24 | (0 if in_place else 1 << 32)


def _on_picture(side: Side) -> bool:
    return side.central > 0 and side.centre_matches and side.coverage >= STRIP_COVERAGE


def _area(band: Strip) -> int:
    left, top, right, bottom = band
    return max(0, right - left) * max(0, bottom - top)


def _thumbnail(cells: NDArray[np.uint8]) -> NDArray[np.float32]:
    """A THUMB x THUMB shrink of layout cells, zero-mean and unit-length: compared by its dot
    product, a brighter or darker copy of the same picture still ranks first."""
    small = cv2.resize(np.ascontiguousarray(cells), (THUMB, THUMB), interpolation=cv2.INTER_AREA)
    v = small.astype(np.float32).ravel()
    v -= v.mean()
    return v / max(float(np.linalg.norm(v)), 1e-6)


def _whole_thumbnails(cells: NDArray[np.uint8]) -> NDArray[np.float32]:
    """The `_thumbnail`s of (n, LAYOUT_SIDE, LAYOUT_SIDE, 3) whole layouts, value for value,
    without a resize call per image: one resize of the layouts stacked (a layout's side is a
    multiple of THUMB, so no cell of the shrink spans two of them), then each row centred and
    scaled."""
    n = len(cells)
    small = cv2.resize(np.ascontiguousarray(cells).reshape(n * LAYOUT_SIDE, LAYOUT_SIDE, 3), (THUMB, n * THUMB),
                       interpolation=cv2.INTER_AREA)
    v = small.reshape(n, -1).astype(np.float32)
    v -= v.mean(axis=1, keepdims=True)
    # row by row, as `_thumbnail` takes it: the norm of a stacked axis sums in another order
    norms = np.array([np.linalg.norm(row) for row in v], np.float32)
    return v / np.maximum(norms, np.float32(1e-6))[:, None]


def _thumbnails(ids: Iterable[int], layouts: Callable[[Sequence[int]], Mapping[int, NDArray[np.uint8]]]
                ) -> tuple[NDArray[np.int64], NDArray[np.float32]]:
    """(ids, (n, 3 * THUMB²) thumbnails) of the images among `ids` that have a layout, read in
    chunks (a layout is 3 KB, a thumbnail 768 bytes)."""
    ids = list(ids)
    known: list[int] = []
    rows: list[NDArray[np.float32]] = []
    for start in range(0, len(ids), _LAYOUT_CHUNK):
        found = layouts(ids[start:start + _LAYOUT_CHUNK])
        chunk = [image for image in ids[start:start + _LAYOUT_CHUNK] if image in found]
        if chunk:
            known += chunk
            rows.append(_whole_thumbnails(np.stack([found[image] for image in chunk])))
    if not rows:
        return np.zeros(0, np.int64), np.zeros((0, 3 * THUMB * THUMB), np.float32)
    return np.array(known, np.int64), np.concatenate(rows)


"""Which member of a duplicate group to keep: the one most likely to be the original, and why.

A copy is made *from* an original and adds or loses something on the way: a frame around
the picture (a screenshot, a border, padding), grain, blur, upscaling, a lossless re-save, a
stretch. The rules below compare a group's members trait by trait, in order; each keeps in
the running the members best by its trait (within a tolerance: a trait close to the best is
no evidence), and the first rule that narrows the running gives the reason shown. Old rows
without a trait stay in the running for that rule. `preferred` folders always come first;
the catalog may reorder the rest (`RULES`, `Catalog.keeper_rules`).

Measured on the duplicates benchmark (docs/BENCHMARKS.md): largest resolution then largest
file, the previous rule, kept the original in 28 % of groups on the development seed.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

from neardup.indexer.enlargement import Enlargement
from neardup.storage.errors import NeardupError
from neardup.storage.records import ImageInfo

Centrality = Callable[[ImageInfo], float]  # a member's mean similarity to the group's other members
Turns = Callable[[ImageInfo], float | None]  # a member's turns and mirrors from the others (`TURN_EDITS`)
# The turns and mirrors of `hashes.dihedral`, identity first, as the editing commands that
# make them: a mirror, upside down, a half turn and either quarter turn are one each; the two
# transposes are a quarter turn and a mirror.
TURN_EDITS = (0, 1, 1, 1, 2, 1, 1, 2)
_LOSSLESS = frozenset({"PNG", "BMP", "TIFF", "WEBP"})
_PHOTO_ASPECTS = (1.0, 5 / 4, 4 / 3, 3 / 2, 16 / 10, 16 / 9, 2.0)  # and their inverses
_LOSSY_TOLERANCE = 10.0  # JPEG qualities this close are no evidence of a re-encode
_GRAINIER = 1.0  # log2(1 + noise) this much higher: at least about twice as grainy
# A member is an enlargement of a smaller one (same aspect, at most _REDUCED of its size) when
# reduced to that one's size it loses under _ENLARGED of what that one loses reduced by the same
# factor (which must be at least _SOME_DETAIL: a flat picture loses nothing either way). Chosen
# on the duplicates benchmark's development seed (docs/BENCHMARKS.md): at 0.3 / 0.35 / 0.4 /
# 0.5 the original was kept in 276 / 279 / 280 / 281 of 365 groups (259 without the rule), and
# from 0.4 on one more downscaled copy won over its original. The lower one, because the two
# errors differ: an enlarged copy kept holds all the original's detail, a reduced one does not.
_ENLARGED = 0.35
_REDUCED = 0.9
_SOME_DETAIL = 0.02
_SAME_ASPECT = 0.02  # |log| of the ratio of two aspect ratios
# The traits of a lossless re-save of a JPEG and of the JPEG (`_same_pixels`): over the 159
# PNG re-saves of the duplicates bench's eight development draws, grain within 0.001 and the
# enlargement records' largest difference 0 in half, at most 0.015 in 156, 0.046 at most (a
# flat picture, whose shares of detail are small and move most); between 29 TIFF masters and
# their same-size JPEG exports at quality 85, 0.017 to 0.20, 26 of them over 0.05
# (docs/BENCHMARKS.md). A master's traits within these bounds of its export's are taken for a
# re-save's, as every lossless file was before: the bounds err on that side.
_SAME_NOISE = 0.01
_SAME_LOSSES = 0.05
# A stretched copy keeps its original's detail along the side it was not stretched: reduced
# along it, it loses at least this share of what the original loses (0.7 and more on real
# photos stretched 1.3 to 2 times, tests/test_enlargement.py), where a copy holding the
# picture reduced, in a box or a collage, is sharper there and loses more.
_SIDE_AGREES = 0.7
# Along the side it was stretched, reduced back, it loses under this share of what the
# original loses. On the five test photos stretched 1.18-1.43 times along either side the
# share was 0.21-0.68, while an original beside its copy squeezed as much (the same geometry
# with the roles reversed: the copy is sharper per pixel along that side) had 0.69-1.75; 0.6
# keeps a margin from the squeezes. At the whole-image _ENLARGED (0.35), 22 of the duplicates
# bench's 83 stretched copies in its two development draws were told, at 0.6 67; there the
# keeper kept more originals still up to 0.8 (docs/BENCHMARKS.md), but that bench holds no
# squeezed copy to say what a higher share costs.
_STRETCHED = 0.6


@dataclass(frozen=True)
class Added:
    """Ids of images found, by geometric verification beside another member of their group,
    to show it whole on a blank canvas or inside a mostly flat surround (`search.canvas`), or
    to hold an overlay it lacks (`search.overlay`)."""

    canvas: frozenset[int] = frozenset()
    overlay: frozenset[int] = frozenset()


@dataclass(frozen=True)
class Context:
    """What a rule may look at besides the member: the whole group, the preferred folders,
    each member's mean similarity to the others (their fused hash and CNN evidence), when
    known, what members add to others (`Added`), the members still in the running when the
    rule is asked (empty: the whole group), and how many turns and mirrors each member is from
    the others (`Turns`), when known."""

    group: Sequence[ImageInfo]
    prefer: Sequence[str] = ()
    centrality: Centrality | None = None
    added: Added = Added()
    running: Sequence[ImageInfo] = ()
    turns: Turns | None = None


@dataclass(frozen=True)
class Rule:
    name: str
    reason: str  # why the keeper won, when this rule decided
    key: Callable[[ImageInfo, Context], float | None]  # lower is better; None: unknown
    tolerance: float = 0.0


class UnknownRuleError(NeardupError, ValueError):
    """A keeper rule name that is not one of `RULES`."""


def _preferred(im: ImageInfo, ctx: Context) -> float:
    return 0.0 if any(im.path == d or im.path.startswith(d.rstrip("/") + "/") for d in ctx.prefer) else 1.0


def _framed(im: ImageInfo, ctx: Context) -> float:
    """1 for a member that shows all of another member on a blank canvas (padded, rotated or
    warped onto it) or inside a mostly flat surround (a window: `search.canvas`), or with a
    content box (a frame, border or window around the picture) that has more pixels than a
    member without one: a frame is added around a picture. A boxed member no larger than every
    box-less one is no evidence: an original may hold a natural box (a picture on a wall, a
    page) that its rotated or warped copies lose."""
    if im.image_id in ctx.added.canvas:
        return 1.0
    if not im.has_box:
        return 0.0
    pixels = (im.width or 0) * (im.height or 0)
    return 1.0 if any(not o.has_box and (o.width or 0) * (o.height or 0) < pixels for o in ctx.group) else 0.0


def _overlaid(im: ImageInfo, ctx: Context) -> float:
    """1 for a member holding a caption, logo, watermark or other overlay another member lacks
    (`search.overlay`): the overlay is pasted on a copy. It makes the copy's file larger."""
    return 1.0 if im.image_id in ctx.added.overlay else 0.0


def _enlarged(im: ImageInfo, ctx: Context) -> float | None:
    """1 for a member that is an enlargement of a smaller member: reduced to that one's size
    it would lose far less detail than that one loses reduced by the same factor, so its extra
    pixels hold nothing the smaller one lacks (`indexer.enlargement`). An original reduced
    loses its own finest detail, as much as its reduced copy does, so a downscaled copy never
    accuses it. Beside a member of another aspect with one side as long, along the other side:
    a stretched copy is an enlargement along one side (`_stretched`)."""
    return _lacks_detail(im, ctx, same_size=False)


def _blurred(im: ImageInfo, ctx: Context) -> float | None:
    """1 for a member that, halved, loses far less detail than a member of its size does:
    blurred (or enlarged from a part). Measured in the middle of the picture, so that the
    sharp text of a caption or the edge of a warp is no detail, as it is to a percentile of
    the whole image's gradient; and only between members of one size, since a reduced copy is
    sharper per pixel than its original."""
    return _lacks_detail(im, ctx, same_size=True)


def _lacks_detail(im: ImageInfo, ctx: Context, *, same_size: bool) -> float | None:
    """1 when another member (`same_size`: within _REDUCED of this one's size, else at most
    _REDUCED of it) holds detail this one lacks: reduced by one factor (half, or their size
    ratio), this one loses under _ENLARGED of what the other loses, which is at least
    _SOME_DETAIL (a flat picture loses nothing either way). A member saved lossier than this
    one (a JPEG beside a lossless file, or at a lower quality), at least twice as grainy (grain
    is no detail) accuses no one: a soft lossless original would otherwise lose to its own
    half-size JPEG. One of another aspect accuses only a stretch of itself (`_stretched`)."""
    if im.enlargement is None or not im.width or not im.height:
        return None
    for other in {o.sha256 or f"#{o.image_id}": o for o in ctx.group}.values():
        if other is im or (other.sha256 and other.sha256 == im.sha256) or not _may_accuse(other, im):
            continue
        if abs(math.log(im.width * other.height / (im.height * other.width))) > _SAME_ASPECT:
            if not same_size and _stretched(im, other):
                return 1.0
            continue
        ratio = max(other.width, other.height) / max(im.width, im.height)
        if not (_one_scale(im, other) if same_size else ratio <= _REDUCED):
            continue
        if _less_detail(im, other, 0.5 if same_size else ratio):
            return 1.0
    return 0.0


def _stretched(im: ImageInfo, other: ImageInfo) -> bool:
    """`im` is `other` stretched along one side: that side longer (`other`'s at most _REDUCED
    of it), the other side about as long, and reduced back along it `im` loses much less
    (_STRETCHED), while along the other side it loses about what `other` loses (_SIDE_AGREES).
    Only then, and without a content box in either, do the sides' lengths tell the scale of
    the picture in them: a canvas, a frame or a composite holds the picture at a scale of its
    own (two pictures side by side, each reduced, can be as wide as one of them), and a picture
    reduced into a box is sharper per pixel along both sides."""
    if im.has_box or other.has_box:
        return False
    width, height = other.width / im.width, other.height / im.height
    for side, ratio, rest, length in (("across", width, "down", height), ("down", height, "across", width)):
        if ratio <= _REDUCED < length < 1 / _REDUCED and _less_detail(im, other, ratio, side, share=_STRETCHED):
            lost, theirs = _loss(im.enlargement, ratio, rest), _loss(other.enlargement, ratio, rest)
            if lost is not None and theirs is not None and lost >= _SIDE_AGREES * theirs:
                return True
    return False


def _less_detail(im: ImageInfo, other: ImageInfo, reduction: float, side: str | None = None, *,
                 share: float = _ENLARGED) -> bool:
    """`im` reduced by `reduction` (along `side` only) loses under `share` of what `other`
    loses reduced by as much, which is at least _SOME_DETAIL."""
    lost = _loss(im.enlargement, reduction, side)
    theirs_lost = None if other.enlargement is None else _loss(other.enlargement, reduction, side)
    return lost is not None and theirs_lost is not None and theirs_lost >= _SOME_DETAIL \
        and lost < share * theirs_lost


def _may_accuse(other: ImageInfo, im: ImageInfo) -> bool:
    """Whether `other` may tell `im` lacks detail: not saved lossier, nor at least twice as
    grainy (grain is no detail)."""
    if not other.width or not other.height or _lossier(other, im):
        return False
    grain, their_grain = _grain(im), _grain(other)
    return grain is None or their_grain is None or their_grain - grain <= _GRAINIER


@functools.lru_cache(maxsize=65536)
def _loss(data: bytes, reduction: float, side: str | None) -> float | None:
    """`Enlargement.loss` of a stored enlargement record. Each member is compared with every
    other, mostly at one reduction (a half): parsed and interpolated once, not per comparison
    (a quarter of the keeper's time in groups of 80)."""
    return Enlargement.from_bytes(data).loss(reduction, side)


def _lossier(other: ImageInfo, im: ImageInfo) -> bool:
    """`other` was saved with more loss than `im`, or may have been (a JPEG of unknown quality,
    beside a file of another format)."""
    if other.format != "JPEG":
        return False
    if im.format != "JPEG":
        return True
    return other.jpeg_quality is None or im.jpeg_quality is None or other.jpeg_quality < im.jpeg_quality - _LOSSY_TOLERANCE


def _turned(im: ImageInfo, ctx: Context) -> float | None:
    """The turns and mirrors (`TURN_EDITS`) the others are from it, summed: each copy was
    turned from the original on its own, so a mirrored and a quarter-turned copy are one step
    from it and two from each other. Similarity cannot tell: the CNN barely sees a mirror.
    Only from three members, each related so to every other (`Turns`)."""
    if ctx.turns is None or len(ctx.group) < 3:
        return None
    return ctx.turns(im)


def _central(im: ImageInfo, ctx: Context) -> float | None:
    """Minus the mean similarity to the others: each copy derives from the original on its own
    way, so the original is the one closest to all (only meaningful from three members)."""
    if ctx.centrality is None or len(ctx.group) < 3:
        return None
    return -ctx.centrality(im)


def _noise(im: ImageInfo, ctx: Context) -> float | None:
    """1 for a member at least about twice as grainy as another still in the running and shown
    at its scale (added grain). Compression smooths a photo's own sensor noise away, and that
    must not make a re-encoded copy look like the original: a lossier copy is out of the
    running by now (`least-lossy`). Nor may reducing, which averages grain away, make a
    thumbnail look like the original of a grainy photo: noise is measured at native size
    (`indexer.decode`), so only members of about one size compare."""
    grain = _grain(im)
    if grain is None:
        return None
    return 1.0 if any(grain - theirs > _GRAINIER for o in ctx.running or ctx.group if o is not im
                      and _one_scale(im, o) and (theirs := _grain(o)) is not None) else 0.0


def _one_scale(im: ImageInfo, other: ImageInfo) -> bool:
    """Their long sides within _REDUCED of each other."""
    if not im.width or not im.height or not other.width or not other.height:
        return False
    return _REDUCED < max(other.width, other.height) / max(im.width, im.height) < 1 / _REDUCED


def _grain(im: ImageInfo) -> float | None:
    return None if im.noise is None else math.log2(1.0 + im.noise)


def _resaved(im: ImageInfo, ctx: Context) -> float:
    """A lossless file the size of a JPEG member that could be the original is taken for a
    re-save of it (an edit saved as PNG, a screenshot): the same picture in a larger file.
    A JPEG re-encoded lossier than another member is a copy itself (`least-lossy`), more
    likely made from the lossless file than the other way round, so it accuses no one: a
    lossless original with a same-size low-quality JPEG copy keeps its place. Nor does a JPEG
    whose pixels the lossless file does not hold (`_same_pixels`): a master's JPEG export."""
    best = max((o.jpeg_quality for o in ctx.group if o.jpeg_quality is not None), default=None)

    def could_be_original(o: ImageInfo) -> bool:
        return o.jpeg_quality is None or best is None or o.jpeg_quality >= best - _LOSSY_TOLERANCE

    same_size = any(o.format == "JPEG" and (o.width, o.height) == (im.width, im.height) and could_be_original(o)
                    and _same_pixels(im, o) for o in ctx.group)
    return 1.0 if (im.format or "") in _LOSSLESS and same_size else 0.0


def _same_pixels(im: ImageInfo, other: ImageInfo) -> bool:
    """Whether two members' traits, measured on their pixels at native size, say they hold the
    same pixels: their grain alike and what reducing each would lose alike, within what two
    ways of reading one JPEG's pixels leave (its luma decoded by libjpeg, or taken from the
    RGB of a lossless re-save). True where they cannot tell: a member without a record (flat
    or tiny, or measured by an older neardup), or records measured at different scales (a
    large JPEG's, on its luma decoded reduced)."""
    if im.noise is None or other.noise is None or im.enlargement is None or other.enlargement is None or \
            len(im.enlargement) != len(other.enlargement):
        return True
    mine, theirs = Enlargement.from_bytes(im.enlargement), Enlargement.from_bytes(other.enlargement)
    if mine.scale != theirs.scale:
        return True
    gap = max(abs(a - b) for a, b in zip((*mine.losses, *mine.across, *mine.down),
                                         (*theirs.losses, *theirs.across, *theirs.down)))
    return abs(im.noise - other.noise) <= _SAME_NOISE and gap <= _SAME_LOSSES


def _lossy(im: ImageInfo, ctx: Context) -> float | None:
    """How much a JPEG lost when saved (100 minus its quality): a copy re-encoded at a low
    quality has thrown detail away for good. Only JPEGs are compared: a lossless file may
    hold a JPEG's losses (an edit or screenshot saved as PNG), so its format says nothing."""
    return None if im.jpeg_quality is None else 100.0 - im.jpeg_quality


def _odd_aspect(im: ImageInfo, ctx: Context) -> float | None:
    """The share of other members whose aspect ratio differs from this one's (a stretch
    changes it): from three members, the common aspect is the native one."""
    if len(ctx.group) < 3 or not im.width or not im.height:
        return None
    mine = im.width / im.height
    return sum(abs(math.log(mine * o.height / o.width)) > 0.02 for o in ctx.group if o.width and o.height) / len(ctx.group)


def _unusual_aspect(im: ImageInfo, ctx: Context) -> float | None:
    """Distance of the aspect ratio from the nearest usual photo aspect (1:1, 4:3, 3:2, 16:9, …)."""
    if not im.width or not im.height:
        return None
    aspect = im.width / im.height
    return min(abs(math.log(aspect * r)) for a in _PHOTO_ASPECTS for r in (a, 1 / a))


def _no_camera(im: ImageInfo, ctx: Context) -> float:
    return 0.0 if im.camera else 1.0


def _later(im: ImageInfo, ctx: Context) -> float | None:
    return None if not im.taken_at else _seconds(im.taken_at)


def _smaller(im: ImageInfo, ctx: Context) -> float | None:
    return None if not im.width or not im.height else -float(im.width * im.height)


def _smaller_file(im: ImageInfo, ctx: Context) -> float | None:
    """A JPEG's size says how much of the picture it kept; a lossless file's says nothing (a
    brightened or filtered copy compresses worse than its original and would win)."""
    return None if (im.format or "") in _LOSSLESS else -float(im.size)


RULES: dict[str, Rule] = {rule.name: rule for rule in (
    Rule("preferred", "in a preferred folder", _preferred),
    Rule("full-frame", "no frame, border, window or blank canvas around the picture", _framed),
    Rule("no-overlay", "no caption, logo or other overlay that another member lacks", _overlaid),
    Rule("not-enlarged", "not an enlarged copy, whole or stretched along one side (its extra pixels hold no detail "
         "a smaller member lacks)", _enlarged),
    Rule("unturned", "the others are turned or mirrored from it in the fewest steps", _turned),
    Rule("central", "closest to every other member (the copies derive from it)", _central, 0.005),
    Rule("not-resaved", "not a lossless re-save of a JPEG", _resaved),
    Rule("least-lossy", "saved at a higher quality (the others are re-encoded lossier)", _lossy, _LOSSY_TOLERANCE),
    Rule("low-noise", "less grain (others of its size are at least twice as noisy)", _noise),
    Rule("detail", "not blurred (others of its size lose far less detail when halved)", _blurred),
    Rule("native-aspect", "the aspect ratio most members share (not stretched)", _odd_aspect),
    Rule("usual-aspect", "a usual photo aspect ratio (not stretched)", _unusual_aspect, 0.01),
    Rule("camera", "a camera's EXIF record", _no_camera),
    Rule("earliest", "captured earliest", _later),
    Rule("resolution", "largest resolution", _smaller),
    Rule("size", "largest file", _smaller_file),
    # last: a library copied without its dates has every mtime "now" in write order
    Rule("oldest", "the oldest file (copies are made later)", lambda im, ctx: float(im.mtime_ns)),
)}
DEFAULT_ORDER = tuple(RULES)


def check_order(names: Sequence[str]) -> tuple[str, ...]:
    """A rule order as given, with every rule it leaves out appended in the default order."""
    unknown = [n for n in names if n not in RULES]
    if unknown:
        raise UnknownRuleError(f"unknown keeper rules {unknown}; the rules are: {', '.join(RULES)}")
    return (*dict.fromkeys(names), *(n for n in DEFAULT_ORDER if n not in names))


def choose_keeper(images: Sequence[ImageInfo], *, prefer: Sequence[str] = (), order: Sequence[str] = DEFAULT_ORDER,
                  centrality: Centrality | None = None, added: Added = Added(),
                  turns: Turns | None = None) -> tuple[ImageInfo, str]:
    """The member to keep and the reason. `prefer` folders win first, whatever `order` says.
    `centrality`, `added` and `turns`: see `Context`."""
    ctx = Context(images, prefer, centrality, added, turns=turns)
    running, reasons = list(images), []
    names = ["preferred", *(n for n in check_order(order) if n != "preferred")] if prefer else check_order(order)
    for name in names:
        rule = RULES[name]
        step = replace(ctx, running=tuple(running))
        values = [rule.key(im, step) for im in running]
        known = [v for v in values if v is not None]
        if not known:
            continue
        best = min(known)
        narrowed = [im for im, v in zip(running, values) if v is None or v <= best + rule.tolerance]
        if len(narrowed) < len(running):
            reasons.append(rule.reason)
            running = narrowed
        if len(running) == 1:
            break
    keeper = min(running, key=lambda im: im.path)
    return keeper, "; ".join(reasons) if reasons else "all alike; first by path"


def _seconds(iso: str) -> float | None:
    from datetime import datetime

    try:
        return datetime.fromisoformat(iso).timestamp()
    except ValueError:
        return None

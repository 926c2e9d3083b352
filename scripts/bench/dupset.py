"""Build one seed of the duplicates benchmark from its half of the shared corpus.

Two halves: a corpus image belongs to the ``dev`` or the ``test`` half by a hash of its file
name (stable when the corpus grows), and each seed's randomness is its own. Tune on ``dev``
(and ``dev2`` to ``dev8``, more draws from the dev half: other roles, edits and look-alike sets
over the same corpus images, for rules that one draw has too few cases of); only report ``test``.

Roles of the half's images (drawn with the seed):

- **pool** originals, each with 1–3 copies from ``transforms.FAMILIES`` and the keeper traps
  ``dup_transforms.LARGER``; some pool originals also get a shared-overlay copy;
- **singles**: distinct originals with no copy;
- **hidden** pictures that appear only under a shared overlay (no original in the collection);
- **composites** of two pool or single originals (each original in at most one composite);
- **template** backdrops and clip-art stamps for the look-alike sets.

Layout of ``work``::

    images/img01234.jpg …   anonymous names in a seeded order, every mtime equal (no hint)
    truth.csv               image, origin, family, edit, set, is_original, contains, source,
                            width, height, bytes
    dataset.json            the plan it was built from (a rebuild is skipped while equal)

Truth: images with the same ``origin`` are duplicates of one another. ``is_original`` marks the
untouched first file of an origin (a byte copy of the corpus file, or a template variant as
first written). A composite is its own origin; ``contains`` lists the two origins it shows. Two
corpus files that show one photograph (``SAME_PICTURE``) are one origin, with two originals.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import shutil
import sys
from collections.abc import Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path

import numpy as np
from PIL import Image

from bench import dup_transforms as dt
from bench import transforms
from bench.dataset import digest, read_manifest

SEEDS = {"dev": 1, "test": 2, "dev2": 3, "dev3": 4, "dev4": 5, "dev5": 6, "dev6": 7, "dev7": 8, "dev8": 9}
_HALF = {f"dev{n}": "dev" for n in range(2, 9)}  # seeds drawn from another seed's half
DATASET_VERSION = 1
FIXED_MTIME = 1_577_836_800   # 2020-01-01: no file looks older than another
ORIGINAL = "original"
TEMPLATE_SAVE = dt.Save("JPEG", 92)   # a template variant's first file, as the corpus files are
TEMPLATE_COPY_EDITS = (("jpeg", "mild"), ("downscale", "mild"), ("crop_center", "mild"), ("blur", "mild"),
                       ("noise", "mild"))   # copies that keep a template variant's identity (no recolour)
STAMPS = "tuxpaint-stamps-default"
ASTRO = "stellarium-data"
# Corpus files that are another corpus file's photograph, re-coloured and resized by another
# package (NASA's Earth and Neptune in Tux Paint's stamps and in GCompris), so a copy of one is a
# copy of the other: each maps to the file whose origin it shares. Found by looking at every
# pair of files from different packages whose SSCD cosine is 0.55 or more (`bench.sscd`: the
# planets of the two packages, and the Hubble deep field beside star clusters) and at every
# group `neardup duplicates` makes of the corpus (dreidels that differ by a letter: distinct);
# the other planets are other photographs.
SAME_PICTURE = {
    "tuxpaint-stamps-default__planets_3_earth.jpg": "gcompris-qt-data__resource_earth.jpg",
    "tuxpaint-stamps-default__planets_8_neptune.jpg": "gcompris-qt-data__resource_neptune.jpg",
}


@dataclass(frozen=True)
class Plan:
    """What to build for one seed (saved as ``dataset.json``)."""

    seed: int
    half: str
    pool: int                   # originals with copies; 0 = every image left over
    singles: int
    copy_weights: tuple[float, float, float]   # chance of 1, 2, 3 copies per pool original
    overlay_sets: int
    overlay_size: int           # pictures per overlay set
    overlay_hidden: int         # of which have no original in the collection
    composites: int             # per composite kind
    template_sets: int          # per template kind (letters, colours)
    template_variants: int
    template_copies: int        # variants per set that get one copy
    corpus_digest: str = ""
    version: int = DATASET_VERSION


FULL = {"pool": 0, "singles": 130, "copy_weights": (0.65, 0.27, 0.08), "overlay_sets": 8, "overlay_size": 16,
        "overlay_hidden": 6, "composites": 40, "template_sets": 8, "template_variants": 5,
        "template_copies": 2}
QUICK = {"pool": 56, "singles": 12, "copy_weights": (0.6, 0.3, 0.1), "overlay_sets": 2, "overlay_size": 8,
         "overlay_hidden": 2, "composites": 4, "template_sets": 1, "template_variants": 4,
         "template_copies": 1}


@dataclass(frozen=True)
class Item:
    """One row of ``truth.csv``."""

    image: str
    origin: str
    family: str
    edit: str
    set: str
    is_original: bool
    contains: str        # "originA;originB" for a composite, else ""
    source: str
    width: int = 0
    height: int = 0
    bytes: int = 0


@dataclass(frozen=True)
class Job:
    """How to make one image: a recipe, its corpus inputs and parameters, its rng stream."""

    item: Item
    recipe: str                 # original | copy | larger | overlay | composite | letter | colour
    inputs: tuple[str, ...]     # corpus file names
    params: tuple[str, ...]
    save: dt.Save
    stream: int


class CorpusTooSmallError(ValueError):
    """The corpus half has fewer images than the plan's roles need."""


def half_of(name: str) -> str:
    """"dev" or "test": the corpus half of a file name, from the first byte of its SHA-256."""
    return "dev" if hashlib.sha256(name.encode()).digest()[0] % 2 == 0 else "test"


def make_plan(seed_name: str, *, quick: bool, corpus_digest: str) -> Plan:
    """The plan of a seed (`SEEDS`), full size or ``quick`` (~200 images)."""
    if seed_name not in SEEDS:
        raise KeyError(f"unknown seed {seed_name!r}; seeds: {sorted(SEEDS)}")
    sizes = QUICK if quick else FULL
    return Plan(seed=SEEDS[seed_name], half=_HALF.get(seed_name, seed_name), corpus_digest=corpus_digest, **sizes)


def assign_roles(images: Sequence[tuple[str, str]], plan: Plan) -> dict[str, list[str]]:
    """Corpus file names of each role, drawn from the plan's half with the plan's seed."""
    mine = sorted((n, s) for n, s in images if half_of(n) == plan.half)
    order = [mine[i] for i in np.random.default_rng([plan.seed, 0]).permutation(len(mine))]
    photos = [n for n, s in order if s not in (STAMPS, ASTRO)]
    stamps = [n for n, s in order if s == STAMPS]
    roles = {"backdrops": photos[:2 * plan.template_sets], "stamps": stamps[:plan.template_sets]}
    used = set(roles["backdrops"]) | set(roles["stamps"])
    rest = [n for n, _ in order if n not in used]
    hidden = plan.overlay_sets * plan.overlay_hidden
    roles["hidden"], roles["singles"] = rest[:hidden], rest[hidden:hidden + plan.singles]
    roles["pool"] = rest[hidden + plan.singles:]
    if plan.pool:
        roles["pool"] = roles["pool"][:plan.pool]
    need = plan.overlay_sets * (plan.overlay_size - plan.overlay_hidden)
    if len(roles["stamps"]) < plan.template_sets or len(roles["pool"]) < need:
        raise CorpusTooSmallError(f"half {plan.half!r} has {len(mine)} images: too few for {plan}")
    return roles


def _copy_families() -> list[tuple[str, str]]:
    """Every (family, strength) a pool copy can get, in dealing order: both strengths of each
    ordinary family and each keeper trap twice, interleaved so that a run of slots spreads over
    all of them (a keeper trap then gets as many copies as an ordinary family)."""
    ordinary = [(f, s) for s in transforms.STRENGTHS for f in transforms.FAMILIES]
    larger = [(f, "") for f in dt.LARGER] * 2
    out, step = [], len(ordinary) / len(larger)
    for i, fam in enumerate(ordinary):
        out.append(fam)
        out += larger[int(i / step):int((i + 1) / step)]
    return out


def _pool_jobs(plan: Plan, roles: dict[str, list[str]], sources: dict[str, str]) -> tuple[list[Job], list[str]]:
    """Originals and copies of the pool; returns the jobs and the pool originals reserved for
    shared overlays (one of their copies is the overlay)."""
    rng = np.random.default_rng([plan.seed, 5])
    counts = rng.choice([1, 2, 3], size=len(roles["pool"]), p=list(plan.copy_weights))
    overlaid = set(roles["pool"][:plan.overlay_sets * (plan.overlay_size - plan.overlay_hidden)])
    menu = _copy_families()
    offset = int(rng.integers(0, len(menu)))
    jobs: list[Job] = []
    for name, count in zip(roles["pool"], counts.tolist(), strict=True):
        jobs.append(_original(name, sources))
        for _ in range(count - (name in overlaid)):
            family, strength = menu[offset % len(menu)]
            offset += 1
            item = Item("", name, family, f"{family}/{strength}" if strength else family, "", False, "",
                        sources[name])
            if strength:
                jobs.append(Job(item, "copy", (name,), (family, strength), dt.RESHARED, 0))
            else:
                jobs.append(Job(item, "larger", (name,), (family,), dt.LARGER[family][1], 0))
    return jobs, [n for n in roles["pool"] if n in overlaid]


def _original(name: str, sources: dict[str, str]) -> Job:
    """The untouched corpus file."""
    return Job(Item("", name, ORIGINAL, ORIGINAL, "", True, "", sources[name]), "original", (name,), (),
               dt.Save("JPEG"), 0)


def _overlay_jobs(plan: Plan, bases: list[str], hidden: list[str], sources: dict[str, str]) -> list[Job]:
    """Each overlay set: the same overlay on ``overlay_size`` distinct pictures, of which
    ``overlay_hidden`` have no original in the collection."""
    per = plan.overlay_size - plan.overlay_hidden
    jobs = []
    for s in range(plan.overlay_sets):
        kind = dt.OVERLAY_KINDS[s % len(dt.OVERLAY_KINDS)]
        members = bases[s * per:(s + 1) * per] + hidden[s * plan.overlay_hidden:(s + 1) * plan.overlay_hidden]
        for name in members:
            item = Item("", name, f"shared_{kind}", f"{kind} set {s}", f"overlay{s:02d}", False, "", sources[name])
            jobs.append(Job(item, "overlay", (name,), (kind, str(s)), dt.RESHARED, 0))
    return jobs


def _composite_jobs(plan: Plan, roles: dict[str, list[str]], sources: dict[str, str]) -> list[Job]:
    """Composites of two originals each (pool or singles; an original in one composite at most).
    Backgrounds (``a``) are photos first, then astro images, never clip-art on white; a sticker's
    ``b`` is a clip-art stamp while there are any, as stickers usually are."""
    rng = np.random.default_rng([plan.seed, 6])
    candidates = [roles["pool"][i] for i in rng.permutation(len(roles["pool"]))] + roles["singles"]
    scenes = ([n for n in candidates if sources[n] not in (STAMPS, ASTRO)]
              + [n for n in candidates if sources[n] == ASTRO])
    stickers = [n for n in candidates if sources[n] == STAMPS]
    jobs, used = [], set()
    for kind in dt.COMPOSITES:
        for i in range(plan.composites):
            a = next(n for n in scenes if n not in used)
            used.add(a)
            b = next(n for n in (stickers + candidates if kind == "composite_sticker" else candidates)
                     if n not in used)
            used.add(b)
            origin = f"{kind}{i:03d}"
            item = Item("", origin, kind, kind.removeprefix("composite_"), origin, False, f"{a};{b}", "composite")
            jobs.append(Job(item, "composite", (a, b), (kind,), dt.RESHARED, 0))
    return jobs


def _template_jobs(plan: Plan, roles: dict[str, list[str]]) -> list[Job]:
    """Look-alike sets: ``template_variants`` distinct images on one layout (a different letter,
    or a different object colour), and one copy each of ``template_copies`` variants."""
    rng = np.random.default_rng([plan.seed, 7])
    jobs = []
    for s in range(plan.template_sets):
        for kind in ("letter", "colour"):
            backdrop = roles["backdrops"][2 * s + (kind == "colour")]
            inputs = (backdrop,) if kind == "letter" else (backdrop, roles["stamps"][s])
            pick = rng.choice(list(dt.GLYPHS if kind == "letter" else dt.COLOURS), size=plan.template_variants,
                              replace=False)
            set_id = f"{kind}s{s:02d}"
            for v, value in enumerate(pick.tolist()):
                origin = f"{set_id}-{value}"
                family = f"template_{kind}"
                item = Item("", origin, family, f"{kind} {value}", set_id, True, "", "template")
                jobs.append(Job(item, kind, inputs, (str(s), value), TEMPLATE_SAVE, 0))
                if v < plan.template_copies:
                    fam, st = TEMPLATE_COPY_EDITS[int(rng.integers(len(TEMPLATE_COPY_EDITS)))]
                    copy = replace(item, edit=f"{kind} {value} copy {fam}/{st}", is_original=False)
                    jobs.append(Job(copy, kind, inputs, (str(s), value, fam, st), dt.RESHARED, 0))
    return jobs


def plan_jobs(images: Sequence[tuple[str, str]], plan: Plan) -> list[Job]:
    """Every image of the seed as a job, named anonymously in a seeded order."""
    sources = dict(images)
    roles = assign_roles(images, plan)
    jobs, bases = _pool_jobs(plan, roles, sources)
    jobs += [_original(n, sources) for n in roles["singles"]]
    jobs += _overlay_jobs(plan, bases, roles["hidden"], sources)
    jobs += _composite_jobs(plan, roles, sources)
    jobs += _template_jobs(plan, roles)
    numbers = np.random.default_rng([plan.seed, 1]).permutation(len(jobs)).tolist()
    named = [replace(job, stream=i, item=replace(job.item, image=f"img{num:05d}{job.save.suffix}"))
             for i, (job, num) in enumerate(zip(jobs, numbers, strict=True))]
    return sorted(named, key=lambda j: j.item.image)


def _load(path: Path) -> Image.Image:
    """A corpus image as RGB."""
    with Image.open(path) as img:
        return img.convert("RGB")


def render(job: Job, corpus: Path, seed: int) -> Image.Image:
    """The pixels of a job's image (not for ``original``, which is a byte copy)."""
    rng = np.random.default_rng([seed, 2, job.stream])
    srcs = [_load(corpus / name) for name in job.inputs]
    if job.recipe == "copy":
        return transforms.apply(srcs[0], job.params[0], job.params[1], rng)
    if job.recipe == "larger":
        return dt.LARGER[job.params[0]][0](srcs[0], rng)
    if job.recipe == "overlay":
        kind, s = job.params
        return dt.apply_shared_overlay(srcs[0], dt.draw_shared_overlay(kind, np.random.default_rng([seed, 3, int(s)])))
    if job.recipe == "composite":
        return dt.COMPOSITES[job.params[0]](srcs[0], srcs[1], rng)
    if job.recipe in ("letter", "colour"):
        s, value = job.params[:2]
        template = dt.draw_template(srcs[0], np.random.default_rng([seed, 4, int(s), int(job.recipe == "colour")]))
        variant = (dt.letter_variant(template, value) if job.recipe == "letter"
                   else dt.colour_variant(template, srcs[1], value))
        return transforms.apply(variant, *job.params[2:], rng) if len(job.params) > 2 else variant
    raise KeyError(f"unknown recipe {job.recipe!r}")


def _write(args: tuple[Job, Path, Path, int]) -> Item:
    """Worker: make one image, save it, stamp the fixed mtime; its truth row with size filled in."""
    job, corpus, folder, seed = args
    dst = folder / job.item.image
    if job.recipe == "original":
        shutil.copyfile(corpus / job.inputs[0], dst)
    else:
        img = render(job, corpus, seed)
        buf = io.BytesIO()
        options = {"quality": job.save.quality} if job.save.quality else {}
        img.save(buf, job.save.format, **options)
        dst.write_bytes(buf.getvalue())
    os.utime(dst, (FIXED_MTIME, FIXED_MTIME))
    with Image.open(dst) as img:
        width, height = img.size
    return replace(job.item, width=width, height=height, bytes=dst.stat().st_size)


def write_truth(path: Path, items: Sequence[Item]) -> None:
    """Write ``items`` as CSV, one column per ``Item`` field."""
    with path.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=[f.name for f in fields(Item)])
        writer.writeheader()
        writer.writerows(asdict(i) for i in items)


def read_truth(path: Path) -> list[Item]:
    """Rows of a ``truth.csv`` written by :func:`write_truth` (one written before
    ``SAME_PICTURE`` named an origin gets it here)."""
    with path.open(newline="") as fh:
        return one_picture(Item(**{**row, "is_original": row["is_original"] == "True", "width": int(row["width"]),
                                   "height": int(row["height"]), "bytes": int(row["bytes"])})
                           for row in csv.DictReader(fh))


def one_picture(items: Iterable[Item]) -> list[Item]:
    """``items`` with the origins that ``SAME_PICTURE`` says are one photograph made one, in
    ``origin`` and in a composite's ``contains``."""
    def same(origin: str) -> str:
        return SAME_PICTURE.get(origin, origin)

    return [replace(i, origin=same(i.origin), contains=";".join(same(o) for o in i.contains.split(";") if o))
            for i in items]


def build(corpus: Path, work: Path, plan: Plan, *, workers: int = 2) -> list[Item]:
    """Write images/, truth.csv and dataset.json into ``work``; reuse them while the plan is equal."""
    stamp, truth = work / "dataset.json", work / "truth.csv"
    if stamp.is_file() and truth.is_file() and json.loads(stamp.read_text()) == json.loads(json.dumps(asdict(plan))):
        print(f"[bench] reusing the data set in {work}", file=sys.stderr)
        items = read_truth(truth)
        # a copy or a restore of the folder dates every file anew: without the fixed mtime,
        # the keeper's `oldest` rule would read the write order as a hint
        for item in items:
            os.utime(work / "images" / item.image, (FIXED_MTIME, FIXED_MTIME))
        return items
    jobs = plan_jobs(read_manifest(corpus / "manifest.csv"), plan)
    folder = work / "images"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    stamp.unlink(missing_ok=True)
    print(f"[bench] writing {len(jobs)} images to {folder} …", file=sys.stderr)
    with ProcessPoolExecutor(max_workers=workers) as pool:
        items = one_picture(pool.map(_write, [(j, corpus, folder, plan.seed) for j in jobs], chunksize=8))
    write_truth(truth, items)
    stamp.write_text(json.dumps(asdict(plan), indent=2) + "\n")
    return items


def corpus_digest(corpus: Path) -> str:
    """Fingerprint of the corpus listing (a changed corpus rebuilds the data set)."""
    return digest(read_manifest(corpus / "manifest.csv"))

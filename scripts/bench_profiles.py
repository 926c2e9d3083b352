#!/usr/bin/env python3
"""Colour profiles benchmark: originals saved in a wide colour space, beside their sRGB exports.

    .venv/bin/python scripts/bench_profiles.py [--seed 11] [--pairs 100] [--embedder cnn|none]

Each of `--pairs` corpus images becomes an original saved in a wide colour space (Adobe RGB,
then Display P3; JPEG quality 95, as a camera or editor saves it) and its export to sRGB (JPEG
quality 85, as shared); half as many other corpus images are distractors. For each colour space
the collection is built with each original's ICC profile embedded and without it, which is how
neardup read every file before it honoured profiles (the same pixels, their colour space
unsaid); Adobe RGB also as cameras save it, named in the EXIF instead of a profile. Each is
indexed into a new catalog and grouped (`duplicates --by auto` defaults). Prints, side by
side: originals grouped with their export, groups holding anything else, and groups whose
keeper is the original. The profiles are written by neardup's own `matrix_profile`; nothing
here was tuned.
"""

from __future__ import annotations

import argparse
import io
import random
import tempfile
import time
from pathlib import Path

from PIL import Image, ImageCms

import neardup
from neardup.indexer.profiles import ADOBE_RGB, DISPLAY_P3, matrix_profile

SPACES = {"Adobe RGB": matrix_profile(ADOBE_RGB, 563 / 256, "Adobe RGB (test)"),
          "Display P3": matrix_profile(DISPLAY_P3, None, "Display P3 (test)")}


# How an original says its colour space: not at all (how neardup read every such file before it
# honoured profiles), by an embedded ICC profile, or (Adobe RGB) as a camera does, in its EXIF
SAYS = {"left out (read as before)": None, "embedded": "profile", "camera EXIF (R03)": "exif"}


def _camera_exif() -> bytes:
    exif = Image.Exif()
    exif.get_ifd(0x8769)[0xA001] = 0xFFFF  # colour space: uncalibrated
    exif.get_ifd(0x8769)[0xA005] = {0x0001: "R03"}  # the DCF option file: Adobe RGB
    return exif.tobytes()


def build(corpus: Path, seed: int, pairs: int, folder: Path, space: str, says: str | None) -> None:
    files = sorted(p for p in corpus.iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
    chosen = random.Random(seed).sample(files, pairs + pairs // 2)
    srgb = ImageCms.createProfile("sRGB")
    folder.mkdir(parents=True)
    for i, source in enumerate(chosen):
        with Image.open(source) as im:
            rgb = im.convert("RGB")
        if i >= pairs:
            rgb.save(folder / f"{i:04d}_other.jpg", quality=92)
            continue
        wide = ImageCms.profileToProfile(rgb, srgb, ImageCms.ImageCmsProfile(io.BytesIO(SPACES[space])),
                                         renderingIntent=ImageCms.Intent.RELATIVE_COLORIMETRIC)
        wide.info.pop("icc_profile", None)  # Pillow would save the profile it attached
        said = {"profile": {"icc_profile": SPACES[space]}, "exif": {"exif": _camera_exif()}}.get(says, {})
        wide.save(folder / f"{i:04d}_original.jpg", quality=95, **said)
        rgb.save(folder / f"{i:04d}_export.jpg", quality=85)


def score(groups: list, pairs: int) -> tuple[int, int, int]:
    """(originals grouped with their export alone, other groups, keepers that are the original)."""
    right = wrong = kept = 0
    for g in groups:
        stems = sorted(Path(p).stem for p in g.members)
        if len(stems) == 2 and stems[0][:4] == stems[1][:4] and int(stems[0][:4]) < pairs:
            right += 1
            kept += Path(g.keeper).stem.endswith("_original")
        else:
            wrong += 1
    return right, wrong, kept


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--corpus", type=Path, default=Path("/work/corpus/normal"))
    ap.add_argument("--seed", type=int, default=11)
    ap.add_argument("--pairs", type=int, default=100)
    ap.add_argument("--embedder", choices=("cnn", "none"), default="cnn")
    args = ap.parse_args()
    print("| seed | embedder | originals in | their colour space | pairs grouped | other groups | keeper = original "
          "| seconds |")
    print("| ---: | --- | --- | --- | ---: | ---: | ---: | ---: |")
    with tempfile.TemporaryDirectory() as work:
        for space, label in ((s, label) for s in SPACES for label in SAYS):
            if SAYS[label] == "exif" and space != "Adobe RGB":
                continue  # EXIF names sRGB and Adobe RGB only
            folder = Path(work) / f"{space} {SAYS[label]}" / "photos"
            build(args.corpus, args.seed, args.pairs, folder, space, SAYS[label])
            started = time.perf_counter()
            cat = neardup.open(folder.parent / "c.db", create=True, embedder=args.embedder)
            cat.index([folder])
            right, wrong, kept = score(cat.duplicates(), args.pairs)
            print(f"| {args.seed} | {args.embedder} | {space} | {label} | {right} / {args.pairs} | {wrong} "
                  f"| {kept} / {right} | {time.perf_counter() - started:.1f} |", flush=True)


if __name__ == "__main__":
    main()

"""Build the demo's sample collection: real photos shipped in the scikit-image wheel, plus
near-duplicate copies of some of them. Idempotent.

    python scripts/make_sample.py DIR   ->  DIR/photos/ (indexed)  DIR/copies/ (queries)

DIR/photos holds the originals plus, in DIR/photos/edited/, a resized, a re-encoded and a
brightened copy of four of them and one byte-for-byte copy, so `neardup duplicates` has
groups to find. DIR/copies holds a thumbnail, a low-quality re-encode, a contrast edit, a
mirrored and rotated crop, and a screenshot of an app window showing the photo, of four other
originals, used as search queries: each should find its original first.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

from PIL import Image, ImageDraw, ImageEnhance, ImageOps

WHEEL = "scikit-image==0.26.0"
PHOTOS = ["astronaut.png", "coffee.png", "chelsea.png", "rocket.jpg", "hubble_deep_field.jpg",
          "motorcycle_left.png", "horse.png", "camera.png", "coins.png", "moon.png", "page.png",
          "brick.png", "grass.png", "gravel.png", "immunohistochemistry.png", "retina.jpg", "color.png"]
EDITED = ["hubble_deep_field", "motorcycle_left", "camera", "coins"]  # copies inside the collection
QUERIED = ["astronaut", "coffee", "chelsea", "rocket"]  # copies outside it, used as queries


def fetch_wheel_images(cache: Path) -> dict[str, bytes]:
    """The data images of the scikit-image wheel (downloaded once into `cache`, not installed)."""
    cache.mkdir(parents=True, exist_ok=True)
    wheels = sorted(cache.glob("scikit_image-*.whl"))
    if not wheels:
        subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:",
                        "-d", str(cache), WHEEL], check=True)
        wheels = sorted(cache.glob("scikit_image-*.whl"))
    with zipfile.ZipFile(wheels[-1]) as z:
        return {Path(n).name: z.read(n) for n in z.namelist()
                if n.startswith("skimage/data/") and Path(n).name in PHOTOS}


NAMES = {"half": "half.jpg", "q30": "q30.jpg", "bright": "bright.png", "thumb": "thumb.jpg",
         "contrast": "contrast.jpg", "crop": "mirrored_crop.jpg", "screenshot": "screenshot.png"}


def make_copies(src: Path, stem: str, out: Path, kinds: list[str]) -> None:
    """Write each kind of copy of `src` that is not there yet as out/<stem>_<NAMES[kind]>."""
    im = Image.open(src).convert("RGB")
    for kind in kinds:
        target = out / f"{stem}_{NAMES[kind]}"
        if target.exists():
            continue
        if kind == "half":
            im.resize((im.width // 2, im.height // 2), Image.LANCZOS).save(target, quality=90)
        elif kind == "q30":
            im.save(target, quality=30)
        elif kind == "bright":
            ImageEnhance.Brightness(im).enhance(1.1).save(target)
        elif kind == "thumb":
            t = im.copy()
            t.thumbnail((160, 160))
            t.save(target, quality=85)
        elif kind == "contrast":
            ImageEnhance.Contrast(im).enhance(1.15).save(target, quality=80)
        elif kind == "crop":  # the middle 60 % of the area, turned 8 degrees, mirrored
            w, h = im.size
            box = (round(w * 0.11), round(h * 0.11), round(w * 0.89), round(h * 0.89))
            ImageOps.mirror(im.rotate(8, resample=Image.BICUBIC).crop(box)).save(target, quality=85)
        elif kind == "screenshot":  # the photo at a third of a fake app window
            window = Image.new("RGB", (1024, 720), (245, 245, 247))
            draw = ImageDraw.Draw(window)
            draw.rectangle((0, 0, 1024, 34), fill=(70, 90, 160))
            draw.rectangle((0, 34, 200, 720), fill=(225, 225, 230))
            for row in range(14):
                draw.text((14, 52 + 44 * row), f"Album {row + 1}", fill=(60, 60, 60))
            picture = im.copy()
            picture.thumbnail((560, 420))
            window.paste(picture, (240, 80))
            window.save(target)


def main(root: Path) -> None:
    photos, edited, copies = root / "photos", root / "photos" / "edited", root / "copies"
    for d in (photos, edited, copies):
        d.mkdir(parents=True, exist_ok=True)
    images = fetch_wheel_images(root / ".cache")
    for name, data in sorted(images.items()):
        target = photos / name
        if not target.exists():
            target.write_bytes(data)
    for stem in EDITED:
        make_copies(next(photos.glob(f"{stem}.*")), stem, edited, ["half", "q30", "bright"])
    for stem in QUERIED:
        make_copies(next(photos.glob(f"{stem}.*")), stem, copies, ["thumb", "q30", "contrast", "crop", "screenshot"])
    exact = edited / "motorcycle_left_exact_copy.png"
    if not exact.exists():
        shutil.copyfile(photos / "motorcycle_left.png", exact)
    n = sum(1 for p in photos.rglob("*") if p.is_file())
    print(f"sample: {n} images in {photos}, {len(list(copies.iterdir()))} queries in {copies}", file=sys.stderr)


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "sample"))

"""Shared fixtures: small real photos (tests/data) and seeded synthetic collections on disk."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image, ImageEnhance

import postgres
from images import DATA, PHOTOS, photo  # noqa: F401  (shared with the tests through conftest)


def scene(seed: int, size: tuple[int, int] = (320, 240)) -> np.ndarray:
    """A seeded photo-like RGB image: smooth colour fields plus shapes, (h, w, 3) uint8."""
    rng = np.random.default_rng(seed)
    w, h = size
    low = rng.random((4, 5, 3)).astype(np.float32)
    img = cv2.resize(low, (w, h), interpolation=cv2.INTER_CUBIC) * 255
    for _ in range(6):
        color = tuple(int(c) for c in rng.integers(0, 256, 3))
        center = (int(rng.integers(0, w)), int(rng.integers(0, h)))
        cv2.circle(img, center, int(rng.integers(10, h // 2)), color, -1)
        p1 = (int(rng.integers(0, w)), int(rng.integers(0, h)))
        cv2.rectangle(img, p1, (p1[0] + int(rng.integers(10, w // 2)), p1[1] + 30), color, -1)
    return np.clip(img, 0, 255).astype(np.uint8)


def save(rgb: np.ndarray, path: Path, **kw) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rgb).save(path, **kw)
    return path


@pytest.fixture(scope="session", autouse=True)
def neardup_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """One cache of compiled networks (NEARDUP_CACHE_DIR) for the whole session, never the
    user's: compiling MobileNetV2 to LiteRT takes about 10 s, so it happens once here.
    Subprocesses inherit it through the environment."""
    path = tmp_path_factory.mktemp("neardup-cache")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("NEARDUP_CACHE_DIR", str(path))
        yield path


@pytest.fixture
def collection(tmp_path: Path) -> dict[str, Path]:
    return make_collection(tmp_path / "photos")


def make_collection(root: Path) -> dict[str, Path]:
    """A folder of 5 real photos + 6 synthetic scenes, and near-duplicate copies of two photos
    (a half-size JPEG and a brightened PNG of coffee, a q40 re-encode of chelsea) and one byte copy."""
    files: dict[str, Path] = {}
    for name in PHOTOS:
        files[name] = root / f"{name}.jpg"
        files[name].parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(DATA / f"{name}.jpg", files[name])
    for seed in range(6):
        files[f"scene{seed}"] = save(scene(seed), root / "scenes" / f"scene{seed}.png")
    coffee = Image.open(DATA / "coffee.jpg")
    files["coffee_half"] = root / "edits" / "coffee_half.jpg"
    files["coffee_half"].parent.mkdir(parents=True, exist_ok=True)
    coffee.resize((coffee.width // 2, coffee.height // 2), Image.LANCZOS).save(files["coffee_half"], quality=85)
    files["coffee_bright"] = root / "edits" / "coffee_bright.png"
    ImageEnhance.Brightness(coffee).enhance(1.05).save(files["coffee_bright"])
    files["chelsea_q40"] = root / "edits" / "chelsea_q40.jpg"
    Image.open(DATA / "chelsea.jpg").save(files["chelsea_q40"], quality=40)
    files["rocket_copy"] = root / "edits" / "rocket_copy.jpg"
    shutil.copyfile(DATA / "rocket.jpg", files["rocket_copy"])
    return files


@pytest.fixture(scope="session", autouse=True)
def neardup_data(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The data folder of catalogs on a server (NEARDUP_DATA_DIR), never the user's."""
    path = tmp_path_factory.mktemp("neardup-data")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("NEARDUP_DATA_DIR", str(path))
        yield path


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[postgres.Server]:
    """A PostgreSQL server for the session (started on first use); the tests that need one
    are skipped, saying why, only when PostgreSQL is not installed (`scripts/test.sh`
    installs it); one that is installed but does not start is an error."""
    try:
        server = postgres.start()
    except postgres.Unavailable as why:
        pytest.skip(str(why))
    yield server
    server.stop()


@pytest.fixture
def postgres_url(postgres_server: postgres.Server) -> Iterator[str]:
    """The URL of a fresh, empty PostgreSQL database, dropped after the test."""
    url = postgres_server.fresh_database()
    yield url
    postgres_server.drop(url)


@pytest.fixture(params=["sqlite", "postgresql"])
def catalog_location(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Where a test's new catalog goes: a file path, or a fresh PostgreSQL database's URL."""
    if request.param == "sqlite":
        return str(tmp_path / "cat.db")
    return request.getfixturevalue("postgres_url")


def image_rows(location: str) -> int:
    """How many image rows the catalog at `location` holds, read from outside neardup (0
    while it does not exist yet or is being created)."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.exc import SQLAlchemyError

    url = location if "://" in location else f"sqlite:///file:{location}?mode=ro&uri=true"
    if "://" not in location and not Path(location).exists():
        return 0
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return int(conn.execute(text("SELECT count(*) FROM images")).scalar_one())
    except SQLAlchemyError:
        return 0
    finally:
        engine.dispose()

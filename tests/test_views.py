"""Index-time views: the mirror image's keypoints and the content box's hashes and vector, and
how duplicates use them; the plausibility check of verification; low-quality pairs in auto."""

from __future__ import annotations

import json
import sqlite3
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import pytest
import neardup
from neardup.api import new_settings
from neardup.indexer.features import LocalFeatures, mirrored, orb_and_mirror, orb_features
from neardup.indexer.hashes import pdq
from neardup.indexer.pipeline import embed_missing, index_paths
from neardup.indexer.regions import content_box
from neardup.search.duplicates import find_duplicates
from neardup.search.verify import VERIFY_THRESHOLD, inliers
from neardup.storage.catalog import Catalog
from neardup.storage.models import BOX

from conftest import PHOTOS, photo, save, scene
from test_verify import fit384, rotated_crop, screenshot


def _catalog(path: Path, folder: Path, **settings) -> Catalog:
    catalog = Catalog.create(path, replace(new_settings(), **settings))
    index_paths([folder], catalog=catalog, workers=1)
    return catalog


def _ids(catalog: Catalog) -> dict[str, int]:
    return {Path(path).stem: state.image_id for path, state in catalog.file_states().items()}


def _groups(catalog: Catalog) -> set[frozenset[str]]:
    return {frozenset(Path(m).stem for m in g.members) for g in find_duplicates(catalog=catalog)}


def _drop(catalog: Catalog, statement: str) -> None:
    """Run an SQL delete on the catalog file, as another program would, and mark the catalog
    changed (a new generation) so that nothing derived from the old rows is used. Stored
    pair evidence is keyed by content, which such a delete leaves as it was, so it goes too."""
    db = sqlite3.connect(catalog.path)
    with db:
        db.execute(statement)
        db.execute("DELETE FROM evidence_segments")
        db.execute("DELETE FROM evidence_sets")
        db.execute("UPDATE settings SET value = ? WHERE key = 'generation'", (json.dumps("changed"),))
    db.close()


@pytest.fixture
def photos(tmp_path: Path) -> Path:
    folder = tmp_path / "photos"
    for name in PHOTOS:
        save(photo(name), folder / f"{name}.png")
    for seed in range(4):
        save(scene(seed), folder / f"scene{seed}.png")
    return folder


def test_indexing_stores_the_mirror_images_keypoints(tmp_path, photos) -> None:
    catalog = _catalog(tmp_path / "cat.db", photos)
    ids = _ids(catalog)
    stored = catalog.keypoints_of(list(ids.values()), mirrored=True)
    assert set(stored) == set(ids.values())
    points, descriptors, colours = stored[ids["chelsea"]]
    expected = orb_and_mirror(fit384(photo("chelsea")))[1]
    assert np.array_equal(descriptors, expected.descriptors)
    assert np.allclose(points, expected.points, atol=0.25)  # float16 in storage
    assert colours is not None and np.array_equal(colours, expected.colours)
    detected = orb_features(mirrored(fit384(photo("chelsea"))))  # the mirror's own keypoints, nearly all
    nearest = np.abs(points[:, None, :] - detected.points[None, :, :]).max(axis=2).min(axis=1)
    assert np.sum(nearest <= 0.25) >= 0.97 * len(detected.points)
    plain = _catalog(tmp_path / "plain.db", photos, local_features=None)
    assert plain.keypoints_of(list(_ids(plain).values()), mirrored=True) == {}
    catalog.close()
    plain.close()


def test_only_an_image_with_a_content_box_stores_its_box_hashes(tmp_path, photos) -> None:
    shot = screenshot(photo("chelsea"))
    save(shot, photos / "shot.png")
    catalog = _catalog(tmp_path / "cat.db", photos)
    ids = _ids(catalog)
    box_ids, codes = catalog.hashes("pdq", BOX)
    assert box_ids.tolist() == [ids["shot"]]
    expected = pdq(content_box(fit384(shot)))[0]
    assert np.count_nonzero(np.unpackbits(codes[0] ^ expected)) <= 8  # PNG round trip of the window
    catalog.close()


def test_a_mirrored_rotated_crop_joins_its_original_only_through_mirrored_keypoints(tmp_path, photos) -> None:
    save(np.ascontiguousarray(rotated_crop(photo("rocket"))[:, ::-1]), photos / "rocket_flipped.png")
    catalog = _catalog(tmp_path / "cat.db", photos)
    assert _groups(catalog) == {frozenset({"rocket", "rocket_flipped"})}
    _drop(catalog, "DELETE FROM mirrored_keypoints")
    assert _groups(catalog) == set()
    catalog.close()


def star_field(seed: int) -> np.ndarray:
    """A dark astrophoto-like picture: a few dozen stars and one galaxy on black."""
    rng = np.random.default_rng(seed)
    image = np.zeros((480, 640, 3), np.uint8)
    for _ in range(60):
        centre = (int(rng.integers(0, 640)), int(rng.integers(0, 480)))
        cv2.circle(image, centre, int(rng.integers(1, 4)), (255, 255, 230), -1)
    centre = (int(rng.integers(200, 440)), int(rng.integers(150, 330)))
    cv2.ellipse(image, centre, (60, 25), int(rng.integers(0, 180)), 0, 360, (200, 160, 120), -1)
    return cv2.GaussianBlur(image, (0, 0), 1.5)


def test_screenshots_of_two_star_fields_in_one_window_join_their_pictures_not_each_other(tmp_path) -> None:
    folder = tmp_path / "photos"
    for name in PHOTOS:
        save(photo(name), folder / f"{name}.png")
    for seed in (1, 2):
        save(star_field(seed), folder / f"stars{seed}.png")
        save(screenshot(star_field(seed), fill=0.15), folder / f"shot{seed}.png")
    collection = neardup.open(tmp_path / "cat.db", create=True, embedder="cnn")
    collection.index([folder], workers=1)
    catalog = collection.catalog
    assert _groups(catalog) == {frozenset({"stars1", "shot1"}), frozenset({"stars2", "shot2"})}
    # without the boxes, the CNN sees two dark pictures in one window: alike, and the two
    # screenshots share a group (whichever star field the window's geometry still finds)
    _drop(catalog, "DELETE FROM hashes WHERE view = 'box'")
    _drop(catalog, "DELETE FROM vectors WHERE view = 'box'")
    assert any({"shot1", "shot2"} <= group for group in _groups(catalog))


def test_each_keypoint_keeps_the_mean_colour_around_it_in_either_orientation() -> None:
    rgb = fit384(photo("chelsea"))
    for features, pixels in zip(orb_and_mirror(rgb), (rgb, mirrored(rgb))):
        assert features.colours is not None and features.colours.shape == (len(features.points), 3)
        for (x, y), colour in zip(features.points[:50].round().astype(int), features.colours[:50]):
            if 2 <= x < pixels.shape[1] - 2 and 2 <= y < pixels.shape[0] - 2:
                around = pixels[y - 2 : y + 3, x - 2 : x + 3].reshape(-1, 3).mean(axis=0)
                assert np.abs(around - colour).max() <= 1.0
    assert orb_and_mirror(cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY))[0].colours is None  # grey has none


def test_verification_rejects_a_homography_no_copy_could_have() -> None:
    features = orb_features(fit384(photo("astronaut")))
    points, descriptors = features.points, features.descriptors

    def moved(matrix: np.ndarray) -> LocalFeatures:
        return LocalFeatures(cv2.transform(points[None], matrix)[0].astype(np.float32), descriptors)

    assert inliers(features, moved(np.array([[0.5, 0.0, 20.0], [0.0, 0.5, 30.0]]))) >= VERIFY_THRESHOLD
    squeezed = np.array([[0.05, 0.0, 20.0], [0.0, 0.05, 30.0]])  # area / 400: points collapse
    assert inliers(features, moved(squeezed)) == 0
    flipped = np.array([[-1.0, 0.0, 400.0], [0.0, 1.0, 0.0]])  # mirrored: needs mirrored keypoints
    assert inliers(features, moved(flipped)) == 0


def test_a_blurred_copy_of_a_sharp_photo_still_joins_it(tmp_path, photos) -> None:
    blurred = cv2.GaussianBlur(photo("rocket"), (0, 0), 16)
    save(blurred, photos / "rocket_blurred.png")
    catalog = _catalog(tmp_path / "cat.db", photos)
    info = catalog.images(_ids(catalog).values())
    quality = {Path(i.path).stem: i.quality for i in info.values()}
    assert quality["rocket_blurred"] < 50 <= quality["rocket"]  # low quality: PDQ calls it flat
    assert frozenset({"rocket", "rocket_blurred"}) in _groups(catalog)
    catalog.close()


def _photo_and_screenshot_with_cnn(tmp_path: Path):
    """A CNN collection of a photo and a screenshot (whose content box has a CNN vector)."""
    folder = tmp_path / "photos"
    save(photo("coffee"), folder / "coffee.png")
    save(screenshot(photo("chelsea")), folder / "shot.png")
    collection = neardup.open(tmp_path / "cat.db", create=True, embedder="cnn")
    collection.index([folder], workers=1)
    return collection


def test_switching_the_embedder_drops_the_box_vectors_too(tmp_path) -> None:
    collection = _photo_and_screenshot_with_cnn(tmp_path)
    assert len(collection.catalog.vectors("cnn", BOX)[0]) == 1  # the screenshot's picture
    switched = neardup.open(tmp_path / "cat.db", embedder="none", reembed=True)
    counts = switched.catalog.counts()
    assert not any(key.startswith("vectors.") for key in counts), counts


class _Interrupted:
    """The catalog's real embedder, interrupted (as by Ctrl-C) while embedding."""

    def __init__(self, embedder) -> None:
        self._embedder = embedder
        for name in ("name", "model_id", "version", "dim", "input_size"):
            setattr(self, name, getattr(embedder, name))

    def embed(self, images):
        raise KeyboardInterrupt


def test_an_interrupted_embedding_is_finished_by_the_next_run_with_the_box_vectors(tmp_path) -> None:
    collection = _photo_and_screenshot_with_cnn(tmp_path)
    catalog = collection.catalog
    _drop(catalog, "DELETE FROM vectors")
    with pytest.raises(KeyboardInterrupt):
        embed_missing(catalog=catalog, embedder=_Interrupted(collection.embedder("cnn")))
    assert len(catalog.missing_vectors("cnn")) == 2  # nothing stored: both are retried
    assert embed_missing(catalog=catalog, embedder=collection.embedder("cnn")) == 2
    assert len(catalog.vectors("cnn")[0]) == 2 and len(catalog.vectors("cnn", BOX)[0]) == 1

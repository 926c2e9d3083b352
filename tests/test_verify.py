"""Local features (indexer.features) and geometric verification (search.verify), alone and in auto."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image, ImageDraw

import neardup
from neardup.cli import main
from neardup.indexer.features import FEATURES_ID, LocalFeatures, mirrored, orb_and_mirror, orb_features
from neardup.indexer.pipeline import index_paths
from neardup.search.duplicates import find_duplicates
from neardup.search import verify
from neardup.search.verify import (VERIFY_CEILING, VERIFY_FULL, VERIFY_THRESHOLD, _fit, _samples, best_inliers,
                                   coverage_bound, inliers, ratio_matches, verified_confidence)
from neardup.storage.catalog import Catalog
from neardup.api import new_settings
from neardup.indexer.hashes import HASH_VERSION, HASHES
from neardup.storage.settings import CatalogSettings

from conftest import PHOTOS, photo, save, scene


def fit384(rgb: np.ndarray) -> np.ndarray:
    """As the indexer sees an image: longest side 384."""
    scale = 384 / max(rgb.shape[:2])
    return cv2.resize(rgb, (round(rgb.shape[1] * scale), round(rgb.shape[0] * scale)), interpolation=cv2.INTER_AREA)


def rotated_crop(rgb: np.ndarray, degrees: float = 12.0, keep: float = 0.7) -> np.ndarray:
    h, w = rgb.shape[:2]
    turned = cv2.warpAffine(rgb, cv2.getRotationMatrix2D((w / 2, h / 2), degrees, 1.0), (w, h))
    dy, dx = int(h * (1 - keep) / 2), int(w * (1 - keep) / 2)
    return np.ascontiguousarray(turned[dy : h - dy, dx : w - dx])


def screenshot(rgb: np.ndarray, *, fill: float = 0.3) -> np.ndarray:
    """``rgb`` scaled to ``fill`` of a 1024x720 fake app window with a title bar, sidebar and text."""
    window = Image.new("RGB", (1024, 720), (245, 245, 247))
    draw = ImageDraw.Draw(window)
    draw.rectangle((0, 0, 1024, 34), fill=(70, 90, 160))
    draw.rectangle((0, 34, 180, 720), fill=(225, 225, 230))
    for row in range(12):
        draw.text((12, 50 + 40 * row), f"Folder {row}", fill=(60, 60, 60))
    scale = (fill * 1024 * 720 / (rgb.shape[0] * rgb.shape[1])) ** 0.5
    picture = Image.fromarray(rgb).resize((round(rgb.shape[1] * scale), round(rgb.shape[0] * scale)))
    window.paste(picture, (200, 60))
    return np.asarray(window)


def test_orb_features_shapes_and_bad_input() -> None:
    features = orb_features(photo("chelsea"))
    assert 100 < len(features.points) <= 500
    assert features.points.dtype == np.float32 and features.points.shape[1] == 2
    assert features.descriptors.dtype == np.uint8 and features.descriptors.shape == (len(features.points), 32)
    flat = orb_features(np.full((64, 64, 3), 128, np.uint8))
    assert flat.points.shape == (0, 2) and flat.descriptors.shape == (0, 32)
    with pytest.raises(ValueError, match="uint8"):
        orb_features(np.zeros((10, 10, 3), np.float32))


@pytest.mark.parametrize("name", PHOTOS)
def test_a_rotated_crop_verifies_and_other_photos_do_not(name: str) -> None:
    original = orb_features(fit384(photo(name)))
    copy = orb_features(fit384(rotated_crop(photo(name))))
    assert inliers(copy, original) >= VERIFY_THRESHOLD
    for other in (p for p in PHOTOS if p != name):
        assert inliers(copy, orb_features(fit384(photo(other)))) < VERIFY_THRESHOLD, other


def test_a_mirrored_copy_verifies_only_through_the_mirrored_query() -> None:
    original = orb_features(fit384(photo("astronaut")))
    flipped = fit384(photo("astronaut"))[:, ::-1]
    as_given = orb_features(np.ascontiguousarray(flipped))
    assert inliers(as_given, original) < VERIFY_THRESHOLD
    assert best_inliers([as_given, orb_features(mirrored(flipped))], original) >= VERIFY_THRESHOLD


def test_too_few_keypoints_is_zero_inliers_not_an_error() -> None:
    empty = LocalFeatures(np.zeros((0, 2), np.float32), np.zeros((0, 32), np.uint8))
    assert inliers(empty, orb_features(photo("coffee"))) == 0
    assert inliers(orb_features(photo("coffee")), empty) == 0
    assert best_inliers([], empty) == 0


def test_verified_confidence_anchors() -> None:
    got = verified_confidence(np.array([0, VERIFY_THRESHOLD - 1, VERIFY_THRESHOLD, VERIFY_FULL, 10 * VERIFY_FULL]))
    assert got.tolist() == [0.0, 0.0, 0.5, VERIFY_CEILING, VERIFY_CEILING]
    assert VERIFY_CEILING < 1.0  # an identical image (hash score 1.0) still outranks a verified one
    middle = float(verified_confidence((VERIFY_THRESHOLD + VERIFY_FULL) // 2))
    assert 0.5 < middle < VERIFY_CEILING


def test_catalog_settings_name_the_features_the_indexer_computes() -> None:
    settings = new_settings()
    assert (settings.hashes, settings.hash_version, settings.local_features) == (tuple(HASHES), HASH_VERSION, FEATURES_ID)
    assert CatalogSettings.from_json(settings.to_json()) == settings
    old = settings.to_json().replace(f'"local_features": "{FEATURES_ID}"', '"local_features": null')
    assert CatalogSettings.from_json(old).local_features is None  # made before keypoints existed


def _catalog(path: Path | str, folder: Path, *, local_features: str | None = FEATURES_ID) -> Catalog:
    catalog = Catalog.create(path, replace(new_settings(), local_features=local_features))
    index_paths([folder], catalog=catalog, workers=1)
    return catalog


def test_indexing_stores_the_keypoints_it_computed(tmp_path, collection) -> None:
    catalog = _catalog(tmp_path / "cat.db", tmp_path / "photos")
    ids = {path: state.image_id for path, state in catalog.file_states().items()}
    stored = catalog.keypoints_of(list(ids.values()))
    assert len(stored) == len(ids) == catalog.counts()["keypoints"]
    points, descriptors, colours = stored[ids[str(collection["chelsea"])]]
    expected = orb_features(fit384(photo("chelsea")))
    assert np.array_equal(descriptors, expected.descriptors)
    assert np.allclose(points, expected.points, atol=0.25)  # float16 in storage
    assert colours is not None and np.array_equal(colours, expected.colours)
    catalog.close()


def test_old_catalogs_without_keypoints_store_none_and_stats_says_so(tmp_path, collection) -> None:
    catalog = _catalog(tmp_path / "cat.db", tmp_path / "photos", local_features=None)
    assert catalog.keypoints_of([state.image_id for state in catalog.file_states().values()]) == {}
    assert "keypoints" not in catalog.counts()
    catalog.close()
    old = CliRunner().invoke(main, ["stats", "--db", str(tmp_path / "cat.db")])
    assert old.exit_code == 0 and "keypoints: none" in old.output and "new catalog" in old.output
    _catalog(tmp_path / "new.db", tmp_path / "photos").close()
    new = CliRunner().invoke(main, ["stats", "--db", str(tmp_path / "new.db")])
    assert f"keypoints: {FEATURES_ID}" in new.output


def test_auto_search_verifies_a_screenshot_into_a_match(tmp_path, collection) -> None:
    # of a rotated crop: the picture found in the screenshot is then no hash match either
    query = save(screenshot(rotated_crop(photo("chelsea"))), tmp_path / "shot.png")
    with_keypoints = neardup.open(tmp_path / "with.db", create=True, embedder="none")
    with_keypoints.index([tmp_path / "photos"], workers=1)
    top = with_keypoints.search(query, k=3, by="auto")[0]
    assert top.path == str(collection["chelsea"]) and top.score >= 0.5
    without = _catalog(tmp_path / "without.db", tmp_path / "photos", local_features=None)
    scores = {m.path: m.score for m in neardup.search.query.search(query, catalog=without, by="auto", k=20)}
    assert scores[str(collection["chelsea"])] < 0.5  # the hashes alone do not call it a match
    without.close()


def test_duplicates_join_a_rotated_crop_only_with_verification(tmp_path) -> None:
    folder = tmp_path / "photos"
    for name in PHOTOS:
        save(photo(name), folder / f"{name}.png")
    for seed in range(4):
        save(scene(seed), folder / f"scene{seed}.png")
    save(rotated_crop(photo("rocket")), folder / "rocket_turned.png")
    pair = {str(folder / "rocket.png"), str(folder / "rocket_turned.png")}
    verified = _catalog(tmp_path / "with.db", folder)
    assert [set(g.members) for g in find_duplicates(catalog=verified)] == [pair]
    plain = _catalog(tmp_path / "without.db", folder, local_features=None)
    assert find_duplicates(catalog=plain) == []
    verified.close()
    plain.close()


def thumbnail(rgb: np.ndarray, side: int = 128) -> np.ndarray:
    """``rgb`` reduced to a long side of ``side`` pixels, as a web page or a chat keeps it."""
    scale = side / max(rgb.shape[:2])
    return cv2.resize(rgb, (round(rgb.shape[1] * scale), round(rgb.shape[0] * scale)), interpolation=cv2.INTER_AREA)


def off_centre_crop(rgb: np.ndarray, keep: float = 0.65) -> np.ndarray:
    """``keep`` of each side, taken towards the lower right."""
    h, w = rgb.shape[:2]
    top, left = int((h - h * keep) * 0.9), int((w - w * keep) * 0.9)
    return np.ascontiguousarray(rgb[top : top + int(h * keep), left : left + int(w * keep)])


def test_a_thumbnails_crop_verifies_once_both_are_enlarged_to_the_decode_side() -> None:
    # ORB ignores a 31-pixel border: in a 128-pixel thumbnail and its 83-pixel crop it finds
    # too few keypoints to verify the crop; enlarged to the decode side, as the indexer searches them, plenty
    stored = {name: orb_and_mirror(thumbnail(photo(name)), side=384)[0] for name in PHOTOS}
    native = 0
    for name in PHOTOS:
        crop = off_centre_crop(thumbnail(photo(name)))
        found = orb_and_mirror(crop, side=384)[0]
        assert inliers(found, stored[name]) >= VERIFY_THRESHOLD, name
        assert all(inliers(found, stored[other]) < VERIFY_THRESHOLD for other in PHOTOS if other != name), name
        native += inliers(orb_and_mirror(crop)[0], orb_and_mirror(thumbnail(photo(name)))[0]) >= VERIFY_THRESHOLD
    assert native <= 1


def test_a_small_image_is_searched_enlarged_and_its_keypoints_placed_in_its_own_pixels(tmp_path) -> None:
    folder = tmp_path / "photos"
    save(thumbnail(photo("coffee")), folder / "coffee.png")  # 128 x 85
    catalog = _catalog(tmp_path / "cat.db", folder)
    (image_id,) = [s.image_id for s in catalog.file_states().values()]
    for mirror in (False, True):
        points = catalog.keypoints_of([image_id], mirrored=mirror)[image_id][0]
        assert len(points) >= 100, mirror  # at its own size ORB finds 30
        assert (points >= 0).all() and (points[:, 0] < 128).all() and (points[:, 1] < 85).all(), mirror
        assert points[:, 0].max() > 100 and points[:, 1].max() > 60, mirror  # spread over all of it
    assert catalog.colour_layouts_of([image_id])[image_id][:2] == (128, 85)  # the frame the points are in
    catalog.close()


def test_duplicates_join_a_thumbnails_crop_to_it(tmp_path) -> None:
    folder = tmp_path / "thumbs"
    for name in PHOTOS:
        save(thumbnail(photo(name)), folder / f"{name}.png")
    for seed in range(4):
        save(thumbnail(scene(seed)), folder / f"scene{seed}.png")
    save(off_centre_crop(thumbnail(photo("coffee"))), folder / "coffee_crop.png")
    catalog = _catalog(tmp_path / "cat.db", folder)
    assert [set(g.members) for g in find_duplicates(catalog=catalog)] == [
        {str(folder / "coffee.png"), str(folder / "coffee_crop.png")}]
    catalog.close()


def test_a_catalog_of_earlier_keypoints_verifies_until_index_finds_its_small_images_again(tmp_path,
                                                                                       catalog_location) -> None:
    folder = tmp_path / "photos"
    for name in ("coffee", "chelsea", "astronaut", "hubble"):
        save(thumbnail(photo(name)), folder / f"{name}.png")
    save(off_centre_crop(thumbnail(photo("coffee"))), folder / "coffee_crop.png")
    save(photo("rocket"), folder / "large" / "rocket.png")
    save(rotated_crop(photo("rocket")), folder / "large" / "rocket_turned.png")  # needs verifying
    catalog = _catalog(catalog_location, folder)
    ids = {Path(path).name: state.image_id for path, state in catalog.file_states().items()}
    small = sorted(i for name, i in ids.items() if name != "rocket.png")  # under 384 pixels a side
    large = catalog.keypoints_of([ids["rocket.png"]])
    # as the first neardup stored them: small images searched at their own size
    catalog.put_keypoints({i: tuple(tuple(f) for f in orb_and_mirror(np.asarray(Image.open(path).convert("RGB"))))
                           for path, state in catalog.file_states().items() if (i := state.image_id) in small})
    catalog.replace_settings(replace(catalog.settings, local_features="orb-500-v1"))
    turned = {str(folder / "large" / "rocket.png"), str(folder / "large" / "rocket_turned.png")}
    assert [set(g.members) for g in find_duplicates(catalog=catalog)] == [turned]  # verified as before
    catalog.upgrade_local_features(FEATURES_ID, smaller_than=384)
    assert [i for i, _ in catalog.stale_keypoints()] == small
    index_paths([folder], catalog=catalog, workers=1)
    assert catalog.settings.local_features == FEATURES_ID and catalog.stale_keypoints() == []
    found = catalog.keypoints_of([ids["coffee.png"]])[ids["coffee.png"]]
    expected = orb_and_mirror(thumbnail(photo("coffee")), side=384)[0]
    assert np.array_equal(found[1], expected.descriptors) and np.allclose(found[0], expected.points, atol=0.1)
    assert all(np.array_equal(a, b) for a, b in zip(catalog.keypoints_of([ids["rocket.png"]])[ids["rocket.png"]],
                                                    large[ids["rocket.png"]]))
    assert {frozenset(g.members) for g in find_duplicates(catalog=catalog)} == {
        frozenset({str(folder / "coffee.png"), str(folder / "coffee_crop.png")}), frozenset(turned)}
    catalog.close()


def test_index_upgrades_a_catalog_of_earlier_keypoints_first(tmp_path) -> None:
    """New files of that run get this neardup's keypoints, not none (extraction computes only
    the catalog's own kind)."""
    folder = tmp_path / "photos"
    save(thumbnail(photo("coffee")), folder / "coffee.png")
    catalog = _catalog(tmp_path / "cat.db", folder)
    catalog.replace_settings(replace(catalog.settings, local_features="orb-500-v1"))
    save(thumbnail(photo("chelsea")), folder / "chelsea.png")
    index_paths([folder], catalog=catalog, workers=1)
    assert catalog.settings.local_features == FEATURES_ID
    assert len(catalog.keypoints_of([s.image_id for s in catalog.file_states().values()])) == 2
    catalog.close()


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_ratio_matches_equal_opencvs_brute_force_ratio_test(seed: int) -> None:
    """FAISS's Hamming kernel gives the matches OpenCV's 2-NN matcher and Lowe's ratio test give:
    the oracle is the code `verify` used before."""
    from neardup.search.verify import _RATIO, ratio_matches

    rng = np.random.default_rng(seed)
    candidate = rng.integers(0, 256, (300, 32), dtype=np.uint8)
    # half the query rows are noisy copies of candidate rows (they pass the test), half unrelated
    flips = rng.integers(0, 256, (150, 32), dtype=np.uint8) & rng.integers(0, 256, (150, 32), dtype=np.uint8) \
        & rng.integers(0, 256, (150, 32), dtype=np.uint8)
    query = np.concatenate([candidate[rng.choice(300, 150, replace=False)] ^ flips,
                            rng.integers(0, 256, (150, 32), dtype=np.uint8)])
    pairs = cv2.BFMatcher(cv2.NORM_HAMMING).knnMatch(query, candidate, k=2)
    good = [m[0] for m in pairs if len(m) == 2 and m[0].distance < _RATIO * m[1].distance]
    query_idx, candidate_idx = ratio_matches(query, candidate)
    assert 100 <= len(good) < 300
    assert query_idx.tolist() == [m.queryIdx for m in good]
    assert candidate_idx.tolist() == [m.trainIdx for m in good]


def test_the_shortened_ransac_finds_what_opencvs_default_finds() -> None:
    """`verify._fit` draws fewer samples for pairs that cannot be near a match, and must give
    OpenCV's default RANSAC's homography and inliers wherever either finds a match (below that
    the inlier count counts for nothing): blurred, rotated, half-cropped copies of each photo
    against every photo."""
    stored = {name: orb_features(fit384(photo(name))) for name in PHOTOS}
    fits = shortened = 0
    for name in PHOTOS:
        for sigma in (0.5, 2.0, 3.0, 4.0):
            copy = orb_features(fit384(rotated_crop(cv2.GaussianBlur(photo(name), (0, 0), sigma), 25.0, 0.5)))
            for other, features in stored.items():
                q, c = ratio_matches(copy.descriptors, features.descriptors)
                if len(q) < VERIFY_THRESHOLD:
                    continue
                source, target = copy.points[q], features.points[c]
                default, default_mask = cv2.findHomography(source, target, cv2.RANSAC, 6.0)
                found, mask = _fit(source, target)
                expected, got = (0 if m is None else int(m.sum()) for m in (default_mask, mask))
                fits += 1
                shortened += _samples(verify._SCREEN_INLIERS / len(source), verify._SCREEN_CONFIDENCE) < verify._RANSAC_ITERS
                if max(expected, got) >= VERIFY_THRESHOLD:
                    assert got == expected and np.array_equal(mask, default_mask), (name, sigma, other)
                    assert np.allclose(found, default), (name, sigma, other)
                else:
                    assert max(expected, got) < VERIFY_THRESHOLD
                if other == name and sigma == 0.5:
                    assert got >= VERIFY_THRESHOLD, (name, sigma)
    assert fits >= 15 and shortened >= 8  # the short run was tried, on copies and on unrelated photos


def test_no_match_covers_more_of_either_image_than_its_ratio_test_matches_do() -> None:
    """`coverage_bound` may refuse a pair before its homography is fitted only because no
    verification's inliers cover more of an image: copies (blurred, rotated, half-cropped) of
    each photo against every photo, as given and mirrored."""
    stored = {name: orb_features(fit384(photo(name))) for name in PHOTOS}
    told = 0
    for name in PHOTOS:
        for sigma in (0.5, 3.0):
            copy = fit384(rotated_crop(cv2.GaussianBlur(photo(name), (0, 0), sigma), 25.0, 0.5))
            views = orb_and_mirror(copy)
            for other, features in stored.items():
                for view, flipped in zip(views, (False, True)):
                    found = verify.verify(view, features, mirrored=flipped)
                    bound = coverage_bound(view, features)
                    assert found.query.coverage <= bound[0] and found.candidate.coverage <= bound[1], (name, other)
                    told += found.inliers >= VERIFY_THRESHOLD and min(bound) > 0
    assert told >= len(PHOTOS)  # the bound was set against matches, not only against nothing
    assert coverage_bound(LocalFeatures(np.zeros((0, 2), np.float32), np.zeros((0, 32), np.uint8)),
                          stored["coffee"]) == (0.0, 0.0)


@pytest.mark.parametrize("name", PHOTOS)
def test_the_mirrors_keypoints_found_once_are_those_found_on_the_mirror(name: str) -> None:
    pixels = fit384(photo(name))
    plain, mirror = orb_and_mirror(pixels)
    alone = orb_features(pixels)
    assert np.array_equal(plain.points, alone.points) and np.array_equal(plain.descriptors, alone.descriptors)
    detected = orb_features(mirrored(pixels))
    at = {tuple(np.round(p, 1)): i for i, p in enumerate(detected.points)}
    same = [j for j, p in enumerate(mirror.points)
            if (i := at.get(tuple(np.round(p, 1)))) is not None
            and np.array_equal(mirror.descriptors[j], detected.descriptors[i])]
    assert len(mirror.points) == len(detected.points)
    assert len(same) >= 0.97 * len(detected.points)
    flipped_copy = orb_features(np.ascontiguousarray(fit384(rotated_crop(photo(name)))[:, ::-1]))
    assert inliers(flipped_copy, mirror) >= VERIFY_THRESHOLD


def test_an_image_too_small_for_orb_has_no_features_nor_mirror_features() -> None:
    plain, mirror = orb_and_mirror(np.zeros((20, 300, 3), np.uint8))
    assert len(plain.points) == len(mirror.points) == 0 and mirror.descriptors.shape == (0, 32)

"""Duplicate groups: threshold semantics, exact copies, low quality, linkage, keeper; a catalog
file and a PostgreSQL catalog alike."""

from __future__ import annotations

import io
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

import neardup
from neardup.indexer.decode import decode
from neardup.indexer.hashes import HASHES
from neardup.search.auto import POLICY, kept_apart, link_costs
from neardup.search.candidates import nearest_to_verify, pair_candidates
from neardup.search.fusion import hamming_rows
from neardup.search.keeper import UnknownRuleError, check_order, choose_keeper
from neardup.search.linkage import complete_linkage, components, single_linkage
from neardup.storage.records import ImageInfo
from neardup.storage.vectors import Neighbourhoods

from conftest import photo, save, scene


@pytest.fixture
def indexed(tmp_path, collection, catalog_location):
    cat = neardup.open(catalog_location, create=True, embedder="none")
    cat.index([tmp_path / "photos"], workers=1)
    return cat, collection


def _groups(cat, **kw) -> set[frozenset[str]]:
    return {frozenset(Path(p).name for p in g.members) for g in cat.duplicates(**kw)}


def test_default_auto_groups_exactly_the_made_copies(indexed) -> None:
    cat, _ = indexed
    assert _groups(cat) == {
        frozenset({"coffee.jpg", "coffee_half.jpg", "coffee_bright.png"}),
        frozenset({"chelsea.jpg", "chelsea_q40.jpg"}),
        frozenset({"rocket.jpg", "rocket_copy.jpg"}),
    }


@pytest.mark.parametrize("by", list(HASHES))
def test_every_hash_groups_the_copies_at_its_default_threshold(indexed, by) -> None:
    cat, _ = indexed
    groups = _groups(cat, by=by)
    assert frozenset({"chelsea.jpg", "chelsea_q40.jpg"}) in groups
    assert frozenset({"rocket.jpg", "rocket_copy.jpg"}) in groups
    assert all(len(g) <= 3 for g in groups)


def test_threshold_is_inclusive_at_the_boundary(indexed) -> None:
    cat, files = indexed
    ids, codes = cat.catalog.hashes("phash256")
    paths = {i.image_id: i.path for i in cat.catalog.images(ids).values()}
    row = {paths[i]: c for i, c in zip(ids, codes)}
    d = int(hamming_rows(row[str(files["chelsea"])], row[str(files["chelsea_q40"])]))
    assert d > 0
    pair = frozenset({"chelsea.jpg", "chelsea_q40.jpg"})
    assert pair in _groups(cat, by="phash256", threshold=d)
    assert pair not in _groups(cat, by="phash256", threshold=d - 1)


def test_exact_copies_are_grouped_whatever_the_threshold(indexed) -> None:
    cat, _ = indexed
    assert frozenset({"rocket.jpg", "rocket_copy.jpg"}) in _groups(cat, by="phash256", threshold=0)
    assert frozenset({"rocket.jpg", "rocket_copy.jpg"}) in _groups(cat, by="auto", threshold=1.0)


@pytest.mark.parametrize(("by", "threshold"), [
    ("auto", -1), ("auto", 1.01), ("auto", float("nan")), ("auto", float("inf")), ("auto", 1e12),
    ("phash256", -1), ("phash256", 12.7), ("phash256", 129), ("pdq", 300), ("pdq", float("inf")), ("ahash", 33),
])
def test_a_threshold_outside_its_range_is_an_error_not_a_clamp(indexed, by, threshold) -> None:
    cat, _ = indexed
    with pytest.raises(neardup.ThresholdError, match=by):
        cat.duplicates(by=by, threshold=threshold)


@pytest.mark.parametrize(("by", "threshold"), [("auto", 0.0), ("auto", 1.0), ("phash256", 128), ("ahash", 0)])
def test_thresholds_at_the_ends_of_their_range_are_accepted(indexed, by, threshold) -> None:
    cat, _ = indexed
    assert isinstance(cat.duplicates(by=by, threshold=threshold), list)


def test_flat_images_never_match_by_hash(tmp_path, catalog_location) -> None:
    for i, v in enumerate((128, 131)):
        save(np.full((100, 100, 3), v, np.uint8), tmp_path / "flat" / f"grey{i}.png")
    cat = neardup.open(catalog_location, create=True, embedder="none")
    cat.index([tmp_path / "flat"], workers=1)
    for by in ("auto", "pdq", "ahash"):
        assert cat.duplicates(by=by, threshold=None) == []


def _info(i, w, h, size, mtime, path, **traits):
    return ImageInfo(i, path, size, mtime, None, w, h, traits.pop("format", "JPEG"), 90, **traits)


def test_keeper_rules_decide_in_order_and_name_their_reason() -> None:
    plain = _info(1, 100, 100, 5000, 1, "/a", noise=1.0)
    framed = _info(2, 200, 200, 9000, 1, "/b", noise=1.0, has_box=True)
    grainy = _info(3, 100, 100, 9000, 1, "/c", noise=4.0)
    keeper, reason = choose_keeper([framed, grainy, plain])
    assert keeper is plain and "no frame" in reason and "less grain" in reason
    bigger = _info(4, 200, 100, 10, 5, "/d", noise=1.0)
    assert choose_keeper([plain, bigger])[0] is bigger  # then resolution
    assert choose_keeper([plain, bigger], order=["size"])[0] is plain  # the catalog's order first
    assert choose_keeper([plain, bigger], prefer=["/a"]) == (plain, "in a preferred folder")
    with pytest.raises(UnknownRuleError, match="colour"):
        check_order(["colour"])


def test_a_content_box_is_a_frame_only_on_a_member_larger_than_one_without() -> None:
    """An original may hold a natural box (a picture on a wall) that a warped copy of the same
    size loses: no evidence against it. A larger member with a box is framed."""
    original = _info(1, 300, 200, 9000, 1, "/original", noise=1.0, has_box=True)
    warped = _info(2, 300, 200, 9000, 2, "/warped", noise=1.0)
    assert choose_keeper([warped, original])[0] is original  # then the oldest file
    bordered = _info(3, 340, 240, 9000, 0, "/bordered", noise=1.0, has_box=True)
    keeper, reason = choose_keeper([bordered, warped])
    assert keeper is warped and "no frame" in reason


def _measured(i: int, path: str, rgb: np.ndarray, **traits) -> ImageInfo:
    """The record the indexer writes of `rgb` saved as a JPEG (decoded as it decodes)."""
    out = io.BytesIO()
    Image.fromarray(rgb).save(out, "JPEG", quality=92)
    d = decode(out.getvalue(), max_side=384)
    return _info(i, d.width, d.height, len(out.getvalue()), 1, path, noise=d.noise, jpeg_quality=d.jpeg_quality,
                 enlargement=d.enlargement.to_bytes(), **traits)


@pytest.mark.parametrize("name", ["coffee", "chelsea", "astronaut"])
def test_a_composite_as_wide_as_a_soft_original_never_makes_it_a_stretch(name) -> None:
    """Two pictures side by side, each reduced to half, make a canvas as wide as one of them and
    half as high: by its sides' lengths the full-size picture would be a stretch of it, and a
    soft one (enlarged once, as many web images are) loses far less reduced down its height
    than the sharp reduced copies do. A member with a content box holds its picture at a scale
    of its own, so it accuses no one of a stretch."""
    src = photo(name)
    h, w = src.shape[:2]
    soft = cv2.resize(cv2.resize(src, (w * 5 // 8, h * 5 // 8), interpolation=cv2.INTER_AREA), (w, h),
                      interpolation=cv2.INTER_CUBIC)
    halves = [cv2.resize(a, (w // 2 - 5, round((w // 2 - 5) * a.shape[0] / a.shape[1])), interpolation=cv2.INTER_AREA)
              for a in (soft, photo("rocket"))]
    side = np.full((max(a.shape[0] for a in halves) + 10, w, 3), 255, np.uint8)
    for x, a in zip((3, w // 2 + 2), halves):
        side[5:5 + a.shape[0], x:x + a.shape[1]] = a
    original = _measured(1, "/original.jpg", soft)
    composite = _measured(2, "/side.jpg", side, has_box=True)
    keeper, reason = choose_keeper([composite, original])
    assert keeper is original and "stretched along one side" not in reason, reason


@pytest.mark.parametrize("name", ["coffee", "chelsea", "astronaut"])
def test_a_picture_reduced_onto_a_banner_as_wide_never_makes_a_soft_original_a_stretch(name) -> None:
    """A soft original reduced to 60 % and centred on a blurred banner as wide as it (no content
    box: the fill is no flat colour): by its sides' lengths the original is a stretch of the
    banner down its height, and reduced down it loses far less than the sharp reduced copy.
    But along its width too: a stretch keeps its detail along the side it was not stretched."""
    src = photo(name)
    h, w = src.shape[:2]
    soft = cv2.resize(cv2.resize(src, (w * 5 // 8, h * 5 // 8), interpolation=cv2.INTER_AREA), (w, h),
                      interpolation=cv2.INTER_CUBIC)
    small = cv2.resize(soft, (w * 3 // 5, h * 3 // 5), interpolation=cv2.INTER_AREA)
    banner = cv2.GaussianBlur(cv2.resize(soft, (w, small.shape[0]), interpolation=cv2.INTER_AREA), (0, 0), 12)
    x = (w - small.shape[1]) // 2
    banner[:, x:x + small.shape[1]] = small
    original, copy = _measured(1, "/original.jpg", soft), _measured(2, "/banner.jpg", banner)
    keeper, reason = choose_keeper([copy, original])
    assert keeper is original and "stretched along one side" not in reason, reason


def test_a_lossless_resave_of_a_jpeg_loses_the_keeper() -> None:
    jpeg = _info(1, 300, 200, 20_000, 1, "/photo.jpg", noise=0.5)
    png = _info(2, 300, 200, 90_000, 1, "/photo.png", noise=0.5, format="PNG")
    keeper, reason = choose_keeper([png, jpeg])
    assert keeper is jpeg and "re-save" in reason


def test_keeper_comes_first_in_the_group_with_its_reason(indexed) -> None:
    cat, files = indexed
    group = next(g for g in cat.duplicates() if str(files["coffee"]) in g.members)
    assert group.keeper == group.members[0] and group.reason
    assert group.keeper != str(files["coffee_half"])  # a half-size copy never wins over its full-size original


def test_components_name_each_image_by_the_smallest_of_its_single_linkage_group() -> None:
    rng = np.random.default_rng(5)
    pairs = rng.integers(0, 300, (200, 2)).astype(np.int64)
    expected = {i: min(group) for group in single_linkage((a, b, 0.0) for a, b in pairs.tolist()) for i in group}
    assert components(pairs) == expected
    assert components(np.zeros((0, 2), np.int64)) == {}


def test_pairs_kept_apart_cut_a_chain_at_its_weakest_link_and_leave_other_groups_alone() -> None:
    chain = [(1, 2, 0.1), (2, 3, 0.5), (3, 4, 0.2), (10, 11, 0.3), (11, 12, 0.9)]
    assert sorted(map(sorted, single_linkage(chain))) == [[1, 2, 3, 4], [10, 11, 12]]
    split = sorted(map(sorted, single_linkage(chain, apart={frozenset((1, 4))})))
    assert split == [[1, 2], [3, 4], [10, 11, 12]]  # 2~3 was the weakest link between 1 and 4
    assert sorted(map(sorted, single_linkage(chain, apart={frozenset((1, 2))}))) == [[2, 3, 4], [10, 11, 12]]
    assert sorted(map(sorted, single_linkage(chain, apart={frozenset((1, 99))}))) == [[1, 2, 3, 4], [10, 11, 12]]


def test_no_group_of_a_random_graph_holds_a_pair_kept_apart() -> None:
    rng = np.random.default_rng(3)
    pairs = [(int(a), int(b), float(c)) for a, b, c in zip(*rng.integers(0, 200, (2, 400)), rng.random(400)) if a != b]
    apart = {frozenset(map(int, p)) for p in rng.integers(0, 200, (60, 2)) if p[0] != p[1]}
    groups = single_linkage(pairs, apart=apart)
    assert not any(p <= set(g) for g in groups for p in apart)
    linked = {frozenset((a, b)) for a, b, _ in pairs}
    for g in groups:  # still one chain of matched pairs inside every group
        inside = components(np.array([sorted(p) for p in linked if p <= set(g)], np.int64))
        assert inside.keys() == set(g) and len(set(inside.values())) == 1
    merged = {frozenset(g) for g in single_linkage(pairs)}
    assert all(any(set(g) <= m for m in merged) for g in groups)  # only ever cut, never joined


def test_a_pair_whose_content_differs_is_kept_apart_unless_many_duplicates_link_both() -> None:
    """Pair 0 (images 1, 2) was found to differ; images 10.. are kept duplicates of both. With
    fewer than `overrule_links` of them the finding stands; with that many it is overruled."""
    need = POLICY.overrule_links
    for shared, expected in ((need - 1, True), (need, False)):
        bridges = list(range(10, 10 + shared))
        pairs = np.array([(1, 2), *((1, b) for b in bridges), *((2, b) for b in bridges), (1, bridges[0])], np.int64)
        keep = np.ones(len(pairs), bool)
        keep[0] = False
        differs = np.zeros(len(pairs), bool)
        differs[0] = True
        out = kept_apart(pairs, keep, differs)
        assert out[0] == expected and not out[1:].any()  # a link judged twice counts once
    assert not kept_apart(pairs, np.zeros(len(pairs), bool), np.zeros(len(pairs), bool)).any()


def test_a_chain_between_two_images_kept_apart_is_cut_at_the_link_covering_less_of_both_frames() -> None:
    """A picture and the picture with another pasted in (kept apart) both link to a copy: the
    pasted one more strongly (0.95) over part of its frame (0.8), the picture more weakly
    (0.83) over nearly all of it. The picture keeps the copy, whichever has the lower id; with
    equal coverage, the stronger evidence wins."""
    costs = link_costs(np.array([0.83, 0.95]), np.array([0.93, 0.8]))
    for picture, pasted in ((1, 3), (3, 1)):
        groups = single_linkage([(picture, 2, costs[0]), (pasted, 2, costs[1])], apart={frozenset((1, 3))})
        assert sorted(map(sorted, groups)) == [sorted((picture, 2))]
    assert link_costs(np.array([0.6, 0.9, 0.9, 0.7]), np.array([0.5, 0.5, 0.7, 0.0])).tolist() == [2, 1, 0, 3]


def test_complete_linkage_breaks_chains_that_single_linkage_merges() -> None:
    chain = [(1, 2, 1.0), (2, 3, 1.0)]  # 1~2, 2~3, but 1 and 3 are not a match
    assert sorted(map(sorted, single_linkage(chain))) == [[1, 2, 3]]
    strict = sorted(map(sorted, complete_linkage(chain)))
    assert strict in ([[1, 2]], [[2, 3]])
    triangle = chain + [(1, 3, 2.0)]
    assert sorted(map(sorted, complete_linkage(triangle))) == [[1, 2, 3]]


def test_strict_grouping_through_the_api_breaks_a_real_chain(tmp_path, catalog_location) -> None:
    """A photo morphing into another in two steps: at a pdq threshold that links neighbours in
    the chain but not its ends, single linkage makes one group, strict does not."""
    coffee = photo("coffee").astype(np.float64)
    other = cv2.resize(photo("chelsea"), coffee.shape[1::-1]).astype(np.float64)
    chain = [np.round((1 - t) * coffee + t * other).astype(np.uint8) for t in (0.0, 0.3, 0.6)]
    for i, rgb in enumerate(chain):
        save(rgb, tmp_path / "chain" / f"c{i}.png")
    cat = neardup.open(catalog_location, create=True, embedder="none")
    cat.index([tmp_path / "chain"], workers=1)
    ids, codes = cat.catalog.hashes("pdq")
    by_name = {Path(im.path).stem: codes[list(ids).index(i)] for i, im in cat.catalog.images(ids).items()}
    near = max(int(hamming_rows(by_name["c0"], by_name["c1"])), int(hamming_rows(by_name["c1"], by_name["c2"])))
    assert int(hamming_rows(by_name["c0"], by_name["c2"])) > near  # the chain's ends are further apart
    assert _groups(cat, by="pdq", threshold=near) == {frozenset({"c0.png", "c1.png", "c2.png"})}
    strict = _groups(cat, by="pdq", threshold=near, strict=True)
    assert len(strict) == 1 and len(next(iter(strict))) == 2


_TURNS = {"mirror": lambda a: a[:, ::-1], "quarter": lambda a: np.rot90(a, -1), "half": lambda a: a[::-1, ::-1]}


def _turned_collection(tmp_path: Path, turn: str) -> neardup.Collection:
    """Four photos, forty scenes and chelsea turned, in a hashes-only catalog."""
    for name in ("coffee", "chelsea", "astronaut", "rocket"):
        save(photo(name), tmp_path / "photos" / f"{name}.jpg", quality=95)
    for seed in range(40):
        save(scene(seed), tmp_path / "photos" / f"scene{seed:02d}.png")
    save(np.ascontiguousarray(_TURNS[turn](photo("chelsea"))), tmp_path / "photos" / "chelsea_turned.jpg", quality=90)
    cat = neardup.open(tmp_path / "c.db", create=True, embedder="none")
    cat.index([tmp_path / "photos"], workers=1)
    return cat


@pytest.mark.parametrize("turn", list(_TURNS))
def test_a_mirrored_or_turned_copy_is_grouped_without_a_vector_feature(tmp_path, turn) -> None:
    assert _groups(_turned_collection(tmp_path, turn)) == {frozenset({"chelsea.jpg", "chelsea_turned.jpg"})}


@pytest.mark.parametrize("turn", list(_TURNS))
def test_the_turns_of_an_images_hash_find_its_mirrored_or_turned_copy(tmp_path, turn) -> None:
    """No hash of an image lies near its mirror's or its turn's (its own nearest hashes find
    it only in a collection too small to hold nearer ones); the turns guessed from its hash
    put the pair up for verification."""
    cat = _turned_collection(tmp_path, turn).catalog
    found = cat.image_ids(str((tmp_path / "photos" / n).resolve()) for n in ("chelsea.jpg", "chelsea_turned.jpg"))
    pair = tuple(sorted(found.values()))
    assert len(pair) == 2
    weights = POLICY.weights(cat.settings.hashes)
    own_only = replace(POLICY, pair_k=1, verify_hash_top=0)  # no pair from the images' own hashes
    for policy, found in ((own_only, True), (replace(own_only, turn_seeds=()), False)):
        candidates = pair_candidates(cat, 0.5, weights, (), verifying=True, merge={}, policy=policy)
        verified = {tuple(p) for p in candidates.pairs[candidates.verify].tolist()}
        assert (pair in verified) is found


def test_a_hash_neighbour_past_the_cap_is_verified_only_without_a_vector_feature() -> None:
    """Each image's few nearest by a hash are verified; beside a vector feature only those
    of them within `verify_hash_bits`."""
    policy = replace(POLICY, verify_hash_top=2, verify_hash_bits=40)
    # query 1's nearest: 2 at 10 bits, 3 at 41, 4 at 60; query 5's: 6 at 41, 7 at 90
    hood = Neighbourhoods(np.array([1, 5]), np.array([[2, 3, 4], [6, 7, -1]]), np.array([[10, 41, 60], [41, 90, 0]]))

    def pairs(capped: bool) -> set[tuple[int, int]]:
        found = nearest_to_verify(hood, policy, capped=capped)
        return set(zip(found.src.tolist(), found.dst.tolist()))

    assert pairs(capped=False) == {(1, 2), (1, 3), (5, 6), (5, 7)}
    assert pairs(capped=True) == {(1, 2)}


def test_without_a_vector_feature_every_hash_neighbour_of_the_few_is_verified(indexed) -> None:
    """The cap holds only beside a vector feature: without one, the hashes' nearest are all
    that finds a hard copy."""
    cat = indexed[0].catalog
    weights = POLICY.weights(cat.settings.hashes)

    def verified(policy) -> set[tuple[int, int]]:
        found = pair_candidates(cat, 0.5, weights, (), verifying=True, merge={}, policy=policy)
        return {tuple(p) for p in found.pairs[found.verify].tolist()}

    few = replace(POLICY, pair_k=1, verify_hash_top=1)  # so that the first seed's list does not hold every pair
    assert verified(replace(few, verify_hash_bits=0)) == verified(replace(few, verify_hash_bits=256))

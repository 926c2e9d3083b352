"""Stored pair evidence (storage.pairs) and incremental duplicates (search.incremental): a second
`duplicates` reads what the first judged, a change judges only the pairs it touches, and the
groups are always the ones a fresh computation over the whole catalog gives."""

from __future__ import annotations

import os
import shutil
import sqlite3
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import create_engine, text

import neardup
from neardup.indexer import enlargement
from neardup.indexer.colours import LAYOUT_SIDE, STORED_BYTES, has_flat_cells
from neardup.search.auto import POLICY
from neardup.search.duplicates import decide
from neardup.search.features import default_threshold
from neardup.search import incremental, inset
from neardup.search.incremental import judged_pairs
from neardup.storage.vectors import FeatureIndex

from conftest import make_collection, photo, save, scene
from test_cli import run
from test_trusted_groups import _sticker, _with_q40_copies
from test_verify import fit384, rotated_crop, screenshot


def _groups(found) -> list[tuple[str, tuple[str, ...], tuple[str, ...]]]:
    """Groups as comparable values: keeper, members, composites' parts (by file name)."""
    return [(Path(g.keeper).name, tuple(sorted(Path(m).name for m in g.members)),
             tuple(sorted(Path(c).name for c in g.contains))) for g in found.groups]


def _fresh(cat: neardup.Collection, tmp_path: Path):
    """What a computation from nothing finds: the same catalog, copied without its stored
    evidence and groups."""
    copy = tmp_path / f"fresh{len(list(tmp_path.glob('fresh*.db')))}.db"
    source, target = sqlite3.connect(cat.catalog.path), sqlite3.connect(copy)
    with target:
        source.backup(target)
        target.execute("DELETE FROM evidence_segments")
        target.execute("DELETE FROM evidence_sets")
        target.execute("DELETE FROM decisions")
    source.close()
    target.close()
    other = neardup.open(copy)
    found = other.duplicate_report()
    other.close()
    assert found.evidence.reused == 0 and found.evidence.computed > 0
    return found


# the length of an enlargement record before the sides' losses: its scale and the whole picture's
_OLDER_RECORD = 4 * (1 + len(enlargement.SCALES))


@pytest.fixture
def photos(tmp_path: Path) -> Path:
    """Real photos, their made copies (see `make_collection`), a rotated crop and a screenshot."""
    root = tmp_path / "photos"
    make_collection(root)
    save(rotated_crop(fit384(photo("astronaut"))), root / "edits" / "astronaut_crop.png")
    save(screenshot(photo("hubble")), root / "edits" / "hubble_shot.png")
    return root


@pytest.fixture
def cat(tmp_path: Path, photos: Path):
    collection = neardup.open(tmp_path / "cat.db", create=True, embedder="cnn")
    collection.index([photos], workers=1)
    yield collection
    collection.close()


def test_a_second_run_reads_the_stored_evidence_and_finds_the_same_groups(cat, tmp_path) -> None:
    first = cat.duplicate_report()
    assert first.evidence.reused == 0 and first.evidence.computed > 0 and first.evidence.verified > 0
    second = cat.duplicate_report()
    assert second.evidence.computed == 0 and second.evidence.verified == 0
    assert second.evidence.reused == first.evidence.stored > 0
    assert _groups(second) == _groups(first) == _groups(_fresh(cat, tmp_path))
    assert any({"astronaut_crop.png", "astronaut.jpg"} <= set(members) for _, members, _ in _groups(second))


def test_a_policy_field_that_only_decides_leaves_the_stored_evidence_valid(cat) -> None:
    """Only what shaped the judgements keys them: a field that decides over them (how many
    shared duplicates overrule a pair found to differ) must not judge every pair again."""
    cat.duplicate_report()
    first = {i: g[0] for g in cat.catalog.same_content_groups() for i in g[1:]}  # as duplicates merge exact copies

    def judge(policy):
        return judged_pairs(cat.catalog, default_threshold("auto"), merge=first, policy=policy)[1]

    assert judge(replace(POLICY, overrule_links=POLICY.overrule_links + 5)).computed == 0
    assert judge(replace(POLICY, pair_k=POLICY.pair_k + 1)).computed > 0  # one that shapes them does


def test_a_verification_constant_measured_into_the_stored_evidence_judges_every_pair_again(cat, monkeypatch) -> None:
    """Which image holds an inset is measured while verifying and stored: the inset's least
    block must key the stored judgements, as the recolour and strip constants do."""
    cat.duplicate_report()
    first = {i: g[0] for g in cat.catalog.same_content_groups() for i in g[1:]}

    def computed() -> int:
        return judged_pairs(cat.catalog, default_threshold("auto"), merge=first)[1].computed

    assert computed() == 0
    monkeypatch.setattr(inset, "MIN_BLOCK", inset.MIN_BLOCK / 2)
    assert computed() > 0


def test_beside_the_cnn_a_hash_neighbour_past_the_cap_goes_unverified_and_no_duplicate_is_lost(cat) -> None:
    """Beside a vector feature, an image's few nearest by a hash farther than
    `verify_hash_bits` are strangers (here the photos' unrelated neighbours): fewer pairs
    verified, the same duplicates decided."""
    first = {i: g[0] for g in cat.catalog.same_content_groups() for i in g[1:]}
    threshold = default_threshold("auto")

    def judge(policy) -> tuple[int, set[tuple[int, int]]]:
        judged, report = judged_pairs(cat.catalog, threshold, merge=first, policy=policy)
        edges = decide(judged, threshold).edges
        return report.verified, set(zip(edges.src.tolist(), edges.dst.tolist()))

    (capped, kept), (every, kept_verifying_all) = judge(POLICY), judge(replace(POLICY, verify_hash_bits=256))
    assert capped < every
    assert kept == kept_verifying_all and kept


def test_adding_an_image_judges_only_its_pairs_and_gives_the_fresh_groups(cat, tmp_path, photos, monkeypatch) -> None:
    whole = cat.duplicate_report()
    save(rotated_crop(fit384(photo("chelsea")), degrees=-8), photos / "edits" / "chelsea_crop.png")
    save(scene(11), photos / "scenes" / "scene11.png")  # unrelated: joins nothing
    cat.index([photos], workers=1)
    searched: list[int] = []
    search = FeatureIndex.ordered
    monkeypatch.setattr(FeatureIndex, "ordered",
                        lambda self, q, width: searched.append(len(q)) or search(self, q, width))
    after = cat.duplicate_report()
    # the lists of the images known before were merged with the added ones, not searched again:
    # only the added images' lists were (whole images' and content boxes', by pdq, phash256, cnn)
    assert 2 * 3 <= sum(searched) <= 2 * 3 * 2 < len(cat.catalog.contents()[0])
    assert after.evidence.images == 2
    assert 0 < after.evidence.computed < whole.evidence.computed / 2
    assert 0 < after.evidence.verified < whole.evidence.verified / 2
    assert after.evidence.reused > 0
    chelsea = next(members for _, members, _ in _groups(after) if "chelsea.jpg" in members)
    assert "chelsea_crop.png" in chelsea
    # only the group the crop joined had its keeper chosen again; every other kept its own
    groups = len([g for g in whole.groups if not g.contains])
    assert (after.evidence.keepers, after.evidence.keepers_kept) == (1, groups - 1)
    assert _groups(after) == _groups(_fresh(cat, tmp_path))


def test_a_photo_added_after_a_sticker_of_it_is_found_pasted_there(tmp_path, monkeypatch) -> None:
    """A sticker of a photo the collection lacks is a copy of its background with an overlay;
    once that photo is added, the stored search of the sticker's region is compared with it
    (its vector comes as close as the candidates verified then), the region is searched again,
    and the stickered image contains both. The groups are those of a run from nothing."""
    folder = tmp_path / "photos"
    _with_q40_copies(folder, ("coffee",))
    save(_sticker(photo("coffee"), photo("chelsea"), side=0.4, at=(0.9, 0.9)), folder / "stuck.png")
    save(photo("hubble"), folder / "hubble.png")
    cat = neardup.open(tmp_path / "c.db", create=True, embedder="cnn")
    cat.index([folder], workers=1)
    assert [(m, c) for _, m, c in _groups(cat.duplicate_report())] == [
        (("coffee.png", "coffee_q40.png", "stuck.png"), ())]
    _with_q40_copies(folder, ("chelsea",))
    cat.index([folder], workers=1)
    searched: list[int] = []
    search = incremental.search_regions
    monkeypatch.setattr(incremental, "search_regions",
                        lambda catalog, wanted, *rest: searched.append(len(wanted)) or search(catalog, wanted, *rest))
    after = cat.duplicate_report()
    assert searched == [1]
    assert sorted((m, c) for _, m, c in _groups(after)) == [
        (("chelsea.png", "chelsea_q40.png"), ()), (("coffee.png", "coffee_q40.png"), ()),
        (("stuck.png",), ("chelsea.png", "coffee.png"))]
    assert _groups(after) == _groups(_fresh(cat, tmp_path))

def test_a_group_keeps_its_keeper_until_a_member_changes(cat, tmp_path, photos) -> None:
    """A keeper is kept from the decision before only for a group whose members' records are
    as they were: a file touched since (same content, so no pair is judged again) may now be
    the newest, which the `oldest` rule reads, so its group's keeper is chosen again."""
    first = cat.duplicate_report()
    groups = len([g for g in first.groups if not g.contains])
    assert (first.evidence.keepers, first.evidence.keepers_kept) == (groups, 0)
    touched = photos / "edits" / "chelsea_q40.jpg"
    later = touched.stat().st_mtime_ns + 10**9
    os.utime(touched, ns=(later, later))
    cat.index([photos], workers=1)
    after = cat.duplicate_report()
    assert after.evidence.computed == 0 and not after.evidence.decided
    assert (after.evidence.keepers, after.evidence.keepers_kept) == (1, groups - 1)
    assert _groups(after) == _groups(first) == _groups(_fresh(cat, tmp_path))


def test_deleting_images_drops_their_pairs_and_gives_the_fresh_groups(cat, tmp_path, photos) -> None:
    before = cat.duplicate_report()
    (photos / "edits" / "chelsea_q40.jpg").unlink()
    (photos / "edits" / "coffee_half.jpg").unlink()
    cat.index([photos], workers=1)
    after = cat.duplicate_report()
    assert after.evidence.dropped == 2 and after.evidence.images == 0
    # judged again: only the pairs whose lists the deleted images left (their ranks moved up)
    assert after.evidence.computed < before.evidence.computed / 4
    assert after.evidence.stored < before.evidence.stored
    names = {n for _, members, _ in _groups(after) for n in members}
    assert "chelsea_q40.jpg" not in names and "chelsea.jpg" not in names  # its only copy is gone
    assert {"coffee.jpg", "coffee_bright.png"} <= names
    assert _groups(after) == _groups(_fresh(cat, tmp_path))


def test_an_image_whose_content_changed_is_judged_again(cat, tmp_path, photos) -> None:
    cat.duplicate_report()
    shutil.copyfile(photos / "hubble.jpg", photos / "scenes" / "scene0.png")  # scene0 now holds hubble
    cat.index([photos], workers=1)
    after = cat.duplicate_report()
    assert after.evidence.dropped == 1 and after.evidence.images == 0  # now an exact copy: judged through hubble
    hubble = next(members for _, members, _ in _groups(after) if "hubble.jpg" in members)
    assert "scene0.png" in hubble
    assert _groups(after) == _groups(_fresh(cat, tmp_path))


def test_a_catalog_indexed_before_colour_layouts_gets_them_and_is_judged_again(cat, tmp_path, photos) -> None:
    """A catalog from before colour layouts (migrated: none stored) judges its pairs without
    them; the next `index` computes every layout from the files, exactly as indexing does,
    and the evidence judged without them is judged again."""
    stored = cat.catalog.colour_layouts_of(range(1, 1000))
    assert len(stored) == cat.catalog.present() == cat.catalog.counts()["colour_layouts"] > 0
    with sqlite3.connect(cat.catalog.path) as db:
        db.execute("DELETE FROM colour_layouts")
    db.close()
    cat.duplicate_report()
    assert cat.catalog.missing_colour_layouts() != []
    assert "colour_layouts" not in cat.catalog.counts()
    cat.index([photos], workers=1)
    assert cat.catalog.missing_colour_layouts() == []
    assert cat.catalog.colour_layouts_of(range(1, 1000)) == stored
    again = cat.duplicate_report()
    assert again.evidence.reused == 0 and again.evidence.computed > 0
    assert _groups(again) == _groups(_fresh(cat, tmp_path))


def test_a_catalog_whose_layouts_mark_no_flat_cells_gets_them_and_is_judged_again(cat, tmp_path, photos) -> None:
    """Layouts stored before their flat cells were (`indexer.colours`: the blob ends after the
    means) are computed again by the next `index`, exactly as indexing does, and the evidence
    judged without them is judged again."""
    stored = cat.catalog.colour_layouts_of(range(1, 1000))
    assert stored and all(has_flat_cells(cells) for _, _, cells in stored.values())
    cat.duplicate_report()
    with sqlite3.connect(cat.catalog.path) as db:
        db.execute("UPDATE colour_layouts SET cells = substr(cells, 1, ?)", (LAYOUT_SIDE * LAYOUT_SIDE * 3,))
    db.close()
    assert cat.catalog.missing_colour_layouts() == []  # each image has a layout ...
    assert len(cat.catalog.missing_colour_layouts(STORED_BYTES)) == len(stored)  # ... of an older neardup
    cat.index([photos], workers=1)
    assert cat.catalog.missing_colour_layouts(STORED_BYTES) == []
    assert cat.catalog.colour_layouts_of(range(1, 1000)) == stored
    again = cat.duplicate_report()
    assert again.evidence.reused == 0 and again.evidence.computed > 0
    assert _groups(again) == _groups(_fresh(cat, tmp_path))


def test_a_catalog_whose_keeper_traits_are_of_an_older_neardup_gets_them_measured_again(cat, tmp_path, photos) -> None:
    """Enlargement records stored before the losses of each side were (the blob ends after the
    whole picture's), and the noise measured then on the decoded pixels, are measured again by
    the next `index` from the files, exactly as indexing does; the groups are decided again."""
    ids = range(1, 1000)
    traits = {i: (im.noise, im.enlargement) for i, im in cat.catalog.images(ids).items()}
    measured = [i for i, (_, record) in traits.items() if record is not None]
    assert measured and all(len(traits[i][1]) == enlargement.STORED_BYTES for i in measured)
    cat.duplicate_report()
    with sqlite3.connect(cat.catalog.path) as db:
        db.execute("UPDATE images SET enlargement = substr(enlargement, 1, ?), noise = noise + 5 "
                   "WHERE enlargement IS NOT NULL", (_OLDER_RECORD,))
    db.close()
    assert sorted(i for i, _ in cat.catalog.stale_keeper_traits(enlargement.STORED_BYTES)) == measured
    cat.index([photos], workers=1)
    assert cat.catalog.stale_keeper_traits(enlargement.STORED_BYTES) == []
    assert {i: (im.noise, im.enlargement) for i, im in cat.catalog.images(ids).items()} == traits
    assert _groups(cat.duplicate_report()) == _groups(_fresh(cat, tmp_path))


def test_keeper_traits_of_an_older_neardup_are_measured_again_on_either_backend(tmp_path, catalog_location) -> None:
    """The refill's query and bulk update on SQLite and on PostgreSQL alike."""
    folder = tmp_path / "photos"
    for name in ("coffee", "chelsea", "rocket"):
        save(photo(name), folder / f"{name}.jpg", quality=92)
    cat = neardup.open(catalog_location, create=True, embedder="none")
    cat.index([folder], workers=1)
    traits = {i: (im.noise, im.enlargement) for i, im in cat.catalog.images(range(1, 100)).items()}
    assert len(traits) == 3 and all(record is not None for _, record in traits.values())
    url = catalog_location if "://" in catalog_location else f"sqlite:///{catalog_location}"
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text("UPDATE images SET enlargement = substr(enlargement, 1, :n), noise = noise + 5"),
                     {"n": _OLDER_RECORD})
    engine.dispose()
    assert len(cat.catalog.stale_keeper_traits(enlargement.STORED_BYTES)) == 3
    cat.index([folder], workers=1)
    assert cat.catalog.stale_keeper_traits(enlargement.STORED_BYTES) == []
    assert {i: (im.noise, im.enlargement) for i, im in cat.catalog.images(range(1, 100)).items()} == traits
    cat.close()


def test_a_file_unreadable_when_its_keeper_traits_are_measured_again_keeps_its_image(cat, photos) -> None:
    """A file that cannot be decoded now (its bytes damaged behind the catalog's back: same
    size and mtime, so `index` takes it for unchanged) keeps its row, its features and its
    older traits, and is tried again on the next `index`; the others are measured again."""
    ids = range(1, 1000)
    images = cat.catalog.images(ids)
    victim = next(im for im in images.values() if im.enlargement is not None and im.path.endswith(".jpg"))
    with sqlite3.connect(cat.catalog.path) as db:
        db.execute("UPDATE images SET enlargement = substr(enlargement, 1, ?) WHERE enlargement IS NOT NULL",
                   (_OLDER_RECORD,))
    db.close()
    path = Path(victim.path)
    stat = path.stat()
    path.write_bytes(bytes(stat.st_size))
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    counts = cat.catalog.counts()
    cat.index([photos], workers=1)
    assert [i for i, _ in cat.catalog.stale_keeper_traits(enlargement.STORED_BYTES)] == [victim.image_id]
    assert cat.catalog.images([victim.image_id])[victim.image_id].sha256 == victim.sha256
    assert cat.catalog.counts() == counts and cat.catalog.present() == len(images)


def test_a_catalog_indexed_before_keypoint_colours_gets_them_and_is_judged_again(cat, tmp_path, photos) -> None:
    """Keypoints stored without their colours (a migrated catalog) are computed again by the
    next `index`, the same keypoints as before with the colours indexing gives them, and the
    evidence judged without them is judged again."""
    ids = range(1, 1000)
    plain, mirror = cat.catalog.keypoints_of(ids), cat.catalog.keypoints_of(ids, mirrored=True)
    assert plain and all(colours is not None for _, _, colours in [*plain.values(), *mirror.values()])
    with sqlite3.connect(cat.catalog.path) as db:
        db.execute("UPDATE keypoints SET colours = NULL")
        db.execute("UPDATE mirrored_keypoints SET colours = NULL")
    db.close()
    cat.duplicate_report()
    assert len(cat.catalog.stale_keypoints()) == len(plain)
    indexed = run("index", photos, "--db", cat.catalog.path, "--workers", "1")
    assert "keypoints (catalog from an older neardup)" in indexed.stderr  # the bar says what it does
    assert cat.catalog.stale_keypoints() == []
    now = cat.catalog.keypoints_of(ids), cat.catalog.keypoints_of(ids, mirrored=True)
    for before, after in zip((plain, mirror), now):
        assert before.keys() == after.keys()
        for image in before:
            assert all(np.array_equal(x, y) for x, y in zip(before[image], after[image]))
    again = cat.duplicate_report()
    assert again.evidence.reused == 0 and again.evidence.computed > 0
    assert _groups(again) == _groups(_fresh(cat, tmp_path))


def test_an_image_too_small_for_keypoints_is_not_taken_for_one_missing_their_colours(tmp_path) -> None:
    """Its (empty) keypoints have (empty) colours: the next `index` has nothing to compute again."""
    folder = tmp_path / "photos"
    save(scene(0), folder / "scene.png")
    save(np.full((1, 1, 3), 255, np.uint8), folder / "spacer.png")
    collection = neardup.open(tmp_path / "c.db", create=True, embedder="none")
    collection.index([folder], workers=1)
    assert collection.catalog.stale_keypoints() == []


def test_a_readonly_catalog_judges_without_storing(cat, tmp_path) -> None:
    path = cat.catalog.path
    cat.close()
    readonly = neardup.open(path, readonly=True)
    first, second = readonly.duplicate_report(), readonly.duplicate_report()
    readonly.close()
    assert first.evidence.computed > 0 and second.evidence.computed == first.evidence.computed
    assert _groups(first) == _groups(second)


def test_the_cli_says_when_the_second_run_reads_stored_evidence(cat) -> None:
    path = str(cat.catalog.path)
    cat.close()
    first, second = run("duplicates", "--db", path), run("duplicates", "--db", path)
    assert "reused stored evidence for 0 pairs" in first.stderr
    assert "verifying candidate pairs" in first.stderr  # the bar of the longest step
    assert "computed 0" in second.stderr and "reused stored evidence for 0 pairs" not in second.stderr
    assert "verifying candidate pairs" not in second.stderr  # nothing to verify: no bar
    assert first.stdout == second.stdout


def test_refusing_an_output_over_the_catalog_leaves_it_untouched(cat) -> None:
    """The output path is checked before any work: a run would store its evidence first."""
    path = cat.catalog.path
    cat.close()
    before = path.read_bytes()
    refused = run("duplicates", "--db", path, "--output", path, ok=False)
    assert "refusing to overwrite" in refused.stderr and path.read_bytes() == before


def test_an_output_over_an_image_whose_folder_moved_behind_a_link_is_refused(cat, photos, tmp_path) -> None:
    """Indexed paths are stored symlink-free; a folder moved since and linked back is still
    known for the images it holds, under its real name and through the link."""
    path = cat.catalog.path
    cat.close()
    moved = tmp_path / "moved"
    photos.rename(moved)
    photos.symlink_to(moved)
    for target in (moved / "hubble.jpg", photos / "hubble.jpg"):
        before = target.read_bytes()
        refused = run("duplicates", "--db", path, "--output", target, ok=False)
        assert "refusing to overwrite" in refused.stderr and target.read_bytes() == before

"""The web app end to end: `neardup serve` as a real server on a free loopback port, Debian's
Chromium driven by Playwright, real files on disk. Any console error or page error in the
browser fails the test. Each page is photographed; with NEARDUP_SCREENSHOTS=DIR the pictures
are also written there, small (docs/screenshots/ holds the README's)."""

from __future__ import annotations

import base64
import hashlib
import io
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import make_collection, save, scene

import neardup

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="no chromium on PATH: apt-get install -y chromium (scripts/test.sh does, as root)")
sync_api = pytest.importorskip("playwright.sync_api", reason="Playwright is in the dev extra: pip install -e '.[dev]'")

ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--no-first-run", "--disable-sync"]
VIEWPORT = {"width": 1200, "height": 800}
TIMEOUT = 60_000  # ms: the machine is shared and slow at times


class Server:
    """`neardup serve` on an indexed copy of make_collection's photos, until stopped."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.files = make_collection(root / "photos")
        self.db = root / "c.db"
        with neardup.open(self.db, create=True, embedder="none") as cat:
            cat.index([root / "photos"], workers=1)
        env = {**os.environ, "HOME": str(root / "home"), "XDG_DATA_HOME": str(root / "home" / "data")}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "neardup.cli", "serve", "--db", str(self.db), "--port", "0", "--workers", "1"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        line = self.proc.stdout.readline()
        if " at http://" not in line:
            self.stop()
            raise AssertionError(f"neardup serve did not start: {line}{self.proc.stderr.read()}")
        self.url = line.split(" at ", 1)[1].strip().rstrip("/")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        log = self.proc.stderr.read()
        assert "Traceback" not in log, log


@pytest.fixture
def server(tmp_path) -> Iterator[Server]:
    s = Server(tmp_path)
    yield s
    s.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield b
        b.close()


@pytest.fixture
def page(browser) -> Iterator[object]:
    """A fresh browser page that records every console error and uncaught page error; the test
    fails if there was any."""
    context = browser.new_context(viewport=VIEWPORT)
    p = context.new_page()
    p.set_default_timeout(TIMEOUT)
    problems: list[str] = []
    p.on("console", lambda m: problems.append(f"console {m.type}: {m.text}") if m.type == "error" else None)
    p.on("pageerror", lambda e: problems.append(f"page error: {e}"))
    p.on("dialog", lambda d: d.accept())
    yield p
    context.close()
    assert problems == []


def photograph(page, name: str, tmp_path: Path) -> Path:
    """A screenshot of the page (checked to be a real picture), also saved small (a 128-colour
    PNG, ~130 KB) in $NEARDUP_SCREENSHOTS when set."""
    page.wait_for_load_state("networkidle")
    path = tmp_path / f"{name}.png"
    page.screenshot(path=str(path))
    with Image.open(path) as shot:
        assert shot.size == (VIEWPORT["width"], VIEWPORT["height"])
        assert len(np.unique(np.asarray(shot.convert("L")))) > 16  # not a blank page
        target = os.environ.get("NEARDUP_SCREENSHOTS")
        if target:
            Path(target).mkdir(parents=True, exist_ok=True)
            small = shot.convert("RGB").quantize(colors=128, method=Image.Quantize.FASTOCTREE, dither=Image.Dither.NONE)
            small.save(Path(target) / f"{name}.png", optimize=True)
    return path


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_a_copy_dropped_on_the_search_page_finds_its_original_first(server, page, tmp_path) -> None:
    original = server.files["astronaut"]
    with Image.open(original) as im:
        copy = im.convert("RGB").resize((220, 220))
    data = io.BytesIO()
    copy.save(data, "JPEG", quality=70)
    page.goto(f"{server.url}/search")
    page.wait_for_selector("#summary:has-text('images in the catalog')")
    page.evaluate("""async ([b64, name]) => {
        const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
        const transfer = new DataTransfer();
        transfer.items.add(new File([bytes], name, { type: "image/jpeg" }));
        const zone = document.getElementById("drop");
        for (const type of ["dragenter", "dragover", "drop"]) {
            zone.dispatchEvent(new DragEvent(type, { dataTransfer: transfer, bubbles: true, cancelable: true }));
        }
    }""", [base64.b64encode(data.getvalue()).decode(), "astronaut-copy.jpg"])
    first = page.locator("#results li").first
    first.wait_for()
    assert first.locator(".path").get_attribute("title") == str(original)
    assert "hashes" in first.locator(".chips").inner_text()
    assert page.locator("#results li").count() == 12
    page.wait_for_function("() => [...document.querySelectorAll('#results img')].every((i) => i.complete && i.naturalWidth)")
    photograph(page, "search", tmp_path)


def test_a_group_reviewed_cleaned_with_a_chosen_keeper_and_undone(server, page, tmp_path) -> None:
    files, photos, dupes = server.files, server.root / "photos", tmp_path / "dupes"
    before = {p: sha(p) for p in (files["coffee"], files["coffee_bright"], files["coffee_half"])}
    page.goto(f"{server.url}/duplicates")
    title = page.locator("#group-title")
    page.wait_for_selector("#members li")
    assert title.inner_text() == "Group 1 of 3"
    page.keyboard.press("ArrowRight")
    assert title.inner_text() == "Group 2 of 3"
    page.keyboard.press("ArrowLeft")
    assert title.inner_text() == "Group 1 of 3"
    members = page.locator("#members li")
    paths = [members.nth(i).locator("dd[title^='/']").get_attribute("title") for i in range(members.count())]
    assert paths == [str(files["coffee"]), str(files["coffee_bright"]), str(files["coffee_half"])]
    assert "keeper" in members.nth(0).get_attribute("class")  # the original, suggested
    page.wait_for_selector("#meta-" + members.nth(0).get_attribute("data-id") + " dd:has-text('JPEG')")

    page.keyboard.press("2")  # the brightened PNG copy becomes the keeper, by the user's choice
    assert "keeper" in members.nth(1).get_attribute("class") and "keeper" not in members.nth(0).get_attribute("class")
    assert "chosen by you" in page.locator("#keeper-reason").inner_text()

    # choosing a keeper redraws the comparison (fitted anew once its images load): let it settle,
    # or a zoom made meanwhile is undone by the fit
    page.wait_for_load_state("networkidle")
    page.keyboard.press("+")  # zoom and pan are one for both panes
    page.mouse.move(400, 700)
    transforms = page.evaluate("[document.getElementById('img-a').style.transform, "
                               "document.getElementById('img-b').style.transform]")
    assert transforms[0] == transforms[1] and "scale(1.25)" in transforms[0]
    page.keyboard.press("d")
    assert page.locator("#diff-canvas").is_visible()
    page.keyboard.press("0")
    photograph(page, "duplicates", tmp_path)
    page.locator("#compare").scroll_into_view_if_needed()
    photograph(page, "compare", tmp_path)
    page.keyboard.press("d")

    page.select_option("#action", "move")
    page.fill("#to", str(dupes))
    page.click("#make-plan")
    page.wait_for_selector("#plan-summary:has-text('2 files to move')")
    page.click("#apply-plan")
    page.wait_for_selector("#applied-summary:has-text('2 files moved')")
    assert files["coffee_bright"].exists()
    assert not files["coffee"].exists() and not files["coffee_half"].exists()
    for moved in (files["coffee"], files["coffee_half"]):
        assert sha(dupes / moved.relative_to(photos)) == before[moved]
    page.wait_for_selector("#group-title:has-text('of 2')")  # the cleaned group is gone

    page.click("#undo")
    page.wait_for_selector("#applied-summary:has-text('undone')")
    assert {p: sha(p) for p in before} == before
    page.wait_for_selector("#group-title:has-text('of 3')")


def test_an_index_job_started_on_the_collection_page_reaches_100_percent(server, page, tmp_path) -> None:
    new = tmp_path / "more"
    for seed in range(200, 212):
        save(scene(seed), new / f"more{seed}.png")
    (new / "broken.jpg").write_bytes(b"not an image")
    page.goto(f"{server.url}/collection")
    page.wait_for_selector("#counts div")
    assert page.locator("#counts div").first.inner_text().startswith("15")
    page.fill("#folder", str(new))
    page.click("#start-index")
    page.wait_for_selector("#job-percent:has-text('100 %')")
    page.wait_for_selector("#job-title:has-text('done')")
    assert "13 new" in page.locator("#job-result").inner_text() and "1 failed" in page.locator("#job-result").inner_text()
    page.wait_for_selector("#failed-count:has-text('(1)')")
    assert page.locator("#failures tbody td.mono").inner_text() == str(new / "broken.jpg")
    assert page.locator("#counts div").first.inner_text().startswith("28")
    photograph(page, "collection", tmp_path)

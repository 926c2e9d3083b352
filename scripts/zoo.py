"""The corrupt-file zoo (issue 18): what `neardup` does with every kind of hostile file.

    .venv/bin/python scripts/zoo.py [--keep DIR] [--timeout 30]

Builds the zoo, one case per folder (zero-byte, truncated JPEG and PNG, random bytes, text
named .png, PNG and JPEG decompression bombs, 16-bit PNG, CMYK JPEG, palette PNG, bilevel
and NaN float TIFFs, animated GIF and WebP, HEIC, a 1x1 spacer GIF, a 1x20000 sliver, an
unreadable file, names with a space, a newline or invalid UTF-8, a broken symlink, a symlink
loop, a FIFO named .jpg), plus two normal photos as a control. Then:

1. `neardup index` of the whole zoo in one run: does one file stop the others?
2. each case on its own, twice (two fresh catalogs): indexed / recorded as failed, with its
   reason / aborted with `error: …` / crashed (traceback) / hung (timeout); whether outcome
   and reason are the same in both runs, and whether the reason is human (no memory address,
   object repr or Python exception class); the peak resident memory of the run.
3. `neardup search` with each case's file as the query, against a catalog of the control
   photos: answered / error / crashed / hung, and whether that agrees with indexing.

Unreadable files and root: root reads a chmod 000 file (CAP_DAC_OVERRIDE). Every `neardup`
run here is started without CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH (dropped from the
bounding set before exec), so permission bits apply to it as to any user; when that is not
possible the case is reported as such. Each run's address space is capped (4 GB) so that a
bomb fails fast instead of taking the machine's memory; its peak is still reported.
"""

from __future__ import annotations

import argparse
import ctypes
import io
import json
import os
import random
import re
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
NEARDUP = Path(sys.executable).with_name("neardup")
PHOTOS = ROOT / "tests" / "data"
ADDRESS_SPACE = 4 << 30
INTERNALS = re.compile(r"0x[0-9a-fA-F]{6,}| object at |<_io\.|\b[A-Z]\w*(Error|Exception)\b:|Errno|Traceback")


# -- building the zoo --------------------------------------------------------------------------
def scene(seed: int, size: tuple[int, int] = (320, 240)) -> Image.Image:
    """A seeded RGB picture: a smooth colour field with a few rectangles."""
    rng = np.random.default_rng(seed)
    w, h = size
    y, x = np.mgrid[0:h, 0:w] / max(w, h)
    a = np.stack([128 + rng.uniform(-100, 100) * x + rng.uniform(-100, 100) * y for _ in range(3)], axis=2)
    for _ in range(5):
        x0, y0 = int(rng.integers(0, w - 10)), int(rng.integers(0, h - 10))
        a[y0 : y0 + int(rng.integers(5, h // 2)), x0 : x0 + int(rng.integers(5, w // 2))] = rng.integers(0, 256, 3)
    return Image.fromarray(np.clip(a, 0, 255).astype(np.uint8))


def encoded(image: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format=fmt, **kw)
    return buf.getvalue()


def png_bomb(width: int = 12000, height: int = 12000) -> bytes:
    """A transparent RGBA PNG of width x height (576 MB decoded at 12000 x 12000), ~0.6 MB,
    compressed row by row so the builder never holds it whole."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    packer = zlib.compressobj(9)
    row = b"\0" * (1 + 4 * width)
    body = b"".join(packer.compress(row) for _ in range(height)) + packer.flush()
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 6, 0, 0, 0))
            + chunk(b"IDAT", body) + chunk(b"IEND", b""))


def jpeg_declaring(width: int, height: int) -> bytes:
    """A small JPEG whose frame header (SOF0) declares width x height."""
    data = bytearray(encoded(scene(7, (64, 64)), "JPEG", quality=80))
    at = data.index(b"\xff\xc0")
    data[at + 5 : at + 9] = struct.pack(">HH", height, width)
    return bytes(data)


def frames(n: int) -> list[Image.Image]:
    return [scene(40 + i, (120, 90)) for i in range(n)]


def heic() -> bytes | None:
    try:
        from pillow_heif import register_heif_opener

        register_heif_opener()
        return encoded(scene(9), "HEIF")
    except Exception:  # no pillow-heif, or one built without an encoder
        return None


def write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)


@dataclass
class Case:
    name: str
    folder: Path
    file: Path  # the entry a query would name (bytes-safe: built with os.fsencode)
    note: str = ""


def build(zoo: Path) -> list[Case]:
    """Write every case into its own folder under `zoo`; return them."""
    jpeg = encoded(scene(1), "JPEG", quality=90)
    png = encoded(scene(2), "PNG")
    f = np.linspace(0, 1, 96 * 64, dtype=np.float32).reshape(64, 96)
    f[10:30, 20:50] = np.nan
    sixteen = (np.linspace(0, 65535, 120 * 90).reshape(90, 120)).astype(np.uint16)
    gif = frames(3)
    makers: dict[str, tuple[str, Callable[[], bytes | None]]] = {
        "zero-byte": ("zero.jpg", lambda: b""),
        "truncated-jpeg": ("truncated.jpg", lambda: jpeg[: len(jpeg) // 2]),
        "truncated-png": ("truncated.png", lambda: png[: len(png) // 2]),
        "random-bytes": ("random.jpg", lambda: random.Random(0).randbytes(4096)),
        "text-named-png": ("text.png", lambda: b"hello, I am not a PNG\n"),
        "png-bomb-12000x12000": ("bomb.png", png_bomb),
        "jpeg-bomb-12000x12000": ("bomb.jpg", lambda: encoded(Image.new("L", (12000, 12000), 128), "JPEG", quality=75)),
        "jpeg-header-60000x60000": ("header.jpg", lambda: jpeg_declaring(60000, 60000)),
        "png-16-bit": ("sixteen.png", lambda: encoded(Image.fromarray(sixteen), "PNG")),
        "jpeg-cmyk": ("cmyk.jpg", lambda: encoded(scene(3).convert("CMYK"), "JPEG")),
        "png-palette": ("palette.png", lambda: encoded(scene(4).convert("P", palette=Image.Palette.ADAPTIVE), "PNG")),
        "tiff-bilevel": ("bilevel.tif", lambda: encoded(scene(5).convert("1"), "TIFF", compression="group4")),
        "tiff-float-nan": ("nan.tif", lambda: encoded(Image.fromarray(f, mode="F"), "TIFF")),
        "gif-animated": ("animated.gif", lambda: encoded(gif[0], "GIF", save_all=True, append_images=gif[1:], duration=100)),
        "webp-animated": ("animated.webp", lambda: encoded(gif[0], "WEBP", save_all=True, append_images=gif[1:])),
        "heic": ("photo.heic", heic),
        "gif-1x1-spacer": ("spacer.gif", lambda: encoded(Image.new("P", (1, 1), 0), "GIF")),
        "sliver-1x20000": ("sliver.png", lambda: encoded(Image.new("RGB", (1, 20000), (200, 30, 30)), "PNG")),
        "name-with-space": ("with space.jpg", lambda: jpeg),
        "unreadable-chmod-000": ("locked.jpg", lambda: jpeg),
    }
    cases = []
    for name, (filename, make) in makers.items():
        data = make()
        folder = zoo / name
        if data is None:
            cases.append(Case(name, folder, folder / filename, "not built: pillow-heif cannot write HEIC here"))
            continue
        write(folder / filename, data)
        cases.append(Case(name, folder, folder / filename))
    (zoo / "unreadable-chmod-000" / "locked.jpg").chmod(0)
    raw = os.fsencode(zoo)
    for name, filename in (("name-with-newline", b"new\nline.jpg"), ("name-invalid-utf8", b"caf\xe9.jpg")):
        os.makedirs(raw + b"/" + name.encode(), exist_ok=True)
        write(Path(os.fsdecode(raw + b"/" + name.encode() + b"/" + filename)), jpeg)
        cases.append(Case(name, zoo / name, Path(os.fsdecode(raw + b"/" + name.encode() + b"/" + filename))))
    link = zoo / "symlink-broken"
    link.mkdir()
    (link / "broken.jpg").symlink_to(link / "nowhere.jpg")
    cases.append(Case("symlink-broken", link, link / "broken.jpg"))
    loop = zoo / "symlink-loop"
    loop.mkdir()
    (loop / "loop_a.jpg").symlink_to(loop / "loop_b.jpg")
    (loop / "loop_b.jpg").symlink_to(loop / "loop_a.jpg")
    cases.append(Case("symlink-loop", loop, loop / "loop_a.jpg"))
    fifo = zoo / "fifo-named-jpg"
    fifo.mkdir()
    os.mkfifo(fifo / "pipe.jpg")
    cases.append(Case("fifo-named-jpg", fifo, fifo / "pipe.jpg"))
    control = zoo / "control"
    control.mkdir()
    for name in ("coffee", "rocket"):
        shutil.copyfile(PHOTOS / f"{name}.jpg", control / f"{name}.jpg")
    cases.append(Case("control-photo", control, control / "coffee.jpg"))
    return cases


# -- running neardup -------------------------------------------------------------------------------
def as_ordinary_user() -> None:
    """preexec_fn: resource cap, and (as root) no permission override, so chmod 000 holds."""
    import resource

    resource.setrlimit(resource.RLIMIT_AS, (ADDRESS_SPACE, ADDRESS_SPACE))
    if os.geteuid() == 0:
        libc = ctypes.CDLL(None, use_errno=True)
        for cap in (1, 2):  # CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH
            if libc.prctl(24, cap, 0, 0, 0) != 0:  # PR_CAPBSET_DROP
                raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP)")


WRAPPER = r"""
import os, resource, subprocess, sys
sys.path.insert(0, sys.argv[2])
from zoo import as_ordinary_user
code = subprocess.run([os.fsencode(a) for a in sys.argv[3:]], preexec_fn=as_ordinary_user).returncode
open(sys.argv[1], "w").write(str(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss))
sys.exit(code)
"""


@dataclass
class Run:
    code: int | None  # None: hung
    stdout: str
    stderr: str
    seconds: float
    peak_mb: float

    @property
    def crashed(self) -> bool:
        return "Traceback" in self.stderr

    def gist(self) -> str:
        lines = [line.strip() for line in self.stderr.splitlines() if line.strip()]
        raised = [line for line in lines if re.match(r"^[\w.]+(Error|Exception|Pool|Interrupt|Exit)\b", line)]
        errors = [line for line in lines if line.startswith("error: ")]
        return ((raised or errors or lines or [""])[-1])[:200]


def neardup(*args: str | Path, timeout: float, work: Path) -> Run:
    out = work / f"rss-{time.monotonic_ns()}"
    cmd = [sys.executable, "-c", WRAPPER, str(out), str(Path(__file__).parent), str(NEARDUP), *map(str, args)]
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    try:
        stdout, stderr = proc.communicate(timeout=timeout)
        code = proc.returncode
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        stdout, stderr = proc.communicate()
        code = None
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)  # workers left behind by a killed or crashed run
        except ProcessLookupError:
            pass
    peak = int(out.read_text()) / 1024 if out.exists() else float("nan")
    return Run(code, stdout.decode(errors="replace"), stderr.decode(errors="replace"),
               time.perf_counter() - started, peak)


def stats(db: Path, work: Path) -> dict | None:
    if not db.exists():
        return None
    run = neardup("stats", "--db", db, "--json", timeout=60, work=work)
    return json.loads(run.stdout) if run.code == 0 else None


@dataclass
class Outcome:
    verdict: str  # indexed, failed, absent, aborted, crashed, hung
    reason: str
    peak_mb: float

    def __str__(self) -> str:
        return self.verdict + (f": {self.reason}" if self.reason else "")


def index_outcome(case: Case, db: Path, timeout: float, work: Path) -> Outcome:
    run = neardup("index", case.folder, "--db", db, "--embedder", "none", "-q", "--workers", "2",
                  timeout=timeout, work=work)
    if run.code is None:
        return Outcome("hung", f"no answer in {timeout:.0f} s", run.peak_mb)
    if run.crashed:
        return Outcome("crashed", run.gist(), run.peak_mb)
    if run.code != 0:
        return Outcome("aborted", run.gist(), run.peak_mb)
    s = stats(db, work) or {"counts": {}, "failures": []}
    if s["failures"]:
        return Outcome("failed", "; ".join(sorted({r for _, r in s["failures"]})), run.peak_mb)
    if s["counts"].get("ok"):
        return Outcome("indexed", "", run.peak_mb)
    return Outcome("absent", "not in the catalog, no failure recorded", run.peak_mb)


def search_outcome(case: Case, db: Path, timeout: float, work: Path) -> Outcome:
    run = neardup("search", case.file, "--db", db, "-k", "1", "--json", timeout=timeout, work=work)
    if run.code is None:
        return Outcome("hung", f"no answer in {timeout:.0f} s", run.peak_mb)
    if run.crashed:
        return Outcome("crashed", run.gist(), run.peak_mb)
    if run.code == 0:
        return Outcome("answered" if run.stdout.strip() else "nothing", "" if run.stdout.strip() else "exit 0, no output",
                       run.peak_mb)
    reason = run.gist().removeprefix("error: ").replace(f"{os.fsdecode(case.file)}: ", "")
    return Outcome("error", reason, run.peak_mb)


def human(reason: str) -> bool:
    return not INTERNALS.search(reason)


def agrees(indexed: Outcome, searched: Outcome) -> str:
    """Whether the file fares alike as a query: answered when indexed, a clean error when not."""
    if "hung" in (indexed.verdict, searched.verdict):
        return "-"
    if indexed.verdict == "indexed":
        return "yes" if searched.verdict == "answered" else "no"
    return "yes" if searched.verdict == "error" else "no"


# -- main -------------------------------------------------------------------------------------------
def cut(text: str, width: int) -> str:
    text = text.encode("unicode_escape").decode("ascii") if not text.isprintable() else text
    return text if len(text) <= width else text[: width - 1] + "…"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--keep", type=Path, help="build the zoo and catalogs here and keep them")
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds before a run counts as hung")
    args = parser.parse_args()
    base = args.keep.resolve() if args.keep else Path(tempfile.mkdtemp(prefix="neardup-zoo-"))
    if args.keep and base.exists() and any(base.iterdir()):
        sys.exit(f"error: {base} is not empty")
    zoo, work = base / "zoo", base / "work"
    work.mkdir(parents=True, exist_ok=True)
    try:
        started = time.perf_counter()
        print(f"building the zoo in {zoo} …", file=sys.stderr)
        cases = build(zoo)
        locked = zoo / "unreadable-chmod-000" / "locked.jpg"
        probe = subprocess.run(["cat", str(locked)], capture_output=True, preexec_fn=as_ordinary_user)
        if probe.returncode == 0:
            next(c for c in cases if c.file == locked).note = "still readable here: cannot drop root's permission override"

        print("indexing the whole zoo in one run …", file=sys.stderr)
        whole = neardup("index", zoo, "--db", work / "whole.db", "--embedder", "none", "-q", "--workers", "2",
                        timeout=max(60.0, 2 * args.timeout), work=work)
        whole_stats = stats(work / "whole.db", work)

        control_db = work / "control.db"
        neardup("index", zoo / "control", "--db", control_db, "--embedder", "none", "-q", timeout=60, work=work)

        rows = []
        for n, case in enumerate(cases, 1):
            print(f"[{n}/{len(cases)}] {case.name}", file=sys.stderr)
            if case.note.startswith("not built"):
                rows.append((case, None, None, None))
                continue
            first = index_outcome(case, work / f"{n:02d}a.db", args.timeout, work)
            second = index_outcome(case, work / f"{n:02d}b.db", args.timeout, work)
            searched = search_outcome(case, control_db, args.timeout, work)
            rows.append((case, first, second, searched))

        report(whole, whole_stats, rows, cases, time.perf_counter() - started)
    finally:
        for path in (zoo / "unreadable-chmod-000" / "locked.jpg",):
            if path.exists():
                path.chmod(0o644)
        if not args.keep:
            shutil.rmtree(base, ignore_errors=True)


def report(whole: Run, whole_stats: dict | None, rows: list, cases: list[Case], seconds: float) -> None:
    total = sum(1 for c in cases if not c.note.startswith("not built"))
    print(f"\nneardup corrupt-file zoo: {total} cases (+ {len(cases) - total} not built), {seconds:.0f} s\n")
    if whole.code is None:
        state = "HUNG (killed after the timeout)"
    elif whole.crashed:
        state = f"CRASHED, exit {whole.code}: {whole.gist()}"
    elif whole.code:
        state = f"ABORTED, exit {whole.code}: {whole.gist()}"
    else:
        state = "completed, exit 0"
    held = (f"{whole_stats['counts'].get('ok', 0)} indexed, {whole_stats['counts'].get('failed', 0)} recorded as failed"
            if whole_stats else "no catalog to read")
    print(f"whole zoo in one `neardup index` run: {state}; {held}\n")
    head = f"{'case':<26} {'index (run 1)':<58} {'stable':<6} {'human':<5} {'search':<34} {'agree':<5} {'peak MB':>7}"
    print(head)
    print("-" * len(head))
    counts: dict[str, int] = {}
    for case, first, second, searched in rows:
        if first is None:
            print(f"{case.name:<26} {cut(case.note, 58):<58}")
            continue
        stable = "yes" if (first.verdict, first.reason) == (second.verdict, second.reason) else "NO"
        ok_reason = ("yes" if human(first.reason) else "NO") if first.verdict in ("failed", "aborted") else "-"
        peak = max(first.peak_mb, second.peak_mb)
        counts[first.verdict] = counts.get(first.verdict, 0) + 1
        print(f"{case.name:<26} {cut(str(first), 58):<58} {stable:<6} {ok_reason:<5} {cut(str(searched), 34):<34} "
              f"{agrees(first, searched):<5} {'-' if peak != peak else f'{peak:.0f}':>7}")
    print()
    print("verdicts (run 1): " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())))
    unstable = [c.name for c, a, b, _ in rows if a and (a.verdict, a.reason) != (b.verdict, b.reason)]
    inhuman = [c.name for c, a, _, _ in rows if a and a.verdict in ("failed", "aborted") and not human(a.reason)]
    print(f"reasons that differ between two runs: {', '.join(unstable) or 'none'}")
    print(f"reasons with Python internals: {', '.join(inhuman) or 'none'}")
    notes = [f"{c.name}: {c.note}" for c in cases if c.note and not c.note.startswith("not built")]
    for note in notes:
        print(f"note: {note}")
    print("\nindexed = in the catalog; failed = recorded with the reason shown; absent = neither; "
          "aborted = the run stopped with `error: …`; crashed = traceback; hung = no answer in time. "
          "Human: the reason of a failed or aborted file names no memory address, object or exception class. "
          "Search: the file as a query against a catalog of two photos; agree: answered when indexed, "
          "a clean error when not. Peak MB: the largest process "
          f"of the index runs (each capped at {ADDRESS_SPACE >> 30} GB of address space).")


if __name__ == "__main__":
    main()

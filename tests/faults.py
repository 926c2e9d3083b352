"""Fault injection for the reliability tests (issue 18): the real `neardup` command in a
subprocess, and ways to make a file unreadable, a folder read-only or a disk full, even when
the tests run as root (who reads a chmod 000 file and writes a read-only folder regardless).

Root is locked out by starting the child without CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH:
dropped from the bounding set before exec, they are gone from a root process's permitted set
too, so the ordinary permission bits apply to it. For anyone else the bits apply anyway.
"""

from __future__ import annotations

import ctypes
import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

DATA = Path(__file__).parent / "data"
PHOTOS = ("coffee", "chelsea", "astronaut", "rocket", "hubble")
NEARDUP = Path(sys.executable).with_name("neardup")  # the installed console script of this venv
TIMEOUT = 60.0

# `NEARDUP_SKIP_SLOW=1 pytest` leaves out the tests that take more than a few seconds.
slow = pytest.mark.skipif(os.environ.get("NEARDUP_SKIP_SLOW") == "1", reason="slow test (NEARDUP_SKIP_SLOW=1)")

Arg = str | bytes | os.PathLike


@dataclass(frozen=True)
class Run:
    """One finished `neardup` run: exit status, and its output decoded leniently (file names
    need not be UTF-8)."""

    args: tuple[str, ...]
    code: int
    stdout: str
    stderr: str
    seconds: float

    def __str__(self) -> str:
        return f"`neardup {' '.join(self.args[:1])} …` exit {self.code}; stderr: {self.gist()!r}"

    def gist(self) -> str:
        """The line of stderr that says what went wrong: the exception of a traceback, else the last line."""
        lines = [line.strip() for line in self.stderr.splitlines() if line.strip()]
        raised = [line for line in lines if re.match(r"^[\w.]+(Error|Exception|Exit|Pool|Interrupt)\b", line)]
        return ((raised or lines or [""])[-1])[:300]


def command(*args: Arg) -> list[bytes]:
    return [os.fsencode(NEARDUP), *(os.fsencode(a) if not isinstance(a, bytes) else a for a in args)]


def neardup(
    *args: Arg,
    timeout: float = TIMEOUT,
    preexec: Callable[[], None] | None = None,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
) -> Run:
    """Run `neardup ARGS` in its own session; a run that outlives `timeout` fails the test as
    hung, and its whole process group (workers included) is killed either way."""
    started = time.perf_counter()
    proc = subprocess.Popen(
        command(*args), stdout=subprocess.PIPE, stderr=subprocess.PIPE, preexec_fn=preexec,
        start_new_session=True, env=env, cwd=cwd,
    )
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        kill_group(proc.pid)
        out, err = proc.communicate()
        pytest.fail(f"hung: neardup {' '.join(map(_text, args))} still running after {timeout:.0f} s\n"
                    f"{err.decode(errors='replace')[-2000:]}")
    finally:
        kill_group(proc.pid)
    return Run(tuple(map(_text, args)), proc.returncode, out.decode(errors="replace"),
               err.decode(errors="replace"), time.perf_counter() - started)


def start(*args: Arg, preexec: Callable[[], None] | None = None, **popen) -> subprocess.Popen:
    """`neardup ARGS` started in its own session (its process group id is its pid); the
    caller must end it with `kill_group`."""
    return subprocess.Popen(command(*args), preexec_fn=preexec, start_new_session=True, **popen)


def kill_group(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _text(a: Arg) -> str:
    return os.fsdecode(a) if isinstance(a, bytes | os.PathLike) else str(a)


# -- what a run must look like ---------------------------------------------------------------
def assert_no_traceback(run: Run) -> None:
    assert "Traceback" not in run.stderr, f"printed a traceback:\n{run}"


def assert_error(run: Run, *words: str, code: int = 1) -> str:
    """A project error: exit `code`, no traceback, stderr ending in one `error: …` line that
    contains one of `words` (case-insensitive) when given. Returns that line."""
    assert_no_traceback(run)
    lines = [line for line in run.stderr.splitlines() if line.strip()]
    assert lines and lines[-1].startswith("error: "), f"no `error: …` line at the end of stderr:\n{run}"
    assert run.code == code, f"exit {run.code}, expected {code}:\n{run}"
    if words:
        assert any(w.lower() in lines[-1].lower() for w in words), f"error line names none of {words}: {lines[-1]}"
    return lines[-1]


def assert_ok(run: Run) -> None:
    assert_no_traceback(run)
    assert run.code == 0, str(run)


# -- reading a catalog through the real command ------------------------------------------------
def stats(db: Path) -> dict:
    run = neardup("stats", "--db", db, "--json")
    assert_ok(run)
    return json.loads(run.stdout)


def failures(db: Path) -> dict[str, str]:
    """Failed files (and folders) of a catalog, path -> reason, as `neardup stats` lists them."""
    return {path: reason for path, reason in stats(db)["failures"]}


def catalog_paths(db: Path) -> dict[str, str]:
    """Every path the catalog holds -> "ok" or "failed", through the public Python API."""
    import neardup

    with neardup.open(db) as cat:
        return {path: state.status for path, state in cat.catalog.file_states().items()}


def digest(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


# -- making files ------------------------------------------------------------------------------
def photos(folder: Path, names: Sequence[str] = PHOTOS) -> list[Path]:
    """Copies of the real test photos in `folder`; their paths."""
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for name in names:
        out.append(folder / f"{name}.jpg")
        shutil.copyfile(DATA / f"{name}.jpg", out[-1])
    return out


def png_bomb(path: Path, width: int = 12000, height: int = 12000) -> Path:
    """A transparent RGBA PNG of width x height (12000 x 12000: 576 MB decoded) written row by
    row, never whole in memory; the file is ~0.6 MB."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    packer = zlib.compressobj(9)
    row = b"\0" * (1 + 4 * width)  # filter byte, then RGBA pixels
    body = b"".join(packer.compress(row) for _ in range(height)) + packer.flush()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 6, 0, 0, 0))
                     + chunk(b"IDAT", body) + chunk(b"IEND", b""))
    return path


# -- locking root out ------------------------------------------------------------------------
_PR_CAPBSET_DROP = 24
_CAP_DAC_OVERRIDE, _CAP_DAC_READ_SEARCH = 1, 2


def as_ordinary_user() -> None:
    """preexec_fn: the child keeps root's uid but loses the capabilities that bypass file
    permission bits, so chmod 000 / 0555 hold for it as for any user."""
    if os.geteuid() != 0:
        return
    libc = ctypes.CDLL(None, use_errno=True)
    for cap in (_CAP_DAC_OVERRIDE, _CAP_DAC_READ_SEARCH):
        if libc.prctl(_PR_CAPBSET_DROP, cap, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP)")


def require_permissions_enforced(tmp_path: Path) -> None:
    """Skip unless a chmod 000 file is unreadable to a child run with `as_ordinary_user`."""
    probe = tmp_path / "probe-000"
    probe.write_bytes(b"x")
    probe.chmod(0)
    try:
        proc = subprocess.run(["cat", str(probe)], capture_output=True, preexec_fn=as_ordinary_user)
    except (OSError, subprocess.SubprocessError) as e:
        pytest.skip(f"cannot drop CAP_DAC_OVERRIDE for a child process here: {e}")
    finally:
        probe.chmod(0o644)
    if proc.returncode == 0:
        pytest.skip("a chmod 000 file stays readable here even without CAP_DAC_OVERRIDE")


# -- mounts (root only; each test skips without them) -----------------------------------------
def mount(*args: str) -> None:
    proc = subprocess.run(["mount", *args], capture_output=True, text=True)
    if proc.returncode != 0:
        pytest.skip(f"cannot mount here ({' '.join(args)}): {proc.stderr.strip()}")


def umount(path: Path) -> None:
    subprocess.run(["umount", "-l", str(path)], capture_output=True)


@dataclass
class SmallDisk:
    """A tmpfs mounted at `path`; `fill()` uses up its free space, `free()` gives it back."""

    path: Path

    def fill(self, leave: int = 0) -> None:
        """Use up the free space but `leave` bytes."""
        fd = os.open(self.path / "filler", os.O_WRONLY | os.O_CREAT | os.O_APPEND)
        try:
            for size in (65536, 4096, 512, 1):  # down to the last byte
                try:
                    while os.write(fd, b"\0" * size):
                        pass
                except OSError:
                    pass
            os.ftruncate(fd, max(0, os.fstat(fd).st_size - leave))
        finally:
            os.close(fd)

    def clear(self) -> None:
        for path in self.path.iterdir():
            if path.is_dir():  # a catalog's folder of stored reports
                shutil.rmtree(path)
            else:
                path.unlink()

    def free(self) -> None:
        (self.path / "filler").unlink(missing_ok=True)


def small_disk(path: Path, size: str = "8m") -> Iterator[SmallDisk]:
    path.mkdir(parents=True, exist_ok=True)
    mount("-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path))
    try:
        yield SmallDisk(path)
    finally:
        umount(path)


# -- processes -----------------------------------------------------------------------------------
def processes_mentioning(text: str) -> dict[int, str]:
    """Live processes (not zombies) whose command line contains `text`: pid -> command line."""
    needle = os.fsencode(text)
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if needle in cmdline and state != "Z":
            found[int(entry.name)] = cmdline.replace(b"\0", b" ").decode(errors="replace")
    return found


def in_session(sid: int) -> dict[int, str]:
    """Live processes (not zombies) of session `sid` (a process started by `start` or
    `neardup` leads its own): pid -> command line. Whatever is left of it once its leader
    is dead is orphaned."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            state, _, _, session = (entry / "stat").read_text().rsplit(")", 1)[1].split()[:4]
            cmdline = (entry / "cmdline").read_bytes()
        except (OSError, ValueError):
            continue
        if int(session) == sid and state != "Z":
            found[int(entry.name)] = cmdline.replace(b"\0", b" ").decode(errors="replace")
    return found


def children(pid: int) -> list[int]:
    out = []
    try:
        for task in Path(f"/proc/{pid}/task").iterdir():
            out += [int(p) for p in (task / "children").read_text().split()]
    except OSError:
        return []
    return out


def descendants(pid: int) -> list[int]:
    found, todo = [], children(pid)
    while todo:
        found.append(todo.pop())
        todo += children(found[-1])
    return found


def workers(pid: int) -> list[int]:
    """The worker processes under `pid`: descendants with no children of their own (so not a
    forkserver), other than multiprocessing's resource tracker."""
    out = []
    for p in descendants(pid):
        try:
            cmdline = Path(f"/proc/{p}/cmdline").read_bytes()
        except OSError:
            continue
        if not children(p) and b"resource_tracker" not in cmdline:
            out.append(p)
    return sorted(out)


def wait_for(condition: Callable[[], object], timeout: float, interval: float = 0.01) -> object:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := condition():
            return value
        time.sleep(interval)
    return None


def index_killing_a_worker(*args: Arg, started_within: float, settle: float) -> tuple[int, str]:
    """`neardup index *args` with one of its decoding workers killed by SIGKILL `settle`
    seconds after two have started (within `started_within`): its exit code and stderr."""
    proc = start("index", *args, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        started = wait_for(lambda: len(workers(proc.pid)) >= 2 and workers(proc.pid), timeout=started_within)
        assert started, "the indexer started no workers"
        time.sleep(settle)
        os.kill(started[-1], signal.SIGKILL)
        _, err = proc.communicate(timeout=60)
    finally:
        kill_group(proc.pid)
    return proc.returncode, err.decode(errors="replace")


PEAK_RSS = r"""
import resource, subprocess, sys
limit = int(sys.argv[2])
def cap():
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
code = subprocess.run(sys.argv[3:], preexec_fn=cap if limit else None).returncode
open(sys.argv[1], "w").write(str(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss))
sys.exit(code)
"""


def peak_rss(tmp_path: Path, *args: Arg, address_space: int = 0, timeout: float = TIMEOUT) -> tuple[Run, int]:
    """Run `neardup ARGS` and return it with the peak resident memory, in bytes, of the largest
    of its processes (the command and its workers). `address_space` caps each process's virtual
    memory (RLIMIT_AS), so that a runaway fails fast instead of taking the machine's memory."""
    out = tmp_path / f"peak-rss-{time.monotonic_ns()}"
    started = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-c", PEAK_RSS, str(out), str(address_space), *command(*args)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    try:
        stdout, stderr = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        kill_group(proc.pid)
        pytest.fail(f"hung: neardup {' '.join(map(_text, args))} still running after {timeout:.0f} s")
    finally:
        kill_group(proc.pid)
    run = Run(tuple(map(_text, args)), proc.returncode, stdout.decode(errors="replace"),
              stderr.decode(errors="replace"), time.perf_counter() - started)
    return run, int(out.read_text()) * 1024


ADDRESS = re.compile(r"0x[0-9a-fA-F]{6,}")

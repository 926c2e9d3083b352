"""Long fuzzing runs (issue 18) of the targets in tests/fuzz_targets.py.

    .venv/bin/python scripts/fuzz.py --minutes 60 [--targets decode,plan,catalog] [--out fuzz-out]

Splits the time evenly between the targets and runs each with Hypothesis, batch after batch
with fresh seeds, without shrinking (time goes to new inputs). Unlike the short tests, a
failure does not stop the run: each distinct failure (exception type and the innermost
neardup frame) is kept once, its input saved under --out, and the run goes on. Prints a
table per target: examples, examples per second, outcomes, distinct failures, slowest
example. Exits 1 when anything failed.
"""

from __future__ import annotations

import argparse
import random
import re
import sys
import tempfile
import time
import traceback
from collections import Counter
from pathlib import Path

from hypothesis import HealthCheck, Phase, given, settings

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

import fuzz_targets as ft  # noqa: E402  (tests/ is not a package)


def _target(name: str):
    """(strategy, check(input, folder) -> outcome) of a target."""
    return {
        "decode": (ft.image_bytes(), ft.decoded_or_refused),
        "plan": (ft.plan_texts(), lambda text, folder: ft.plan_or_refused(text)),
        "catalog": (ft.catalog_bytes(), ft.catalog_or_refused),
    }[name]


def signature(error: BaseException) -> str:
    """The exception type and the innermost frame in neardup's own code (else the last frame)."""
    frames = traceback.extract_tb(error.__traceback__)
    ours = [f for f in frames if "/site-packages/" not in f.filename and "fuzz" not in Path(f.filename).name]
    frame = (ours or frames or [None])[-1]
    where = f"{Path(frame.filename).name}:{frame.lineno}" if frame else "?"
    message = str(error).splitlines()[0][:120] if str(error) else ""
    return f"{type(error).__name__} at {where}: {re.sub(r'[0-9]+', 'N', message)}"  # "tag 259": one failure


def fuzz(name: str, seconds: float, out: Path) -> dict:
    strategy, check = _target(name)
    outcomes, failures = Counter(), {}
    slowest = (0.0, "")
    deadline = time.monotonic() + seconds
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)

        @settings(max_examples=200, deadline=None, database=None, phases=[Phase.generate],
                  suppress_health_check=list(HealthCheck))
        @given(value=strategy)
        def batch(value) -> None:
            nonlocal slowest
            if time.monotonic() > deadline:
                return
            started = time.perf_counter()
            try:
                outcome = check(value, folder)
            except Exception as error:  # a failure is recorded and the run goes on
                key = signature(error)
                if key not in failures:
                    failures[key] = 0
                    saved = out / name / f"failure-{len(failures):03d}.bin"
                    saved.parent.mkdir(parents=True, exist_ok=True)
                    saved.write_bytes(value if isinstance(value, bytes) else str(value).encode("utf-8", "surrogatepass"))
                    (saved.with_suffix(".txt")).write_text(key + "\n\n" + "".join(traceback.format_exception(error)))
                    print(f"  {name}: new failure {key} -> {saved}", flush=True)
                failures[key] += 1
                outcome = "FAILED"
            took = time.perf_counter() - started
            if took > slowest[0]:
                slowest = (took, outcome)
            # reasons vary per input (sizes, offsets): count their first words only
            outcomes[outcome if outcome in ("ok", "read", "refused", "opened", "FAILED") else outcome.split("(")[0][:48]] += 1

        while time.monotonic() < deadline:
            batch._hypothesis_internal_use_seed = random.getrandbits(64)  # what @seed sets: a fresh batch
            batch()
    return {"examples": sum(outcomes.values()), "outcomes": outcomes, "failures": failures, "slowest": slowest}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--minutes", type=float, default=60.0, help="total time, split evenly between the targets")
    ap.add_argument("--targets", default="decode,plan,catalog")
    ap.add_argument("--out", type=Path, default=ROOT / "fuzz-out", help="where failing inputs are saved")
    args = ap.parse_args()
    targets = args.targets.split(",")
    seconds = 60 * args.minutes / len(targets)
    results = {}
    for name in targets:
        print(f"fuzzing {name} for {seconds / 60:.1f} min", flush=True)
        started = time.monotonic()
        results[name] = fuzz(name, seconds, args.out)
        results[name]["seconds"] = time.monotonic() - started
    print("\n| target | minutes | examples | per second | distinct failures | slowest example | outcomes (most common) |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | --- |")
    for name, r in results.items():
        common = ", ".join(f"{k}: {n}" for k, n in r["outcomes"].most_common(5))
        print(f"| {name} | {r['seconds'] / 60:.1f} | {r['examples']:,} | {r['examples'] / r['seconds']:.1f} | "
              f"{len(r['failures'])} | {r['slowest'][0]:.2f} s ({r['slowest'][1][:30]}) | {common} |")
    for name, r in results.items():
        for key, n in r["failures"].items():
            print(f"- {name}: {key} ({n} examples)")
    sys.exit(1 if any(r["failures"] for r in results.values()) else 0)


if __name__ == "__main__":
    main()

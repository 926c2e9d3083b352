"""Load on `neardup serve` (issue 18): N clients searching by upload at once, for a while.

    .venv/bin/python scripts/load.py [--size 100000] [--clients 8] [--seconds 60] [--base 100] [--embedder cnn]

Builds a catalog: --base synthetic photos (seeded scenes, scripts/chaos.py's) indexed with
--embedder, then grown to --size images by replicating their rows under new ids
(scripts/bench_web.py's `grow`: every table, so FAISS and SQLite work at that size; the
rows are real features, repeated). Serves it on loopback, warms it with one query per
client, then --clients threads, each with its own keep-alive connection, POST
/api/search?k=10 with re-encoded 70 % copies of indexed photos (files outside the catalog)
back to back for --seconds. Samples the server's resident memory (the process and its
children) every second. Prints requests, errors (any status but 200, any exception),
throughput, p50/p95/p99/max latency, and memory at the start, the end and its peak.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))

from bench_web import Served, grow  # noqa: E402  (scripts/ is not a package)
from chaos import make_collection  # noqa: E402


def rss(pid: int) -> int:
    """Resident bytes of `pid` and all its descendants."""
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) * 1024
            for task in Path(f"/proc/{p}/task").iterdir():
                todo += [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            continue
    return total


def client(url: str, queries: list[Path], stop: threading.Event, times: list[float], errors: list[str]) -> None:
    import httpx

    bodies = [(q.name, q.read_bytes()) for q in queries]
    with httpx.Client(base_url=url, timeout=60, headers={"Authorization": f"Bearer {Served.TOKEN}"}) as http:
        n = 0
        while not stop.is_set():
            name, data = bodies[n % len(bodies)]
            n += 1
            started = time.perf_counter()
            try:
                r = http.post("/api/search?k=10", files={"file": (name, data)})
                if r.status_code != 200:
                    errors.append(f"{r.status_code}: {r.text[:200]}")
            except httpx.HTTPError as error:
                errors.append(f"{type(error).__name__}: {error}")
            times.append(time.perf_counter() - started)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size", type=int, default=100_000)
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--base", type=int, default=100, help="synthetic photos indexed (x3: each with two copies)")
    ap.add_argument("--embedder", default="cnn", choices=["cnn", "none"])
    ap.add_argument("--keep", type=Path, help="work in this folder and keep it")
    ap.add_argument("--reuse", action="store_true", help="with --keep: serve the catalog already there")
    args = ap.parse_args()

    import neardup
    from PIL import Image

    work = args.keep or Path(tempfile.mkdtemp(prefix="neardup-load-"))
    db = work / "c.db"
    if args.reuse and db.exists():  # the catalog of an earlier run with --keep: 4 minutes saved at 100k
        with neardup.open(db) as cat:
            size = cat.stats().counts["ok"]
        print(f"reusing {db}: {size:,} images")
    else:
        shutil.rmtree(work, ignore_errors=True)
        make_collection(work / "photos", args.base, seed=7)
        started = time.perf_counter()
        with neardup.open(db, create=True, embedder=args.embedder) as cat:
            report = cat.index([work / "photos"], workers=2)
        print(f"indexed {report.new} images ({args.embedder}) in {time.perf_counter() - started:.0f} s")
        size = grow(db, args.size)
        print(f"grown to {size:,} images")
    queries = []
    for i in range(0, args.base, max(1, args.base // 24)):
        q = work / "queries" / f"q{i:03d}.jpg"
        q.parent.mkdir(parents=True, exist_ok=True)
        with Image.open(work / "photos" / f"p{i:03d}.jpg") as im:
            im.resize((im.width * 7 // 10, im.height * 7 // 10)).save(q, quality=75)
        queries.append(q)

    server = Served(db)
    try:
        import httpx

        warm = time.perf_counter()
        with httpx.Client(base_url=server.url, timeout=600, headers={"Authorization": f"Bearer {Served.TOKEN}"}) as h:
            for q in queries[: args.clients]:  # index files built or loaded, the model started
                h.post("/api/search?k=10", files={"file": (q.name, q.read_bytes())}).raise_for_status()
        print(f"warm-up ({args.clients} queries, indexes loaded or built) {time.perf_counter() - warm:.1f} s")
        before = rss(server.proc.pid)
        stop, times, errors, memory = threading.Event(), [], [], [before]
        threads = [threading.Thread(target=client, args=(server.url, queries[i::args.clients] or queries, stop,
                                                         times, errors)) for i in range(args.clients)]
        t0 = time.perf_counter()
        for t in threads:
            t.start()
        while time.perf_counter() - t0 < args.seconds:
            time.sleep(1)
            memory.append(rss(server.proc.pid))
        stop.set()
        for t in threads:
            t.join()
        elapsed = time.perf_counter() - t0
        after = rss(server.proc.pid)
    finally:
        server.stop()
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    ms = sorted(1000 * t for t in times)
    q = statistics.quantiles(ms, n=100, method="inclusive")
    print(f"\n| catalog | clients | seconds | requests | errors | req/s | p50 | p95 | p99 | max | RSS start | RSS end | RSS peak |")
    print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    print(f"| {size:,} | {args.clients} | {elapsed:.0f} | {len(ms)} | {len(errors)} | {len(ms) / elapsed:.1f} | "
          f"{q[49]:.0f} ms | {q[94]:.0f} ms | {q[98]:.0f} ms | {ms[-1]:.0f} ms | {before / 2**20:.0f} MB | "
          f"{after / 2**20:.0f} MB | {max(memory) / 2**20:.0f} MB |")
    series = ", ".join(f"{m / 2**20:.0f}" for m in memory[:: max(1, len(memory) // 12)])
    print(f"\nserver RSS every ~{max(1, len(memory) // 12)} s, MB: {series}")
    for e in sorted(set(errors))[:10]:
        print(f"- {errors.count(e)} x {e}")


if __name__ == "__main__":
    main()

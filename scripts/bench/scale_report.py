"""Markdown tables and PNG charts of the scale benchmark, from its list of job records.

A record is one job's merged measurements: ``method`` ("neardup" | "brute"), ``kind``
("binary" | "float"), ``n``, ``status`` ("ok" | "too_big" | "skipped" | "oom" | "timeout" |
"crashed") and whatever the job measured (see ``scale_jobs.py``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

GIB = 2**30
KINDS = {"binary": "256-bit binary codes (Hamming ≤ {:g})", "float": "1280-d float vectors (cosine ≥ {:.2f})"}
LABELS = {"neardup": "neardup (FAISS)", "brute": "all-pairs N×N (imagededup-style)"}


def matrix_gib(n: int) -> float:
    """Size of one N × N float32 matrix in GiB."""
    return n * n * 4 / GIB


def _num(x: float | None, digits: int = 2) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "—"
    if abs(x) >= 100:
        return f"{x:,.0f}"
    return f"{x:.{digits}f}" if abs(x) >= 1 else f"{x:.{digits + 1}g}"


def outcome(r: dict, meta: dict) -> str:
    """The duplicates cell: seconds, or why there is no figure."""
    n = r["n"]
    status = r.get("status", "crashed")
    if status == "ok":
        text = _num(r["dups_s"])
        return f"≈{text} (extrapolated)" if r.get("extrapolated") else text
    if status == "too_big":
        return f"needs {matrix_gib(n):,.1f} GiB (N×N matrix) > {meta['mem_cap_gib']:g} GiB cap: not run"
    if status == "skipped":
        return f"not run (failed at {r['failed_at']:,})"
    if status == "oom":
        return f"**out of memory at {n:,}** ({meta['mem_cap_gib']:g} GiB cap; matrix {matrix_gib(n):.1f} GiB)"
    if status == "timeout":
        return f"**over time at {n:,}** (> {meta['time_cap_s']:g} s)"
    return f"**crashed at {n:,}** (rc {r.get('rc')})"


def _row(r: dict, meta: dict) -> str:
    ok = r.get("status") == "ok"
    recall = f"{r['recall']:.4f}" if ok and not math.isnan(r.get("recall", math.nan)) else "—"
    peak = r.get("peak_mb") if ok else r.get("query_peak_mb")
    peak_text = _num(peak, 0) if ok else (f"({_num(peak, 0)} query only)" if peak else "—")
    ms = {k: r[k] * 1e3 if k in r else None for k in ("build_s", "group_s")}
    approx, probe = ("≈", " (probe)") if r.get("extrapolated") else ("", "")
    grouping = approx + _num(ms["group_s"]) if ok else "—"
    pairs = f"{r['pairs']:,}{probe}" if ok else "—"
    return (f"| {r['n']:,} | {LABELS[r['method']]} | {_num(ms['build_s'])} | {_num(r.get('query_ms'))} "
            f"| {_num(r.get('query_1thread_ms'))} | {outcome(r, meta)} | {grouping} | {pairs} "
            f"| {recall} | {r['spurious'] if ok else '—'} | {peak_text} |")


def results_table(records: Sequence[dict], meta: dict, kind: str) -> str:
    """One markdown table for one kind of data, rows by N then method."""
    head = ("| N | method | index build ms | query p50 ms (k=10) | query p50 ms, 1 thread | find duplicates s "
            "| of which grouping ms | pairs | planted recall | spurious pairs | peak RSS MB |\n"
            "| ---: | --- | ---: | ---: | ---: | --- | ---: | ---: | ---: | ---: | ---: |")
    rows = sorted((r for r in records if r["kind"] == kind and r["method"] in LABELS),
                  key=lambda r: (r["n"], r["method"] != "neardup"))
    title = KINDS[kind].format(meta["thresholds"][kind])
    return "\n".join([f"**{title}**", "", head, *(_row(r, meta) for r in rows)])


def ratio_table(records: Sequence[dict]) -> str:
    """Brute force ÷ neardup at every N where both have a figure."""
    by = {(r["kind"], r["n"], r["method"]): r for r in records}
    lines = ["| data | N | duplicates time brute ÷ neardup | peak RSS brute ÷ neardup | query latency scan ÷ FAISS |",
             "| --- | ---: | ---: | ---: | ---: |"]
    for (kind, n, method), nd in sorted(by.items()):
        bf = by.get((kind, n, "brute"))
        if method != "neardup" or bf is None:
            continue
        both = nd.get("status") == "ok" and bf.get("status") == "ok"
        time_ratio = f"{bf['dups_s'] / nd['dups_s']:.2f}" if both else "—"
        mem_ratio = f"{bf['peak_mb'] / nd['peak_mb']:.2f}" if both else "—"
        lat = f"{bf['query_ms'] / nd['query_ms']:.2f}" if "query_ms" in bf and "query_ms" in nd else "—"
        extrap = " (neardup extrapolated)" if both and nd.get("extrapolated") else ""
        lines.append(f"| {kind} | {n:,} | {time_ratio}{extrap} "
                     f"| {mem_ratio} | {lat} |")
    return "\n".join(lines)


def _save(plt, fig, ax, path: Path) -> None:  # noqa: ANN001
    """The finish every chart shares: log grid, legend, tight layout, PNG at 120 dpi."""
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8, loc="upper left")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _pyplot():  # noqa: ANN202  (matplotlib is a bench-only dependency, imported on use)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


STYLE = {("neardup", "binary"): ("tab:blue", "o", "-"), ("neardup", "float"): ("tab:green", "s", "-"),
         ("brute", "binary"): ("tab:red", "o", "--"), ("brute", "float"): ("tab:orange", "s", "--")}


def _series(records: Sequence[dict], method: str, kind: str, key: str) -> list[dict]:
    return sorted((r for r in records if r["method"] == method and r["kind"] == kind and r.get(key) is not None
                   and (key.startswith("query") or r.get("status") == "ok")), key=lambda r: r["n"])


def _failures(records: Sequence[dict], kind: str) -> list[dict]:
    return [r for r in records if r["method"] == "brute" and r["kind"] == kind and r.get("status") in ("oom", "timeout", "crashed")]


def time_chart(records: Sequence[dict], meta: dict, path: Path) -> None:
    """Duplicate-finding seconds vs N, log-log; extrapolated points hollow, failures marked."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(8, 5.5))
    for (method, kind), (colour, marker, line) in STYLE.items():
        pts = _series(records, method, kind, "dups_s")
        if not pts:
            continue
        ax.plot([r["n"] for r in pts], [r["dups_s"] for r in pts], line, color=colour, marker=marker,
                label=f"{LABELS[method]}, {kind}")
        for r in pts:
            if r.get("extrapolated"):
                ax.plot(r["n"], r["dups_s"], marker, ms=13, mfc="none", color=colour)
                ax.annotate("extrapolated", (r["n"], r["dups_s"]), textcoords="offset points", xytext=(-70, 8))
    ax.set_xscale("log")
    ax.set_yscale("log")
    for kind, raise_by in (("binary", 0), ("float", 40)):
        colour = STYLE[("brute", kind)][0]
        big = next((r for r in sorted(records, key=lambda r: r["n"])
                    if r["method"] == "brute" and r["kind"] == kind and r.get("status") == "too_big"), None)
        if big and not _failures(records, kind):
            ax.axvline(big["n"], color=colour, ls=":", lw=1)
            ax.annotate(f"all-pairs {kind}: N×N matrix\nneeds {matrix_gib(big['n']):.0f} GiB at {big['n']:,}",
                        (big["n"], ax.get_ylim()[0]), textcoords="offset points", xytext=(4, 10 + raise_by),
                        color=colour, fontsize=8)
        for r in _failures(records, kind):
            ax.axvline(r["n"], color=colour, ls=":", lw=1)
            word = {"oom": "out of memory", "timeout": "over time", "crashed": "crashed"}[r["status"]]
            ax.annotate(f"all-pairs {kind}:\n{word} at {r['n']:,}", (r["n"], ax.get_ylim()[0]),
                        textcoords="offset points", xytext=(4, 10 + raise_by), color=colour, fontsize=8)
    ax.set(xscale="log", yscale="log", xlabel="collection size N", ylabel="find all duplicates, seconds",
           title=f"Duplicate finding vs N ({meta['cores']} cores, shared machine)")
    _save(plt, fig, ax, path)


def memory_chart(records: Sequence[dict], meta: dict, path: Path) -> None:
    """Peak RSS vs N, with the N×N float32 matrix size and the memory cap for reference."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(8, 5.5))
    ns = sorted({r["n"] for r in records if r["method"] in LABELS})
    for (method, kind), (colour, marker, line) in STYLE.items():
        pts = _series(records, method, kind, "peak_mb")
        if pts:
            ax.plot([r["n"] for r in pts], [r["peak_mb"] / 1024 for r in pts], line, color=colour, marker=marker,
                    label=f"{LABELS[method]}, {kind}")
    for kind in ("binary", "float"):
        for r in (r for r in _failures(records, kind) if r["status"] == "oom"):
            ax.plot(r["n"], matrix_gib(r["n"]), "X", color=STYLE[("brute", kind)][0], ms=10,
                    label=f"all-pairs out of memory at {r['n']:,}, {kind}")
    grid = [ns[0] * (ns[-1] / ns[0]) ** (i / 50) for i in range(51)]
    ax.plot(grid, [matrix_gib(n) for n in grid], ":", color="grey", label="one N×N float32 matrix")
    ax.axhline(meta["mem_cap_gib"], color="black", lw=1, label=f"memory cap ({meta['mem_cap_gib']:g} GiB)")
    ax.set(xscale="log", yscale="log", xlabel="collection size N", ylabel="peak RSS, GiB",
           title="Peak memory of duplicate finding vs N")
    _save(plt, fig, ax, path)


def latency_chart(records: Sequence[dict], meta: dict, path: Path) -> None:
    """Median single-query latency (k=10, warm) vs N, log-log."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(8, 5.5))
    names = {"neardup": "neardup knn (FAISS flat)", "brute": "NumPy scan of every row"}
    for (method, kind), (colour, marker, line) in STYLE.items():
        pts = _series(records, method, kind, "query_ms")
        if pts:
            ax.plot([r["n"] for r in pts], [r["query_ms"] for r in pts], line, color=colour, marker=marker,
                    label=f"{names[method]}, {kind}")
        one = _series(records, method, kind, "query_1thread_ms")
        if one:
            ax.plot([r["n"] for r in one], [r["query_1thread_ms"] for r in one], ":", color=colour, marker=marker,
                    mfc="none", label=f"{names[method]}, {kind}, 1 OpenMP thread")
    ax.set(xscale="log", yscale="log", xlabel="collection size N", ylabel="one query, median ms",
           title=f"Query latency vs N (k=10, median of {meta['queries']} warm single queries)")
    _save(plt, fig, ax, path)


CHARTS = {"scale_time.png": time_chart, "scale_memory.png": memory_chart, "scale_latency.png": latency_chart}

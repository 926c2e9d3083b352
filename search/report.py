"""Duplicate groups as text: a table, JSON, CSV, or one self-contained HTML page.

`render` writes groups; `report` writes a catalog's groups, and gives the text of a table,
JSON or CSV again as it was stored (`storage.rendered`) while the catalog, the options and the
code are unchanged. An HTML page is always made again: its thumbnails come from the files.
"""

from __future__ import annotations

import base64
import csv
import html
import io
import time
from collections.abc import Sequence
from dataclasses import dataclass
from json.encoder import encode_basestring_ascii

import cv2

from neardup.indexer.decode import UnreadableImageError, decode
from neardup.indexer.progress import Progress
from neardup.storage.catalog import Catalog
from neardup.storage.decisions import digest
from neardup.storage.rendered import RenderedStore

from .duplicates import Group, decision_key, duplicates
from .features import AUTO
from .incremental import EvidenceReport

FORMATS = ("table", "json", "csv", "html")
THUMB_SIDE = 160


def render(groups: Sequence[Group], fmt: str) -> str:
    """Groups (and composites: `Group.contains`) in one of FORMATS, each keeper with its reason."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")
    return {"table": _table, "json": _json, "csv": _csv, "html": _html}[fmt](groups)


@dataclass(frozen=True)
class Report:
    """A catalog's groups as text (UTF-8; a file name that is not UTF-8 as its own bytes), how
    many groups and composites it lists, and what auto did with the stored evidence."""

    text: bytes
    groups: int
    evidence: EvidenceReport | None


def report(catalog: Catalog, fmt: str, *, by: str = AUTO, threshold: float | None = None, strict: bool = False,
           prefer: Sequence[str] = (), workers: int = 1, progress: Progress | None = None) -> Report:
    """The catalog's duplicate groups (`duplicates`, with these options) in one of FORMATS."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")
    start = time.perf_counter()
    kept = fmt != "html"  # a page's thumbnails come from the files, which may change unseen
    generation = catalog.generation()
    store = RenderedStore(catalog, digest(decision_key(catalog, by=by, threshold=threshold, strict=strict,
                                                     prefer=prefer)))
    if kept and (stored := store.read(generation, fmt)) is not None:
        pairs = stored.about.get("pairs", -1)
        evidence = None if pairs < 0 else EvidenceReport(reused=pairs, stored=pairs, decided=True, written=True,
                                                         seconds=time.perf_counter() - start)
        return Report(stored.text, stored.about.get("groups", 0), evidence)
    found = duplicates(catalog=catalog, by=by, threshold=threshold, strict=strict, prefer=prefer,
                       workers=workers, progress=progress)
    text = render(found.groups, fmt).encode("utf-8", "surrogateescape")
    # stored only if nothing was written to the catalog while it was being decided, and every
    # file it had to read was read
    if kept and catalog.generation() == generation and (found.evidence is None or found.evidence.complete):
        pairs = -1 if found.evidence is None else found.evidence.stored
        store.write(generation, fmt, text, {"groups": len(found.groups), "pairs": pairs})
    return Report(text, len(found.groups), found.evidence)


def _split(groups: Sequence[Group]) -> tuple[list[Group], list[Group]]:
    return [g for g in groups if not g.contains], [g for g in groups if g.contains]


def _rows(groups: Sequence[Group]):
    for n, g in enumerate(groups, 1):
        for im in g.images:
            yield n, im.path == g.keeper, im


def _table(groups: Sequence[Group]) -> str:
    groups, composites = _split(groups)
    if not groups and not composites:
        return "no duplicate groups\n"
    out = []
    for n, g in enumerate(groups, 1):
        out.append(f"group {n} ({len(g.members)} images); keep: {g.reason}")
        for im in g.images:
            mark = "keep" if im.path == g.keeper else "    "
            out.append(f"  {mark}  {im.width}x{im.height}  {im.size:>10,} B  {im.path}")
    total = sum(len(g.members) for g in groups)
    out.append(f"{len(groups)} groups, {total} images, {total - len(groups)} could go")
    for c in composites:
        out.append(f"composite: {c.keeper} contains {', '.join(c.contains)} (a copy of none of them: kept)")
    return "\n".join(out) + "\n"


def _json(groups: Sequence[Group]) -> str:
    # a group per line, each as `json.dumps` writes it (the tests hold it to that), its strings
    # escaped by json's own C function and the rest formatted here: through `json.dumps`, a
    # dict made for every member and walked again was most of writing a large catalog's groups
    lines = ['{"keeper": ' + _string(g.keeper) + ', "reason": ' + _string(g.reason) + ', "contains": ['
             + ", ".join([_string(c) for c in g.contains]) + '], "members": ['
             + ", ".join([f'{{"path": {_string(im.path)}, "width": {_number(im.width)}, '
                          f'"height": {_number(im.height)}, "size": {_number(im.size)}, '
                          f'"sha256": {_string(im.sha256)}}}' for im in g.images]) + "]}"
             for g in groups]
    return "[\n" + ",\n".join(lines) + "\n]\n" if lines else "[]\n"


def _string(text: str | None) -> str:
    return "null" if text is None else encode_basestring_ascii(text)


def _number(value: int | float | None) -> str:
    return "null" if value is None else str(value)


def _csv(groups: Sequence[Group]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["group", "keeper", "path", "width", "height", "size", "sha256", "reason", "contains"])
    for n, g in enumerate(groups, 1):
        for im in g.images:
            keep = im.path == g.keeper
            w.writerow([n, int(keep), im.path, im.width, im.height, im.size, im.sha256, g.reason if keep else "",
                        ";".join(g.contains)])
    return buf.getvalue()


def _thumbnail(path: str) -> str:
    """A data: URI of a small JPEG of the image, or "" when it can no longer be read."""
    try:
        rgb = decode(path, max_side=THUMB_SIDE, traits=False).pixels
    except (UnreadableImageError, OSError):
        return ""
    ok, jpg = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 80])
    return "data:image/jpeg;base64," + base64.b64encode(jpg.tobytes()).decode() if ok else ""


_STYLE = """body{font-family:system-ui,sans-serif;margin:2em;color:#222}
.group{border:1px solid #ccc;border-radius:6px;padding:1em;margin:1em 0}
.items{display:flex;flex-wrap:wrap;gap:1em}
figure{margin:0;width:180px;font-size:12px;word-break:break-all}
figure img{max-width:170px;max-height:170px;border:3px solid transparent}
figure.keep img{border-color:#2a2}.keep figcaption b{color:#2a2}"""


def _html(groups: Sequence[Group]) -> str:
    groups, composites = _split(groups)
    parts = [f"<!doctype html><meta charset=utf-8><title>neardup: duplicate groups</title><style>{_STYLE}</style>",
             f"<h1>{len(groups)} duplicate groups</h1>",
             "<p>The suggested keeper of each group, the likeliest original, is framed in green, with the reason. "
             "Nothing has been deleted or moved.</p>"]
    for n, g in enumerate(groups, 1):
        parts.append(f"<div class=group><h2>Group {n} ({len(g.members)} images)</h2>"
                     f"<p>keep: {html.escape(g.reason)}</p><div class=items>")
        for im in g.images:
            keep = im.path == g.keeper
            label = "<b>keep</b> " if keep else ""
            parts.append(
                f"<figure class={'keep' if keep else 'dup'}><img src=\"{_thumbnail(im.path)}\" alt=''>"
                f"<figcaption>{label}{im.width}×{im.height}, {im.size:,} B<br>{html.escape(im.path)}</figcaption></figure>"
            )
        parts.append("</div></div>")
    if composites:
        parts.append("<h2>Composites</h2><p>Each contains pictures of several groups and is a copy of none.</p><ul>")
        parts += [f"<li>{html.escape(c.keeper)} contains {html.escape(', '.join(c.contains))}</li>" for c in composites]
        parts.append("</ul>")
    return "\n".join(parts) + "\n"

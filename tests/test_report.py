"""Duplicate groups as text (`search.report`): the JSON report is what `json.dumps` writes,
one group per line, whatever a path holds."""

from __future__ import annotations

import json

from neardup.search.duplicates import Group
from neardup.search.report import render
from neardup.storage.records import ImageInfo


def _image(image_id: int, path: str, width: int | None, sha256: str | None) -> ImageInfo:
    return ImageInfo(image_id, path, 2**40 + image_id, 0, sha256, width, None if width is None else 480, "JPEG", 90)


def test_the_json_report_is_json_dumps_of_each_group_line_by_line() -> None:
    # quotes, backslashes, a newline, non-ASCII, a name that is not UTF-8 (a lone surrogate), an emoji
    odd = ['/p/"quoted" \\ back.jpg', "/p/new\nline.jpg", "/p/ünïcødé.jpg", "/p/caf\udce9.jpg", "/p/\U0001f600.png"]
    images = [_image(n, path, None if n == 2 else 640 + n, None if n == 3 else f"{n:064x}")
              for n, path in enumerate(odd)]
    groups = [Group(odd[0], tuple(odd[:3]), tuple(images[:3]), 'largest "file"\tfirst'),
              Group(odd[3], (odd[3],), (images[3],), "", contains=(odd[4], odd[1])),
              Group(odd[4], (odd[4],), (images[4],))]
    want = [{"keeper": g.keeper, "reason": g.reason, "contains": list(g.contains),
             "members": [{"path": im.path, "width": im.width, "height": im.height, "size": im.size,
                          "sha256": im.sha256} for im in g.images]} for g in groups]
    text = render(groups, "json")
    assert text == "[\n" + ",\n".join(json.dumps(w) for w in want) + "\n]\n"
    assert json.loads(text) == want
    assert render([], "json") == "[]\n"

"""The progress sink long operations report to (the CLI draws a bar; the web app streams it)."""

from __future__ import annotations


class Progress:
    """`start(total)` once per stage (`label`: what that stage computes, when it is not the
    obvious one), `advance(n)` as work is done, `close()` at the end. Silent by default."""

    def start(self, total: int, label: str = "") -> None: ...
    def advance(self, n: int = 1) -> None: ...
    def close(self) -> None: ...

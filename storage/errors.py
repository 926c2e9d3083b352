"""The one base class of every error a user can cause and act on.

Each error is defined next to the code that raises it and derives from `NeardupError`, so the
CLI (and the web app) can tell them from bugs: a `NeardupError` is printed as `error: …`,
anything else is a bug and shows its traceback. Errors that are also a built-in kind
(`FileNotFoundError`, `ValueError`) derive from both, so callers may catch either.
"""

from __future__ import annotations


class NeardupError(Exception):
    """Something the user can fix: bad input, a missing file, a catalog in another state.

    The message says what was received and what was expected, in the library's terms;
    `hint`, when set, is one line on what to do next (the CLI prints it after the error).
    """

    hint: str | None = None

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        if hint is not None:
            self.hint = hint

"""One-line error text: every message a user reads about a failure is one line.

The CLI, the web app, the image reader and the benchmark writers all report exceptions
through these two functions, so a traceback's multi-line message never reaches a terminal
line or a JSON record.
"""

from __future__ import annotations


def first_line(err: BaseException, *, with_type: bool = False) -> str:
    """The first line of an exception's message, for per-file error reports.

    ``with_type`` prefixes the exception's class name (``"OSError: disk full"``). An exception
    without a message gives its class name alone. Never raises.
    """
    text = str(err).strip()
    if not text:
        return type(err).__name__
    line = text.splitlines()[0]
    return f"{type(err).__name__}: {line}" if with_type else line


def one_line(value: object) -> str:
    """``str(value)`` with every run of white space (new lines included) folded to one space.

    Keeps the whole message (unlike ``first_line``); an empty text gives the value's type
    name. Never raises.
    """
    return " ".join(str(value).split()) or type(value).__name__

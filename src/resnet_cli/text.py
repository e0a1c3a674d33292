"""Text for the terminal: names made safe to show."""

from __future__ import annotations


def printable(text: str) -> str:
    """Text safe to show on a terminal: undecodable bytes as \\xNN, control characters escaped."""
    raw = text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    return "".join(c if c.isprintable() or c == " " else repr(c)[1:-1] for c in raw)


def normalized_label(label: str) -> str:
    """A label for comparing: lower case, ``_`` as a space, runs of spaces as one."""
    return " ".join(label.replace("_", " ").lower().split())

"""Text for the terminal: names made safe to show."""

from __future__ import annotations


def printable(text: str) -> str:
    """Text safe to show on a terminal: undecodable bytes as \\xNN, control characters escaped."""
    raw = text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    return "".join(c if c.isprintable() or c == " " else repr(c)[1:-1] for c in raw)


def say(message: str) -> None:
    """A line for the user on stderr, names in it made safe for the terminal."""
    import sys

    print(printable(message), file=sys.stderr, flush=True)


def normalized_label(label: str) -> str:
    """A label for comparing: lower case, ``_`` as a space, runs of spaces as one."""
    return " ".join(label.replace("_", " ").lower().split())


def within_one_edit(typed: str, word: str) -> bool:
    """Whether ``typed`` is ``word`` or one edit from it: a letter added, dropped or changed,
    or two neighbouring letters swapped ("reprot" for "report")."""
    if typed == word:
        return True
    if abs(len(typed) - len(word)) > 1:
        return False
    # Skip the common prefix and suffix; what is left must be one edit.
    start = 0
    while start < min(len(typed), len(word)) and typed[start] == word[start]:
        start += 1
    end = 0
    while end < min(len(typed), len(word)) - start and typed[-1 - end] == word[-1 - end]:
        end += 1
    a, b = typed[start : len(typed) - end], word[start : len(word) - end]
    if len(a) <= 1 and len(b) <= 1:
        return True  # one letter added, dropped or changed
    return len(a) == len(b) == 2 and a == b[::-1]  # two neighbours swapped


def is_terminal(stream: object) -> bool:
    """Whether ``stream`` is a terminal (False for a closed or fake one)."""
    try:
        return bool(stream.isatty())  # type: ignore[attr-defined]
    except (AttributeError, ValueError):
        return False

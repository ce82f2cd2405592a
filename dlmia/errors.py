"""The errors dlmia raises for bad input, and how their messages show what they name. The CLI
turns each error into one line and exit code 2."""

from __future__ import annotations

import unicodedata

VALUE_LIMIT = 80  # characters of a value (its repr) that a message shows
LINE_LIMIT = 1000  # characters of a whole error line


class DlmiaError(Exception):
    """Base of every error caused by the user's input rather than by a bug."""


class ConfigError(DlmiaError):
    """A setting, grid file or command-line option is invalid."""


class DataError(DlmiaError):
    """A data file is missing or malformed, or too little data is left to work with."""


class TrainingError(DlmiaError):
    """A model diverged (non-finite outputs): a metric computed from it would be meaningless."""


class LockedError(DlmiaError):
    """An output folder is in use by another run (dlmia.lock): two writers would mix results."""


class OutputError(DlmiaError):
    """An output folder cannot be written (permissions, disk full, read-only file system)."""


def brief(value: object, limit: int = VALUE_LIMIT) -> str:
    """`value`'s repr for a message, cut after `limit` characters: a value read from a file may
    be megabytes long (an expanded YAML alias, a 5-million-digit number)."""
    try:
        text = repr(value)
    except ValueError:  # an integer past Python's 4,300-digit conversion limit
        text = f"<{type(value).__name__} too long to show>"
    return printable(text, limit)


def printable(text: str, limit: int = LINE_LIMIT) -> str:
    """`text` safe to print on a terminal: control and format characters (escape codes, line
    breaks, bidi overrides) written as escapes, and cut after `limit` characters."""
    cut = text if len(text) <= limit else f"{text[:limit]}... ({len(text):,} characters)"
    return "".join(
        repr(char)[1:-1] if unicodedata.category(char)[0] == "C" else char for char in cut
    )

"""The errors dlmia raises for bad input. The CLI turns each into one line and exit code 2."""

from __future__ import annotations


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

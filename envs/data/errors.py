"""Errors of the dataset layer: each names the file (and line) at fault so a user can fix the input."""

from __future__ import annotations

from pathlib import Path


class DataError(ValueError):
    """Bad or missing input data: a missing file, a malformed line, a wrong count or checksum."""

    def __init__(self, message: str, *, path: str | Path | None = None, line: int | None = None):
        self.path = str(path) if path is not None else None
        self.line = line
        where = ""
        if path is not None:
            where = f"{path}"
            if line is not None:
                where += f", line {line}"
            where += ": "
        super().__init__(where + message)


class ChecksumError(DataError):
    """A downloaded or supplied file does not match its registered size or checksum."""


class OutputExistsError(DataError):
    """The output directory exists already; we never overwrite a prepared dataset silently."""

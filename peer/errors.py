"""The peer package's error root and its storage family.

Every error the peer raises on purpose derives from `PeerError`, and its `str()` carries
what an operator needs to act: which file, which byte offset, which value was wrong.
Storage errors split in two: `CorruptLogError` / `CorruptSnapshotError` mean the bytes on
disk are damaged (the peer must refuse to start, or fall back), while a plain
`StorageError` is a refused operation or an unusable data dir. This module does no I/O.
"""

from __future__ import annotations


class PeerError(Exception):
    """Root of every error raised by the `peer` package."""


class StorageError(PeerError):
    """The data dir cannot be used as asked (bad epoch files, out-of-order append, ...)."""


class CorruptLogError(StorageError):
    """A transaction log holds damaged bytes before its tail: refuse to start.

    `path` names the log file (or any other source label), `offset` the byte offset of
    the first record that could not be trusted, `why` what was wrong with it."""

    def __init__(self, path: str, offset: int, why: str) -> None:
        super().__init__(path, offset, why)
        self.path = path
        self.offset = offset
        self.why = why

    def __str__(self) -> str:
        return f"corrupt transaction log {self.path} at byte offset {self.offset}: {self.why}"


class CorruptSnapshotError(StorageError):
    """A snapshot file fails validation (magic, version, checksum, structure)."""

    def __init__(self, path: str, why: str) -> None:
        super().__init__(path, why)
        self.path = path
        self.why = why

    def __str__(self) -> str:
        return f"corrupt snapshot {self.path}: {self.why}"

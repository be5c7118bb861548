"""The simulated disk: `peer.storage.Storage` with the fsync system calls of its hot path
left out.

This module owns the one place where the simulator's storage differs from the real
peer's: the per-txn `write` + `sync` of the log, and the fsyncs of the small files
(snapshots, epoch files, the boot counter) and of the directory. Everything else is
the real code on a real directory: `SimStorage.open` is `Storage.open` (the same
recovery), the files and their record format are the same (`peer.records.encode_txn`),
and every rare call (a new segment, truncation, snapshots, epoch files, anything after
an error) is the inherited method, with the same files in the same order.

Why no fsync is needed. In the simulator the page cache never outlives the process by
accident: `World.kill_peer` models the lost machine by cutting the log to the position
the last `sync()` returned (`faults.disk.drop_unsynced_tail`), so "a crash loses exactly
what was not fsynced" holds by construction, and `sync()` only has to move that
position. An fdatasync there would cost a system call and change nothing. The same
holds for a small file (written to a temp name, then renamed over the old one: either
is whole) and for a directory entry: nothing in the simulator can lose them, so
the two fsync hooks of `Storage`, `_fsync_whole_file` and `_fsync_dir_entries`, do
nothing here (each fsync cost ~20 us on tmpfs, a few hundred per run).

Why `write` has a fast path. The leader's txn object reaches every peer unchanged (the
simulator does not copy messages), so its encoding is computed once and shared through
`EncodeCache`; the appends of a single txn to the open segment skip the generic
checks' overhead. The fast path keeps every invariant `Storage` keeps (strictly
increasing zxids, segment bookkeeping, a failed write breaks the instance); anything
it does not cover falls back to `Storage.write`.

Why `write` buffers. Nothing reads a running peer's log files (recovery, truncation,
snapshots and the disk faults all read them through `Storage` or after `close`), so
the fast path's records wait in one buffer and reach the file in one system call
before any of those can look: before every inherited `write`, `sync`,
`truncate_after` and `_close_active` (which `write_snapshot`, `install_snapshot` and
`close` call first), and once the buffer holds `PENDING_LIMIT` bytes. A crash still
loses exactly what was not synced: `World.kill_peer` closes the storage (writing the
buffer, as the page cache holds it) and then cuts the log at the synced position.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Final

from peer.domain import Txn
from peer.errors import StorageError
from peer.records import encode_txn
from peer.storage import Storage, _Segment, write_all


class EncodeCache:
    """Log record bytes by txn object (identity; the entry keeps the txn alive so its
    id cannot be reused while cached). Bounded: cleared when full."""

    __slots__ = ("entries",)

    LIMIT = 4096

    def __init__(self) -> None:
        self.entries: dict[int, tuple[Txn, bytes]] = {}

    def get(self, txn: Txn) -> bytes:
        entry = self.entries.get(id(txn))
        if entry is not None and entry[0] is txn:
            return entry[1]
        data = encode_txn(txn)  # ValueError for a txn the format cannot hold
        if len(self.entries) >= self.LIMIT:
            self.entries.clear()
        self.entries[id(txn)] = (txn, data)
        return data


class SimStorage(Storage):
    """`Storage` on the simulated disk; see the module docstring. Set `encoded` to the
    world's shared cache after `open`."""

    encoded: EncodeCache | None = None

    PENDING_LIMIT: Final = 1 << 16

    def __init__(
        self,
        *,
        data_dir: Path,
        lock_fd: int,
        segments: list[_Segment],
        snapshots: list[int],
        last_zxid: int,
    ) -> None:
        # the arguments spelled out, not forwarded as **kwargs: the native build
        # (`peer.native`) cannot forward keyword-only arguments through **kwargs
        super().__init__(
            data_dir=data_dir,
            lock_fd=lock_fd,
            segments=segments,
            snapshots=snapshots,
            last_zxid=last_zxid,
        )
        self._pending = bytearray()  # records `write` appended, not yet in the file

    def _flush_pending(self) -> None:
        pending = self._pending
        if not pending or self._fd is None:
            return
        try:
            write_all(self._fd, pending)
        except OSError as exc:
            self._broken = f"write: {exc}"
            raise StorageError(f"write in {self.data_dir}: {exc}") from exc
        finally:
            pending.clear()

    def _close_active(self) -> None:
        self._flush_pending()
        super()._close_active()

    def _fsync_whole_file(self, fd: int) -> None:
        pass  # nothing in the simulator can lose a renamed small file: module docstring

    def _fsync_dir_entries(self) -> None:
        pass  # nor a directory entry

    def truncate_after(self, zxid: int) -> int:
        self._flush_pending()
        return super().truncate_after(zxid)

    def write(self, txns: Sequence[Txn]) -> None:
        fd = self._fd
        cache = self.encoded
        if fd is None or cache is None or len(txns) != 1 or self._broken:
            self._flush_pending()
            super().write(txns)
            return
        txn = txns[0]
        zxid = txn.zxid
        if zxid <= self._last_zxid:
            self._flush_pending()
            super().write(txns)  # refuses, with the real message
            return
        entry = cache.entries.get(id(txn))  # `cache.get(txn)`, its hit inlined
        if entry is not None and entry[0] is txn:
            data = entry[1]
        else:
            try:
                data = cache.get(txn)
            except ValueError:
                self._flush_pending()
                super().write(txns)  # refuses, with the real message
                return
        pending = self._pending
        pending += data
        if len(pending) >= self.PENDING_LIMIT:
            self._flush_pending()
        segment = self._segments[-1]
        segment.last_zxid = zxid
        segment.count += 1
        segment.size += len(data)
        self._last_zxid = zxid

    def sync(self) -> tuple[str, int]:
        if self._broken or self._lock_fd is None:
            self._flush_pending()
            return super().sync()  # the real error
        self._dir_dirty = False  # a new segment's directory entry: see the module docstring
        segments = self._segments  # `_durable_position()`, inlined
        if segments:
            newest = segments[-1]
            self._synced = synced = (newest.name, newest.size)
        else:
            self._synced = synced = ("", 0)
        return synced

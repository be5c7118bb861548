"""The peer's durable storage: transaction log segments, snapshots, epoch files, boot counter.

This adapter owns every file of a peer's data dir and the order in which they are
written, fsynced, renamed and deleted; it knows nothing of the protocol (the byte formats
live in `peer/records.py`, the decisions of what to log and when in the cores). It never
sends anything: the caller persists (`append` returns after fsync) and only then acks.

Data dir layout (zxids as 16 lower-case hex digits, so names sort in zxid order)::

    log.<zxid>        a log segment; <zxid> is its first record. Records only ever go to
                      the newest segment; a new one begins after each snapshot.
    snapshot.<zxid>   the whole state at <zxid> (written .tmp, fsynced, renamed)
    snapshot.<zxid>.corrupt
                      a snapshot that failed validation at open, kept for people
    acceptedEpoch     decimal text; written tmp + fsync + rename + fsync of the dir
    currentEpoch      decimal text, same; missing epoch files mean 0
    boot              decimal text: the last boot number handed out by `next_boot`
    lock              flock'ed while a Storage is open (one peer per data dir)
    *.tmp             half-written files; deleted at open

Invariants kept between calls: every segment on disk is non-empty and named after its
first record; zxids strictly increase across all segments; only the newest segment can
hold bytes that were not fsynced (anything that rolls to a new segment syncs first), so
the pair `sync()` returns, (newest segment, its fsynced size), describes exactly what a
power loss would keep (`faults/disk.drop_unsynced_tail` models that). Pruning keeps the
newest three snapshots and every segment holding a txn newer than the oldest of them,
so recovery can fall back from a damaged newest snapshot to an older one.

Recovery (`Storage.open`): load the newest snapshot that validates, recording and
renaming the damaged newer ones (if snapshot files exist but none validates, refuse:
the log alone may have been pruned); scan every segment, refuse on damage before the
tail (`CorruptLogError` naming file and offset), truncate a torn tail of the newest
segment (reported in `torn_bytes`); return the txns after the snapshot for the caller to
replay; read the epoch files and refuse if acceptedEpoch < currentEpoch.
"""

from __future__ import annotations

import errno
import fcntl
import logging
import os
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from peer.domain import Txn, format_zxid
from peer.errors import CorruptLogError, CorruptSnapshotError, StorageError
from peer.records import decode_snapshot, encode_snapshot, encode_txns, scan_log

log = logging.getLogger(__name__)

LOG_PREFIX = "log."
SNAPSHOT_PREFIX = "snapshot."
TMP_SUFFIX = ".tmp"
CORRUPT_SUFFIX = ".corrupt"
ACCEPTED_EPOCH_FILE = "acceptedEpoch"
CURRENT_EPOCH_FILE = "currentEpoch"
BOOT_FILE = "boot"
LOCK_FILE = "lock"
SNAPSHOTS_KEPT = 3


def log_name(zxid: int) -> str:
    return f"{LOG_PREFIX}{zxid:016x}"


def snapshot_name(zxid: int) -> str:
    return f"{SNAPSHOT_PREFIX}{zxid:016x}"


def parse_name(name: str, prefix: str) -> int | None:
    """The zxid in `log.<hex>` / `snapshot.<hex>`, or None if `name` is not such a file."""
    if not name.startswith(prefix):
        return None
    digits = name[len(prefix) :]
    if not digits or any(c not in "0123456789abcdefABCDEF" for c in digits):
        return None
    return int(digits, 16)


def list_segments(data_dir: Path) -> list[tuple[int, str]]:
    """(first zxid, file name) of every log segment in `data_dir`, oldest first."""
    found = []
    for name in os.listdir(data_dir):
        zxid = parse_name(name, LOG_PREFIX)
        if zxid is not None:
            found.append((zxid, name))
    return sorted(found)


def list_snapshots(data_dir: Path) -> list[tuple[int, str]]:
    """(zxid, file name) of every live snapshot (not .tmp / .corrupt), oldest first."""
    found = []
    for name in os.listdir(data_dir):
        zxid = parse_name(name, SNAPSHOT_PREFIX)
        if zxid is not None:
            found.append((zxid, name))
    return sorted(found)


@dataclass(frozen=True, slots=True, kw_only=True)
class Recovered:
    """What `Storage.open` found; the caller rebuilds its state as `state` + `txns`."""

    snapshot_zxid: int  # 0 when none
    state: dict[str, str]  # state AT the snapshot (the caller replays `txns` on top)
    txns: tuple[Txn, ...]  # every logged txn with zxid > snapshot_zxid, in order
    last_zxid: int  # last logged zxid (or snapshot_zxid)
    accepted_epoch: int
    current_epoch: int
    torn_bytes: int  # bytes of torn tail truncated away at open (0 if none)
    skipped_snapshots: tuple[str, ...]  # newer snapshot files that failed validation

    def boot_fields(self) -> dict[str, int]:
        """What recovery puts in the `boot` event (the caller adds bug, role and pid);
        one definition for the real peer and the simulator, so their logs agree."""
        return {
            "last_zxid": self.last_zxid,
            "current_epoch": self.current_epoch,
            "accepted_epoch": self.accepted_epoch,
            "snapshot_zxid": self.snapshot_zxid,
        }

    def recovered_fields(self) -> dict[str, object]:
        """The fields of the `recovered` event."""
        return {
            "snapshot_zxid": self.snapshot_zxid,
            "replayed": len(self.txns),
            "last_zxid": self.last_zxid,
            "current_epoch": self.current_epoch,
            "accepted_epoch": self.accepted_epoch,
            "torn_bytes": self.torn_bytes,
            "skipped_snapshots": list(self.skipped_snapshots),
        }


@dataclass(slots=True, kw_only=True)
class _Segment:
    """Bookkeeping for one log file (mutable, private to Storage)."""

    name: str
    first_zxid: int
    last_zxid: int
    count: int
    size: int


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_all(fd: int, data: bytes | bytearray) -> None:
    """os.write until every byte is written (a write may be partial)."""
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def _datasync(fd: int) -> None:
    # fdatasync also persists the file size, which is all a log append changes.
    if hasattr(os, "fdatasync"):
        os.fdatasync(fd)
    else:  # pragma: no cover - macOS
        os.fsync(fd)


def _read_counter(path: Path, what: str) -> int | None:
    """A decimal counter file, None when missing; a clear StorageError when garbled."""
    try:
        text = path.read_text(encoding="ascii", errors="replace")
    except FileNotFoundError:
        return None
    value = text.strip()
    if not value.isascii() or not value.isdigit():
        raise StorageError(f"{path}: expected the {what} as decimal digits, found {text!r}")
    return int(value)


def _check_count(value: int, what: str) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise StorageError(f"{what} must be a non-negative integer, got {value!r}")


class Storage:
    """An open data dir. Build with `Storage.open`; one instance per dir (flock'ed)."""

    def __init__(
        self,
        *,
        data_dir: Path,
        lock_fd: int,
        segments: list[_Segment],
        snapshots: list[int],
        last_zxid: int,
    ) -> None:
        self._dir = data_dir
        self._lock_fd: int | None = lock_fd
        self._segments = segments
        self._snapshots = snapshots  # zxids of live snapshot files, ascending
        self._last_zxid = last_zxid
        self._fd: int | None = None  # newest segment opened for append; None = roll
        self._dir_dirty = False
        self._broken = ""
        if segments:
            self._fd = os.open(self._path(segments[-1].name), os.O_WRONLY | os.O_APPEND)
        self._synced = self._durable_position()

    # ---- recovery ---------------------------------------------------------------

    @classmethod
    def open(cls, data_dir: Path) -> tuple[Storage, Recovered]:
        """Open (creating if new) and recover `data_dir`; see the module docstring."""
        data_dir = Path(data_dir)
        try:
            data_dir.mkdir(parents=True, exist_ok=True)
            lock_fd = os.open(data_dir / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise StorageError(f"cannot use data dir {data_dir}: {exc}") from exc
        try:
            fcntl.flock(lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(lock_fd)
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
                raise StorageError(f"data dir {data_dir} is in use by another Storage") from exc
            raise StorageError(f"cannot lock data dir {data_dir}: {exc}") from exc
        try:
            return cls._recover(data_dir, lock_fd)
        except BaseException:
            os.close(lock_fd)
            raise

    @classmethod
    def _recover(cls, data_dir: Path, lock_fd: int) -> tuple[Storage, Recovered]:
        try:
            return cls._recover_io(data_dir, lock_fd)
        except OSError as exc:
            raise StorageError(f"recovering data dir {data_dir}: {exc}") from exc

    @classmethod
    def _recover_io(cls, data_dir: Path, lock_fd: int) -> tuple[Storage, Recovered]:
        dir_dirty = False
        for name in os.listdir(data_dir):
            if name.endswith(TMP_SUFFIX):
                os.unlink(data_dir / name)
                dir_dirty = True

        # Newest snapshot that validates; damaged newer ones are skipped (renamed at the end,
        # only once recovery has succeeded, so a refused start changes nothing on disk).
        snapshot_files = list_snapshots(data_dir)
        skipped: list[str] = []
        snapshot_zxid, state = 0, {}
        chosen: int | None = None
        for index in range(len(snapshot_files) - 1, -1, -1):
            zxid, name = snapshot_files[index]
            path = data_dir / name
            try:
                found_zxid, found_state = decode_snapshot(path.read_bytes(), source=str(path))
                if found_zxid != zxid:
                    raise CorruptSnapshotError(
                        str(path), f"holds zxid {found_zxid:#x} but is named for {zxid:#x}"
                    )
            except CorruptSnapshotError as exc:
                log.warning("skipping snapshot: %s", exc)
                skipped.append(name)
                continue
            snapshot_zxid, state, chosen = found_zxid, found_state, index
            break
        if snapshot_files and chosen is None:
            raise StorageError(
                f"no valid snapshot in {data_dir} (all of {', '.join(skipped)} are damaged); "
                "refusing to start from the log alone, which may have been pruned"
            )
        live_snapshots = [] if chosen is None else [z for z, _ in snapshot_files[: chosen + 1]]

        # Scan every segment; only the newest may end in a torn tail.
        segments: list[_Segment] = []
        all_txns: list[Txn] = []
        torn_bytes = 0
        files = list_segments(data_dir)
        for index, (first_zxid, name) in enumerate(files):
            path = data_dir / name
            scan = scan_log(path.read_bytes(), source=str(path))
            newest = index == len(files) - 1
            if scan.torn and not newest:
                raise CorruptLogError(
                    str(path),
                    scan.valid_end,
                    f"{scan.torn_why} in a segment followed by {files[index + 1][1]}",
                )
            if scan.txns and all_txns and scan.txns[0].zxid <= all_txns[-1].zxid:
                raise CorruptLogError(
                    str(path),
                    0,
                    f"first zxid {scan.txns[0].zxid:#x} does not increase after "
                    f"{all_txns[-1].zxid:#x} at the end of the previous segment",
                )
            if scan.torn:
                log.warning("truncating torn tail of %s: %s", path, scan.torn_why)
                torn_bytes = scan.torn_bytes
                fd = os.open(path, os.O_WRONLY)
                try:
                    os.ftruncate(fd, scan.valid_end)
                    os.fsync(fd)
                finally:
                    os.close(fd)
            if not scan.txns:
                # Left empty by a crash right after creating it: drop it, keeping the
                # invariant that every segment is named after its (existing) first record.
                os.unlink(path)
                dir_dirty = True
                continue
            all_txns.extend(scan.txns)
            segments.append(
                _Segment(
                    name=name,
                    first_zxid=first_zxid,
                    last_zxid=scan.txns[-1].zxid,
                    count=len(scan.txns),
                    size=scan.valid_end,
                )
            )
        if segments and not torn_bytes:
            # What a killed predecessor wrote may sit only in the page cache: make it durable
            # so that the position `sync()` reports is true from the start.
            fd = os.open(data_dir / segments[-1].name, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)

        accepted = _read_counter(data_dir / ACCEPTED_EPOCH_FILE, "accepted epoch") or 0
        current = _read_counter(data_dir / CURRENT_EPOCH_FILE, "current epoch") or 0
        if accepted < current:
            raise StorageError(
                f"{data_dir}: acceptedEpoch {accepted} < currentEpoch {current}; an epoch is "
                "only made current after it was accepted, so these files are inconsistent"
            )

        for name in skipped:
            os.replace(data_dir / name, data_dir / (name + CORRUPT_SUFFIX))
            dir_dirty = True
        if dir_dirty:
            _fsync_dir(data_dir)

        txns = tuple(t for t in all_txns if t.zxid > snapshot_zxid)
        last_logged = all_txns[-1].zxid if all_txns else 0
        last_zxid = max(last_logged, snapshot_zxid)
        storage = cls(
            data_dir=data_dir,
            lock_fd=lock_fd,
            segments=segments,
            snapshots=live_snapshots,
            last_zxid=last_zxid,
        )
        recovered = Recovered(
            snapshot_zxid=snapshot_zxid,
            state=state,
            txns=txns,
            last_zxid=last_zxid,
            accepted_epoch=accepted,
            current_epoch=current,
            torn_bytes=torn_bytes,
            skipped_snapshots=tuple(skipped),
        )
        log.info(
            "recovered %s: snapshot %s, %d txns to replay, last zxid %s, epochs %d/%d",
            data_dir,
            format_zxid(snapshot_zxid),
            len(txns),
            format_zxid(last_zxid),
            accepted,
            current,
        )
        return storage, recovered

    # ---- small helpers ------------------------------------------------------------

    def _path(self, name: str) -> Path:
        return self._dir / name

    @contextmanager
    def _io(self, what: str) -> Iterator[None]:
        """Run file operations; an OSError becomes a StorageError and, since the files may
        now be half-changed, refuses every later mutation of this instance."""
        if self._lock_fd is None:
            raise StorageError(f"{what}: storage of {self._dir} is closed")
        if self._broken:
            raise StorageError(f"{what}: storage of {self._dir} failed earlier ({self._broken})")
        try:
            yield
        except OSError as exc:
            self._broken = f"{what}: {exc}"
            raise StorageError(f"{what} in {self._dir}: {exc}") from exc

    def _durable_position(self) -> tuple[str, int]:
        if not self._segments:
            return ("", 0)
        newest = self._segments[-1]
        return (newest.name, newest.size)

    def _close_active(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def _unlink(self, name: str) -> None:
        os.unlink(self._path(name))
        self._dir_dirty = True

    def _fsync_whole_file(self, fd: int) -> None:
        """fsync a small file (snapshot, epoch file) before it is renamed into place.
        The one hook, with `_fsync_dir_entries`, for a storage whose files cannot be lost
        (the simulator's)."""
        os.fsync(fd)

    def _fsync_dir_entries(self) -> None:
        """fsync the data dir: its created, renamed and deleted names."""
        _fsync_dir(self._dir)

    def _sync_dir_if_dirty(self) -> None:
        if self._dir_dirty:
            self._fsync_dir_entries()
            self._dir_dirty = False

    def _write_small_file(self, name: str, data: bytes) -> None:
        """tmp + fsync + rename + fsync dir: the file is either old or new after a crash."""
        tmp = self._path(name + TMP_SUFFIX)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            write_all(fd, data)
            self._fsync_whole_file(fd)
        finally:
            os.close(fd)
        os.replace(tmp, self._path(name))
        self._fsync_dir_entries()

    # ---- public API ---------------------------------------------------------------

    @property
    def data_dir(self) -> Path:
        return self._dir

    @property
    def last_zxid(self) -> int:
        """The newest zxid held (logged, or the newest snapshot's when the log is older)."""
        return self._last_zxid

    @property
    def synced(self) -> tuple[str, int]:
        """(log file name, offset) known to be on disk; ("", 0) when no segment exists.

        Same as the last `sync()` answer, also after `write_snapshot`, `truncate_after` and
        `install_snapshot`, which sync themselves."""
        return self._synced

    def next_boot(self) -> int:
        """Increment and persist the boot counter; 0 on the first boot of this dir."""
        with self._io("next_boot"):
            previous = _read_counter(self._path(BOOT_FILE), "boot counter")
            boot = 0 if previous is None else previous + 1
            self._write_small_file(BOOT_FILE, f"{boot}\n".encode("ascii"))
        return boot

    def write(self, txns: Sequence[Txn]) -> None:
        """Append `txns` (zxids strictly increasing past `last_zxid`) to the newest segment,
        WITHOUT fsync: they survive a process kill, not a power loss, until `sync()`."""
        if not txns:
            return
        previous = self._last_zxid
        for txn in txns:
            if txn.zxid <= previous:
                raise StorageError(
                    f"cannot log txn {format_zxid(txn.zxid)} ({txn.zxid:#x}) after "
                    f"{format_zxid(previous)} ({previous:#x}): zxids in a log strictly increase"
                )
            previous = txn.zxid
        try:
            data = encode_txns(txns)
        except ValueError as exc:
            raise StorageError(f"cannot encode txn: {exc}") from exc
        with self._io("write"):
            if self._fd is None:
                name = log_name(txns[0].zxid)
                self._fd = os.open(
                    self._path(name), os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND, 0o644
                )
                self._dir_dirty = True
                self._segments.append(
                    _Segment(name=name, first_zxid=txns[0].zxid, last_zxid=0, count=0, size=0)
                )
            write_all(self._fd, data)
            segment = self._segments[-1]
            segment.last_zxid = txns[-1].zxid
            segment.count += len(txns)
            segment.size += len(data)
            self._last_zxid = txns[-1].zxid

    def sync(self) -> tuple[str, int]:
        """fsync what `write` appended (and a new segment's directory entry); returns the
        durable position (log file name, offset), ("", 0) when there is no log at all."""
        with self._io("sync"):
            if self._fd is not None:
                _datasync(self._fd)
            self._sync_dir_if_dirty()
            self._synced = self._durable_position()
        return self._synced

    def append(self, txns: Sequence[Txn]) -> tuple[str, int]:
        """`write` + `sync`: when this returns, `txns` are durable."""
        self.write(txns)
        return self.sync()

    def truncate_after(self, zxid: int) -> int:
        """Durably drop every logged txn with zxid > `zxid` (across segments), and every
        snapshot newer than `zxid` (it holds dropped txns). Returns how many txns dropped.

        Refused when `zxid` is older than the oldest snapshot: the log before it was pruned,
        so the state at `zxid` cannot be rebuilt (the leader must send a SNAP)."""
        _check_count(zxid, "truncate_after zxid")
        self.sync()
        if self._snapshots and zxid < self._snapshots[0]:
            raise StorageError(
                f"cannot truncate {self._dir} after {format_zxid(zxid)}: the oldest snapshot "
                f"is {format_zxid(self._snapshots[0])} and the log before it is gone"
            )
        dropped = 0
        with self._io("truncate_after"):
            for snap in [s for s in self._snapshots if s > zxid]:
                self._unlink(snapshot_name(snap))
                self._snapshots.remove(snap)
            while self._segments and self._segments[-1].last_zxid > zxid:
                segment = self._segments[-1]
                path = self._path(segment.name)
                scan = scan_log(path.read_bytes(), source=str(path))
                keep = sum(1 for t in scan.txns if t.zxid <= zxid)
                dropped += len(scan.txns) - keep
                if keep == 0:
                    if self._fd is not None:
                        self._close_active()  # only the newest segment is ever open
                    self._unlink(segment.name)
                    self._segments.pop()
                    continue
                cut = scan.record_ends[keep - 1]
                fd = os.open(path, os.O_WRONLY)
                try:
                    os.ftruncate(fd, cut)
                    os.fsync(fd)
                finally:
                    os.close(fd)
                segment.size, segment.count = cut, keep
                segment.last_zxid = scan.txns[keep - 1].zxid
                break
            self._sync_dir_if_dirty()
            last_logged = self._segments[-1].last_zxid if self._segments else 0
            self._last_zxid = max([last_logged, *self._snapshots])
            self._synced = self._durable_position()
        return dropped

    def write_snapshot(self, zxid: int, state: Mapping[str, str]) -> str:
        """Persist `state` as of `zxid` (tmp + fsync + rename), start a new log segment,
        keep the newest three snapshots and delete the logs and snapshots they make
        redundant. Returns the snapshot's file name."""
        try:
            data = encode_snapshot(zxid, state)
        except ValueError as exc:
            raise StorageError(f"cannot encode snapshot: {exc}") from exc
        self.sync()  # nothing unsynced may stay behind in a segment that stops being newest
        if zxid > self._last_zxid:
            raise StorageError(
                f"snapshot at {format_zxid(zxid)} is ahead of the last logged zxid "
                f"{format_zxid(self._last_zxid)} (use install_snapshot for a leader's SNAP)"
            )
        if self._snapshots and zxid < self._snapshots[-1]:
            raise StorageError(
                f"snapshot at {format_zxid(zxid)} is older than the newest snapshot "
                f"{format_zxid(self._snapshots[-1])}"
            )
        name = snapshot_name(zxid)
        with self._io("write_snapshot"):
            self._write_small_file(name, data)
            if zxid not in self._snapshots:
                self._snapshots.append(zxid)
            self._close_active()
            for old in self._snapshots[:-SNAPSHOTS_KEPT]:
                self._unlink(snapshot_name(old))
            del self._snapshots[:-SNAPSHOTS_KEPT]
            oldest_kept = self._snapshots[0]
            # Every txn in such a segment is covered by every kept snapshot.
            for segment in [s for s in self._segments if s.last_zxid <= oldest_kept]:
                self._unlink(segment.name)
                self._segments.remove(segment)
            self._sync_dir_if_dirty()
            self._synced = self._durable_position()
        return name

    def install_snapshot(self, zxid: int, state: Mapping[str, str]) -> None:
        """A leader's SNAP: replace every logged txn and snapshot with this one snapshot;
        the next write starts a fresh segment.

        Crash order: the new snapshot is fsynced under a .tmp name, then the old logs and
        snapshots are deleted, then it is renamed in. A crash in between leaves either the
        old history or nothing, never the new snapshot with the old log replayed on it."""
        try:
            data = encode_snapshot(zxid, state)
        except ValueError as exc:
            raise StorageError(f"cannot encode snapshot: {exc}") from exc
        name = snapshot_name(zxid)
        with self._io("install_snapshot"):
            self._close_active()
            tmp = self._path(name + TMP_SUFFIX)
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            try:
                write_all(fd, data)
                self._fsync_whole_file(fd)
            finally:
                os.close(fd)
            for segment in self._segments:
                self._unlink(segment.name)
            for snap in self._snapshots:
                self._unlink(snapshot_name(snap))
            self._segments.clear()
            self._sync_dir_if_dirty()
            os.replace(tmp, self._path(name))
            self._fsync_dir_entries()
            self._snapshots[:] = [zxid]
            self._last_zxid = zxid
            self._synced = self._durable_position()

    def set_accepted_epoch(self, epoch: int) -> None:
        """Durably record acceptedEpoch. A decrease is not refused: the checker must be
        able to catch a planted bug that does it."""
        _check_count(epoch, "accepted epoch")
        with self._io("set_accepted_epoch"):
            self._write_small_file(ACCEPTED_EPOCH_FILE, f"{epoch}\n".encode("ascii"))

    def set_current_epoch(self, epoch: int) -> None:
        """Durably record currentEpoch (not refused if it decreases or passes acceptedEpoch;
        the next `open` refuses acceptedEpoch < currentEpoch)."""
        _check_count(epoch, "current epoch")
        with self._io("set_current_epoch"):
            self._write_small_file(CURRENT_EPOCH_FILE, f"{epoch}\n".encode("ascii"))

    def close(self) -> None:
        """Release the files and the dir lock. Does NOT fsync: call `sync()` first when
        unsynced writes must survive a power loss. Idempotent."""
        self._close_active()
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    def __enter__(self) -> Storage:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

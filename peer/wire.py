"""Wire format of the peer: framing and codecs for every election and ZAB message.

This module owns the bytes between peers and nothing else: pure `encode` / `decode`
functions and an incremental `FrameDecoder` for stream transports. It does no I/O
and knows no protocol rules. A frame is

    length  u32 big-endian   bytes that follow (version + type + payload), <= max_frame
    version u8               WIRE_VERSION
    type    u8               message type code (MESSAGE_TYPES)
    payload                  the message's fields in declaration order

Integers are signed 64-bit big-endian (ids, epochs, zxids, rounds; -1 stays
representable), strings are u32 length + UTF-8, sequences are u32 count + items, a
ServerState is one byte. A payload must be consumed exactly.

Errors split the h11 way: `FrameError` means the remote sent garbage (unknown
version or type, malformed or truncated payload, over-size frame): the adapter logs
`bad_frame` with `why` and closes only that connection. `EncodeError` means we were
asked to encode something unrepresentable (a local bug).
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, assert_never

from peer.domain import ServerState, Txn, Vote
from peer.errors import PeerError
from peer.messages import (
    Ack,
    AckEpoch,
    AckNewLeader,
    Commit,
    Diff,
    FollowerInfo,
    Inform,
    LeaderInfo,
    NewLeader,
    Notification,
    Ping,
    Proposal,
    Snap,
    Trunc,
    UpToDate,
    ZabMessage,
)

WIRE_VERSION = 1
MAX_FRAME = 16 * 1024 * 1024
"""Default hard limit on one frame (after the length prefix). Snapshots travel in one
frame, so the limit bounds the state a SNAP can carry."""

_LENGTH = struct.Struct(">I")
_HEADER = struct.Struct(">BB")  # version, type
_INT = struct.Struct(">q")
_U32 = struct.Struct(">I")

Message = Notification | ZabMessage

_STATES: tuple[ServerState, ...] = (
    ServerState.LOOKING,
    ServerState.FOLLOWING,
    ServerState.LEADING,
    ServerState.OBSERVING,
)

MESSAGE_TYPES: dict[type[Any], int] = {
    Notification: 1,
    FollowerInfo: 10,
    LeaderInfo: 11,
    AckEpoch: 12,
    Diff: 13,
    Trunc: 14,
    Snap: 15,
    NewLeader: 16,
    AckNewLeader: 17,
    UpToDate: 18,
    Proposal: 19,
    Ack: 20,
    Commit: 21,
    Inform: 22,
    Ping: 23,
}


class WireError(PeerError):
    """Root of the wire errors."""


class FrameError(WireError):
    """The remote sent a frame we cannot accept; `why` says what was wrong."""

    def __init__(self, why: str, *, type_code: int | None = None) -> None:
        super().__init__(why)
        self.why = why
        self.type_code = type_code

    def __str__(self) -> str:
        where = f" (message type {self.type_code})" if self.type_code is not None else ""
        return f"bad frame{where}: {self.why}"


class EncodeError(WireError):
    """A message that cannot be encoded (value out of range, unknown type): our bug."""


# ---------------------------------------------------------------------- primitives
class _Writer:
    __slots__ = ("buf",)

    def __init__(self) -> None:
        self.buf = bytearray()

    def i64(self, value: int, what: str) -> None:
        if isinstance(value, bool) or not isinstance(value, int):
            raise EncodeError(f"{what} must be an int, got {value!r}")
        try:
            self.buf += _INT.pack(value)
        except struct.error:
            raise EncodeError(f"{what}={value} does not fit a signed 64-bit integer") from None

    def count(self, value: int, what: str) -> None:
        if value > 0xFFFFFFFF:
            raise EncodeError(f"{what}: {value} items do not fit a u32 count")
        self.buf += _U32.pack(value)

    def text(self, value: str, what: str) -> None:
        if not isinstance(value, str):
            raise EncodeError(f"{what} must be a str, got {value!r}")
        data = value.encode("utf-8", errors="surrogatepass")
        self.count(len(data), what)
        self.buf += data

    def txn(self, txn: Txn) -> None:
        self.i64(txn.zxid, "txn.zxid")
        self.text(txn.key, "txn.key")
        self.text(txn.value, "txn.value")

    def txns(self, txns: tuple[Txn, ...]) -> None:
        self.count(len(txns), "txns")
        for txn in txns:
            self.txn(txn)


class _Reader:
    __slots__ = ("data", "pos", "type_code")

    def __init__(self, data: bytes | memoryview, type_code: int) -> None:
        self.data = memoryview(data)
        self.pos = 0
        self.type_code = type_code

    def fail(self, why: str) -> FrameError:
        return FrameError(why, type_code=self.type_code)

    def take(self, size: int, what: str) -> memoryview:
        end = self.pos + size
        if end > len(self.data):
            raise self.fail(
                f"payload truncated reading {what}: need {size} bytes at offset {self.pos}, "
                f"have {len(self.data) - self.pos}"
            )
        chunk = self.data[self.pos : end]
        self.pos = end
        return chunk

    def i64(self, what: str) -> int:
        value: int = _INT.unpack(self.take(_INT.size, what))[0]
        return value

    def count(self, what: str, min_item: int) -> int:
        value: int = _U32.unpack(self.take(_U32.size, what))[0]
        # Refuse counts the remaining bytes cannot hold before allocating anything.
        if value * min_item > len(self.data) - self.pos:
            raise self.fail(f"{what} count {value} exceeds the payload")
        return value

    def text(self, what: str) -> str:
        size = self.count(what, 1)
        raw = bytes(self.take(size, what))
        try:
            return raw.decode("utf-8", errors="surrogatepass")
        except UnicodeDecodeError as exc:
            raise self.fail(f"{what} is not UTF-8 ({exc.reason})") from None

    def state(self) -> ServerState:
        (index,) = self.take(1, "state")
        if index >= len(_STATES):
            raise self.fail(f"unknown server state {index}")
        return _STATES[index]

    def txn(self) -> Txn:
        return Txn(
            zxid=self.i64("txn.zxid"), key=self.text("txn.key"), value=self.text("txn.value")
        )

    def txns(self) -> tuple[Txn, ...]:
        # a txn is at least 8 + 4 + 4 bytes
        return tuple(self.txn() for _ in range(self.count("txns", 16)))

    def end(self) -> None:
        if self.pos != len(self.data):
            raise self.fail(f"{len(self.data) - self.pos} trailing bytes after the payload")


# ---------------------------------------------------------------------- codecs
def _encode_payload(msg: Message, w: _Writer) -> None:
    match msg:
        case Notification():
            w.i64(msg.sender, "sender")
            w.buf.append(_STATES.index(msg.state))
            w.i64(msg.vote.peer_epoch, "vote.peer_epoch")
            w.i64(msg.vote.zxid, "vote.zxid")
            w.i64(msg.vote.leader, "vote.leader")
            w.i64(msg.round, "round")
        case FollowerInfo():
            w.i64(msg.sid, "sid")
            w.i64(msg.accepted_epoch, "accepted_epoch")
            w.i64(msg.last_zxid, "last_zxid")
        case LeaderInfo():
            w.i64(msg.epoch, "epoch")
        case AckEpoch():
            w.i64(msg.current_epoch, "current_epoch")
            w.i64(msg.last_zxid, "last_zxid")
        case Diff():
            w.txns(msg.txns)
        case Trunc():
            w.i64(msg.zxid, "zxid")
            w.txns(msg.txns)
        case Snap():
            w.i64(msg.zxid, "zxid")
            w.count(len(msg.state), "state")
            for key, value in msg.state:
                w.text(key, "state key")
                w.text(value, "state value")
            w.txns(msg.txns)
        case NewLeader() | AckNewLeader():
            w.i64(msg.epoch, "epoch")
            w.i64(msg.zxid, "zxid")
        case UpToDate() | Ack() | Commit() | Ping():
            w.i64(msg.zxid, "zxid")
        case Proposal() | Inform():
            w.txn(msg.txn)
        case _:
            assert_never(msg)


def _decode_snap(r: _Reader) -> Snap:
    zxid = r.i64("zxid")
    pairs = tuple((r.text("state key"), r.text("state value")) for _ in range(r.count("state", 8)))
    return Snap(zxid=zxid, state=pairs, txns=r.txns())


def _decode_notification(r: _Reader) -> Notification:
    sender = r.i64("sender")
    state = r.state()
    vote = Vote(
        peer_epoch=r.i64("vote.peer_epoch"), zxid=r.i64("vote.zxid"), leader=r.i64("vote.leader")
    )
    return Notification(sender=sender, state=state, vote=vote, round=r.i64("round"))


_DECODERS: dict[int, Callable[[_Reader], Message]] = {
    1: _decode_notification,
    10: lambda r: FollowerInfo(
        sid=r.i64("sid"), accepted_epoch=r.i64("accepted_epoch"), last_zxid=r.i64("last_zxid")
    ),
    11: lambda r: LeaderInfo(epoch=r.i64("epoch")),
    12: lambda r: AckEpoch(current_epoch=r.i64("current_epoch"), last_zxid=r.i64("last_zxid")),
    13: lambda r: Diff(txns=r.txns()),
    14: lambda r: Trunc(zxid=r.i64("zxid"), txns=r.txns()),
    15: _decode_snap,
    16: lambda r: NewLeader(epoch=r.i64("epoch"), zxid=r.i64("zxid")),
    17: lambda r: AckNewLeader(epoch=r.i64("epoch"), zxid=r.i64("zxid")),
    18: lambda r: UpToDate(zxid=r.i64("zxid")),
    19: lambda r: Proposal(txn=r.txn()),
    20: lambda r: Ack(zxid=r.i64("zxid")),
    21: lambda r: Commit(zxid=r.i64("zxid")),
    22: lambda r: Inform(txn=r.txn()),
    23: lambda r: Ping(zxid=r.i64("zxid")),
}
assert set(_DECODERS) == set(MESSAGE_TYPES.values())


# ---------------------------------------------------------------------- frames
def encode(msg: Message, *, max_frame: int = MAX_FRAME) -> bytes:
    """One complete frame (length prefix included) for `msg`."""
    type_code = MESSAGE_TYPES.get(type(msg))
    if type_code is None:
        raise EncodeError(f"no wire type for {type(msg).__name__}")
    w = _Writer()
    w.buf += _HEADER.pack(WIRE_VERSION, type_code)
    _encode_payload(msg, w)
    if len(w.buf) > max_frame:
        raise EncodeError(
            f"{type(msg).__name__} needs a {len(w.buf)}-byte frame, over the limit {max_frame}"
        )
    return _LENGTH.pack(len(w.buf)) + bytes(w.buf)


def decode_body(body: bytes | memoryview) -> Message:
    """Decode a frame body (version + type + payload, without the length prefix)."""
    if len(body) < _HEADER.size:
        raise FrameError(f"frame of {len(body)} bytes is shorter than its header")
    version, type_code = _HEADER.unpack(body[: _HEADER.size])
    if version != WIRE_VERSION:
        raise FrameError(f"unsupported wire version {version} (speak {WIRE_VERSION})")
    decoder = _DECODERS.get(type_code)
    if decoder is None:
        raise FrameError(f"unknown message type {type_code}", type_code=type_code)
    reader = _Reader(memoryview(body)[_HEADER.size :], type_code)
    msg = decoder(reader)
    reader.end()
    return msg


def decode(frame: bytes, *, max_frame: int = MAX_FRAME) -> Message:
    """Decode exactly one complete frame (length prefix included)."""
    decoder = FrameDecoder(max_frame=max_frame)
    messages = decoder.feed(frame)
    if decoder.buffered:
        raise FrameError(f"{decoder.buffered} bytes of an incomplete frame")
    if len(messages) != 1:
        raise FrameError(f"expected one frame, found {len(messages)}")
    return messages[0]


@dataclass(slots=True)
class FrameDecoder:
    """Incremental decoder for one stream: `feed` bytes as they arrive, get back the
    complete messages. After a `FrameError` the stream position is lost, so every
    later `feed` raises too: close the connection (messages decoded earlier in the
    same `feed` call are dropped with it; the connection is going away anyway)."""

    max_frame: int = MAX_FRAME
    _buffer: bytearray | None = None
    _failed: FrameError | None = None

    def __post_init__(self) -> None:
        if self.max_frame < _HEADER.size:
            raise ValueError(f"max_frame must be >= {_HEADER.size}, got {self.max_frame}")
        self._buffer = bytearray()

    @property
    def buffered(self) -> int:
        """Bytes held of a frame not yet complete."""
        assert self._buffer is not None
        return len(self._buffer)

    def feed(self, data: bytes) -> list[Message]:
        if self._failed is not None:
            raise FrameError(f"stream already failed: {self._failed.why}")
        buffer = self._buffer
        assert buffer is not None
        buffer += data
        messages: list[Message] = []
        start = 0  # consume by offset and compact once: no quadratic deletes
        try:
            while len(buffer) - start >= _LENGTH.size:
                (length,) = _LENGTH.unpack_from(buffer, start)
                # Check the declared length before waiting for the body, so an
                # over-size prefix is refused at once, not after buffering it.
                if length > self.max_frame:
                    raise FrameError(f"frame of {length} bytes exceeds the limit {self.max_frame}")
                end = start + _LENGTH.size + length
                if len(buffer) < end:
                    break
                messages.append(decode_body(bytes(buffer[start + _LENGTH.size : end])))
                start = end
        except FrameError as exc:
            self._failed = exc
            raise
        finally:
            del buffer[:start]
        return messages

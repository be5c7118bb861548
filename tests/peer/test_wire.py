"""Wire codecs: every message round-trips (hypothesis), garbage is refused with a
FrameError naming what was wrong, and the incremental decoder splits streams."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from peer.domain import ServerState, Txn, Vote
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
)
from peer.wire import (
    MESSAGE_TYPES,
    WIRE_VERSION,
    EncodeError,
    FrameDecoder,
    FrameError,
    Message,
    decode,
    encode,
)

i64 = st.integers(min_value=-(2**63), max_value=2**63 - 1)
text = st.text(max_size=20)
txns = st.builds(Txn, zxid=i64, key=text, value=text)
txn_tuples = st.lists(txns, max_size=5).map(tuple)
votes = st.builds(Vote, peer_epoch=i64, zxid=i64, leader=i64)

messages: st.SearchStrategy[Message] = st.one_of(
    st.builds(Notification, sender=i64, state=st.sampled_from(ServerState), vote=votes, round=i64),
    st.builds(FollowerInfo, sid=i64, accepted_epoch=i64, last_zxid=i64),
    st.builds(LeaderInfo, epoch=i64),
    st.builds(AckEpoch, current_epoch=i64, last_zxid=i64),
    st.builds(Diff, txns=txn_tuples),
    st.builds(Trunc, zxid=i64, txns=txn_tuples),
    st.builds(
        Snap,
        zxid=i64,
        state=st.lists(st.tuples(text, text), max_size=5).map(tuple),
        txns=txn_tuples,
    ),
    st.builds(NewLeader, epoch=i64, zxid=i64),
    st.builds(AckNewLeader, epoch=i64, zxid=i64),
    st.builds(UpToDate, zxid=i64),
    st.builds(Proposal, txn=txns),
    st.builds(Ack, zxid=i64),
    st.builds(Commit, zxid=i64),
    st.builds(Inform, txn=txns),
    st.builds(Ping, zxid=i64),
)


def test_every_message_type_has_a_code_and_a_strategy() -> None:
    assert len(set(MESSAGE_TYPES.values())) == len(MESSAGE_TYPES) == 15


@given(messages)
def test_round_trip(msg: Message) -> None:
    assert decode(encode(msg)) == msg


@given(st.lists(messages, min_size=1, max_size=6), st.data())
def test_stream_split_anywhere(batch: list[Message], data: st.DataObject) -> None:
    stream = b"".join(encode(m) for m in batch)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=8)))
    decoder = FrameDecoder()
    out: list[Message] = []
    start = 0
    for cut in [*cuts, len(stream)]:
        out += decoder.feed(stream[start:cut])
        start = cut
    assert out == batch
    assert decoder.buffered == 0


@given(messages, st.data())
def test_truncated_frame_is_incomplete_not_a_message(msg: Message, data: st.DataObject) -> None:
    frame = encode(msg)
    cut = data.draw(st.integers(0, len(frame) - 1))
    decoder = FrameDecoder()
    assert decoder.feed(frame[:cut]) == []
    assert decoder.buffered == cut
    with pytest.raises(FrameError, match=r"incomplete frame|expected one frame"):
        decode(frame[:cut])


@given(st.binary(max_size=64))
def test_garbage_never_crashes(blob: bytes) -> None:
    try:
        FrameDecoder(max_frame=1024).feed(blob)
    except FrameError as exc:
        assert exc.why


def frame(body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + body


def test_unknown_type_is_named() -> None:
    with pytest.raises(FrameError, match="unknown message type 99") as info:
        decode(frame(bytes([WIRE_VERSION, 99])))
    assert info.value.type_code == 99


def test_wrong_version_is_named() -> None:
    body = encode(Ping(zxid=1))[4:]
    with pytest.raises(FrameError, match="unsupported wire version 7"):
        decode(frame(bytes([7]) + body[1:]))


def test_truncated_payload_is_named() -> None:
    body = encode(Ack(zxid=5))[4:]
    with pytest.raises(FrameError, match="payload truncated reading zxid") as info:
        decode(frame(body[:-3]))
    assert "message type 20" in str(info.value)


def test_trailing_bytes_are_refused() -> None:
    body = encode(Ack(zxid=5))[4:]
    with pytest.raises(FrameError, match="2 trailing bytes"):
        decode(frame(body + b"xx"))


def test_bad_utf8_and_bad_state_are_refused() -> None:
    body = encode(Proposal(txn=Txn(zxid=1, key="ab", value="")))[4:]
    broken = body.replace(b"ab", b"\xff\xfe")
    with pytest.raises(FrameError, match=r"txn\.key is not UTF-8"):
        decode(frame(broken))
    vote = Vote(peer_epoch=0, zxid=0, leader=1)
    body = encode(Notification(sender=1, state=ServerState.LEADING, vote=vote, round=1))[4:]
    with pytest.raises(FrameError, match="unknown server state 9"):
        decode(frame(body[:10] + bytes([9]) + body[11:]))


def test_huge_count_is_refused_before_allocating() -> None:
    body = bytes([WIRE_VERSION, MESSAGE_TYPES[Diff]]) + struct.pack(">I", 2**32 - 1)
    with pytest.raises(FrameError, match="txns count 4294967295 exceeds the payload"):
        decode(frame(body))


def test_oversize_frame_refused_from_its_prefix_alone() -> None:
    decoder = FrameDecoder(max_frame=100)
    with pytest.raises(FrameError, match="frame of 101 bytes exceeds the limit 100"):
        decoder.feed(struct.pack(">I", 101))
    # the stream is poisoned: the next feed fails too, naming the first failure
    with pytest.raises(FrameError, match="stream already failed"):
        decoder.feed(encode(Ping(zxid=1)))


def test_oversize_message_is_a_local_error() -> None:
    big = Diff(txns=tuple(Txn(zxid=i, key="k", value="v" * 50) for i in range(10)))
    with pytest.raises(EncodeError, match="over the limit 100"):
        encode(big, max_frame=100)


def test_out_of_range_int_is_a_local_error() -> None:
    with pytest.raises(EncodeError, match="zxid=18446744073709551616 does not fit"):
        encode(Ack(zxid=2**64))


def test_empty_frame_is_refused() -> None:
    with pytest.raises(FrameError, match="shorter than its header"):
        decode(frame(b""))

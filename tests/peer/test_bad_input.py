"""Bad input to a real peer process: a bad command line or config is refused with exit
code 2 and one line on stderr; garbage on the election and quorum ports is logged as
`bad_frame` and costs only that connection (the peer stays alive and still elects);
a vote from a non-member is logged as `vote_ignored`."""

from __future__ import annotations

import json
import socket
import struct
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

import peer.wire as wire
from harness.events import read_log
from peer.domain import ServerState, Vote
from peer.messages import FollowerInfo, Notification
from tests.peer.test_integration_support import (
    HOST,
    DirectPeers,
    direct_config,
    peer_argv,
    peer_env,
    wait_until,
)

pytestmark = pytest.mark.integration

EXIT_BAD_INPUT = 2


def run_peer(tmp_path: Path, config_text: str, *extra: str, sid: int = 1) -> tuple[int, str]:
    config = tmp_path / "cluster.json"
    config.write_text(config_text, encoding="utf-8")
    argv = peer_argv(sid, config, tmp_path / "data", tmp_path / "events.jsonl") + list(extra)
    done = subprocess.run(argv, env=peer_env(), capture_output=True, timeout=30, check=False)
    return done.returncode, done.stderr.decode("utf-8", errors="replace")


def good_config_text() -> str:
    return json.dumps(direct_config((1, 2, 3)).to_json())


def with_edit(edit: Callable[[dict[str, object]], None]) -> str:
    raw = json.loads(good_config_text())
    edit(raw)
    return json.dumps(raw)


def _drop_member_3(raw: dict[str, object]) -> None:
    members = raw["members"]
    assert isinstance(members, list)
    raw["members"] = [m for m in members if m["sid"] != 3]  # 1 and 2 still dial 3


def _dial_unknown(raw: dict[str, object]) -> None:
    members = raw["members"]
    assert isinstance(members, list)
    members[0]["dial"]["9"] = {"election": f"{HOST}:1", "quorum": f"{HOST}:2"}


@pytest.mark.parametrize(
    ("config_text", "extra", "expected"),
    [
        pytest.param("{not json", (), "not JSON", id="not-json"),
        pytest.param("[]", (), "expected a JSON object", id="not-an-object"),
        pytest.param(with_edit(_drop_member_3), (), "3", id="dial-names-missing-member"),
        pytest.param(with_edit(_dial_unknown), (), "9", id="dial-names-unknown-sid"),
        pytest.param(good_config_text(), ("--bug", "no-such-bug"), "unknown --bug", id="bug"),
    ],
)
def test_bad_config_or_flags_exit_2_with_one_line(
    tmp_path: Path, config_text: str, extra: tuple[str, ...], expected: str
) -> None:
    code, stderr = run_peer(tmp_path, config_text, *extra)
    assert code == EXIT_BAD_INPUT, stderr
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, f"expected one line, got: {stderr!r}"
    assert expected in lines[0] and lines[0].startswith("peer 1: ")
    assert not (tmp_path / "events.jsonl").exists(), "nothing may start on bad input"


def test_sid_that_is_not_a_member_exits_2(tmp_path: Path) -> None:
    code, stderr = run_peer(tmp_path, good_config_text(), sid=7)
    assert code == EXIT_BAD_INPUT
    (line,) = stderr.strip().splitlines()
    assert "sid 7 is not a member" in line


def test_missing_config_file_exits_2(tmp_path: Path) -> None:
    argv = peer_argv(1, tmp_path / "absent.json", tmp_path / "data", tmp_path / "e.jsonl")
    done = subprocess.run(argv, env=peer_env(), capture_output=True, timeout=30, check=False)
    assert done.returncode == EXIT_BAD_INPUT
    (line,) = done.stderr.decode().strip().splitlines()
    assert "absent.json" in line and "cannot read" in line


def send_raw(port: int, data: bytes) -> None:
    """Send bytes on a fresh connection and wait until the peer closes it (it must),
    so the event is logged before we look."""
    with socket.create_connection((HOST, port), timeout=5.0) as sock:
        sock.sendall(data)
        sock.settimeout(5.0)
        try:
            while sock.recv(4096):
                pass
        except ConnectionResetError:
            pass


def frame(type_code: int, payload: bytes = b"", version: int = wire.WIRE_VERSION) -> bytes:
    body = bytes([version, type_code]) + payload
    return struct.pack(">I", len(body)) + body


def test_garbage_on_election_and_quorum_ports_is_logged_and_survived(tmp_path: Path) -> None:
    with DirectPeers(tmp_path, (1, 2, 3)) as peers:
        peers.start(1)  # alone, no quorum: peer 1 stays LOOKING
        target = peers.config.members[1]

        def listening() -> bool:
            return bool(peers.events(1, "listening"))

        wait_until("peer 1 to listen", listening, 20.0)
        vote = Vote(peer_epoch=0, zxid=0, leader=1)
        notification = wire.encode(
            Notification(sender=2, state=ServerState.LOOKING, vote=vote, round=1)
        )
        follower_info = wire.encode(FollowerInfo(sid=2, accepted_epoch=0, last_zxid=0))
        attacks: list[tuple[int, bytes, str]] = [
            (target.election_port, b"\x00\x00\x00\x05\x09garbage!", "wire version 9"),
            (target.election_port, struct.pack(">I", wire.MAX_FRAME + 1), "exceeds the limit"),
            (target.election_port, frame(99), "unknown message type 99"),
            (target.election_port, follower_info, "FollowerInfo on the election port"),
            (target.quorum_port, b"\xde\xad\xbe\xef" * 4, "exceeds the limit"),
            (target.quorum_port, frame(77), "unknown message type 77"),
            (target.quorum_port, frame(1, b"\x00"), "Notification"),  # truncated payload
            (target.quorum_port, notification, "first quorum frame is Notification"),
        ]
        for port, data, _ in attacks:
            send_raw(port, data)

        def all_logged() -> list[str] | None:
            whys = [str(e["why"]) for e in peers.events(1, "bad_frame")]
            return whys if len(whys) >= len(attacks) else None

        whys = wait_until("a bad_frame event per attack", all_logged, 10.0)
        for _, _, expected in attacks:
            assert any(expected in why for why in whys), f"{expected!r} not in {whys}"
        assert peers.running() == (1,)
        status = peers.status(1)
        assert status is not None and status["state"] == ServerState.LOOKING

        # Still electing: with 2 and 3 up, a leader is elected and peer 1 follows it
        # (3, or 2 when 2 and 1 finish before 3 has booted).
        peers.start(2, 3)
        assert peers.wait_for_leader(20.0) in (2, 3)
        status = peers.status(1)
        assert status is not None and status["state"] == ServerState.FOLLOWING
        for sid in peers.sids:
            assert not read_log(peers.log_path(sid)).errors


def test_vote_from_a_non_member_is_ignored(tmp_path: Path) -> None:
    with DirectPeers(tmp_path, (1, 2, 3)) as peers:
        peers.start(1)
        wait_until("peer 1 to listen", lambda: bool(peers.events(1, "listening")), 20.0)
        stranger = Notification(
            sender=42,
            state=ServerState.LOOKING,
            vote=Vote(peer_epoch=9, zxid=1 << 40, leader=42),
            round=5,
        )
        with socket.create_connection(
            (HOST, peers.config.members[1].election_port), timeout=5.0
        ) as sock:
            sock.sendall(wire.encode(stranger))

            def ignored() -> bool:
                return any(e["from"] == 42 for e in peers.events(1, "vote_ignored"))

            wait_until("peer 1 to log vote_ignored from sid 42", ignored, 10.0)
        why = next(e["why"] for e in peers.events(1, "vote_ignored") if e["from"] == 42)
        assert "not a member" in why
        status = peers.status(1)
        # The stranger's better-looking vote was not adopted.
        assert status is not None and status["state"] == ServerState.LOOKING
        assert status["round"] == 1
        decided = peers.events(1, "decided")
        assert decided == []

"""The peer on real processes (127.0.0.1, direct links, no proxy): election of exactly
one leader, re-election after SIGKILL, durability of majority-acknowledged writes
across minority crashes, follower recovery from snapshot + log, and SPEC section 0's
five-servers-started-in-order scenario. Every test checks that the peers' event logs
validate against `harness.events`."""

from __future__ import annotations

from collections import Counter
from dataclasses import replace
from pathlib import Path

import pytest

from harness.events import Event
from peer.domain import FAST, ServerState
from tests.peer.test_integration_support import DirectPeers, WaitFailed, wait_until

pytestmark = pytest.mark.integration

LEADER_TIMEOUT_S = 20.0  # generous: two busy shared cores, several python start-ups


def all_events(peers: DirectPeers, kind: str | None = None) -> list[Event]:
    """Every event of every peer (validated: an invalid line fails the test)."""
    return [e for sid in peers.sids for e in peers.events(sid, kind)]


def assert_one_established_per_epoch(peers: DirectPeers) -> dict[int, int]:
    """epoch -> the sid that established it; fails if two peers established one epoch."""
    by_epoch: dict[int, list[int]] = {}
    for event in all_events(peers, "established"):
        by_epoch.setdefault(int(event["epoch"]), []).append(int(event.sid or 0))
    twice = {epoch: sids for epoch, sids in by_epoch.items() if len(sids) > 1}
    assert not twice, f"epochs established more than once: {twice}"
    return {epoch: sids[0] for epoch, sids in by_epoch.items()}


def assert_statuses_agree(peers: DirectPeers, leader: int, sids: tuple[int, ...]) -> None:
    states = Counter[str]()
    for sid in sids:
        st = peers.status(sid)
        assert st is not None, f"peer {sid} does not answer status"
        assert st.get("leader") == leader, f"peer {sid} names leader {st.get('leader')}"
        states[st["state"]] += 1
    assert states[ServerState.LEADING] == 1
    assert states[ServerState.FOLLOWING] == len(sids) - 1


def read_everywhere(
    peers: DirectPeers, sids: tuple[int, ...], expected: dict[str, str], timeout: float = 10.0
) -> None:
    """Every peer in `sids` returns every expected value (followers may lag a commit)."""
    for sid in sids:

        def has_all(sid: int = sid) -> bool:
            with peers.client(sid) as client:
                return all(client.read(k)[0] == v for k, v in expected.items())

        try:
            wait_until(f"peer {sid} to hold all {len(expected)} writes", has_all, timeout)
        except WaitFailed:
            with peers.client(sid) as client:
                seen = {k: client.read(k)[0] for k in expected}
            missing = {k: (v, seen[k]) for k, v in expected.items() if seen[k] != v}
            raise AssertionError(f"peer {sid} lacks (expected, seen): {missing}") from None


@pytest.mark.parametrize("size", [3, 5])
def test_peers_elect_exactly_one_leader(tmp_path: Path, size: int) -> None:
    with DirectPeers(tmp_path, range(1, size + 1)) as peers:
        peers.start()
        leader = peers.wait_for_leader(LEADER_TIMEOUT_S)
        assert_statuses_agree(peers, leader, peers.sids)
        established = assert_one_established_per_epoch(peers)
        leader_epoch = peers.status(leader)
        assert leader_epoch is not None
        assert established[leader_epoch["current_epoch"]] == leader
        # Every peer decided the same leader in its last decision of the boot.
        for sid in peers.sids:
            decided = peers.events(sid, "decided")
            assert decided, f"peer {sid} logged no decision"
            assert decided[-1]["leader"] == leader


def test_sigkill_of_the_leader_elects_a_new_established_leader(tmp_path: Path) -> None:
    with DirectPeers(tmp_path, (1, 2, 3)) as peers:
        peers.start()
        first = peers.wait_for_leader(LEADER_TIMEOUT_S)
        first_epoch = max(assert_one_established_per_epoch(peers))
        peers.kill(first)
        survivors = tuple(s for s in peers.sids if s != first)
        second = peers.wait_for_leader(LEADER_TIMEOUT_S, among=survivors)
        assert second != first
        assert_statuses_agree(peers, second, survivors)
        epochs = assert_one_established_per_epoch(peers)
        newest = max(epochs)
        assert newest > first_epoch and epochs[newest] == second
        # The killed leader rejoins as a follower of the new one, without a new epoch.
        peers.start(first)
        assert peers.wait_for_leader(LEADER_TIMEOUT_S) == second
        assert max(assert_one_established_per_epoch(peers)) == newest


@pytest.mark.parametrize("minority", ["leader+follower", "two-followers"])
def test_majority_acknowledged_writes_survive_a_minority_crash(
    tmp_path: Path, minority: str
) -> None:
    with DirectPeers(tmp_path, range(1, 6)) as peers:
        peers.start()
        leader = peers.wait_for_leader(LEADER_TIMEOUT_S)
        written: dict[str, str] = {}
        for i in range(5):
            peers.write(f"before-{i}", f"v{i}")
            written[f"before-{i}"] = f"v{i}"
        followers = [s for s in peers.sids if s != leader]
        crashed = (leader, followers[0]) if minority == "leader+follower" else tuple(followers[:2])
        for sid in crashed:
            peers.kill(sid)
        live = tuple(s for s in peers.sids if s not in crashed)
        new_leader = peers.wait_for_leader(LEADER_TIMEOUT_S, among=live)
        assert new_leader in live
        for i in range(3):
            peers.write(f"during-{i}", f"w{i}")
            written[f"during-{i}"] = f"w{i}"
        read_everywhere(peers, live, written)
        # Heal: the crashed peers restart on their data dirs and catch up.
        peers.start(*crashed)
        assert peers.wait_for_leader(LEADER_TIMEOUT_S) == new_leader
        peers.write("after", "x")
        written["after"] = "x"
        read_everywhere(peers, peers.sids, written)
        assert_one_established_per_epoch(peers)


def test_restarted_follower_recovers_from_snapshot_and_log_then_catches_up(
    tmp_path: Path,
) -> None:
    timing = replace(FAST, snap_count=4)
    with DirectPeers(tmp_path, (1, 2, 3), timing=timing) as peers:
        peers.start()
        leader = peers.wait_for_leader(LEADER_TIMEOUT_S)
        follower = min(s for s in peers.sids if s != leader)
        written = {f"k{i}": f"v{i}" for i in range(10)}
        for key, value in written.items():
            peers.write(key, value)
        read_everywhere(peers, (follower,), written)
        snapshots = [e for e in peers.events(follower, "snapshot") if not e.get("installed")]
        assert snapshots, "the follower wrote no snapshot with snap_count=4"
        last_logged = max(int(e["zxid"]) for e in peers.events(follower, "logged"))
        peers.kill(follower)

        # While it is down, the others commit more: the follower must catch up.
        for i in range(10, 14):
            key, value = f"k{i}", f"v{i}"
            peers.write(key, value)
            written[key] = value
        peers.start(follower)
        assert peers.wait_for_leader(LEADER_TIMEOUT_S) == leader

        boots = sorted({int(e.boot or 0) for e in peers.events(follower, "boot")})
        assert len(boots) == 2
        recovered = [e for e in peers.events(follower, "recovered") if e.boot == boots[-1]]
        assert len(recovered) == 1
        rec = recovered[0]
        # Recovery = newest snapshot + the log after it, up to the last fsynced txn.
        assert rec["snapshot_zxid"] > 0
        assert rec["snapshot_zxid"] <= last_logged
        assert rec["last_zxid"] == last_logged
        newest_snapshot = max(int(e["zxid"]) for e in snapshots)
        assert rec["snapshot_zxid"] == newest_snapshot
        logged_after = {
            int(e["zxid"])
            for e in peers.events(follower, "logged")
            if e.boot == boots[0] and e["zxid"] > newest_snapshot
        }
        assert rec["replayed"] == len(logged_after)
        read_everywhere(peers, (follower,), written)
        status = peers.status(follower)
        assert status is not None and status["state"] == ServerState.FOLLOWING


def test_five_servers_started_in_order_elect_server_3(tmp_path: Path) -> None:
    """SPEC section 0: start 1 and 2 (no quorum), then 3: 3 leads; 4 and 5 join and
    follow 3, although their sids are higher."""
    with DirectPeers(tmp_path, range(1, 6)) as peers:
        peers.start(1, 2)

        def exchanged() -> bool:
            # Both LOOKING and each has heard the other's vote for 2.
            heard = [
                any(e["from"] == other and e["leader"] == 2 for e in peers.events(sid, "vote_recv"))
                for sid, other in ((1, 2), (2, 1))
            ]
            return all(heard)

        wait_until("peers 1 and 2 to exchange votes", exchanged, LEADER_TIMEOUT_S)
        for sid in (1, 2):
            st = peers.status(sid)
            assert st is not None and st["state"] == ServerState.LOOKING
        peers.start(3)
        assert peers.wait_for_leader(LEADER_TIMEOUT_S, among=(1, 2, 3)) == 3
        peers.start(4, 5)
        assert peers.wait_for_leader(LEADER_TIMEOUT_S) == 3
        for sid in (4, 5):
            st = peers.status(sid)
            assert st is not None
            assert st["state"] == ServerState.FOLLOWING and st["leader"] == 3
        epochs = assert_one_established_per_epoch(peers)
        assert list(epochs.values()) == [3], f"one epoch, established by 3: {epochs}"

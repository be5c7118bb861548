"""The nemesis's pure helpers: which proxy streams carry a directed link, which toxics a
fault state needs, how the view follows the processes, where a peer last fsynced."""

from __future__ import annotations

import json
from pathlib import Path

from faults.nemesis import Shaping, desired_toxics, last_synced, link_streams, observe
from faults.plan import ClusterView, PeerStatus
from faults.topology import NetState


def names(i: int, j: int) -> tuple[str, str]:
    return f"e{i}-{j}", f"q{i}-{j}"


def test_a_link_is_its_vote_proxy_and_both_quorum_directions() -> None:
    assert link_streams((1, 2), names) == (
        ("e1-2", "upstream"),
        ("e1-2", "downstream"),
        ("q1-2", "upstream"),
        ("q2-1", "downstream"),
    )


def test_one_way_cut_touches_only_the_streams_of_that_direction() -> None:
    net = NetState().cut_one_way([(1, 2)])
    wanted = desired_toxics(net, Shaping(), names)
    assert sorted(wanted) == [
        ("e1-2", "cut-downstream"),
        ("e1-2", "cut-upstream"),
        ("q1-2", "cut-upstream"),
        ("q2-1", "cut-downstream"),
    ]
    assert all(s.type == "timeout" and s.attributes == (("timeout", 0),) for s in wanted.values())
    # the reverse direction is a different set of (proxy, stream): no key collides
    both = desired_toxics(net.cut_one_way([(2, 1)]), Shaping(), names)
    assert len(both) == 8


def test_delays_and_shaping_become_named_toxics_and_heal_needs_none() -> None:
    net = NetState().delay([(1, 3)], latency_ms=200, jitter_ms=20)
    shaping = Shaping(bandwidth={(3, 1): 8}, slicer={(2, 1): (16, 4, 100)})
    wanted = desired_toxics(net, shaping, names)
    latency = wanted[("q1-3", "latency-upstream")]
    assert latency.type == "latency" and dict(latency.attributes) == {"latency": 200, "jitter": 20}
    assert dict(wanted[("e3-1", "bandwidth-upstream")].attributes) == {"rate": 8}
    assert dict(wanted[("q1-2", "slicer-downstream")].attributes) == {
        "average_size": 16,
        "size_variation": 4,
        "delay": 100,
    }
    assert len(wanted) == 12
    assert desired_toxics(net.heal(), Shaping(), names) == {}


def test_observe_follows_the_processes() -> None:
    view = ClusterView(
        status={
            1: PeerStatus.RUNNING,
            2: PeerStatus.PAUSED,
            3: PeerStatus.RUNNING,
            4: PeerStatus.NEW,
            5: PeerStatus.STOPPED,
        },
        leader=3,
    )
    seen = observe(view, running=[1, 2, 5], paused=[1])
    assert seen.status == {
        1: PeerStatus.PAUSED,
        2: PeerStatus.RUNNING,
        3: PeerStatus.CRASHED,  # exited on its own
        4: PeerStatus.NEW,
        5: PeerStatus.RUNNING,  # someone else started it
    }
    assert seen.leader is None  # a dead leader leads nothing


def test_last_synced_is_the_newest_logged_event_of_the_last_boot_that_logged(
    tmp_path: Path,
) -> None:
    path = tmp_path / "peer-1.jsonl"
    records = [
        {"t": 1, "kind": "logged", "sid": 1, "boot": 1, "zxid": 1, "file": "log.1", "offset": 40},
        {"t": 2, "kind": "logged", "sid": 1, "boot": 1, "zxid": 2, "file": "log.1", "offset": 80},
        {"t": 3, "kind": "logged", "sid": 1, "boot": 2, "zxid": 3, "file": "log.3", "offset": 40},
        {"t": 4, "kind": "boot", "sid": 1, "boot": 3, "last_zxid": 3, "current_epoch": 1,
         "accepted_epoch": 1, "snapshot_zxid": 0, "bug": None, "role": "voter"},
    ]  # fmt: skip
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    assert last_synced(path) == ("log.3", 40)
    path.write_text("")
    assert last_synced(path) is None

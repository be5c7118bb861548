"""The checker fixes the simulator's bug hunt needed, on hand-written run dirs (built with
the `Run` helper of test_checker): a peer that refuses to restart on its own data dir is
a recovery violation unless a disk fault explains it, and a SNAP sync counts as holding
everything up to the installed snapshot."""

from __future__ import annotations

from pathlib import Path

from harness.checker import Outcome, Property
from peer.domain import make_zxid
from tests.harness.test_checker import Z2, Z3, Run, base, judge, only, wheres

REFUSAL = "peer 2 refused to start: <data>/peer-2: acceptedEpoch 0 < currentEpoch 1"


def _crash_and_refuse(run: Run, *, disk_fault: str | None = None) -> tuple[str, str, str]:
    """Peer 2 is killed, then restarted by the nemesis and exits with code 2 unbooted."""
    run.hv(390, "exit", pid=102, sid=2, code=-9)
    if disk_fault is not None:
        run.hv(395, "fault", step=1, what=disk_fault, targets=[2], cut=[], down=[2], paused=[])
    spawn = run.hv(400, "spawn", pid=202, sid=2, boot=2)
    exit_ = run.hv(400, "exit", pid=202, sid=2, code=2)
    run.hv(400, "fault", step=2, what="restart", targets=[2], detail=REFUSAL, down=[2])
    return spawn, exit_, f"harness.jsonl:{len(run.harness)}"


def test_refused_restart_is_a_recovery_violation_naming_the_reason(tmp_path: Path) -> None:
    run = base()
    spawn, exit_, fault = _crash_and_refuse(run)
    v = only(judge(run, tmp_path), Property.RECOVERY)
    assert v.peers == (2,)
    assert "refused to start after a restart" in v.message
    assert "acceptedEpoch 0 < currentEpoch 1" in v.message
    # the boot it last ran, then the spawn, the exit and the nemesis step, in time order
    assert wheres(v)[0] == "peer-2.jsonl:1"
    assert {spawn, exit_, fault} <= set(wheres(v))


def test_refused_restart_after_a_disk_fault_is_only_noted(tmp_path: Path) -> None:
    run = base()
    _crash_and_refuse(run, disk_fault="corrupt-snapshot")
    verdict = judge(run, tmp_path)
    assert Property.RECOVERY not in verdict.properties_violated()
    assert any("refused to start" in n and "corrupt-snapshot" in n for n in verdict.notes)


def test_exit_code_2_of_a_peer_that_booted_or_never_ran_is_not_a_refused_restart(
    tmp_path: Path,
) -> None:
    run = base()
    # peer 1 booted in this life and exits with 2 later: not a refusal to start
    run.hv(500, "exit", pid=101, sid=1, code=2)
    # a fourth process that never booted before (not a restart): nothing to recover
    run.hv(600, "spawn", pid=104, sid=4, boot=1)
    run.hv(600, "exit", pid=104, sid=4, code=2)
    verdict = judge(run, tmp_path)
    assert Property.RECOVERY not in verdict.properties_violated(), verdict.to_json()


def test_snap_sync_counts_as_holding_the_snapshot(tmp_path: Path) -> None:
    run = base()
    # Peer 1 restarts having lost nothing but is behind; the leader sends a SNAP at Z3.
    run.hv(390, "exit", pid=101, sid=1, code=0)
    run.hv(395, "spawn", pid=201, sid=1, boot=2)
    run.boot(1, 400, last_zxid=Z3, epoch=1)
    z4 = make_zxid(1, 4)
    run.write(420, 3, (2,), z4)
    run.peer(1, 450, "sync", mode="SNAP", peer=3, **{"from": Z3, "to": z4})
    run.peer(1, 450, "snapshot", zxid=z4, installed=True)
    # Then peer 1 is elected leader of epoch 2 with peer 2: it holds z4 by the snapshot.
    run.peer(3, 500, "step_down", reason="lost quorum")
    run.elect(510, 1, 2, (2,))
    verdict = judge(run, tmp_path)
    assert verdict.outcome is Outcome.VALID, verdict.to_json()


def test_snap_sync_is_still_judged_against_later_commits(tmp_path: Path) -> None:
    run = base()
    # The snapshot peer 1 installs stops at Z2, but Z3 was committed: electing it loses Z3.
    run.peer(1, 450, "snapshot", zxid=Z2, installed=True)
    run.peer(3, 500, "step_down", reason="lost quorum")
    run.elect(510, 1, 2, (2,))
    v = only(judge(run, tmp_path), Property.DURABILITY)
    assert v.peers == (1,) and v.zxid == Z3

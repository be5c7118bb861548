"""Checker tests on hand-written run dirs: one passing and one violating log per property,
plus the log-quality cases (torn tail, garbage, missing log, empty dir).

Each test builds real JSONL files in tmp_path with the `Run` helper below and checks them
through `harness.runlog`, the way `quorum-chaos check RUN_DIR` does.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from harness.checker import Outcome, Property, Verdict, Violation
from harness.runlog import check_run_dir, load_run, write_verdict
from peer.domain import make_zxid

MS = 1_000_000


class Run:
    """Builds a run dir: events per file, in the order given (times in ms)."""

    def __init__(
        self, voters: tuple[int, ...] = (1, 2, 3), observers: tuple[int, ...] = ()
    ) -> None:
        self.voters = voters
        self.observers = observers
        self.peers: dict[int, list[dict[str, Any]]] = {s: [] for s in (*voters, *observers)}
        self.boots: dict[int, int] = {s: -1 for s in self.peers}
        self.harness: list[dict[str, Any]] = []
        self.history: list[dict[str, Any]] = []

    def peer(self, sid: int, t_ms: float, kind: str, **fields: Any) -> str:
        if kind == "boot":
            self.boots[sid] += 1
        record = {"t": int(t_ms * MS), "kind": kind, "sid": sid, "boot": self.boots[sid], **fields}
        self.peers[sid].append(record)
        return f"peer-{sid}.jsonl:{len(self.peers[sid])}"

    def hv(self, t_ms: float, kind: str, **fields: Any) -> str:
        self.harness.append({"t": int(t_ms * MS), "kind": kind, **fields})
        return f"harness.jsonl:{len(self.harness)}"

    def client(self, t_ms: float, kind: str, **fields: Any) -> str:
        self.history.append({"t": int(t_ms * MS), "kind": kind, **fields})
        return f"history.jsonl:{len(self.history)}"

    def boot(self, sid: int, t_ms: float, last_zxid: int = 0, epoch: int = 0, acc: int = -1) -> str:
        return self.peer(
            sid,
            t_ms,
            "boot",
            last_zxid=last_zxid,
            current_epoch=epoch,
            accepted_epoch=epoch if acc < 0 else acc,
            snapshot_zxid=0,
            bug=None,
            role="voter",
        )

    def elect(self, t_ms: float, leader: int, epoch: int, followers: tuple[int, ...]) -> str:
        """FLE decides, discovery + sync: the leader is established in `epoch`."""
        self.peer(
            leader, t_ms, "decided", leader=leader, round=1, peer_epoch=epoch - 1, state="LEADING"
        )
        for f in followers:
            self.peer(
                f, t_ms, "decided", leader=leader, round=1, peer_epoch=epoch - 1, state="FOLLOWING"
            )
        self.peer(leader, t_ms + 1, "epoch_accepted", epoch=epoch)
        for f in followers:
            self.peer(f, t_ms + 2, "epoch_accepted", epoch=epoch)
        where = self.peer(leader, t_ms + 3, "established", epoch=epoch)
        self.peer(leader, t_ms + 3, "epoch_current", epoch=epoch)
        for f in followers:
            self.peer(leader, t_ms + 4, "sync", mode="DIFF", peer=f, **{"from": 0, "to": 0})
            self.peer(f, t_ms + 5, "epoch_current", epoch=epoch)
        return where

    def write(
        self,
        t_ms: float,
        leader: int,
        followers: tuple[int, ...],
        zxid: int,
        key: str = "k",
        value: str | None = None,
        op_id: int | None = None,
    ) -> str:
        """One replicated write: propose, fsync everywhere, commit, deliver, client ok."""
        value = value if value is not None else f"v{zxid}"
        if op_id is not None:
            self.client(t_ms, "invoke", process=0, op="write", id=op_id, key=key, value=value)
        self.peer(leader, t_ms, "propose", zxid=zxid, key=key, value=value)
        for sid in (leader, *followers):
            self.peer(sid, t_ms + 1, "logged", zxid=zxid)
        for f in followers:
            self.peer(leader, t_ms + 2, "ack", zxid=zxid, **{"from": f, "to": leader})
        where = self.peer(leader, t_ms + 3, "commit", zxid=zxid)
        for sid in (leader, *followers):
            self.peer(sid, t_ms + 4, "deliver", zxid=zxid, key=key, value=value)
        if op_id is not None:
            self.client(
                t_ms + 5, "ok", process=0, op="write", id=op_id, key=key, value=value, zxid=zxid
            )
        return where

    def dump(self, run_dir: Path, *, timing: dict[str, int] | None = None) -> Path:
        run_dir.mkdir(parents=True, exist_ok=True)
        members = [{"sid": s, "role": "voter"} for s in self.voters]
        members += [{"sid": s, "role": "observer"} for s in self.observers]
        config = {"version": 1, "timing": timing or "fast", "members": members}
        (run_dir / "cluster.json").write_text(json.dumps(config))
        for sid, events in self.peers.items():
            _write(run_dir / f"peer-{sid}.jsonl", events)
        if self.harness:
            _write(run_dir / "harness.jsonl", self.harness)
        if self.history:
            _write(run_dir / "history.jsonl", self.history)
        return run_dir


def _write(path: Path, events: list[dict[str, Any]]) -> None:
    path.write_text("".join(json.dumps(e) + "\n" for e in events))


Z1, Z2, Z3 = make_zxid(1, 1), make_zxid(1, 2), make_zxid(1, 3)


def base(end_ms: float = 1000) -> Run:
    """A valid run: 3 voters start, 3 leads epoch 1, three acknowledged writes."""
    run = Run()
    run.hv(0, "run_start", peers=[1, 2, 3], seed=7)
    for sid in (1, 2, 3):
        run.hv(1, "spawn", pid=100 + sid, sid=sid)
        run.boot(sid, 10)
    run.elect(100, 3, 1, (1, 2))
    for i, z in enumerate((Z1, Z2, Z3)):
        run.write(200 + 20 * i, 3, (1, 2), z, op_id=i)
    run.hv(end_ms, "run_end", reason="done")
    return run


def judge(run: Run, tmp_path: Path) -> Verdict:
    return check_run_dir(run.dump(tmp_path / "run"))


def only(verdict: Verdict, prop: Property) -> Violation:
    assert verdict.outcome is Outcome.INVALID, verdict.to_json()
    found = [v for v in verdict.violations if v.prop is prop]
    assert found, f"no {prop} violation in {verdict.to_json()['violations']}"
    return found[0]


def wheres(v: Violation) -> list[str]:
    return [e.where for e in v.evidence]


# --------------------------------------------------------------------------- valid run


def test_valid_run_passes_every_property(tmp_path: Path) -> None:
    verdict = judge(base(), tmp_path)
    assert verdict.outcome is Outcome.VALID, verdict.to_json()
    summary = verdict.summary
    assert summary["commits"] == 3
    assert summary["leaders"][0]["leader"] == 3 and summary["leaders"][0]["epoch"] == 1
    assert summary["client_ops"]["ok"] == 3
    assert summary["elections"][0]["cause"] == "start of run"


def test_verdict_json_has_the_documented_keys(tmp_path: Path) -> None:
    run_dir = base().dump(tmp_path / "run")
    verdict = check_run_dir(run_dir)
    path = write_verdict(run_dir, verdict)
    data = json.loads(path.read_text())
    assert set(data) == {"verdict", "why", "violations", "notes", "bounds", "summary"}
    assert data["verdict"] == "valid"
    # fast profile: 5*100 + 200 + 2*2000 + 15*100 + 2000 slack
    assert data["bounds"]["majority_survival_ms"] == 8200
    assert data["bounds"]["minority_silence_ms"] == 1600


# --------------------------------------------------------------------------- 1 election safety


def test_election_safety_two_leaders_in_one_epoch(tmp_path: Path) -> None:
    run = base()
    first = next(
        f"peer-3.jsonl:{i + 1}" for i, e in enumerate(run.peers[3]) if e["kind"] == "established"
    )
    second = run.peer(1, 300, "established", epoch=1)
    v = only(judge(run, tmp_path), Property.ELECTION_SAFETY)
    assert v.peers == (1, 3) and v.epoch == 1
    assert wheres(v) == [first, second]


def test_election_safety_allows_one_leader_per_epoch(tmp_path: Path) -> None:
    run = base()
    run.peer(3, 400, "step_down", reason="lost quorum")
    for sid in (1, 2, 3):
        run.peer(sid, 401, "state", state="LOOKING", round=2)
    run.elect(500, 2, 2, (1, 3))
    verdict = judge(run, tmp_path)
    assert verdict.outcome is Outcome.VALID, verdict.to_json()
    assert [lead["leader"] for lead in verdict.summary["leaders"]] == [3, 2]
    assert verdict.summary["elections"][1]["cause"] == "step_down: lost quorum"


# --------------------------------------------------------------------------- 2 leader agreement


def test_leader_agreement_follower_of_the_wrong_leader(tmp_path: Path) -> None:
    run = base()
    run.peer(1, 400, "state", state="LOOKING", round=2)
    run.peer(1, 401, "decided", leader=2, round=2, peer_epoch=1, state="FOLLOWING")
    bad = run.peer(1, 402, "epoch_current", epoch=1)
    v = only(judge(run, tmp_path), Property.LEADER_AGREEMENT)
    assert v.peers == (1, 2, 3) and v.epoch == 1
    assert wheres(v)[1] == bad
    assert wheres(v)[0].startswith("peer-3.jsonl:")


def test_leader_agreement_holds_when_followers_follow_the_leader(tmp_path: Path) -> None:
    run = base()
    # 1 restarts and rejoins leader 3 of epoch 1: the same leader, no violation.
    run.boot(1, 400, last_zxid=Z3, epoch=1)
    run.peer(1, 401, "decided", leader=3, round=1, peer_epoch=1, state="FOLLOWING")
    run.peer(1, 402, "epoch_current", epoch=1)
    assert judge(run, tmp_path).outcome is Outcome.VALID


# --------------------------------------------------------------------------- 3 epoch monotonicity


def test_epoch_monotonicity_accepted_epoch_lost_across_restart(tmp_path: Path) -> None:
    run = base()
    accepted = next(
        f"peer-1.jsonl:{i + 1}" for i, e in enumerate(run.peers[1]) if e["kind"] == "epoch_accepted"
    )
    reboot = run.boot(1, 400, last_zxid=Z3, epoch=0)
    v = only(judge(run, tmp_path), Property.EPOCH_MONOTONICITY)
    assert v.peers == (1,)
    assert wheres(v) == [accepted, reboot]


def test_epoch_monotonicity_current_above_accepted(tmp_path: Path) -> None:
    run = base()
    bad = run.peer(2, 400, "epoch_current", epoch=5)
    v = only(judge(run, tmp_path), Property.EPOCH_MONOTONICITY)
    assert v.peers == (2,) and v.epoch == 5
    assert wheres(v)[-1] == bad


def test_epoch_monotonicity_holds_across_a_clean_restart(tmp_path: Path) -> None:
    run = base()
    run.boot(1, 400, last_zxid=Z3, epoch=1)
    assert judge(run, tmp_path).outcome is Outcome.VALID


# --------------------------------------------------------------------------- 4 zxid uniqueness


def test_zxid_uniqueness_same_zxid_two_values(tmp_path: Path) -> None:
    run = base()
    first = next(
        f"peer-3.jsonl:{i + 1}"
        for i, e in enumerate(run.peers[3])
        if e["kind"] == "propose" and e["zxid"] == Z2
    )
    second = run.peer(3, 400, "propose", zxid=Z2, key="other", value="x")
    v = only(judge(run, tmp_path), Property.ZXID_UNIQUENESS)
    assert v.peers == (3,) and v.zxid == Z2
    assert wheres(v) == [first, second]


def test_zxid_uniqueness_proposal_outside_the_established_epoch(tmp_path: Path) -> None:
    run = base()
    bad = run.peer(3, 400, "propose", zxid=make_zxid(2, 1), key="k", value="v")
    v = only(judge(run, tmp_path), Property.ZXID_UNIQUENESS)
    assert v.peers == (3,) and v.epoch == 2
    assert wheres(v)[-1] == bad


def test_zxid_uniqueness_client_ack_disagrees_with_proposal(tmp_path: Path) -> None:
    run = base()
    bad = run.client(400, "ok", process=1, op="write", id=9, key="k", value="nope", zxid=Z1)
    v = only(judge(run, tmp_path), Property.ZXID_UNIQUENESS)
    assert v.zxid == Z1 and wheres(v)[-1] == bad


# --------------------------------------------------------------------------- 5 integrity


def test_integrity_delivery_never_proposed(tmp_path: Path) -> None:
    run = base()
    z4 = make_zxid(1, 4)
    bad = run.peer(2, 400, "deliver", zxid=z4, key="k", value="ghost")
    v = only(judge(run, tmp_path), Property.INTEGRITY)
    assert v.peers == (2,) and v.zxid == z4
    assert wheres(v) == [bad]


def test_integrity_proposed_by_a_non_leader(tmp_path: Path) -> None:
    run = base()
    z4 = make_zxid(1, 4)
    prop = run.peer(1, 400, "propose", zxid=z4, key="k", value="rogue")
    dlv = run.peer(2, 401, "deliver", zxid=z4, key="k", value="rogue")
    verdict = judge(run, tmp_path)
    v = only(verdict, Property.INTEGRITY)
    assert v.peers == (1, 2)
    assert wheres(v)[1:] == [prop, dlv]
    assert wheres(v)[0].startswith("peer-3.jsonl:")  # the real leader's establishment


# --------------------------------------------------------------------------- 6 prefix agreement


def test_prefix_agreement_gap_in_a_delivery_sequence(tmp_path: Path) -> None:
    run = Run()
    for sid in (1, 2, 3):
        run.boot(sid, 10)
    run.elect(100, 3, 1, (1, 2))
    run.write(200, 3, (1, 2), Z1)
    run.write(220, 3, (2,), Z2)  # peer 1 misses Z2 ...
    run.peer(3, 240, "propose", zxid=Z3, key="k", value=f"v{Z3}")
    run.peer(3, 243, "commit", zxid=Z3)
    run.peer(3, 244, "deliver", zxid=Z3, key="k", value=f"v{Z3}")
    run.peer(2, 244, "deliver", zxid=Z3, key="k", value=f"v{Z3}")
    bad = run.peer(1, 244, "deliver", zxid=Z3, key="k", value=f"v{Z3}")  # ... yet goes on
    v = only(judge(run, tmp_path), Property.PREFIX_AGREEMENT)
    assert set(v.peers) == {1, 3} or set(v.peers) == {1, 2}
    assert v.zxid == Z2
    assert bad in wheres(v)
    assert "skipping" in v.message


def test_prefix_agreement_redelivery_in_one_boot(tmp_path: Path) -> None:
    run = base()
    again = run.peer(1, 400, "deliver", zxid=Z2, key="k", value=f"v{Z2}")
    v = only(judge(run, tmp_path), Property.PREFIX_AGREEMENT)
    assert v.peers == (1,) and v.zxid == Z2
    assert wheres(v)[-1] == again


def test_prefix_agreement_allows_redelivery_after_restart(tmp_path: Path) -> None:
    run = base()
    run.boot(1, 400, last_zxid=Z3, epoch=1)
    for z in (Z1, Z2, Z3):
        run.peer(1, 401, "deliver", zxid=z, key="k", value=f"v{z}")
    assert judge(run, tmp_path).outcome is Outcome.VALID


# --------------------------------------------------------------------------- 7 durability


def _re_elect(run: Run, t: float, leader: int, epoch: int, followers: tuple[int, ...]) -> str:
    run.peer(3, t, "step_down", reason="lost quorum")
    for sid in (1, 2, 3):
        run.peer(sid, t + 1, "state", state="LOOKING", round=epoch)
    return run.elect(t + 10, leader, epoch, followers)


def test_durability_later_leader_lacks_an_acknowledged_write(tmp_path: Path) -> None:
    run = base()
    ok = next(
        f"history.jsonl:{i + 1}"
        for i, e in enumerate(run.history)
        if e["kind"] == "ok" and e["zxid"] == Z3
    )
    commit = next(
        f"peer-3.jsonl:{i + 1}"
        for i, e in enumerate(run.peers[3])
        if e["kind"] == "commit" and e["zxid"] == Z3
    )
    # Peer 1 reboots having lost Z3 (recovery is broken too) and becomes leader of 2.
    run.boot(1, 390, last_zxid=Z2, epoch=1)
    established = _re_elect(run, 400, 1, 2, (2,))
    verdict = judge(run, tmp_path)
    v = only(verdict, Property.DURABILITY)
    assert v.peers == (1,) and v.zxid == Z3 and v.epoch == 2
    assert wheres(v) == [commit, established] or wheres(v) == [ok, established]
    assert Property.RECOVERY in verdict.properties_violated()


def test_durability_trunc_removes_a_committed_txn(tmp_path: Path) -> None:
    run = base()
    commit = next(
        f"peer-3.jsonl:{i + 1}"
        for i, e in enumerate(run.peers[3])
        if e["kind"] == "commit" and e["zxid"] == Z3
    )
    trunc = run.peer(2, 400, "trunc", **{"from": Z3, "to": Z2})
    v = only(judge(run, tmp_path), Property.DURABILITY)
    assert v.peers == (2,) and v.zxid == Z3
    assert wheres(v) == [commit, trunc]


def test_durability_holds_when_the_new_leader_has_everything(tmp_path: Path) -> None:
    run = base()
    _re_elect(run, 400, 1, 2, (2, 3))
    # A trunc of an uncommitted tail is fine.
    z4 = make_zxid(1, 4)
    run.peer(2, 300, "logged", zxid=z4)
    run.peer(2, 450, "trunc", **{"from": z4, "to": Z3})
    verdict = judge(run, tmp_path)
    assert verdict.outcome is Outcome.VALID, verdict.to_json()


# --------------------------------------------------------------------------- 8 recovery


def test_recovery_restart_loses_fsynced_txns(tmp_path: Path) -> None:
    run = base()
    logged = next(
        f"peer-2.jsonl:{i + 1}"
        for i, e in enumerate(run.peers[2])
        if e["kind"] == "logged" and e["zxid"] == Z3
    )
    run.hv(390, "exit", pid=102, sid=2, code=-9)
    reboot = run.boot(2, 400, last_zxid=Z1, epoch=1)
    v = only(judge(run, tmp_path), Property.RECOVERY)
    assert v.peers == (2,) and v.zxid == Z3
    assert wheres(v) == [logged, reboot]


def test_recovery_shortfall_explained_by_planted_disk_fault(tmp_path: Path) -> None:
    run = base()
    run.hv(390, "fault", step=1, what="tear-log-tail", targets=[2], cut=[], down=[2], paused=[])
    run.boot(2, 400, last_zxid=Z1, epoch=1)
    verdict = judge(run, tmp_path)
    assert Property.RECOVERY not in verdict.properties_violated()
    assert any("tear-log-tail" in n and "peer 2" in n for n in verdict.notes)


def test_recovery_shortfall_after_losing_only_the_unsynced_tail_is_a_violation(
    tmp_path: Path,
) -> None:
    # lose-unsynced cuts back to the last position the peer logged as fsynced: a correct
    # peer cannot come back below what it logged or delivered (ack-before-fsync can).
    run = base()
    run.hv(390, "fault", step=1, what="lose-unsynced", targets=[2], cut=[], down=[2], paused=[])
    run.boot(2, 400, last_zxid=Z1, epoch=1)
    assert Property.RECOVERY in judge(run, tmp_path).properties_violated()


# --------------------------------------------------------------------------- 9 majority survival


def test_majority_survival_no_leader_while_all_connected(tmp_path: Path) -> None:
    run = Run()
    start = run.hv(0, "run_start", peers=[1, 2, 3], seed=1)
    for sid in (1, 2, 3):
        run.boot(sid, 10)
    for sid in (1, 2, 3):
        run.peer(sid, 20, "state", state="LOOKING", round=1)
    run.hv(20_000, "run_end", reason="done")
    v = only(judge(run, tmp_path), Property.MAJORITY_SURVIVAL)
    assert v.peers == (1, 2, 3)
    assert wheres(v) == [start]


def test_majority_survival_minority_partition_then_no_new_leader(tmp_path: Path) -> None:
    run = base(end_ms=20_000)
    cut = [[3, 1], [1, 3], [3, 2], [2, 3]]
    fault = run.hv(1000, "fault", step=1, what="isolate", targets=[3], cut=cut, down=[], paused=[])
    run.peer(3, 1500, "step_down", reason="lost quorum")
    v = only(judge(run, tmp_path), Property.MAJORITY_SURVIVAL)
    assert v.peers == (1, 2)
    assert wheres(v) == [fault]


def test_majority_survival_new_leader_within_bound(tmp_path: Path) -> None:
    run = base(end_ms=20_000)
    cut = [[3, 1], [1, 3], [3, 2], [2, 3]]
    run.hv(1000, "fault", step=1, what="isolate", targets=[3], cut=cut, down=[], paused=[])
    run.peer(3, 1500, "step_down", reason="lost quorum")
    for sid in (1, 2):
        run.peer(sid, 1500, "state", state="LOOKING", round=2)
    run.elect(3000, 2, 2, (1,))
    verdict = judge(run, tmp_path)
    assert verdict.outcome is Outcome.VALID, verdict.to_json()
    election = verdict.summary["elections"][1]
    assert election["leader"] == 2 and "isolate" in " ".join(election["faults_near"])


# --------------------------------------------------------------------------- 10 minority silence


def _isolate_leader(run: Run) -> str:
    cut = [[3, 1], [1, 3], [3, 2], [2, 3]]
    return run.hv(1000, "fault", step=1, what="isolate", targets=[3], cut=cut, down=[], paused=[])


def test_minority_silence_leader_never_steps_down(tmp_path: Path) -> None:
    run = base(end_ms=5000)
    fault = _isolate_leader(run)
    run.peer(3, 4000, "ack", zxid=Z3, **{"from": 3, "to": 3})  # still alive, still leading
    v = only(judge(run, tmp_path), Property.MINORITY_SILENCE)
    assert v.peers == (3,) and v.epoch == 1
    assert fault in wheres(v)
    assert wheres(v)[0].startswith("peer-3.jsonl:")


def test_minority_silence_commit_without_majority(tmp_path: Path) -> None:
    run = base(end_ms=5000)
    fault = _isolate_leader(run)
    z4 = make_zxid(1, 4)
    run.peer(3, 2000, "propose", zxid=z4, key="k", value="lonely")
    commit = run.peer(3, 3000, "commit", zxid=z4)
    run.peer(3, 3500, "step_down", reason="late")
    v = only(judge(run, tmp_path), Property.MINORITY_SILENCE)
    assert v.peers == (3,) and v.zxid == z4
    assert wheres(v) == [fault, commit]


def test_minority_silence_prompt_step_down(tmp_path: Path) -> None:
    run = base(end_ms=5000)
    _isolate_leader(run)
    run.peer(3, 1600, "step_down", reason="lost quorum")
    run.peer(3, 1601, "state", state="LOOKING", round=2)
    verdict = judge(run, tmp_path)
    assert Property.MINORITY_SILENCE not in verdict.properties_violated()


def test_minority_silence_clock_stops_while_leader_paused(tmp_path: Path) -> None:
    run = base(end_ms=5000)
    cut = [[3, 1], [1, 3], [3, 2], [2, 3]]
    run.hv(1000, "fault", step=1, what="pause", targets=[3], cut=cut, down=[], paused=[3])
    run.hv(4000, "fault", step=2, what="resume", targets=[3], cut=cut, down=[], paused=[])
    run.peer(3, 4200, "step_down", reason="lost quorum")
    verdict = judge(run, tmp_path)
    assert Property.MINORITY_SILENCE not in verdict.properties_violated()


# --------------------------------------------------------------------------- log quality


def test_torn_last_line_is_accepted_and_noted(tmp_path: Path) -> None:
    run_dir = base().dump(tmp_path / "run")
    with (run_dir / "peer-2.jsonl").open("a") as handle:
        handle.write('{"t": 99999999, "kind": "logg')
    verdict = check_run_dir(run_dir)
    assert verdict.outcome is Outcome.VALID
    assert any("peer-2.jsonl" in n and "torn" in n for n in verdict.notes)


def test_garbage_in_the_middle_is_unknown(tmp_path: Path) -> None:
    run_dir = base().dump(tmp_path / "run")
    path = run_dir / "peer-1.jsonl"
    lines = path.read_text().splitlines(keepends=True)
    lines.insert(3, "\x00\x01 not json at all\n")
    path.write_text("".join(lines))
    verdict = check_run_dir(run_dir)
    assert verdict.outcome is Outcome.UNKNOWN
    assert any("peer-1.jsonl:4" in why for why in verdict.why)


def test_wrongly_typed_field_is_unknown_not_a_crash(tmp_path: Path) -> None:
    run = base()
    run.peer(2, 400, "logged", zxid="0x1")
    verdict = judge(run, tmp_path)
    assert verdict.outcome is Outcome.UNKNOWN
    assert any("zxid" in why and "peer-2.jsonl" in why for why in verdict.why)


def test_missing_peer_log_is_unknown(tmp_path: Path) -> None:
    run_dir = base().dump(tmp_path / "run")
    (run_dir / "peer-2.jsonl").unlink()
    verdict = check_run_dir(run_dir)
    assert verdict.outcome is Outcome.UNKNOWN
    assert any("peer-2.jsonl missing" in why for why in verdict.why)


def test_empty_run_dir_is_unknown(tmp_path: Path) -> None:
    verdict = check_run_dir(tmp_path)
    assert verdict.outcome is Outcome.UNKNOWN
    assert "cluster.json" in verdict.to_json()["why"]


def test_config_only_run_dir_is_unknown(tmp_path: Path) -> None:
    (tmp_path / "cluster.json").write_text(json.dumps({"members": [{"sid": 1}]}))
    verdict = check_run_dir(tmp_path)
    assert verdict.outcome is Outcome.UNKNOWN
    assert any("missing" in why for why in verdict.why)


def test_load_run_reads_every_log(tmp_path: Path) -> None:
    run = load_run(base().dump(tmp_path / "run"))
    assert sorted(run.peer_logs) == [1, 2, 3]
    assert run.voters == (1, 2, 3)
    assert run.harness is not None and run.history is not None


@pytest.mark.parametrize("prop", list(Property))
def test_every_property_has_a_stable_name(prop: Property) -> None:
    assert prop.value == prop.value.lower() and " " not in prop.value

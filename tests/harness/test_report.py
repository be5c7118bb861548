"""Tests of the HTML run report on hand-written run dirs (real JSONL files in tmp_path)."""

from __future__ import annotations

import json
import os
import re
import shutil
import struct
import subprocess
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest

from harness.report import (
    PLOT_WIDTH,
    REPORT_NAME,
    BandKind,
    LaneState,
    ReportError,
    build_html,
    build_timeline,
    load_report_data,
    render_report,
    write_report,
)

S = 1_000_000_000
BASE = 7_000 * S  # monotonic clock origin of the fake run
EVIL = "<script>alert('x')</script>"


class RunBuilder:
    """Writes a run dir the way the launcher, peers and workload would."""

    def __init__(self, run_dir: Path, peers: Iterable[int]) -> None:
        self.run_dir = run_dir
        self.peers = tuple(peers)
        self.lines: dict[str, list[str]] = {}
        self.boots: dict[int, int] = {}

    def _emit(self, name: str, record: dict[str, Any]) -> str:
        lines = self.lines.setdefault(name, [])
        lines.append(json.dumps(record))
        return f"{name}:{len(lines)}"

    def peer(self, sid: int, at: float, kind: str, **fields: Any) -> str:
        if kind == "boot":
            self.boots[sid] = self.boots.get(sid, -1) + 1
        record = {"t": BASE + int(at * S), "kind": kind, "sid": sid, "boot": self.boots[sid]}
        return self._emit(f"peer-{sid}.jsonl", {**record, **fields})

    def boot(self, sid: int, at: float, *, bug: str | None = None, last_zxid: int = 0) -> None:
        self.peer(
            sid,
            at,
            "boot",
            last_zxid=last_zxid,
            current_epoch=0,
            accepted_epoch=0,
            snapshot_zxid=0,
            bug=bug,
            role="voter",
        )

    def harness(self, at: float, kind: str, **fields: Any) -> str:
        return self._emit("harness.jsonl", {"t": BASE + int(at * S), "kind": kind, **fields})

    def history(self, at: float, kind: str, **fields: Any) -> str:
        return self._emit("history.jsonl", {"t": BASE + int(at * S), "kind": kind, **fields})

    def fault(
        self,
        at: float,
        step: int,
        what: str,
        targets: list[int],
        *,
        cut: list[list[int]] | None = None,
        down: list[int] | None = None,
        paused: list[int] | None = None,
        **extra: Any,
    ) -> str:
        return self.harness(
            at,
            "fault",
            step=step,
            what=what,
            targets=targets,
            cut=cut or [],
            down=down or [],
            paused=paused or [],
            **extra,
        )

    def write(self, verdict: dict[str, Any] | None) -> Path:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        for name, lines in self.lines.items():
            (self.run_dir / name).write_text("".join(line + "\n" for line in lines))
        members = [{"sid": s, "role": "voter", "host": "127.0.0.1"} for s in self.peers]
        (self.run_dir / "cluster.json").write_text(
            json.dumps({"version": 1, "profile": "fast", "members": members})
        )
        (self.run_dir / "plan.json").write_text(json.dumps({"profile": "mixed", "seed": 42}))
        (self.run_dir / "seed").write_text("42\n")
        if verdict is not None:
            (self.run_dir / "verdict.json").write_text(json.dumps(verdict))
        return self.run_dir


def small_run(run_dir: Path) -> tuple[RunBuilder, dict[str, Any]]:
    """3 peers, 10 s: peer 3 leads epoch 1, is partitioned away, keeps leading and
    commits (planted no-step-down); 1 leads epoch 2; 2 is killed and restarted; 1 is
    paused; latency on peer 1's links; the verdict flags minority-silence."""
    b = RunBuilder(run_dir, (1, 2, 3))
    b.harness(0.0, "run_start", peers=[1, 2, 3], seed=42)
    for sid in (1, 2, 3):
        b.harness(0.01 * sid, "spawn", pid=1000 + sid, sid=sid)
        b.boot(sid, 0.05, bug="no-step-down")
        b.peer(sid, 0.06, "state", state="LOOKING", round=1)
    b.peer(3, 0.5, "state", state="LEADING", round=1, leader=3)
    b.peer(3, 0.6, "established", epoch=1)
    for sid in (1, 2):
        b.peer(sid, 0.5, "state", state="FOLLOWING", round=1, leader=3)
    for i in range(20):
        zxid = (1 << 32) | (i + 1)
        at = 1.0 + i * 0.1
        b.history(at - 0.01, "invoke", process=0, op="write", id=i, key="k", value=str(i))
        for sid in (1, 2, 3):
            b.peer(sid, at, "commit", zxid=zxid)
        b.history(at + 0.01, "ok", process=0, op="write", id=i, key="k", value=str(i), zxid=zxid)
    b.fault(3.0, 0, "partition", [3], cut=[[1, 3], [3, 1], [2, 3], [3, 2]], shape="isolate")
    for sid in (1, 2):
        b.peer(sid, 3.5, "state", state="LOOKING", round=2)
    b.peer(1, 4.0, "state", state="LEADING", round=2, leader=1)
    b.peer(1, 4.1, "established", epoch=2)
    b.peer(2, 4.0, "state", state="FOLLOWING", round=2, leader=1)
    bad_commit = b.peer(3, 4.5, "commit", zxid=(1 << 32) | 21)
    b.history(4.4, "invoke", process=1, op="write", id=100, key="k", value="x")
    b.history(4.6, "info", process=1, op="write", id=100, key="k", value="x", error="timeout")
    b.history(4.7, "invoke", process=1, op="write", id=101, key="k", value="y")
    b.history(4.8, "fail", process=1, op="write", id=101, key="k", value="y", error="not_leader")
    b.fault(6.0, 1, "heal", [])
    b.fault(6.5, 2, "crash", [2], down=[2])
    b.harness(6.5, "exit", pid=1002, sid=2, code=-9)
    b.fault(7.0, 3, "pause", [1], down=[2], paused=[1])
    b.fault(7.5, 4, "resume", [1], down=[2])
    b.fault(8.0, 5, "restart", [2])
    b.harness(8.0, "spawn", pid=1012, sid=2)
    b.boot(2, 8.05, bug="no-step-down", last_zxid=(1 << 32) | 20)
    b.peer(2, 8.06, "state", state="LOOKING", round=3)
    b.peer(2, 8.3, "state", state="FOLLOWING", round=3, leader=1)
    b.fault(8.5, 6, "latency", [1], latency_ms=50, jitter_ms=10)
    b.fault(9.0, 7, "corrupt-snapshot", [3])
    b.fault(9.5, 8, "heal", [])
    b.harness(10.0, "run_end", reason="plan done")
    verdict = {
        "verdict": "invalid",
        "why": "1 violation",
        "violations": [
            {
                "property": "minority-silence",
                "peers": [3],
                "epoch": 1,
                "zxid": (1 << 32) | 21,
                "message": "peer 3 committed 0x1:21 after losing its majority at 3.000s",
                "evidence": [
                    {
                        "where": bad_commit,
                        "t": BASE + int(4.5 * S),
                        "kind": "commit",
                        "sid": 3,
                        "zxid": (1 << 32) | 21,
                    }
                ],
            }
        ],
        "notes": ["no torn logs"],
        "bounds": {"majority_survival_ms": 3100},
        "summary": {
            "leaders": [{"epoch": 1, "sid": 3}, {"epoch": 2, "sid": 1}],
            "commits": 21,
        },
    }
    return b, verdict


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    builder, verdict = small_run(tmp_path / "run-42")
    return builder.write(verdict)


def _segments(html_or_dir: Path, sid: int) -> list[tuple[float, float, LaneState]]:
    timeline = build_timeline(load_report_data(html_or_dir))
    lane = next(lane for lane in timeline.lanes if lane.sid == sid)
    return [((s.start - BASE) / S, (s.end - BASE) / S, s.state) for s in lane.segments]


def _state_at(segments: list[tuple[float, float, LaneState]], at: float) -> LaneState | None:
    return next((state for a, b, state in segments if a <= at < b), None)


def test_one_lane_per_peer_with_states(run_dir: Path) -> None:
    page = render_report(run_dir)
    for sid in (1, 2, 3):
        assert f">peer {sid}</text>" in page
    seg3 = _segments(run_dir, 3)
    assert _state_at(seg3, 0.3) is LaneState.LOOKING
    assert _state_at(seg3, 5.0) is LaneState.LEADING
    seg1 = _segments(run_dir, 1)
    assert _state_at(seg1, 0.005) is None  # not started yet: nothing drawn
    assert _state_at(seg1, 2.0) is LaneState.FOLLOWING
    assert _state_at(seg1, 5.0) is LaneState.LEADING
    assert _state_at(seg1, 7.2) is LaneState.PAUSED
    assert _state_at(seg1, 7.8) is LaneState.LEADING
    seg2 = _segments(run_dir, 2)
    assert _state_at(seg2, 7.0) is LaneState.DOWN
    assert _state_at(seg2, 8.02) is LaneState.STARTING
    assert _state_at(seg2, 9.0) is LaneState.FOLLOWING


def test_fault_bands_leaders_and_commits(run_dir: Path) -> None:
    timeline = build_timeline(load_report_data(run_dir))
    bands = [(b.kind, (b.start - BASE) / S, (b.end - BASE) / S, b.label) for b in timeline.bands]
    assert (BandKind.PARTITION, 3.0, 6.0, "{1,2} | {3}") in bands
    assert (BandKind.DEGRADED, 8.5, 9.5, "latency 1") in bands
    leaders = [(s.sid, s.epoch) for s in timeline.leaders]
    assert leaders == [(3, 1), (1, 2)]
    lane3 = next(lane for lane in timeline.lanes if lane.sid == 3)
    assert len(lane3.commits) == 21
    # The peer lanes carry the partition groups as strips: 1 and 2 share a group.
    groups = {lane.sid: {g for _, _, g in lane.groups} for lane in timeline.lanes}
    assert groups[1] == groups[2] != groups[3]
    page = build_html(load_report_data(run_dir))
    assert "{1,2} | {3}" in page
    assert "e1: 3" in page and "e2: 1" in page
    assert "corrupt-snapshot 3" in page
    assert "latency_ms=50" in page  # the fault's own parameters are in its hover title
    assert 'class="commit"' in page
    assert "peer 2 exited, code -9" in page


def test_header_shows_verdict_seed_profile_bug(run_dir: Path) -> None:
    page = render_report(run_dir)
    assert 'class="badge invalid">INVALID<' in page
    assert "<th>seed</th><td>42</td>" in page
    assert "plan mixed; timing fast" in page
    assert "no-step-down" in page
    assert "10.00s (ended: plan done)" in page
    assert "20 ok, 1 fail, 1 info" in page
    assert "majority_survival_ms" in page  # bounds
    assert "<h2>Summary</h2>" in page


def test_violation_marked_and_explained(run_dir: Path) -> None:
    page = render_report(run_dir)
    assert 'id="vmark-1"' in page  # the mark on the timeline
    table = page[page.index('<table class="violations">') :]
    assert "minority-silence" in table
    assert "peer 3 committed 0x1:21 after losing its majority at 3.000s" in table
    evidence_line = f"peer-3.jsonl:{_line_of(run_dir / 'peer-3.jsonl', 'commit', 4.5)}"
    assert evidence_line in table
    assert "4.500s" in table  # evidence time relative to the run start
    assert "epoch 1; zxid 0x1:21" in table
    timeline = build_timeline(load_report_data(run_dir))
    (mark,) = timeline.violations
    assert mark.prop == "minority-silence"
    assert mark.points == ((BASE + int(4.5 * S), 3),)


def _line_of(path: Path, kind: str, at: float) -> int:
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        record = json.loads(line)
        if record["kind"] == kind and record["t"] == BASE + int(at * S):
            return number
    raise AssertionError(f"no {kind} at {at} in {path}")


def test_escapes_hostile_values(tmp_path: Path) -> None:
    builder, verdict = small_run(tmp_path / "evil")
    builder.history(5.0, "invoke", process=EVIL, op="write", id=7, key=EVIL, value=EVIL)
    builder.history(5.1, "ok", process=EVIL, op="write", id=7, key=EVIL, value=EVIL)
    builder.fault(5.2, 9, EVIL, [1], note=EVIL)
    builder.peer(1, 5.3, "step_down", reason=EVIL)
    verdict["violations"][0]["message"] = EVIL
    verdict["violations"][0]["property"] = EVIL
    verdict["summary"]["x"] = EVIL
    page = render_report(builder.write(verdict))
    assert "<script>alert" not in page
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;" in page
    # Exactly one script element: the page's own.
    assert page.count("<script>") == 1


def test_self_contained(run_dir: Path) -> None:
    page = render_report(run_dir)
    assert not re.search(r"https?://", page)
    assert "<link" not in page and "src=" not in page and "@import" not in page


def test_missing_verdict_still_renders(tmp_path: Path) -> None:
    builder, _ = small_run(tmp_path / "unchecked")
    page = render_report(builder.write(None))
    assert "NOT CHECKED" in page
    assert "verdict.json missing" in page
    assert ">peer 3</text>" in page


def test_torn_and_garbage_logs_still_render(tmp_path: Path) -> None:
    builder, verdict = small_run(tmp_path / "torn")
    run_dir = builder.write(verdict)
    with (run_dir / "peer-2.jsonl").open("a") as handle:
        handle.write('{"t": 123, "kind": "com')  # SIGKILLed mid-write
    lines = (run_dir / "harness.jsonl").read_text().splitlines(keepends=True)
    lines.insert(3, "not json at all\n")
    (run_dir / "harness.jsonl").write_text("".join(lines))
    (run_dir / "plan.json").write_text("{broken")
    page = render_report(run_dir)
    assert "peer-2.jsonl: last line torn" in page
    assert "harness.jsonl:4: not JSON" in page
    assert "plan.json unreadable" in page
    assert "partial or the logs are damaged" in page
    assert 'class="badge invalid"' in page
    assert ">peer 2</text>" in page


def test_empty_and_missing_run_dir(tmp_path: Path) -> None:
    page = render_report(tmp_path)
    assert "no peer logs" in page
    assert "NOT CHECKED" in page
    with pytest.raises(ReportError, match="does not exist") as info:
        render_report(tmp_path / "nope")
    assert "nope" in str(info.value)


def test_write_report(run_dir: Path) -> None:
    path = write_report(run_dir)
    assert path == run_dir / REPORT_NAME
    assert path.read_text(encoding="utf-8") == render_report(run_dir)
    assert not list(run_dir.glob("*.tmp"))


def big_run(run_dir: Path, *, seconds: int = 60, peers: int = 5) -> Path:
    """A long busy run: thousands of commits and client ops, a flapping peer, and
    a fault every few seconds."""
    sids = list(range(1, peers + 1))
    b = RunBuilder(run_dir, sids)
    b.harness(0.0, "run_start", peers=sids, seed=7)
    for sid in sids:
        b.harness(0.01, "spawn", pid=2000 + sid, sid=sid)
        b.boot(sid, 0.02)
        b.peer(sid, 0.03, "state", state="LOOKING", round=1)
        b.peer(sid, 0.3, "state", state="LEADING" if sid == 1 else "FOLLOWING", round=1, leader=1)
    b.peer(1, 0.35, "established", epoch=1)
    for counter, ms in enumerate(range(500, seconds * 1000, 10), start=1):
        at = ms / 1000
        for sid in sids:
            b.peer(sid, at, "commit", zxid=(1 << 32) | counter)
        b.history(at, "invoke", process=counter % 4, op="write", id=counter, key="k", value="v")
        outcome = "ok" if counter % 10 else "info"
        extra = {"zxid": (1 << 32) | counter} if outcome == "ok" else {"error": "timeout"}
        b.history(at + 0.004, outcome, process=counter % 4, op="write", id=counter, **extra)
    # Peer 5 flaps between LOOKING and FOLLOWING every 5 ms: far more changes than pixels.
    for i in range(seconds * 100):
        at = 0.5 + i * 0.005
        b.peer(peers, at, "state", state="LOOKING" if i % 2 else "FOLLOWING", round=i + 2)
    step = 0
    for at in range(3, seconds - 3, 6):
        b.fault(float(at), step, "partition", [2], cut=[[1, 2], [2, 1]])
        b.fault(at + 2.0, step + 1, "heal", [])
        step += 2
    b.harness(float(seconds), "run_end", reason="plan done")
    return b.write({"verdict": "valid", "why": "", "violations": []})


def test_long_run_is_aggregated_and_bounded(tmp_path: Path) -> None:
    run_dir = big_run(tmp_path / "big")
    page = render_report(run_dir)
    events = sum(1 for _ in (run_dir / "peer-1.jsonl").open())
    assert events > 5000
    # Commits aggregate per pixel column: at most one tick per column per lane.
    assert page.count('class="commit"') <= 5 * PLOT_WIDTH
    # The flapping lane is rasterised to at most one rectangle per pixel column.
    timeline = build_timeline(load_report_data(run_dir))
    assert len(timeline.lanes[4].segments) > PLOT_WIDTH
    assert len(page) < 3_000_000
    assert "mostly;" in page  # hover text of a rasterised column
    assert 'class="badge valid">VALID<' in page


def _chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome", "chrome"):
        found = shutil.which(name)
        if found:
            return found
    return None


def _png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


@pytest.mark.skipif(_chromium() is None, reason="no chromium binary found")
def test_renders_in_headless_chromium(run_dir: Path, tmp_path: Path) -> None:
    page = write_report(run_dir)
    shot = tmp_path / "shot.png"
    binary = _chromium()
    assert binary is not None
    profile = tmp_path / "profile"
    result = subprocess.run(
        [
            binary,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            f"--user-data-dir={profile}",
            "--window-size=1400,900",
            f"--screenshot={shot}",
            page.as_uri(),
        ],
        capture_output=True,
        timeout=120,
        env={**os.environ, "HOME": str(tmp_path)},
        check=False,
    )
    assert shot.exists(), f"no screenshot; chromium said: {result.stderr[-2000:]!r}"
    data = shot.read_bytes()
    assert _png_size(data) == (1400, 900)
    # A blank page compresses to a few KB; the report has colour and text.
    assert len(data) > 30_000


def test_odd_shapes_render_without_crashing(tmp_path: Path) -> None:
    """A verdict or fault from a newer/older checker or nemesis with unexpected shapes
    still renders: what cannot be placed on the timeline is listed, not fatal."""
    builder, _ = small_run(tmp_path / "odd")
    # Written raw, not with `fault`: these shapes are what `fault`'s types rule out.
    builder.harness(
        5.0,
        "fault",
        step=9,
        what="one-way",
        targets=[1, 2],
        cut=[[1, 2], ["x", 3], 7],
        down="?",
        paused=[],
    )
    builder.peer(2, 5.1, "state", state="WEIRD", round=9)
    verdict = {
        "verdict": "surprising",
        "violations": [
            "just a string",
            {"property": "durability", "evidence": [{"where": "peer-1.jsonl:3"}, 5]},
            {"evidence": "none"},
        ],
        "summary": [1, "two", {"three": 3}],
        "notes": "plain text",
    }
    page = render_report(builder.write(verdict))
    assert 'class="badge unknown">SURPRISING<' in page
    assert "durability" in page and "peer-1.jsonl:3" in page
    assert "just a string" in page
    timeline = build_timeline(load_report_data(builder.run_dir))
    labels = [b.label for b in timeline.bands if b.kind is BandKind.PARTITION]
    assert "cut 1\u21922" in labels  # a one-way cut is not a clean partition
    assert [v.points for v in timeline.violations] == [(), ()]

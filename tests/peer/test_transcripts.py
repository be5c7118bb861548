"""Transcript tests: every `testdata/*.txt` file is run and must reproduce itself.

A transcript is a readable session with the real election and replication cores: a
command, `----`, then the effects the cores produced, in their canonical text form (see
`tests.peer.transcript` for the language). The test re-runs each file and compares the
whole produced text with the file; a mismatch fails with a unified diff.

To accept new output after a deliberate change to a core (or to fill in a new file,
whose cases may have empty outputs), run

    UPDATE_TRANSCRIPTS=1 pytest tests/peer/test_transcripts.py

which rewrites the files with the actual output; then read the diff (`git diff
tests/peer/testdata`) before committing it: the files are the expected behaviour.
"""

from __future__ import annotations

import difflib
import os
from pathlib import Path

import pytest

from peer.domain import ServerState, Vote, make_zxid
from peer.messages import Notification
from tests.peer.transcript import (
    Case,
    Prose,
    TranscriptError,
    World,
    check_file,
    fmt_message,
    parse,
    render,
    run,
)

TESTDATA = Path(__file__).parent / "testdata"
FILES = sorted(TESTDATA.glob("*.txt"))
UPDATE = os.environ.get("UPDATE_TRANSCRIPTS", "") == "1"


def diff(expected: str, actual: str, path: Path) -> str:
    return "".join(
        difflib.unified_diff(
            expected.splitlines(keepends=True),
            actual.splitlines(keepends=True),
            fromfile=f"{path.name} (expected)",
            tofile=f"{path.name} (actual)",
        )
    )


@pytest.mark.parametrize("path", FILES, ids=[p.stem for p in FILES])
def test_transcript(path: Path) -> None:
    outcome = check_file(path)
    if outcome.ok:
        return
    if UPDATE:
        path.write_text(outcome.actual, encoding="utf-8")
        return
    pytest.fail(
        f"{path} differs from what the cores now do (UPDATE_TRANSCRIPTS=1 rewrites it):\n"
        + diff(outcome.expected, outcome.actual, path),
        pytrace=False,
    )


def test_there_are_transcripts_and_each_opens_with_what_it_shows() -> None:
    assert len(FILES) >= 8
    for path in FILES:
        first = path.read_text(encoding="utf-8").splitlines()[0]
        assert first.startswith("# ") and len(first) > 10, f"{path.name} opens without a comment"


def test_a_run_is_deterministic() -> None:
    for path in FILES:
        blocks = parse(path.read_text(encoding="utf-8"), str(path))
        assert run(blocks, path.name) == run(blocks, path.name)


# ---------------------------------------------------------------- the driver itself


def test_notification_has_the_documented_form() -> None:
    n = Notification(
        sender=1, state=ServerState.LOOKING, vote=Vote(peer_epoch=0, zxid=0, leader=1), round=1
    )
    assert fmt_message(n) == "Notification(LOOKING round=1 vote=(0,0x0:0,1))"
    n2 = Notification(
        sender=1,
        state=ServerState.FOLLOWING,
        vote=Vote(peer_epoch=2, zxid=make_zxid(2, 7), leader=3),
        round=4,
    )
    assert fmt_message(n2) == "Notification(FOLLOWING round=4 vote=(2,0x2:7,3))"


def test_parse_and_render_round_trip() -> None:
    text = (
        "# what it shows\n"
        "\n"
        "cluster 3\n"
        "----\n"
        "line a\n"
        "line b\n"
        "\n"
        "# a second case, two commands\n"
        "start 1\n"
        "start 2\n"
        "----\n"
        "out\n"
    )
    blocks = parse(text, "t.txt")
    assert [type(b) for b in blocks] == [Prose, Case, Prose, Case]
    case = blocks[3]
    assert isinstance(case, Case)
    assert case.commands == [(9, "start 1"), (10, "start 2")]
    assert render(blocks) == text
    assert render(blocks, {1: ["x"], 3: ["y", "z"]}).splitlines()[4:5] == ["x"]


def test_a_case_without_separator_names_file_and_line() -> None:
    with pytest.raises(TranscriptError, match=r"t\.txt:3: case has no '----' line"):
        parse("# x\n\ncluster 3\n", "t.txt")


@pytest.mark.parametrize(
    ("command", "why"),
    [
        ("frobnicate 1", "unknown command 'frobnicate'"),
        ("start 7", r"no peer 7 \(peers are \[1, 2, 3\]\)"),
        ("deliver 1->2", "nothing in flight on 1->2"),
        ("timer 1 election.finalize", "timer election.finalize is not armed on 1"),
        ("cluster 3 bug=nope", "unknown bug 'nope'"),
        ("cluster 3 sync_limit=0", "timing.sync_limit must be a positive integer"),
        ("disk 1 log=[0x1:x a=1]", "bad zxid '0x1:x'"),
        ("start 1 color=red", "unknown option 'color'"),
        ("lead 1", "peer 1 is down"),
    ],
)
def test_a_wrong_command_fails_with_its_line_and_reason(command: str, why: str) -> None:
    text = "cluster 3\n----\n\nstart 1\n----\n\n" if command.startswith("timer") else ""
    text = text or "cluster 3\n----\n\n"
    text += f"{command}\n----\n"
    line = text.count("\n") - 1
    blocks = parse(text, "t.txt")
    with pytest.raises(TranscriptError, match=rf"t\.txt:{line}: '.*': {why}"):
        run(blocks, "t.txt")


def test_core_errors_are_output_not_failures() -> None:
    world = World()
    world.execute("cluster 3")
    world.execute("boot 1")
    world.execute("lead 1")
    assert world.execute("lead 1") == [
        "1: error: replica sid=1: lead() while LEADING in phase discovery"
    ]


def test_update_mode_output_is_what_the_file_then_expects(tmp_path: Path) -> None:
    # What UPDATE_TRANSCRIPTS=1 writes must pass on the next run, comments kept.
    path = tmp_path / "t.txt"
    path.write_text("# two peers\n\ncluster 2\n----\nstale\n\n# go\nstart 1\n----\n")
    outcome = check_file(path)
    assert not outcome.ok
    path.write_text(outcome.actual)
    again = check_file(path)
    assert again.ok
    assert "# go" in again.actual and "1: emit state LOOKING round=1" in again.actual


def test_a_crash_loses_only_what_was_not_fsynced() -> None:
    world = World()
    world.execute("cluster 3 bug=ack-before-fsync")
    world.execute("establish 1")
    world.execute("write 1 k=v")
    world.execute("deliver-all")
    assert world.execute("disk 2")[0].endswith("not-fsynced=[0x1:1 k=v]")
    assert world.execute("crash 2")[1] == "2: disk loses not-fsynced [0x1:1 k=v]"
    assert "log=[]" in world.execute("disk 2")[0]
    assert "log=[0x1:1 k=v]" in world.execute("disk 3")[0]  # the correct path: fsynced


def test_a_mismatch_is_reported_as_a_unified_diff(tmp_path: Path) -> None:
    path = tmp_path / "t.txt"
    path.write_text("# one peer\n\ncluster 1\n----\nvoters=[1] observers=[] quorum=2\n")
    outcome = check_file(path)
    text = diff(outcome.expected, outcome.actual, path)
    assert "-voters=[1] observers=[] quorum=2\n" in text
    assert "+voters=[1] observers=[] quorum=1 bug=none\n" in text

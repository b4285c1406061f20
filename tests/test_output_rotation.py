"""td-graph rotating its own file output (issue 14 item 8; contract ``output.max_bytes``/``keep``).

Every record line of ``output_support`` has the same length L, so the expected layout is
written by hand: with ``max_bytes = 5 L`` and pages of 2 records, a file takes two pages (4 L;
a third would make 6 L) and the third page opens a new file.

The crash tests kill a child process at each step of a rotation with the documented test hook
(``TD_GRAPH_TEST_CRASH_AT=rotate:<step>``: the process exits at once, as kill -9 would), then
start it again: every record is in exactly one of the files, once.
"""

from __future__ import annotations

import os
import subprocess
import sys

import orjson
import pytest

import output_support as osup
from td_graph_plugin.errors import OutputError
from td_graph_plugin.outputs import FileOutput
from td_graph_plugin.state import StateStore

HERE = os.path.dirname(os.path.abspath(__file__))
L = len(osup.line(0))


def _ids(path: str) -> list[str]:
    with open(path, "rb") as fh:
        return [orjson.loads(raw)["id"] for raw in fh]


def _rids(*numbers: int) -> list[str]:
    return [osup.record_id(i) for i in numbers]


def test_all_records_have_the_same_length():
    assert {len(osup.line(i)) for i in range(0, 40)} == {L}


def test_rotation_numbers_the_files_and_keeps_only_keep(tmp_path):
    out, db = str(tmp_path / "records.ndjson"), str(tmp_path / "s.db")
    sink = osup.open_sink(db, out, max_bytes=5 * L, keep=3)
    osup.run_pages(sink, 20, 2)
    mark = sink.state.output_mark(sink.output.name)
    osup.close_sink(sink)
    assert sorted(p for p in os.listdir(tmp_path) if "records" in p) == [
        ".records.ndjson.lock", "records.ndjson", "records.ndjson.1", "records.ndjson.2", "records.ndjson.3"]
    assert _ids(out) == _rids(16, 17, 18, 19)
    assert _ids(out + ".1") == _rids(12, 13, 14, 15)
    assert _ids(out + ".2") == _rids(8, 9, 10, 11)
    assert _ids(out + ".3") == _rids(4, 5, 6, 7)  # 0-3 were the oldest: beyond keep, deleted
    st = os.stat(out)
    assert mark == (4 * L, f"{st.st_dev}:{st.st_ino}"), "the state names the current file and its end"


def test_a_clean_restart_continues_the_current_file(tmp_path):
    out, db = str(tmp_path / "records.ndjson"), str(tmp_path / "s.db")
    sink = osup.open_sink(db, out, max_bytes=5 * L, keep=3)
    osup.run_pages(sink, 6, 2)
    osup.close_sink(sink)
    sink = osup.open_sink(db, out, max_bytes=5 * L, keep=3)
    assert sink.output.recovered == []
    osup.run_pages(sink, 10, 2)
    osup.close_sink(sink)
    # 6 and 7 went into the file that held 4 and 5 before the restart, then 8 rotated it.
    assert _ids(out + ".2") == _rids(0, 1, 2, 3)
    assert _ids(out + ".1") == _rids(4, 5, 6, 7)
    assert _ids(out) == _rids(8, 9)
    assert osup.id_counts(osup.output_files(out)) == {osup.record_id(i): 1 for i in range(10)}


def test_a_page_larger_than_max_bytes_gets_a_file_of_its_own(tmp_path):
    out, db = str(tmp_path / "records.ndjson"), str(tmp_path / "s.db")
    sink = osup.open_sink(db, out, max_bytes=L, keep=5)
    osup.deliver(sink, [0, 1, 2])  # into the empty file: a page is never split
    osup.deliver(sink, [3])
    osup.deliver(sink, [4, 5])
    osup.close_sink(sink)
    assert _ids(out + ".2") == _rids(0, 1, 2)
    assert _ids(out + ".1") == _rids(3)
    assert _ids(out) == _rids(4, 5)


def test_numbers_beyond_keep_are_removed_when_keep_shrinks(tmp_path):
    out, db = str(tmp_path / "records.ndjson"), str(tmp_path / "s.db")
    for n in (1, 2, 3, 7):
        (tmp_path / f"records.ndjson.{n}").write_bytes(f"old {n}\n".encode())
    sink = osup.open_sink(db, out, max_bytes=2 * L, keep=2)
    osup.run_pages(sink, 4, 2)
    osup.close_sink(sink)
    assert sorted(p for p in os.listdir(tmp_path) if p.startswith("records")) == [
        "records.ndjson", "records.ndjson.1", "records.ndjson.2"]
    assert (tmp_path / "records.ndjson.2").read_bytes() == b"old 1\n"
    assert _ids(out + ".1") == _rids(0, 1)
    assert _ids(out) == _rids(2, 3)


@pytest.mark.parametrize("keep", [0, -1])
def test_rotation_keeps_at_least_one_file(tmp_path, keep):
    with pytest.raises(OutputError, match="output.keep"):
        FileOutput(str(tmp_path / "records.ndjson"), max_bytes=1000, keep=keep)


def test_max_bytes_must_be_positive(tmp_path):
    with pytest.raises(OutputError, match="output.max_bytes"):
        FileOutput(str(tmp_path / "records.ndjson"), max_bytes=0)


# --- kill -9 at each step of a rotation -----------------------------------------------------------
def _rotate_child(out: str, db: str, crash_at: str | None) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    env.pop("TD_GRAPH_TEST_CRASH_AT", None)
    if crash_at:
        env["TD_GRAPH_TEST_CRASH_AT"] = crash_at
    return subprocess.run([sys.executable, os.path.join(HERE, "output_support.py"), "rotate", out, db,
                           str(5 * L), "3", "14", "2"], env=env, capture_output=True, text=True, timeout=60)


def _identity(path: str) -> str:
    st = os.stat(path)
    return f"{st.st_dev}:{st.st_ino}"


@pytest.mark.parametrize("step, layout", [
    # what the folder holds at the crash (first rotation: records 0-3 are committed in the file)
    ("rotate:before_rename", {"records.ndjson": 4 * L}),
    ("rotate:after_rename", {"records.ndjson.1": 4 * L}),
    ("rotate:after_create", {"records.ndjson": 0, "records.ndjson.1": 4 * L}),
    ("rotate:after_write", {"records.ndjson": 2 * L, "records.ndjson.1": 4 * L}),
])
def test_kill_at_each_step_of_a_rotation_keeps_every_record_exactly_once(tmp_path, step, layout):
    out, db = str(tmp_path / "records.ndjson"), str(tmp_path / "s.db")
    crashed = _rotate_child(out, db, step)
    assert crashed.returncode == 137, crashed.stderr[-2000:]
    assert {p: os.path.getsize(tmp_path / p) for p in os.listdir(tmp_path) if p.startswith("records")} == layout
    state = StateStore(db)
    try:  # the crash came before the new file's identity reached the state
        recorded = state.output_mark("file:" + out)
    finally:
        state.close()
    where = out if step == "rotate:before_rename" else out + ".1"
    assert recorded == (4 * L, _identity(where))

    again = _rotate_child(out, db, None)
    assert again.returncode == 0, again.stderr[-2000:]
    assert osup.id_counts(osup.output_files(out)) == {osup.record_id(i): 1 for i in range(14)}
    # The same files as without a crash: four records each, the last two in the current file.
    assert [_ids(p) for p in osup.output_files(out)] == [
        _rids(0, 1, 2, 3), _rids(4, 5, 6, 7), _rids(8, 9, 10, 11), _rids(12, 13)]
    state = StateStore(db)
    try:
        assert state.output_mark("file:" + out) == (os.path.getsize(out), _identity(out))
    finally:
        state.close()


def test_td_graph_does_not_rotate_a_file_an_operator_already_rotated(tmp_path):
    """logrotate renamed the file and its SIGHUP has not arrived yet: td-graph keeps writing
    the renamed file instead of renaming logrotate's new one, and moves over on the reopen."""
    out, db = str(tmp_path / "records.ndjson"), str(tmp_path / "s.db")
    sink = osup.open_sink(db, out, max_bytes=5 * L, keep=3)
    osup.deliver(sink, [0, 1])
    osup.deliver(sink, [2, 3])
    os.rename(out, out + ".1")
    open(out, "wb").close()
    osup.deliver(sink, [4, 5])  # would rotate, but the path is not td-graph's file any more
    assert _ids(out + ".1") == _rids(0, 1, 2, 3, 4, 5) and os.path.getsize(out) == 0
    sink.request_reopen()
    osup.deliver(sink, [6, 7])
    osup.close_sink(sink)
    assert _ids(out) == _rids(6, 7) and not os.path.exists(out + ".2")

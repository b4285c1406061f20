"""State store guarantees and the exactly-once file output."""

from __future__ import annotations

import os
import sqlite3

import pytest

from td_graph_plugin.collector import SyncSink
from td_graph_plugin.errors import StateError
from td_graph_plugin.outputs import FileOutput
from td_graph_plugin.state import SCHEMA_VERSION, Commit, StateStore


def test_second_process_on_same_state_is_refused(tmp_path):
    path = str(tmp_path / "s.db")
    first = StateStore(path)
    try:
        with pytest.raises(StateError, match="in use by another td-graph process"):
            StateStore(path)
    finally:
        first.close()
    StateStore(path).close()  # released on close


def test_corrupt_file_is_an_error_not_a_reset(tmp_path):
    path = tmp_path / "s.db"
    path.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(StateError, match="corrupt or not a td-graph state file"):
        StateStore(str(path))
    assert path.read_bytes().startswith(b"this is not sqlite"), "the file is left untouched"


def test_foreign_sqlite_database_is_refused(tmp_path):
    path = tmp_path / "s.db"
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE customers (id INTEGER)")
    db.commit()
    db.close()
    with pytest.raises(StateError):
        StateStore(str(path))


def test_newer_schema_is_refused(tmp_path):
    path = str(tmp_path / "s.db")
    StateStore(path).close()
    db = sqlite3.connect(path)
    db.execute("UPDATE meta SET value=? WHERE key='schema_version'", (str(SCHEMA_VERSION + 1),))
    db.commit()
    db.close()
    with pytest.raises(StateError, match="newer"):
        StateStore(path)


def test_commit_is_atomic_with_output_offset(tmp_path):
    s = StateStore(str(tmp_path / "s.db"))
    s.commit(Commit("t", "src", cursor={"done": "x"}, seen=[("a", 1.0), ("b", 2.0)]), output=("file:/o", 42))
    assert s.cursor("t", "src") == {"done": "x"}
    assert s.seen_keys("t", "src", ["a", "b", "c"]) == {"a", "b"}
    assert s.output_position("file:/o") == 42
    s.commit(Commit("t", "src", cursor={"done": "y"}, prune_seen_before=1.5))
    assert s.seen_keys("t", "src", ["a", "b"]) == {"b"}
    s.close()


class Boom(Exception):
    pass


def test_file_output_truncates_uncommitted_tail(tmp_path):
    state = StateStore(str(tmp_path / "s.db"))
    out_path = tmp_path / "records.ndjson"
    sink = SyncSink(FileOutput(str(out_path)), state)
    sink.open()
    sink.deliver([b'{"id":1}\n', b'{"id":2}\n'], Commit("t", "s", cursor={"n": 2}), lambda: None)
    # A crash between write and commit: the bytes are in the file, the state does not know them.
    sink.output.write([b'{"id":3}\n'])
    sink.close()
    state.close()
    state = StateStore(str(tmp_path / "s.db"))
    sink = SyncSink(FileOutput(str(out_path)), state)
    sink.open()
    assert out_path.read_bytes() == b'{"id":1}\n{"id":2}\n'
    sink.deliver([b'{"id":3}\n'], Commit("t", "s", cursor={"n": 3}), lambda: None)
    assert out_path.read_bytes().count(b"\n") == 3
    assert state.output_position(sink.output.name) == os.path.getsize(out_path)
    sink.close()
    state.close()


def test_file_output_missing_folder_is_clear(tmp_path):
    from td_graph_plugin.errors import OutputError

    with pytest.raises(OutputError, match="does not exist"):
        FileOutput(str(tmp_path / "nope" / "x.ndjson")).open(None)
